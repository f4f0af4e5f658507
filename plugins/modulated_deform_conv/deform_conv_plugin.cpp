// PEM-RT ModulatedDeformConv2d: TensorRT IPluginV3 glue.
#include "deform_conv_plugin.h"

#include <memory>

namespace pem
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::Dims;

constexpr int32_t kX = 0;
constexpr int32_t kOffset = 1;
constexpr int32_t kMask = 2;
constexpr int32_t kWeight = 3;
constexpr int32_t kBias = 4;
constexpr char const* kInputNames[] = {"x", "offset", "mask", "weight", "bias"};
constexpr char const* kInputLayouts[] = {"[B, Cin, H, W]", "[B, 2*dg*kh*kw, Ho, Wo]", "[B, dg*kh*kw, Ho, Wo]",
    "[Cout, Cin/groups, kh, kw]", "[Cout]"};
constexpr int32_t kInputRanks[] = {4, 4, 4, 4, 1};

constexpr AttributeSpec kSpecs[] = {
    {"stride", 2, false},
    {"padding", 2, false},
    {"dilation", 2, false},
    {"groups", 1, false},
    {"deformable_groups", 1, false},
};
nvinfer1::PluginField const kFieldNames[] = {
    nvinfer1::PluginField("stride", nullptr, nvinfer1::PluginFieldType::kINT32, 2),
    nvinfer1::PluginField("padding", nullptr, nvinfer1::PluginFieldType::kINT32, 2),
    nvinfer1::PluginField("dilation", nullptr, nvinfer1::PluginFieldType::kINT32, 2),
    nvinfer1::PluginField("groups", nullptr, nvinfer1::PluginFieldType::kINT32, 1),
    nvinfer1::PluginField("deformable_groups", nullptr, nvinfer1::PluginFieldType::kINT32, 1),
};
static_assert(sizeof(kSpecs) / sizeof(kSpecs[0]) == sizeof(kFieldNames) / sizeof(kFieldNames[0]), "one spec per field");

bool isFloatType(DataType type)
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

bool known(int64_t v)
{
    return v >= 0;
}

//! Fail unless a == b, when both are known.
void expectEqual(std::string const& context, int64_t a, int64_t b, std::string const& what)
{
    if (known(a) && known(b) && a != b)
    {
        fail(context + ": " + what + " (got " + std::to_string(a) + " vs " + std::to_string(b) + ")");
    }
}

} // namespace

ModulatedDeformConv2dPlugin::ModulatedDeformConv2dPlugin(std::string layerName, DeformConvAttributes const& attributes)
    : PluginBase(kName, std::move(layerName))
    , mAttributes(attributes)
{
}

PluginBase* ModulatedDeformConv2dPlugin::cloneImpl() const
{
    return new ModulatedDeformConv2dPlugin(*this);
}

void ModulatedDeformConv2dPlugin::writeAttributes(AttributeWriter& writer) const
{
    writer.add("stride", {mAttributes.stride[0], mAttributes.stride[1]});
    writer.add("padding", {mAttributes.padding[0], mAttributes.padding[1]});
    writer.add("dilation", {mAttributes.dilation[0], mAttributes.dilation[1]});
    writer.add("groups", {mAttributes.groups});
    writer.add("deformable_groups", {mAttributes.deformableGroups});
}

