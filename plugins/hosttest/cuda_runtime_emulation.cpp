// PEM-RT host tests: the few CUDA runtime calls the launchers make, on the host (host pointers).
// Linked into libpem_plugins_hostref.so instead of the CUDA runtime.
//
// pem_emulation_set_multiprocessors(n) makes the "current device" one with n multiprocessors (each count
// gets its own device id, so the launchers' per-device cache sees a different GPU, as it would).
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace
{
std::vector<int> gDevices{132}; // multiprocessors of each emulated device
int gCurrent = 0;
} // namespace

extern "C" __attribute__((visibility("default"))) void pem_emulation_set_multiprocessors(int32_t count)
{
    for (size_t i = 0; i < gDevices.size(); ++i)
    {
        if (gDevices[i] == count)
        {
            gCurrent = static_cast<int>(i);
            return;
        }
    }
    gDevices.push_back(count);
    gCurrent = static_cast<int>(gDevices.size() - 1);
}

cudaError_t cudaGetLastError()
{
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device)
{
    *device = gCurrent;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device)
{
    if (attr != cudaDevAttrMultiProcessorCount || device < 0 || device >= static_cast<int>(gDevices.size()))
    {
        return cudaErrorInvalidValue;
    }
    *value = gDevices[static_cast<size_t>(device)];
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t count, cudaStream_t /*stream*/)
{
    std::memset(pointer, value, count);
    return cudaSuccess;
}
