// PEM-RT PrototypeSelection: TensorRT IPluginV3 glue.
#include "prototype_selection_plugin.h"

namespace pem
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::Dims;

constexpr int32_t kFeatures = 0;
constexpr int32_t kQueries = 1;
constexpr int32_t kMaskLogits = 2;
constexpr char const* kInputNames[] = {"features", "queries", "mask_logits"};
constexpr char const* kInputLayouts[] = {"[B, N, C]", "[B, Q, C]", "[B, Q, N]"};

constexpr AttributeSpec kSpecs[] = {{"heads", 1, true}};
nvinfer1::PluginField const kFieldNames[] = {
    nvinfer1::PluginField("heads", nullptr, nvinfer1::PluginFieldType::kINT32, 1),
};

bool isFloatType(DataType type)
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

bool known(int64_t v)
{
    return v >= 0;
}

void expectEqual(std::string const& context, int64_t a, int64_t b, std::string const& what)
{
    if (known(a) && known(b) && a != b)
    {
        fail(context + ": " + what + " (got " + std::to_string(a) + " vs " + std::to_string(b) + ")");
    }
}

} // namespace

PrototypeSelectionPlugin::PrototypeSelectionPlugin(std::string layerName, int32_t heads)
    : PluginBase(kName, std::move(layerName))
    , mHeads(heads)
{
}

PluginBase* PrototypeSelectionPlugin::cloneImpl() const
{
    return new PrototypeSelectionPlugin(*this);
}

void PrototypeSelectionPlugin::writeAttributes(AttributeWriter& writer) const
{
    writer.add("heads", {mHeads});
}

PemPsShape PrototypeSelectionPlugin::checkShapes(Dims const* inputs, Dims const* output) const
{
    std::string const& ctx = context();
    for (int32_t i = 0; i < 3; ++i)
    {
        if (inputs[i].nbDims != 3)
        {
            fail(ctx + ": input '" + kInputNames[i] + "' must be 3-D " + kInputLayouts[i] + ", got "
                + formatDims(inputs[i]));
        }
    }
    Dims const& features = inputs[kFeatures];
    Dims const& queries = inputs[kQueries];
    Dims const& logits = inputs[kMaskLogits];
    int64_t const channels = features.d[2];
    expectEqual(ctx, queries.d[0], features.d[0], "queries batch must equal features batch");
    expectEqual(ctx, logits.d[0], features.d[0], "mask_logits batch must equal features batch");
    expectEqual(ctx, queries.d[2], channels, "queries channels must equal features channels");
    expectEqual(ctx, logits.d[1], queries.d[1], "mask_logits dim 1 must equal the number of queries");
    expectEqual(ctx, logits.d[2], features.d[1], "mask_logits dim 2 must equal the number of tokens");
    if (known(features.d[1]) && features.d[1] < 1)
    {
        fail(ctx + ": features need at least one token, got " + formatDims(features));
    }
    if (known(channels))
    {
        if (channels % mHeads != 0)
        {
            fail(ctx + ": channels " + std::to_string(channels) + " must be divisible by heads ("
                + std::to_string(mHeads) + ")");
        }
        PemPsShape const probe{1, 1, 1, static_cast<int32_t>(channels), mHeads};
        PemPsPlan plan{};
        if (!ps::makePlan(probe, 1, &plan))
        {
            fail(ctx + ": channels " + std::to_string(channels)
                + " too large: one query and one token must fit in 48 KiB of shared memory");
        }
    }
    if (output != nullptr)
    {
        if (output->nbDims != 3)
        {
            fail(ctx + ": output must be 3-D [B, Q, C], got " + formatDims(*output));
        }
        expectEqual(ctx, output->d[0], features.d[0], "output batch");
        expectEqual(ctx, output->d[1], queries.d[1], "output queries");
        expectEqual(ctx, output->d[2], channels, "output channels");
    }
    PemPsShape shape{};
    shape.batch = static_cast<int32_t>(features.d[0]);
    shape.tokens = static_cast<int32_t>(features.d[1]);
    shape.queries = static_cast<int32_t>(queries.d[1]);
    shape.channels = static_cast<int32_t>(channels);
    shape.heads = mHeads;
    return shape;
}

int32_t PrototypeSelectionPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return guard("configurePlugin", int32_t{-1}, [&]() {
        expectIo(nbInputs, 3, 3, nbOutputs);
        Dims const dims[3] = {in[0].desc.dims, in[1].desc.dims, in[2].desc.dims};
        checkShapes(dims, &out[0].desc.dims);
        return int32_t{0};
    });
}

