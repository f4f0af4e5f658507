// PEM-RT host tests: the few CUDA runtime calls the launchers make, on the host (host pointers).
// Linked into libpem_plugins_hostref.so instead of the CUDA runtime.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>

namespace
{
int gMultiprocessors = 132;
}

extern "C" __attribute__((visibility("default"))) void pem_emulation_set_multiprocessors(int32_t count)
{
    gMultiprocessors = count;
}

cudaError_t cudaGetLastError()
{
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int /*device*/)
{
    if (attr != cudaDevAttrMultiProcessorCount)
    {
        return cudaErrorInvalidValue;
    }
    *value = gMultiprocessors;
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t count, cudaStream_t /*stream*/)
{
    std::memset(pointer, value, count);
    return cudaSuccess;
}
