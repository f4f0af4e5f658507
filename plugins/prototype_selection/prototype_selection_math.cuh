// PEM-RT PrototypeSelection: per-element math and the launch plan, shared by the CUDA kernels and the host
// test library.
//
// Semantics (training/model/prototype_selection.py, the PEM reference): for every image b, head h and
// query q, among the tokens n that are kept, pick the first n maximising
//     <features[b, n, h*D:(h+1)*D], queries[b, q, h*D:(h+1)*D]>,   D = C / heads,
// and output prototypes[b, q, h*D:(h+1)*D] = features[b, n, h*D:(h+1)*D]. A token is masked for a query
// where its mask logit is < 0, except that an image whose every (query, token) is masked keeps everything
// (the reference clears that image's mask). A query whose tokens are all masked in an image that is not
// cleared selects token 0 (the reference's all -inf row: argmax returns index 0).
//
// The kernels split the tokens into `splits` contiguous ranges. Each range keeps one running best per
// (b, h, q), replaced only by a strictly greater score while the tokens are visited in increasing order;
// the ranges are then combined in increasing order with the same strict rule. Both steps keep the first
// index among equal scores, so ties resolve like torch.argmax.
#pragma once

#include "../common/element.cuh"

//! Sizes of one PrototypeSelection call (C layout, built by the Python tests with ctypes).
struct PemPsShape
{
    int32_t batch;    //!< B
    int32_t tokens;   //!< N, pixel tokens per image
    int32_t queries;  //!< Q
    int32_t channels; //!< C, a multiple of heads
    int32_t heads;
};

//! How the kernels tile one call (chosen on the host by pem::ps::makePlan).
struct PemPsPlan
{
    int32_t queryTile;      //!< queries per block (their head slices stay in shared memory)
    int32_t tokenChunk;     //!< tokens staged in shared memory per step
    int32_t splits;         //!< token ranges scanned by separate blocks, combined in order afterwards
    int32_t tokensPerSplit; //!< a multiple of tokenChunk
    int32_t sharedBytes;    //!< dynamic shared memory of the scan kernel
};

