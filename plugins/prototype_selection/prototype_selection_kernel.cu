// PEM-RT PrototypeSelection: fused masked per-head argmax + gather that streams over the tokens.
//
// Three kernels on one stream:
//  1. anyUnmaskedKernel: per image, is any (query, token) logit not < 0?  -> flags[B] (the reference clears
//     the mask of an image whose every query is fully masked).
//  2. scanKernel: grid (splits, query tiles, B). A block stages the head slices of `queryTile` queries in
//     shared memory once, then streams its token range in chunks of `tokenChunk` tokens (features and keep
//     flags in shared memory); each thread owns up to 4 (head, query) pairs and keeps their running best
//     (score, token) in registers. It writes one partial best per (split, b, h, q). For 32-wide heads a fast
//     path holds the thread's query slice in registers and scores 4 tokens per step from float4 reads.
//     Splits are chosen for one full wave of resident blocks (makePlan).
//  3. gatherKernel: one thread per output element: folds the partials of (b, h, q) in split order and
//     copies features[b, best, c] (a bit-exact gather).
//
// Peak extra memory, by construction: flags (B int32) + kMaxSplits x B x heads x Q x (float + int32), i.e.
// O(B * heads * Q) and independent of N (pem::ps::workspaceSize). The naive path (einsum + masked_fill +
// argmax + gather) materialises the B x heads x N x Q similarity tensor: 105 MB in fp32 at 1/8 of
// 1024 x 2048 (N = 32768, heads = 8, Q = 100) against 0.8 MB here.
#include "prototype_selection_kernel.h"

#include "../common/launch.cuh"

#include <atomic>