PemDcnShape ModulatedDeformConv2dPlugin::checkShapes(Dims const* inputs, int32_t nbInputs, Dims const* output) const
{
    std::string const& ctx = context();
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        if (inputs[i].nbDims != kInputRanks[i])
        {
            fail(ctx + ": input '" + kInputNames[i] + "' must be " + std::to_string(kInputRanks[i]) + "-D "
                + kInputLayouts[i] + ", got " + formatDims(inputs[i]));
        }
    }
    Dims const& x = inputs[kX];
    Dims const& offset = inputs[kOffset];
    Dims const& mask = inputs[kMask];
    Dims const& weight = inputs[kWeight];
    int64_t const batch = x.d[0];
    int64_t const cin = x.d[1];
    int64_t const cout = weight.d[0];
    int64_t const kh = weight.d[2];
    int64_t const kw = weight.d[3];
    int32_t const groups = mAttributes.groups;
    int32_t const dg = mAttributes.deformableGroups;

    if (known(cin) && (cin % groups != 0 || cin % dg != 0))
    {
        fail(ctx + ": input channels " + std::to_string(cin) + " must be divisible by groups (" + std::to_string(groups)
            + ") and deformable_groups (" + std::to_string(dg) + ")");
    }
    if (known(cout) && cout % groups != 0)
    {
        fail(ctx + ": output channels " + std::to_string(cout) + " must be divisible by groups ("
            + std::to_string(groups) + ")");
    }
    if ((known(kh) && kh < 1) || (known(kw) && kw < 1))
    {
        fail(ctx + ": weight " + formatDims(weight) + " has an empty kernel");
    }
    expectEqual(ctx, offset.d[0], batch, "offset batch must equal x batch");
    expectEqual(ctx, mask.d[0], batch, "mask batch must equal x batch");
    if (known(cin) && known(weight.d[1]))
    {
        expectEqual(ctx, weight.d[1] * groups, cin, "weight dim 1 times groups must equal the input channels");
    }
    if (known(kh) && known(kw))
    {
        expectEqual(ctx, offset.d[1], 2 * dg * kh * kw, "offset channels must be 2 * deformable_groups * kh * kw");
        expectEqual(ctx, mask.d[1], dg * kh * kw, "mask channels must be deformable_groups * kh * kw");
    }
    int64_t outHeight = offset.d[2];
    int64_t outWidth = offset.d[3];
    if (known(x.d[2]) && known(kh))
    {
        int64_t const expected = dcn::outputExtent(static_cast<int32_t>(x.d[2]), static_cast<int32_t>(kh),
            mAttributes.stride[0], mAttributes.padding[0], mAttributes.dilation[0]);
        if (expected < 1)
        {
            fail(ctx + ": the kernel window (kh " + std::to_string(kh) + ", dilation "
                + std::to_string(mAttributes.dilation[0]) + ") does not fit the padded input height "
                + std::to_string(x.d[2]));
        }
        expectEqual(ctx, outHeight, expected, "offset height must be the convolution's output height");
        outHeight = expected;
    }
    if (known(x.d[3]) && known(kw))
    {
        int64_t const expected = dcn::outputExtent(static_cast<int32_t>(x.d[3]), static_cast<int32_t>(kw),
            mAttributes.stride[1], mAttributes.padding[1], mAttributes.dilation[1]);
        if (expected < 1)
        {
            fail(ctx + ": the kernel window (kw " + std::to_string(kw) + ", dilation "
                + std::to_string(mAttributes.dilation[1]) + ") does not fit the padded input width "
                + std::to_string(x.d[3]));
        }
        expectEqual(ctx, outWidth, expected, "offset width must be the convolution's output width");
        outWidth = expected;
    }
    expectEqual(ctx, mask.d[2], outHeight, "mask height must equal the offset height");
    expectEqual(ctx, mask.d[3], outWidth, "mask width must equal the offset width");
    if (nbInputs > kBias)
    {
        expectEqual(ctx, inputs[kBias].d[0], cout, "bias length must equal the output channels");
    }
    if (output != nullptr)
    {
        if (output->nbDims != 4)
        {
            fail(ctx + ": output must be 4-D, got " + formatDims(*output));
        }
        expectEqual(ctx, output->d[0], batch, "output batch");
        expectEqual(ctx, output->d[1], cout, "output channels");
        expectEqual(ctx, output->d[2], outHeight, "output height");
        expectEqual(ctx, output->d[3], outWidth, "output width");
    }

    PemDcnShape shape{};
    shape.batch = static_cast<int32_t>(batch);
    shape.inChannels = static_cast<int32_t>(cin);
    shape.height = static_cast<int32_t>(x.d[2]);
    shape.width = static_cast<int32_t>(x.d[3]);
    shape.outChannels = static_cast<int32_t>(cout);
    shape.kernelH = static_cast<int32_t>(kh);
    shape.kernelW = static_cast<int32_t>(kw);
    shape.outHeight = static_cast<int32_t>(outHeight);
    shape.outWidth = static_cast<int32_t>(outWidth);
    shape.strideH = mAttributes.stride[0];
    shape.strideW = mAttributes.stride[1];
    shape.padH = mAttributes.padding[0];
    shape.padW = mAttributes.padding[1];
    shape.dilationH = mAttributes.dilation[0];
    shape.dilationW = mAttributes.dilation[1];
    shape.groups = groups;
    shape.deformableGroups = dg;
    return shape;
}

int32_t ModulatedDeformConv2dPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return guard("configurePlugin", int32_t{-1}, [&]() {
        expectIo(nbInputs, 4, 5, nbOutputs);
        Dims dims[5];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].desc.dims;
        }
        checkShapes(dims, nbInputs, &out[0].desc.dims);
        mNbInputs = nbInputs;
        return int32_t{0};
    });
}

int32_t ModulatedDeformConv2dPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    return guard("getOutputDataTypes", int32_t{-1}, [&]() {
        expectIo(nbInputs, 4, 5, nbOutputs);
        DataType const type = inputTypes[kX];
        if (!isFloatType(type))
        {
            fail(context() + ": input 'x' is " + dataTypeName(type)
                + "; supported types are FLOAT (fp32) and HALF (fp16), the same for every input");
        }
        for (int32_t i = 1; i < nbInputs; ++i)
        {
            if (inputTypes[i] != type)
            {
                fail(context() + ": input '" + kInputNames[i] + "' is " + dataTypeName(inputTypes[i]) + " but 'x' is "
                    + dataTypeName(type) + "; every input must have the type of 'x' (FLOAT or HALF)");
            }
        }
        outputTypes[0] = type;
        return int32_t{0};
    });
}

