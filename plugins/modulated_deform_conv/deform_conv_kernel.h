// PEM-RT ModulatedDeformConv2d: CUDA launchers (no TensorRT headers here).
//
// All tensors are contiguous NCHW (weight [Cout, Cin/groups, kh, kw]); T is float or __half for every
// tensor of one call. Accumulation is fp32. No workspace: the kernel is an implicit GEMM that samples the
// deformable columns straight into shared memory (see deform_conv_kernel.cu).
#pragma once

#include "deform_conv_math.cuh"

#include <cuda_runtime_api.h>

namespace pem
{

//! Enqueue y = ModulatedDeformConv2d(x, offset, mask, weight, bias) on `stream`; bias may be null.
//! Returns cudaErrorInvalidValue for an inconsistent shape, else cudaGetLastError() after the launch.
template <typename T>
cudaError_t launchModulatedDeformConv2d(PemDcnShape const& shape, T const* x, T const* offset, T const* mask,
    T const* weight, T const* bias, T* y, cudaStream_t stream);

} // namespace pem

extern "C"
{
    //! C ABI of the launcher (used by the GPU tests through ctypes): dtype is PEM_FLOAT32 or PEM_FLOAT16.
    __attribute__((visibility("default"))) cudaError_t pem_modulated_deform_conv2d(int32_t dtype,
        PemDcnShape const* shape, void const* x, void const* offset, void const* mask, void const* weight,
        void const* bias, void* y, cudaStream_t stream);
}