int32_t PrototypeSelectionPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    return guard("getOutputDataTypes", int32_t{-1}, [&]() {
        expectIo(nbInputs, 3, 3, nbOutputs);
        DataType const type = inputTypes[kFeatures];
        if (!isFloatType(type))
        {
            fail(context() + ": input 'features' is " + dataTypeName(type)
                + "; supported types are FLOAT (fp32) and HALF (fp16)");
        }
        if (inputTypes[kQueries] != type)
        {
            fail(context() + ": input 'queries' is " + dataTypeName(inputTypes[kQueries]) + " but 'features' is "
                + dataTypeName(type) + "; queries must have the type of features");
        }
        if (!isFloatType(inputTypes[kMaskLogits]))
        {
            fail(context() + ": input 'mask_logits' is " + dataTypeName(inputTypes[kMaskLogits])
                + "; supported types are FLOAT (fp32) and HALF (fp16)");
        }
        outputTypes[0] = type;
        return int32_t{0};
    });
}

int32_t PrototypeSelectionPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    return guard("getOutputShapes", int32_t{-1}, [&]() {
        expectIo(nbInputs, 3, 3, nbOutputs);
        for (int32_t i = 0; i < 3; ++i)
        {
            if (inputs[i].nbDims != 3)
            {
                fail(context() + ": input '" + kInputNames[i] + "' must be 3-D " + kInputLayouts[i] + ", got "
                    + std::to_string(inputs[i].nbDims) + "-D");
            }
        }
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[kFeatures].d[0];
        outputs[0].d[1] = inputs[kQueries].d[1];
        outputs[0].d[2] = inputs[kFeatures].d[2];
        return int32_t{0};
    });
}

bool PrototypeSelectionPlugin::supportsFormatCombination(
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
        if (pos == kFeatures || pos == kMaskLogits)
        {
            return isFloatType(desc.type);
        }
        return desc.type == inOut[kFeatures].desc.type; // queries and the output follow the features
    });
}

size_t PrototypeSelectionPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return guard("getWorkspaceSize", size_t{0}, [&]() {
        if (nbInputs != 3)
        {
            return size_t{0};
        }
        // The bound for the largest shapes of the profile; it does not depend on the token count.
        PemPsShape shape{};
        shape.batch = static_cast<int32_t>(inputs[kFeatures].max.d[0]);
        shape.tokens = 1;
        shape.queries = static_cast<int32_t>(inputs[kQueries].max.d[1]);
        shape.channels = static_cast<int32_t>(inputs[kFeatures].max.d[2]);
        shape.heads = mHeads;
        return ps::workspaceSize(shape);
    });
}

int32_t PrototypeSelectionPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return guard("onShapeChange", int32_t{-1}, [&]() {
        expectIo(nbInputs, 3, 3, nbOutputs);
        Dims const dims[3] = {in[0].dims, in[1].dims, in[2].dims};
        checkShapes(dims, &out[0].dims);
        return int32_t{0};
    });
}

int32_t PrototypeSelectionPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs, void* workspace,
    cudaStream_t stream) noexcept
{
    return guard("enqueue", int32_t{-1}, [&]() {
        Dims const dims[3] = {inputDesc[0].dims, inputDesc[1].dims, inputDesc[2].dims};
        PemPsShape const shape = checkShapes(dims, &outputDesc[0].dims);
        int32_t const dtype = inputDesc[kFeatures].type == DataType::kHALF ? PEM_FLOAT16 : PEM_FLOAT32;
        int32_t const maskDtype = inputDesc[kMaskLogits].type == DataType::kHALF ? PEM_FLOAT16 : PEM_FLOAT32;
        return cudaStatus(pem_prototype_selection(dtype, maskDtype, &shape, inputs[kFeatures], inputs[kQueries],
            inputs[kMaskLogits], outputs[0], nullptr, workspace, ps::workspaceSize(shape), stream));
    });
}

PrototypeSelectionCreator::PrototypeSelectionCreator() noexcept
    : CreatorBase(PrototypeSelectionPlugin::kName, kSpecs, kFieldNames,
        static_cast<int32_t>(sizeof(kFieldNames) / sizeof(kFieldNames[0])))
{
}

PluginBase* PrototypeSelectionCreator::create(std::string const& layerName, AttributeReader const& attributes) const
{
    int32_t const heads = attributes.ints("heads")[0];
    if (heads < 1 || heads > ps::kMaxHeads)
    {
        fail(attributes.context() + ": attribute 'heads' must be in [1, " + std::to_string(ps::kMaxHeads) + "], got "
            + std::to_string(heads));
    }
    return new PrototypeSelectionPlugin(layerName, heads);
}

} // namespace pem
