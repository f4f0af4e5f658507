// PEM-RT host test library: the kernels' element math (*_math.cuh) compiled for the CPU.
//
// Each function below is a plain loop over output elements that calls exactly the __host__ __device__
// functions the CUDA kernels call, in the same order (the same reduction order, the same split structure
// and combine rule), so the Python tests can compare the kernels' arithmetic with PyTorch on a machine
// without a GPU. Built as libpem_plugins_hostref.so; not part of the plugin library.
#include "../modulated_deform_conv/deform_conv_math.cuh"
#include "../prototype_selection/prototype_selection_math.cuh"

#include <vector>

#define PEM_HOST_API extern "C" __attribute__((visibility("default")))

namespace
{

template <typename T>
void deformConv(PemDcnShape const& s, T const* x, T const* offset, T const* mask, T const* weight, T const* bias, T* y)
{
    int32_t const rows = s.outChannels / s.groups;
    int32_t const depth = pem::dcn::reductionLength(s);
    int64_t const pixels = static_cast<int64_t>(s.outHeight) * s.outWidth;
    std::vector<float> column(static_cast<size_t>(depth));
    for (int32_t b = 0; b < s.batch; ++b)
    {
        for (int32_t g = 0; g < s.groups; ++g)
        {
            for (int32_t ho = 0; ho < s.outHeight; ++ho)
            {
                for (int32_t wo = 0; wo < s.outWidth; ++wo)
                {
                    // The kernel samples each column element once per 64-row tile; the value is the same.
                    for (int32_t k = 0; k < depth; ++k)
                    {
                        column[static_cast<size_t>(k)] = pem::dcn::modulatedColumn(s, x, offset, mask, b, g, k, ho, wo);
                    }
                    for (int32_t m = 0; m < rows; ++m)
                    {
                        float acc = 0.f;
                        for (int32_t k = 0; k < depth; ++k)
                        {
                            acc = pem::madd(pem::dcn::weightAt(s, weight, g, m, k), column[static_cast<size_t>(k)], acc);
                        }
                        int32_t const oc = g * rows + m;
                        y[(static_cast<int64_t>(b) * s.outChannels + oc) * pixels + static_cast<int64_t>(ho) * s.outWidth
                            + wo]
                            = pem::dcn::finishOutput(acc, bias, oc);
                    }
                }
            }
        }
    }
}

template <typename T, typename M>
void prototypeSelection(PemPsShape const& s, PemPsPlan const& plan, T const* features, T const* queries,
    M const* maskLogits, T* prototypes, int32_t* indices)
{
    namespace ps = pem::ps;
    int32_t const depth = s.channels / s.heads;
    std::vector<float> query(static_cast<size_t>(s.channels));
    std::vector<float> token(static_cast<size_t>(s.channels));
    std::vector<ps::Best> partial(static_cast<size_t>(plan.splits) * s.batch * s.heads * s.queries);
    for (int32_t b = 0; b < s.batch; ++b)
    {
        // Kernel 1: does the image have any unmasked (query, token)?
        bool imageHasUnmasked = false;
        int64_t const perImage = static_cast<int64_t>(s.queries) * s.tokens;
        for (int64_t i = 0; i < perImage && !imageHasUnmasked; ++i)
        {
            imageHasUnmasked = ps::isUnmasked(pem::toFloat(maskLogits[static_cast<int64_t>(b) * perImage + i]));
        }
        // Kernel 2: per split, per (head, query), a running best over the split's tokens in order.
        for (int32_t split = 0; split < plan.splits; ++split)
        {
            int32_t const begin = split * plan.tokensPerSplit;
            int32_t const end = begin + plan.tokensPerSplit < s.tokens ? begin + plan.tokensPerSplit : s.tokens;
            for (int32_t q = 0; q < s.queries; ++q)
            {
                for (int32_t c = 0; c < s.channels; ++c)
                {
                    query[static_cast<size_t>(c)]
                        = pem::toFloat(queries[(static_cast<int64_t>(b) * s.queries + q) * s.channels + c]);
                }
                std::vector<ps::Best> best(static_cast<size_t>(s.heads), ps::initialBest());
                for (int32_t n = begin; n < end; ++n)
                {
                    float const logit = pem::toFloat(maskLogits[(static_cast<int64_t>(b) * s.queries + q) * s.tokens + n]);
                    if (!ps::tokenKept(logit, imageHasUnmasked))
                    {
                        continue;
                    }
                    for (int32_t c = 0; c < s.channels; ++c)
                    {
                        token[static_cast<size_t>(c)]
                            = pem::toFloat(features[(static_cast<int64_t>(b) * s.tokens + n) * s.channels + c]);
                    }
                    for (int32_t h = 0; h < s.heads; ++h)
                    {
                        float const score = ps::headDot(query.data() + h * depth, token.data() + h * depth, depth);
                        ps::offerInOrder(best[static_cast<size_t>(h)], score, n);
                    }
                }
                for (int32_t h = 0; h < s.heads; ++h)
                {
                    partial[static_cast<size_t>(ps::partialIndex(s, split, b, h, q))] = best[static_cast<size_t>(h)];
                }
            }
        }
        // Kernel 3: fold the splits in order and gather the head slices.
        for (int32_t q = 0; q < s.queries; ++q)
        {
            for (int32_t h = 0; h < s.heads; ++h)
            {
                ps::Best best = ps::initialBest();
                for (int32_t split = 0; split < plan.splits; ++split)
                {
                    ps::combineInOrder(best, partial[static_cast<size_t>(ps::partialIndex(s, split, b, h, q))]);
                }
                if (indices != nullptr)
                {
                    indices[(static_cast<int64_t>(b) * s.heads + h) * s.queries + q] = best.index;
                }
                for (int32_t d = 0; d < depth; ++d)
                {
                    int32_t const c = h * depth + d;
                    prototypes[(static_cast<int64_t>(b) * s.queries + q) * s.channels + c]
                        = features[(static_cast<int64_t>(b) * s.tokens + best.index) * s.channels + c];
                }
            }
        }
    }
}

} // namespace