namespace pem
{
namespace ps
{

constexpr int32_t kThreads = 128;            //!< threads of the scan kernel
constexpr int32_t kMaxPairsPerThread = 4;    //!< (head, query) pairs one scan thread owns at most
constexpr int32_t kMaxHeads = kThreads * kMaxPairsPerThread;
constexpr int32_t kMaxSplits = 128;          //!< bounds the workspace independently of N
constexpr int32_t kBlocksPerSm = 6;          //!< scan blocks resident per SM (registers and shared memory)
constexpr int32_t kTokenChunk = 32;
constexpr int32_t kFastDepth = 32;          //!< head width of the register fast path (C / heads = 32: PEM)
constexpr int32_t kSharedLimit = 48 * 1024;  //!< static limit, no opt-in attribute needed
constexpr size_t kAlign = 256;

__host__ __device__ inline bool validShape(PemPsShape const& s)
{
    return s.batch >= 0 && s.tokens > 0 && s.queries >= 0 && s.channels > 0 && s.heads > 0
        && s.heads <= kMaxHeads && s.channels % s.heads == 0;
}

//! True where the reference keeps a token: its logit is not < 0 (NaN is kept, as in the reference).
__host__ __device__ inline bool isUnmasked(float logit)
{
    return !(logit < 0.f);
}

//! The reference's mask with the empty-image rule: everything is kept when no logit of the image is kept.
__host__ __device__ inline bool tokenKept(float logit, bool imageHasUnmasked)
{
    return !imageHasUnmasked || isUnmasked(logit);
}

//! fp32 dot product of two head slices, accumulated in index order with fused multiply-adds.
__host__ __device__ inline float headDot(float const* a, float const* b, int32_t n)
{
    float s = 0.f;
    for (int32_t d = 0; d < n; ++d)
    {
        s = madd(a[d], b[d], s);
    }
    return s;
}

//! Running best of one (b, h, q): the masked reference row is all -inf, whose argmax is token 0.
struct Best
{
    float value;
    int32_t index;
};

__host__ __device__ inline Best initialBest()
{
    return Best{-INFINITY, 0};
}

//! Offer token `index` with `value`; tokens must come in increasing order (first index wins ties).
__host__ __device__ inline void offerInOrder(Best& best, float value, int32_t index)
{
    if (value > best.value)
    {
        best.value = value;
        best.index = index;
    }
}

//! Fold in the best of the next token range; ranges must come in increasing token order.
__host__ __device__ inline void combineInOrder(Best& best, Best const& next)
{
    if (next.value > best.value)
    {
        best = next;
    }
}

//! Index of the partial result of (split, b, h, q) in the workspace arrays.
__host__ __device__ inline int64_t partialIndex(PemPsShape const& s, int32_t split, int32_t b, int32_t h, int32_t q)
{
    return ((static_cast<int64_t>(split) * s.batch + b) * s.heads + h) * s.queries + q;
}

__host__ __device__ inline size_t alignUp(size_t bytes)
{
    return (bytes + kAlign - 1) / kAlign * kAlign;
}

//! Workspace layout: [B] int32 "image has an unmasked token" flags, then kMaxSplits x B x heads x Q partial
//! maxima (float) and indices (int32). Peak extra memory is O(B * heads * Q): it does not depend on N, and
//! the B x heads x N x Q similarity tensor of the naive path never exists.
__host__ __device__ inline size_t flagsBytes(PemPsShape const& s)
{
    return alignUp(static_cast<size_t>(s.batch) * sizeof(int32_t));
}

__host__ __device__ inline size_t partialBytes(PemPsShape const& s)
{
    return alignUp(static_cast<size_t>(kMaxSplits) * s.batch * s.heads * s.queries * sizeof(float));
}

__host__ __device__ inline size_t workspaceSize(PemPsShape const& s)
{
    return flagsBytes(s) + 2 * partialBytes(s);
}

//! Floats of the shared query tile, a multiple of 4 (the feature tile after it starts 16-byte aligned).
__host__ __device__ inline int32_t queryFloats(int32_t queryTile, int32_t channels)
{
    return (queryTile * (channels + 1) + 3) / 4 * 4;
}

__host__ __device__ inline int32_t sharedBytesFor(int32_t queryTile, int32_t tokenChunk, int32_t channels)
{
    // queries [queryTile][C + 1] (padded rows: no bank conflicts; the region rounded up to 16 bytes so the
    // feature rows after it can be read as float4), features [tokenChunk][C], keep flags.
    int32_t const floats = queryFloats(queryTile, channels) + tokenChunk * channels;
    int32_t const flags = (queryTile * tokenChunk + 3) / 4 * 4;
    return floats * static_cast<int32_t>(sizeof(float)) + flags;
}

//! Choose the tiling for `smCount` multiprocessors (one wave of kBlocksPerSm blocks each). Returns false when even one
//! query and one token do not fit in shared memory (C larger than about 6000).
__host__ __device__ inline bool makePlan(PemPsShape const& s, int32_t smCount, PemPsPlan* plan)
{
    if (!validShape(s) || plan == nullptr)
    {
        return false;
    }
    int32_t queryTile = kThreads / s.heads;
    queryTile = queryTile < 1 ? 1 : queryTile;
    queryTile = (s.queries > 0 && queryTile > s.queries) ? s.queries : queryTile;
    int32_t tokenChunk = kTokenChunk;
    while (sharedBytesFor(queryTile, tokenChunk, s.channels) > kSharedLimit && tokenChunk > 1)
    {
        tokenChunk /= 2;
    }
    while (sharedBytesFor(queryTile, tokenChunk, s.channels) > kSharedLimit && queryTile > 1)
    {
        queryTile /= 2;
    }
    if (sharedBytesFor(queryTile, tokenChunk, s.channels) > kSharedLimit)
    {
        return false;
    }
    int64_t const queryTiles = (static_cast<int64_t>(s.queries) + queryTile - 1) / queryTile;
    int64_t const blocks = static_cast<int64_t>(s.batch) * queryTiles;
    // one full wave: as many blocks as the GPU keeps resident, so every SM hides load latency with 6 blocks
    int64_t const target = static_cast<int64_t>(smCount > 0 ? smCount : 1) * kBlocksPerSm;
    int64_t splits = blocks > 0 ? target / blocks : 1;
    int64_t const chunks = (static_cast<int64_t>(s.tokens) + tokenChunk - 1) / tokenChunk;
    splits = splits < 1 ? 1 : splits;
    splits = splits > kMaxSplits ? kMaxSplits : splits;
    splits = splits > chunks ? chunks : splits;
    int64_t const chunksPerSplit = (chunks + splits - 1) / splits;
    int64_t const tokensPerSplit = chunksPerSplit * tokenChunk;
    plan->queryTile = queryTile;
    plan->tokenChunk = tokenChunk;
    plan->tokensPerSplit = static_cast<int32_t>(tokensPerSplit);
    plan->splits = static_cast<int32_t>((s.tokens + tokensPerSplit - 1) / tokensPerSplit);
    plan->sharedBytes = sharedBytesFor(queryTile, tokenChunk, s.channels);
    return true;
}

} // namespace ps
} // namespace pem