namespace pem
{
namespace
{

constexpr int32_t kFlagThreads = 256;
constexpr int32_t kGatherThreads = 256;

template <typename M>
__global__ void __launch_bounds__(kFlagThreads) anyUnmaskedKernel(
    M const* __restrict__ maskLogits, int64_t perImage, int32_t* __restrict__ flags)
{
    int32_t const b = static_cast<int32_t>(blockIdx.y);
    M const* logits = maskLogits + static_cast<int64_t>(b) * perImage;
    bool found = false;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < perImage && !found;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        found = ps::isUnmasked(toFloat(logits[i]));
    }
    if (__syncthreads_or(found) && threadIdx.x == 0)
    {
        flags[b] = 1;
    }
}

//! Depth: 0 for any head width; ps::kFastDepth when C / heads equals it and every thread owns at most one
//! (head, query) pair: the pair's query slice then lives in registers and feature slices are read from
//! shared memory as float4 (a quarter of the shared loads; same fp32 fma order as headDot).
template <typename T, typename M, int32_t Depth>
__global__ void __launch_bounds__(ps::kThreads) scanKernel(PemPsShape s, PemPsPlan plan, T const* __restrict__ features,
    T const* __restrict__ queries, M const* __restrict__ maskLogits, int32_t const* __restrict__ flags,
    float* __restrict__ partialValue, int32_t* __restrict__ partialToken)
{
    PEM_DYNAMIC_SHARED(float, shared);
    int32_t const channels = s.channels;
    int32_t const depth = channels / s.heads;
    int32_t const queryStride = channels + 1;
    float* const queryTile = shared;                                 // [queryTile][C + 1]
    float* const tokenTile = queryTile + ps::queryFloats(plan.queryTile, channels); // [tokenChunk][C]
    unsigned char* const keepTile = reinterpret_cast<unsigned char*>(tokenTile + plan.tokenChunk * channels);

    int32_t const split = static_cast<int32_t>(blockIdx.x);
    int32_t const q0 = static_cast<int32_t>(blockIdx.y) * plan.queryTile;
    int32_t const b = static_cast<int32_t>(blockIdx.z);
    int32_t const queryCount = min(plan.queryTile, s.queries - q0);
    int32_t const tokenBegin = split * plan.tokensPerSplit;
    int32_t const tokenEnd = min(s.tokens, tokenBegin + plan.tokensPerSplit);
    bool const imageHasUnmasked = flags[b] != 0;
    int32_t const pairs = s.heads * plan.queryTile;

    for (int32_t i = static_cast<int32_t>(threadIdx.x); i < queryCount * channels; i += blockDim.x)
    {
        int32_t const ql = i / channels;
        int32_t const c = i % channels;
        queryTile[ql * queryStride + c] = toFloat(queries[(static_cast<int64_t>(b) * s.queries + q0 + ql) * channels + c]);
    }

    ps::Best best[ps::kMaxPairsPerThread];
#pragma unroll
    for (int32_t r = 0; r < ps::kMaxPairsPerThread; ++r)
    {
        best[r] = ps::initialBest();
    }
    float ownQuery[Depth > 0 ? Depth : 1];
    if constexpr (Depth > 0)
    {
        __syncthreads(); // the query tile is staged
        int32_t const h = static_cast<int32_t>(threadIdx.x) / plan.queryTile;
        int32_t const ql = static_cast<int32_t>(threadIdx.x) % plan.queryTile;
        bool const active = static_cast<int32_t>(threadIdx.x) < pairs && ql < queryCount;
#pragma unroll
        for (int32_t d = 0; d < Depth; ++d)
        {
            ownQuery[d] = active ? queryTile[ql * queryStride + h * Depth + d] : 0.f;
        }
    }

    for (int32_t n0 = tokenBegin; n0 < tokenEnd; n0 += plan.tokenChunk)
    {
        int32_t const tokenCount = min(plan.tokenChunk, tokenEnd - n0);
        __syncthreads(); // the previous chunk is consumed (first pass: nothing to wait for but the queries)
        T const* const chunk = features + (static_cast<int64_t>(b) * s.tokens + n0) * channels;
        // kLoadBatch loads in flight per thread before the first store: the chunk arrives in a few round trips
        constexpr int32_t kLoadBatch = 8;
        int32_t const chunkFloats = tokenCount * channels;
        int32_t const stride = static_cast<int32_t>(blockDim.x);
        for (int32_t first = static_cast<int32_t>(threadIdx.x); first < chunkFloats; first += kLoadBatch * stride)
        {
            float staged[kLoadBatch];
#pragma unroll
            for (int32_t j = 0; j < kLoadBatch; ++j)
            {
                int32_t const i = first + j * stride;
                staged[j] = i < chunkFloats ? toFloat(chunk[i]) : 0.f;
            }
#pragma unroll
            for (int32_t j = 0; j < kLoadBatch; ++j)
            {
                int32_t const i = first + j * stride;
                if (i < chunkFloats)
                {
                    tokenTile[i] = staged[j];
                }
            }
        }
        for (int32_t i = static_cast<int32_t>(threadIdx.x); i < queryCount * tokenCount; i += blockDim.x)
        {
            int32_t const ql = i / tokenCount;
            int32_t const nl = i % tokenCount;
            float const logit = toFloat(maskLogits[(static_cast<int64_t>(b) * s.queries + q0 + ql) * s.tokens + n0 + nl]);
            keepTile[ql * plan.tokenChunk + nl] = ps::tokenKept(logit, imageHasUnmasked) ? 1 : 0;
        }
        __syncthreads();
#pragma unroll
        for (int32_t r = 0; r < ps::kMaxPairsPerThread; ++r)
        {
            int32_t const pair = static_cast<int32_t>(threadIdx.x) + r * ps::kThreads;
            int32_t const h = pair / plan.queryTile;
            int32_t const ql = pair % plan.queryTile;
            if (pair >= pairs || ql >= queryCount)
            {
                continue;
            }
            unsigned char const* const keep = keepTile + ql * plan.tokenChunk;
            if constexpr (Depth > 0)
            {
                // kIlp tokens at a time: independent fma chains (each in headDot's order) keep the pipes busy
                constexpr int32_t kIlp = 4;
                int32_t const rowVectors = channels / 4;
                for (int32_t nl = 0; nl < tokenCount; nl += kIlp)
                {
                    auto const* const token = reinterpret_cast<float4 const*>(tokenTile + nl * channels + h * Depth);
                    int32_t const count = min(kIlp, tokenCount - nl);
                    float sum[kIlp] = {};
#pragma unroll
                    for (int32_t k = 0; k < Depth / 4; ++k)
                    {
#pragma unroll
                        for (int32_t j = 0; j < kIlp; ++j)
                        {
                            float4 const v = token[(j < count ? j : 0) * rowVectors + k];
                            sum[j] = madd(ownQuery[4 * k], v.x, sum[j]);
                            sum[j] = madd(ownQuery[4 * k + 1], v.y, sum[j]);
                            sum[j] = madd(ownQuery[4 * k + 2], v.z, sum[j]);
                            sum[j] = madd(ownQuery[4 * k + 3], v.w, sum[j]);
                        }
                    }
#pragma unroll
                    for (int32_t j = 0; j < kIlp; ++j)
                    {
                        if (j < count && keep[nl + j])
                        {
                            ps::offerInOrder(best[r], sum[j], n0 + nl + j);
                        }
                    }
                }
            }
            else
            {
                float const* const query = queryTile + ql * queryStride + h * depth;
                for (int32_t nl = 0; nl < tokenCount; ++nl)
                {
                    if (keep[nl])
                    {
                        ps::offerInOrder(
                            best[r], ps::headDot(query, tokenTile + nl * channels + h * depth, depth), n0 + nl);
                    }
                }
            }
        }
    }

#pragma unroll
    for (int32_t r = 0; r < ps::kMaxPairsPerThread; ++r)
    {
        int32_t const pair = static_cast<int32_t>(threadIdx.x) + r * ps::kThreads;
        int32_t const h = pair / plan.queryTile;
        int32_t const ql = pair % plan.queryTile;
        if (pair < pairs && ql < queryCount)
        {
            int64_t const at = ps::partialIndex(s, split, b, h, q0 + ql);
            partialValue[at] = best[r].value;
            partialToken[at] = best[r].index;
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(kGatherThreads) gatherKernel(PemPsShape s, int32_t splits,
    float const* __restrict__ partialValue, int32_t const* __restrict__ partialToken, T const* __restrict__ features,
    T* __restrict__ prototypes, int32_t* __restrict__ indices)
{
    int64_t const i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    int64_t const total = static_cast<int64_t>(s.batch) * s.queries * s.channels;
    if (i >= total)
    {
        return;
    }
    int32_t const depth = s.channels / s.heads;
    int32_t const c = static_cast<int32_t>(i % s.channels);
    int32_t const q = static_cast<int32_t>((i / s.channels) % s.queries);
    int32_t const b = static_cast<int32_t>(i / (static_cast<int64_t>(s.channels) * s.queries));
    int32_t const h = c / depth;
    ps::Best best = ps::initialBest();
    for (int32_t split = 0; split < splits; ++split)
    {
        int64_t const at = ps::partialIndex(s, split, b, h, q);
        ps::combineInOrder(best, ps::Best{partialValue[at], partialToken[at]});
    }
    prototypes[i] = features[(static_cast<int64_t>(b) * s.tokens + best.index) * s.channels + c];
    if (indices != nullptr && c % depth == 0)
    {
        indices[(static_cast<int64_t>(b) * s.heads + h) * s.queries + q] = best.index;
    }
}

//! Multiprocessors of the current device (cached per device: the plan only needs it to size the grid).
int32_t multiprocessorCount()
{
    constexpr int32_t kMaxDevices = 64;
    static std::atomic<int32_t> cache[kMaxDevices] = {};
    int32_t device = 0;
    if (cudaGetDevice(&device) != cudaSuccess)
    {
        return 1;
    }
    int32_t count = device >= 0 && device < kMaxDevices ? cache[device].load(std::memory_order_relaxed) : 0;
    if (count == 0)
    {
        if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count < 1)
        {
            return 1;
        }
        if (device >= 0 && device < kMaxDevices)
        {
            cache[device].store(count, std::memory_order_relaxed);
        }
    }
    return count;
}

} // namespace

size_t prototypeSelectionWorkspaceSize(PemPsShape const& shape)
{
    return ps::workspaceSize(shape);
}

template <typename T, typename M>
cudaError_t launchPrototypeSelection(PemPsShape const& shape, T const* features, T const* queries,
    M const* maskLogits, T* prototypes, int32_t* indices, void* workspace, size_t workspaceBytes, cudaStream_t stream)
{
    PemPsPlan plan{};
    if (!ps::makePlan(shape, multiprocessorCount(), &plan) || features == nullptr || queries == nullptr
        || maskLogits == nullptr || prototypes == nullptr)
    {
        return cudaErrorInvalidValue;
    }
    if (shape.batch == 0 || shape.queries == 0)
    {
        return cudaSuccess;
    }
    if (workspace == nullptr || workspaceBytes < ps::workspaceSize(shape) || shape.batch > 65535
        || (shape.queries + plan.queryTile - 1) / plan.queryTile > 65535)
    {
        return cudaErrorInvalidValue;
    }
    auto* const base = static_cast<unsigned char*>(workspace);
    auto* const flags = reinterpret_cast<int32_t*>(base);
    auto* const partialValue = reinterpret_cast<float*>(base + ps::flagsBytes(shape));
    auto* const partialToken = reinterpret_cast<int32_t*>(base + ps::flagsBytes(shape) + ps::partialBytes(shape));

    cudaError_t status = cudaMemsetAsync(flags, 0, static_cast<size_t>(shape.batch) * sizeof(int32_t), stream);
    if (status != cudaSuccess)
    {
        return status;
    }
    int64_t const perImage = static_cast<int64_t>(shape.queries) * shape.tokens;
    int64_t flagBlocks = (perImage + kFlagThreads * 8 - 1) / (kFlagThreads * 8);
    flagBlocks = flagBlocks > 1024 ? 1024 : flagBlocks;
    auto* const flagKernel = &anyUnmaskedKernel<M>;
    dim3 const flagGrid(static_cast<uint32_t>(flagBlocks), static_cast<uint32_t>(shape.batch));
    PEM_LAUNCH(flagKernel, flagGrid, kFlagThreads, 0, stream)(maskLogits, perImage, flags);
    if ((status = cudaGetLastError()) != cudaSuccess)
    {
        return status;
    }
    dim3 const scanGrid(static_cast<uint32_t>(plan.splits),
        static_cast<uint32_t>((shape.queries + plan.queryTile - 1) / plan.queryTile), static_cast<uint32_t>(shape.batch));
    bool const fast = shape.channels == shape.heads * ps::kFastDepth && shape.heads * plan.queryTile <= ps::kThreads;
    auto* const scan = fast ? &scanKernel<T, M, ps::kFastDepth> : &scanKernel<T, M, 0>;
    PEM_LAUNCH(scan, scanGrid, ps::kThreads, static_cast<size_t>(plan.sharedBytes), stream)(
        shape, plan, features, queries, maskLogits, flags, partialValue, partialToken);
    if ((status = cudaGetLastError()) != cudaSuccess)
    {
        return status;
    }
    int64_t const total = static_cast<int64_t>(shape.batch) * shape.queries * shape.channels;
    auto* const gather = &gatherKernel<T>;
    dim3 const gatherGrid(static_cast<uint32_t>((total + kGatherThreads - 1) / kGatherThreads));
    PEM_LAUNCH(gather, gatherGrid, kGatherThreads, 0, stream)(
        shape, plan.splits, partialValue, partialToken, features, prototypes, indices);
    return cudaGetLastError();
}

#define PEM_INSTANTIATE_PS(T, M)                                                                                       \
    template cudaError_t launchPrototypeSelection<T, M>(PemPsShape const&, T const*, T const*, M const*, T*, int32_t*, \
        void*, size_t, cudaStream_t);
PEM_INSTANTIATE_PS(float, float)
PEM_INSTANTIATE_PS(float, __half)
PEM_INSTANTIATE_PS(__half, float)
PEM_INSTANTIATE_PS(__half, __half)
#undef PEM_INSTANTIATE_PS

} // namespace pem

extern "C" size_t pem_prototype_selection_workspace_size(PemPsShape const* shape)
{
    return shape == nullptr ? 0 : pem::prototypeSelectionWorkspaceSize(*shape);
}

extern "C" cudaError_t pem_prototype_selection(int32_t dtype, int32_t maskDtype, PemPsShape const* shape,
    void const* features, void const* queries, void const* maskLogits, void* prototypes, int32_t* indices,
    void* workspace, size_t workspaceBytes, cudaStream_t stream)
{
    if (shape == nullptr)
    {
        return cudaErrorInvalidValue;
    }
    auto run = [&](auto element, auto mask) {
        using T = decltype(element);
        using M = decltype(mask);
        return pem::launchPrototypeSelection<T, M>(*shape, static_cast<T const*>(features),
            static_cast<T const*>(queries), static_cast<M const*>(maskLogits), static_cast<T*>(prototypes), indices,
            workspace, workspaceBytes, stream);
    };
    if (dtype == PEM_FLOAT32 && maskDtype == PEM_FLOAT32)
    {
        return run(float{}, float{});
    }
    if (dtype == PEM_FLOAT32 && maskDtype == PEM_FLOAT16)
    {
        return run(float{}, __half{});
    }
    if (dtype == PEM_FLOAT16 && maskDtype == PEM_FLOAT32)
    {
        return run(__half{}, float{});
    }
    if (dtype == PEM_FLOAT16 && maskDtype == PEM_FLOAT16)
    {
        return run(__half{}, __half{});
    }
    return cudaErrorInvalidValue;
}
