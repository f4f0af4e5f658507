// PEM-RT ModulatedDeformConv2d: implicit-GEMM CUDA kernel.
//
// Per (image, group) the convolution is the GEMM  y[M, P] = W[M, K] * Col[K, P]  with M = Cout/groups,
// K = (Cin/groups) * kh * kw and P = Ho * Wo, where Col is the deformable column matrix
// (dcn::modulatedColumn). Col is never written to global memory: each 256-thread block owns a 64 x 64
// output tile and walks K in steps of 16, sampling the 16 x 64 column slice and loading the 16 x 64 weight
// slice into shared memory (about 8 KiB), then each thread accumulates a 4 x 4 sub-tile in fp32 registers. So
// the extra device memory is zero and each bilinear sample is computed ceil(M / 64) times.
#include "deform_conv_kernel.h"

#include "../common/launch.cuh"

namespace pem
{
namespace
{

constexpr int32_t kTileM = 64;
constexpr int32_t kTileP = 64;
constexpr int32_t kTileK = 16;
constexpr int32_t kThreads = 256;
constexpr int32_t kThreadRows = 16; // kThreads = kThreadRows * kThreadCols, each thread 4 x 4 outputs
constexpr int32_t kThreadCols = 16;
constexpr int32_t kLoadsPerThread = kTileK * kTileP / kThreads;
static_assert(kTileK * kTileM == kTileK * kTileP, "one loop loads both tiles");
static_assert(kThreadRows * 4 == kTileM && kThreadCols * 4 == kTileP, "4 x 4 outputs per thread");

template <typename T>
__global__ void __launch_bounds__(kThreads) modulatedDeformConvKernel(PemDcnShape s, T const* __restrict__ x,
    T const* __restrict__ offset, T const* __restrict__ mask, T const* __restrict__ weight, T const* __restrict__ bias,
    T* __restrict__ y)
{
    __shared__ float weightTile[kTileK][kTileM + 1]; // +1: the k-major stores do not all hit one bank
    __shared__ float columnTile[kTileK][kTileP];

    int32_t const pixels = s.outHeight * s.outWidth;
    int32_t const rows = s.outChannels / s.groups;
    int32_t const depth = dcn::reductionLength(s);
    int32_t const p0 = static_cast<int32_t>(blockIdx.x) * kTileP;
    int32_t const m0 = static_cast<int32_t>(blockIdx.y) * kTileM;
    int32_t const b = static_cast<int32_t>(blockIdx.z) / s.groups;
    int32_t const g = static_cast<int32_t>(blockIdx.z) % s.groups;
    int32_t const tx = static_cast<int32_t>(threadIdx.x) % kThreadCols;
    int32_t const ty = static_cast<int32_t>(threadIdx.x) / kThreadCols;

    float acc[4][4] = {};
    for (int32_t k0 = 0; k0 < depth; k0 += kTileK)
    {
        for (int32_t r = 0; r < kLoadsPerThread; ++r)
        {
            int32_t const e = static_cast<int32_t>(threadIdx.x) + r * kThreads;
            // Weights: consecutive threads read consecutive k of one output channel.
            int32_t const wk = e % kTileK;
            int32_t const wm = e / kTileK;
            weightTile[wk][wm] = (k0 + wk < depth && m0 + wm < rows) ? dcn::weightAt(s, weight, g, m0 + wm, k0 + wk)
                                                                      : 0.f;
            // Columns: consecutive threads sample consecutive output pixels.
            int32_t const ck = e / kTileP;
            int32_t const cp = p0 + e % kTileP;
            columnTile[ck][e % kTileP] = (k0 + ck < depth && cp < pixels)
                ? dcn::modulatedColumn(s, x, offset, mask, b, g, k0 + ck, cp / s.outWidth, cp % s.outWidth)
                : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int32_t kk = 0; kk < kTileK; ++kk)
        {
            float a[4];
            float c[4];
#pragma unroll
            for (int32_t i = 0; i < 4; ++i)
            {
                a[i] = weightTile[kk][ty + kThreadRows * i];
                c[i] = columnTile[kk][tx + kThreadCols * i];
            }
#pragma unroll
            for (int32_t i = 0; i < 4; ++i)
            {
#pragma unroll
                for (int32_t j = 0; j < 4; ++j)
                {
                    acc[i][j] = madd(a[i], c[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int32_t i = 0; i < 4; ++i)
    {
        int32_t const m = m0 + ty + kThreadRows * i;
        if (m >= rows)
        {
            continue;
        }
        int32_t const oc = g * rows + m;
        T* const out = y + (static_cast<int64_t>(b) * s.outChannels + oc) * pixels;
#pragma unroll
        for (int32_t j = 0; j < 4; ++j)
        {
            int32_t const p = p0 + tx + kThreadCols * j;
            if (p < pixels)
            {
                out[p] = dcn::finishOutput(acc[i][j], bias, oc);
            }
        }
    }
}

} // namespace

template <typename T>
cudaError_t launchModulatedDeformConv2d(PemDcnShape const& shape, T const* x, T const* offset, T const* mask,
    T const* weight, T const* bias, T* y, cudaStream_t stream)
{
    if (!dcn::validShape(shape) || x == nullptr || offset == nullptr || mask == nullptr || weight == nullptr
        || y == nullptr)
    {
        return cudaErrorInvalidValue;
    }
    int64_t const pixels = static_cast<int64_t>(shape.outHeight) * shape.outWidth;
    int64_t const planes = static_cast<int64_t>(shape.batch) * shape.groups;
    if (pixels == 0 || planes == 0)
    {
        return cudaSuccess;
    }
    if (planes > 65535 || pixels > (int64_t{1} << 30))
    {
        return cudaErrorInvalidConfiguration;
    }
    int32_t const rows = shape.outChannels / shape.groups;
    dim3 const grid(static_cast<uint32_t>((pixels + kTileP - 1) / kTileP),
        static_cast<uint32_t>((rows + kTileM - 1) / kTileM), static_cast<uint32_t>(planes));
    auto* const kernel = &modulatedDeformConvKernel<T>;
    PEM_LAUNCH(kernel, grid, kThreads, 0, stream)(shape, x, offset, mask, weight, bias, y);
    return cudaGetLastError();
}

template cudaError_t launchModulatedDeformConv2d<float>(PemDcnShape const&, float const*, float const*, float const*,
    float const*, float const*, float*, cudaStream_t);
template cudaError_t launchModulatedDeformConv2d<__half>(PemDcnShape const&, __half const*, __half const*,
    __half const*, __half const*, __half const*, __half*, cudaStream_t);

} // namespace pem

extern "C" cudaError_t pem_modulated_deform_conv2d(int32_t dtype, PemDcnShape const* shape, void const* x,
    void const* offset, void const* mask, void const* weight, void const* bias, void* y, cudaStream_t stream)
{
    if (shape == nullptr)
    {
        return cudaErrorInvalidValue;
    }
    switch (dtype)
    {
    case PEM_FLOAT32:
        return pem::launchModulatedDeformConv2d(*shape, static_cast<float const*>(x), static_cast<float const*>(offset),
            static_cast<float const*>(mask), static_cast<float const*>(weight), static_cast<float const*>(bias),
            static_cast<float*>(y), stream);
    case PEM_FLOAT16:
        return pem::launchModulatedDeformConv2d(*shape, static_cast<__half const*>(x),
            static_cast<__half const*>(offset), static_cast<__half const*>(mask), static_cast<__half const*>(weight),
            static_cast<__half const*>(bias), static_cast<__half*>(y), stream);
    default: return cudaErrorInvalidValue;
    }
}
