// PEM-RT ModulatedDeformConv2d: per-element math, shared by the CUDA kernel and the host test library.
//
// Semantics are torchvision.ops.deform_conv2d with a mask (DCNv2) and ONNX DeformConv:
//   y[b, oc, ho, wo] = bias[oc] + sum_{ic in group(oc), i < kh, j < kw}
//       w[oc, ic, i, j] * m[b, dg(ic), t, ho, wo] * bilinear(x[b, ic], py, px)
//   py = ho * stride_h - pad_h + i * dilation_h + offset[b, dg(ic), 2t,     ho, wo]
//   px = wo * stride_w - pad_w + j * dilation_w + offset[b, dg(ic), 2t + 1, ho, wo]
// with t = i * kw + j, dg(ic) = ic / (Cin / deformable_groups), offsets interleaved (dy, dx) per tap, and
// bilinear sampling that reads zero outside the image.
#pragma once

#include "../common/element.cuh"

//! Shapes and attributes of one ModulatedDeformConv2d call (C layout: the Python tests build it with ctypes).
struct PemDcnShape
{
    int32_t batch;
    int32_t inChannels;
    int32_t height;
    int32_t width;
    int32_t outChannels;
    int32_t kernelH;
    int32_t kernelW;
    int32_t outHeight;
    int32_t outWidth;
    int32_t strideH;
    int32_t strideW;
    int32_t padH;
    int32_t padW;
    int32_t dilationH;
    int32_t dilationW;
    int32_t groups;
    int32_t deformableGroups;
};

namespace pem
{
namespace dcn
{

//! Output extent of one spatial axis (ONNX Conv/DeformConv rule), or -1 if the window does not fit.
__host__ __device__ inline int32_t outputExtent(int32_t in, int32_t kernel, int32_t stride, int32_t pad, int32_t dilation)
{
    int32_t const span = dilation * (kernel - 1) + 1;
    int32_t const padded = in + 2 * pad;
    return padded < span ? -1 : (padded - span) / stride + 1;
}

//! True when every size is positive, the groupings divide the channels and the output extent is consistent.
__host__ __device__ inline bool validShape(PemDcnShape const& s)
{
    bool const positive = s.batch >= 0 && s.inChannels > 0 && s.height > 0 && s.width > 0 && s.outChannels > 0
        && s.kernelH > 0 && s.kernelW > 0 && s.strideH > 0 && s.strideW > 0 && s.padH >= 0 && s.padW >= 0
        && s.dilationH > 0 && s.dilationW > 0 && s.groups > 0 && s.deformableGroups > 0;
    if (!positive)
    {
        return false;
    }
    return s.inChannels % s.groups == 0 && s.outChannels % s.groups == 0 && s.inChannels % s.deformableGroups == 0
        && s.outHeight == outputExtent(s.height, s.kernelH, s.strideH, s.padH, s.dilationH)
        && s.outWidth == outputExtent(s.width, s.kernelW, s.strideW, s.padW, s.dilationW);
}

//! Bilinear sample of one [height, width] plane at (y, x); corners outside the plane read as zero, and a
//! point with y <= -1, y >= height, x <= -1 or x >= width (or NaN) samples zero (torchvision's rule).
template <typename T>
__host__ __device__ inline float bilinearZeroPad(T const* plane, int32_t height, int32_t width, float y, float x)
{
    if (!(y > -1.f && y < static_cast<float>(height) && x > -1.f && x < static_cast<float>(width)))
    {
        return 0.f;
    }
    int32_t const y0 = static_cast<int32_t>(floorf(y));
    int32_t const x0 = static_cast<int32_t>(floorf(x));
    int32_t const y1 = y0 + 1;
    int32_t const x1 = x0 + 1;
    float const ly = y - static_cast<float>(y0);
    float const lx = x - static_cast<float>(x0);
    float const hy = 1.f - ly;
    float const hx = 1.f - lx;
    float const v00 = (y0 >= 0 && x0 >= 0) ? toFloat(plane[y0 * width + x0]) : 0.f;
    float const v01 = (y0 >= 0 && x1 <= width - 1) ? toFloat(plane[y0 * width + x1]) : 0.f;
    float const v10 = (y1 <= height - 1 && x0 >= 0) ? toFloat(plane[y1 * width + x0]) : 0.f;
    float const v11 = (y1 <= height - 1 && x1 <= width - 1) ? toFloat(plane[y1 * width + x1]) : 0.f;
    return hy * hx * v00 + hy * lx * v01 + ly * hx * v10 + ly * lx * v11;
}

//! Length of the reduction per output element: (Cin / groups) * kh * kw.
__host__ __device__ inline int32_t reductionLength(PemDcnShape const& s)
{
    return s.inChannels / s.groups * s.kernelH * s.kernelW;
}

//! One element of the deformable column matrix of group g: reduction index k = ic_local * kh * kw + tap,
//! output pixel (ho, wo). Returns mask * bilinear(x) as float.
template <typename T>
__host__ __device__ inline float modulatedColumn(PemDcnShape const& s, T const* x, T const* offset, T const* mask,
    int32_t b, int32_t g, int32_t k, int32_t ho, int32_t wo)
{
    int32_t const taps = s.kernelH * s.kernelW;
    int32_t const ic = g * (s.inChannels / s.groups) + k / taps;
    int32_t const tap = k % taps;
    int32_t const i = tap / s.kernelW;
    int32_t const j = tap % s.kernelW;
    int32_t const dg = ic / (s.inChannels / s.deformableGroups);
    int64_t const pixels = static_cast<int64_t>(s.outHeight) * s.outWidth;
    int64_t const pixel = static_cast<int64_t>(ho) * s.outWidth + wo;
    int64_t const group = static_cast<int64_t>(b) * s.deformableGroups + dg;
    float const dy = toFloat(offset[(group * 2 * taps + 2 * tap) * pixels + pixel]);
    float const dx = toFloat(offset[(group * 2 * taps + 2 * tap + 1) * pixels + pixel]);
    float const m = toFloat(mask[(group * taps + tap) * pixels + pixel]);
    float const py = static_cast<float>(ho * s.strideH - s.padH + i * s.dilationH) + dy;
    float const px = static_cast<float>(wo * s.strideW - s.padW + j * s.dilationW) + dx;
    T const* plane = x + (static_cast<int64_t>(b) * s.inChannels + ic) * (static_cast<int64_t>(s.height) * s.width);
    return m * bilinearZeroPad(plane, s.height, s.width, py, px);
}

//! Weight of output channel oc_local of group g at reduction index k (weight is [Cout, Cin/groups, kh, kw]).
template <typename T>
__host__ __device__ inline float weightAt(PemDcnShape const& s, T const* weight, int32_t g, int32_t ocLocal, int32_t k)
{
    int64_t const oc = static_cast<int64_t>(g) * (s.outChannels / s.groups) + ocLocal;
    return toFloat(weight[oc * reductionLength(s) + k]);
}

//! The finished output element: accumulated sum plus the optional bias, rounded to T.
template <typename T>
__host__ __device__ inline T finishOutput(float acc, T const* bias, int32_t oc)
{
    return fromFloat<T>(bias != nullptr ? acc + toFloat(bias[oc]) : acc);
}

} // namespace dcn
} // namespace pem