//! Host ModulatedDeformConv2d; returns 0, or 1 for a bad dtype or shape.
PEM_HOST_API int32_t pem_host_modulated_deform_conv2d(int32_t dtype, PemDcnShape const* shape, void const* x,
    void const* offset, void const* mask, void const* weight, void const* bias, void* y)
{
    if (shape == nullptr || !pem::dcn::validShape(*shape))
    {
        return 1;
    }
    if (dtype == PEM_FLOAT32)
    {
        deformConv(*shape, static_cast<float const*>(x), static_cast<float const*>(offset),
            static_cast<float const*>(mask), static_cast<float const*>(weight), static_cast<float const*>(bias),
            static_cast<float*>(y));
        return 0;
    }
    if (dtype == PEM_FLOAT16)
    {
        deformConv(*shape, static_cast<__half const*>(x), static_cast<__half const*>(offset),
            static_cast<__half const*>(mask), static_cast<__half const*>(weight), static_cast<__half const*>(bias),
            static_cast<__half*>(y));
        return 0;
    }
    return 1;
}

//! The plan the CUDA launcher would choose on a GPU with `smCount` multiprocessors; returns 0 or 1.
PEM_HOST_API int32_t pem_host_prototype_selection_plan(PemPsShape const* shape, int32_t smCount, PemPsPlan* plan)
{
    return (shape != nullptr && pem::ps::makePlan(*shape, smCount, plan)) ? 0 : 1;
}

//! Bytes of device workspace the CUDA launcher needs for `shape` (the O(B * heads * Q) bound).
PEM_HOST_API size_t pem_host_prototype_selection_workspace_size(PemPsShape const* shape)
{
    return shape == nullptr ? 0 : pem::ps::workspaceSize(*shape);
}

//! Host PrototypeSelection following `plan` (its split structure); indices [B, heads, Q] may be null.
PEM_HOST_API int32_t pem_host_prototype_selection(int32_t dtype, int32_t maskDtype, PemPsShape const* shape,
    PemPsPlan const* plan, void const* features, void const* queries, void const* maskLogits, void* prototypes,
    int32_t* indices)
{
    if (shape == nullptr || plan == nullptr || !pem::ps::validShape(*shape) || plan->tokensPerSplit <= 0
        || static_cast<int64_t>(plan->splits) * plan->tokensPerSplit < shape->tokens)
    {
        return 1;
    }
    auto run = [&](auto element, auto mask) {
        using T = decltype(element);
        using M = decltype(mask);
        prototypeSelection(*shape, *plan, static_cast<T const*>(features), static_cast<T const*>(queries),
            static_cast<M const*>(maskLogits), static_cast<T*>(prototypes), indices);
        return 0;
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
    return 1;
}