int32_t ModulatedDeformConv2dPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    return guard("getOutputShapes", int32_t{-1}, [&]() {
        expectIo(nbInputs, 4, 5, nbOutputs);
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            if (inputs[i].nbDims != kInputRanks[i])
            {
                fail(context() + ": input '" + kInputNames[i] + "' must be " + std::to_string(kInputRanks[i]) + "-D "
                    + kInputLayouts[i] + ", got " + std::to_string(inputs[i].nbDims) + "-D");
            }
        }
        // [B, Cout, Ho, Wo]: Ho, Wo are the offset's (configurePlugin/onShapeChange check them against x).
        outputs[0].nbDims = 4;
        outputs[0].d[0] = inputs[kX].d[0];
        outputs[0].d[1] = inputs[kWeight].d[0];
        outputs[0].d[2] = inputs[kOffset].d[2];
        outputs[0].d[3] = inputs[kOffset].d[3];
        return int32_t{0};
    });
}

bool ModulatedDeformConv2dPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return guard("supportsFormatCombination", false, [&]() {
        if (pos < 0 || pos >= nbInputs + nbOutputs)
        {
            return false;
        }
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != nvinfer1::TensorFormat::kLINEAR)
        {
            return false;
        }
        return pos == 0 ? isFloatType(desc.type) : desc.type == inOut[0].desc.type;
    });
}

int32_t ModulatedDeformConv2dPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return guard("onShapeChange", int32_t{-1}, [&]() {
        expectIo(nbInputs, 4, 5, nbOutputs);
        Dims dims[5];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].dims;
        }
        checkShapes(dims, nbInputs, &out[0].dims);
        mNbInputs = nbInputs;
        return int32_t{0};
    });
}

int32_t ModulatedDeformConv2dPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs, void* /*workspace*/,
    cudaStream_t stream) noexcept
{
    return guard("enqueue", int32_t{-1}, [&]() {
        Dims dims[5];
        for (int32_t i = 0; i < mNbInputs; ++i)
        {
            dims[i] = inputDesc[i].dims;
        }
        PemDcnShape const shape = checkShapes(dims, mNbInputs, &outputDesc[0].dims);
        void const* const bias = mNbInputs > kBias ? inputs[kBias] : nullptr;
        cudaError_t status = cudaErrorInvalidValue;
        if (inputDesc[kX].type == DataType::kFLOAT)
        {
            status = launchModulatedDeformConv2d(shape, static_cast<float const*>(inputs[kX]),
                static_cast<float const*>(inputs[kOffset]), static_cast<float const*>(inputs[kMask]),
                static_cast<float const*>(inputs[kWeight]), static_cast<float const*>(bias),
                static_cast<float*>(outputs[0]), stream);
        }
        else if (inputDesc[kX].type == DataType::kHALF)
        {
            status = launchModulatedDeformConv2d(shape, static_cast<__half const*>(inputs[kX]),
                static_cast<__half const*>(inputs[kOffset]), static_cast<__half const*>(inputs[kMask]),
                static_cast<__half const*>(inputs[kWeight]), static_cast<__half const*>(bias),
                static_cast<__half*>(outputs[0]), stream);
        }
        return cudaStatus(status);
    });
}

ModulatedDeformConv2dCreator::ModulatedDeformConv2dCreator() noexcept
    : CreatorBase(ModulatedDeformConv2dPlugin::kName, kSpecs, kFieldNames,
        static_cast<int32_t>(sizeof(kFieldNames) / sizeof(kFieldNames[0])))
{
}

PluginBase* ModulatedDeformConv2dCreator::create(std::string const& layerName, AttributeReader const& attributes) const
{
    std::string const& ctx = attributes.context();
    DeformConvAttributes a;
    std::vector<int32_t> const stride = attributes.ints("stride", {1, 1});
    std::vector<int32_t> const padding = attributes.ints("padding", {0, 0});
    std::vector<int32_t> const dilation = attributes.ints("dilation", {1, 1});
    int32_t const groups = attributes.ints("groups", {1})[0];
    int32_t const deformableGroups = attributes.ints("deformable_groups", {1})[0];
    if (stride[0] < 1 || stride[1] < 1)
    {
        fail(ctx + ": attribute 'stride' must be 2 positive integers, got " + formatInts(stride));
    }
    if (padding[0] < 0 || padding[1] < 0)
    {
        fail(ctx + ": attribute 'padding' must be 2 non-negative integers, got " + formatInts(padding));
    }
    if (dilation[0] < 1 || dilation[1] < 1)
    {
        fail(ctx + ": attribute 'dilation' must be 2 positive integers, got " + formatInts(dilation));
    }
    if (groups < 1)
    {
        fail(ctx + ": attribute 'groups' must be >= 1, got " + std::to_string(groups));
    }
    if (deformableGroups < 1)
    {
        fail(ctx + ": attribute 'deformable_groups' must be >= 1, got " + std::to_string(deformableGroups));
    }
    a.stride = {stride[0], stride[1]};
    a.padding = {padding[0], padding[1]};
    a.dilation = {dilation[0], dilation[1]};
    a.groups = groups;
    a.deformableGroups = deformableGroups;
    return new ModulatedDeformConv2dPlugin(layerName, a);
}

} // namespace pem
