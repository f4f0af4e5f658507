// PEM-RT plugin glue: shared base of the plugins and creators (see plugin_base.h).
#include "plugin_base.h"

#include <memory>
#include <sstream>

namespace pem
{

char const* dataTypeName(nvinfer1::DataType type) noexcept
{
    switch (type)
    {
    case nvinfer1::DataType::kFLOAT: return "FLOAT";
    case nvinfer1::DataType::kHALF: return "HALF";
    case nvinfer1::DataType::kINT8: return "INT8";
    case nvinfer1::DataType::kINT32: return "INT32";
    case nvinfer1::DataType::kBOOL: return "BOOL";
    case nvinfer1::DataType::kUINT8: return "UINT8";
    case nvinfer1::DataType::kFP8: return "FP8";
    case nvinfer1::DataType::kBF16: return "BF16";
    case nvinfer1::DataType::kINT64: return "INT64";
    case nvinfer1::DataType::kINT4: return "INT4";
    default: return "an unsupported type";
    }
}

std::string formatDims(nvinfer1::Dims const& dims)
{
    std::ostringstream out;
    out << "[";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        out << (i > 0 ? ", " : "") << dims.d[i];
    }
    out << "]";
    return out.str();
}

PluginBase::PluginBase(char const* type, std::string layerName)
    : mType(type)
    , mLayerName(std::move(layerName))
    , mContext(std::string("PEM plugin ") + type + " (layer '" + mLayerName + "')")
{
}

nvinfer1::IPluginCapability* PluginBase::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* PluginBase::clone() noexcept
{
    return guard("clone", static_cast<nvinfer1::IPluginV3*>(nullptr),
        [&]() -> nvinfer1::IPluginV3* { return static_cast<nvinfer1::IPluginV3*>(cloneImpl()); });
}

char const* PluginBase::getPluginName() const noexcept
{
    return mType;
}

char const* PluginBase::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

char const* PluginBase::getPluginNamespace() const noexcept
{
    return kPluginNamespace;
}

int32_t PluginBase::getNbOutputs() const noexcept
{
    return 1;
}

nvinfer1::IPluginV3* PluginBase::attachToContext(nvinfer1::IPluginResourceContext* context) noexcept
{
    return guard("attachToContext", static_cast<nvinfer1::IPluginV3*>(nullptr), [&]() -> nvinfer1::IPluginV3* {
        std::unique_ptr<PluginBase> copy(cloneImpl());
        copy->mRecorder = context != nullptr ? context->getErrorRecorder() : nullptr;
        return static_cast<nvinfer1::IPluginV3*>(copy.release());
    });
}

nvinfer1::PluginFieldCollection const* PluginBase::getFieldsToSerialize() noexcept
{
    return guard("getFieldsToSerialize", static_cast<nvinfer1::PluginFieldCollection const*>(nullptr), [&]() {
        mSerialized.clear();
        writeAttributes(mSerialized);
        return mSerialized.collection();
    });
}

int32_t PluginBase::cudaStatus(cudaError_t status) const noexcept
{
    if (status == cudaSuccess)
    {
        return 0;
    }
    try
    {
        std::string const message
            = mContext + " enqueue: CUDA error " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status);
        reportError(message.c_str(), mRecorder, nvinfer1::ErrorCode::kFAILED_EXECUTION);
    }
    catch (...)
    {
        reportError("PEM plugin enqueue: CUDA error", mRecorder, nvinfer1::ErrorCode::kFAILED_EXECUTION);
    }
    return static_cast<int32_t>(status);
}

void PluginBase::expectIo(int32_t nbInputs, int32_t minInputs, int32_t maxInputs, int32_t nbOutputs) const
{
    if (nbInputs < minInputs || nbInputs > maxInputs)
    {
        fail(mContext + ": expects " + std::to_string(minInputs)
            + (maxInputs > minInputs ? " or " + std::to_string(maxInputs) : std::string()) + " inputs, got "
            + std::to_string(nbInputs));
    }
    if (nbOutputs != 1)
    {
        fail(mContext + ": has exactly 1 output, asked for " + std::to_string(nbOutputs));
    }
}

CreatorBase::CreatorBase(char const* type, AttributeSpec const* specs, nvinfer1::PluginField const* fieldNames,
    int32_t nbFields) noexcept
    : mType(type)
    , mSpecs(specs)
{
    mFieldNames.nbFields = nbFields;
    mFieldNames.fields = fieldNames;
}

nvinfer1::IPluginV3* CreatorBase::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept
{
    try
    {
        std::string const layer = name != nullptr ? name : "";
        std::string const context = std::string("PEM plugin ") + mType + " (layer '" + layer + "')"
            + (phase == nvinfer1::TensorRTPhase::kRUNTIME ? " deserialising" : "");
        return guarded(context, "createPlugin", nullptr, static_cast<nvinfer1::IPluginV3*>(nullptr),
            [&]() -> nvinfer1::IPluginV3* {
                AttributeReader const attributes(fc, mSpecs, mFieldNames.nbFields, context);
                return static_cast<nvinfer1::IPluginV3*>(create(layer, attributes));
            });
    }
    catch (...)
    {
        reportError("PEM plugin createPlugin: out of memory", nullptr, nvinfer1::ErrorCode::kFAILED_ALLOCATION);
        return nullptr;
    }
}

nvinfer1::PluginFieldCollection const* CreatorBase::getFieldNames() noexcept
{
    return &mFieldNames;
}

char const* CreatorBase::getPluginName() const noexcept
{
    return mType;
}

char const* CreatorBase::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

char const* CreatorBase::getPluginNamespace() const noexcept
{
    return kPluginNamespace;
}

} // namespace pem
