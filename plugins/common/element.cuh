// PEM-RT: element types shared by the kernels and the host test library.
//
// Every *_math.cuh function is __host__ __device__: nvcc compiles it into the CUDA kernels and the host C++
// compiler compiles the very same code into the host test library (hosttest/), which the Python tests
// drive with numpy arrays. Loads widen to float, arithmetic is float (fp16 accumulates in fp32), stores
// round to nearest.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>

// C-ABI element type codes (the values equal nvinfer1::DataType::kFLOAT / kHALF).
enum PemDataType : int32_t
{
    PEM_FLOAT32 = 0,
    PEM_FLOAT16 = 1,
};

namespace pem
{

__host__ __device__ inline float toFloat(float v)
{
    return v;
}

__host__ __device__ inline float toFloat(__half v)
{
    return __half2float(v);
}

template <typename T>
__host__ __device__ inline T fromFloat(float v);

template <>
__host__ __device__ inline float fromFloat<float>(float v)
{
    return v;
}

template <>
__host__ __device__ inline __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}

//! a * b + c rounded once, on the host and on the device alike (so both accumulate bit-identically).
__host__ __device__ inline float madd(float a, float b, float c)
{
    return fmaf(a, b, c);
}

} // namespace pem
