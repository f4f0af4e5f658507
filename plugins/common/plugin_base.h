// PEM-RT plugin glue: the one shared base of the PEM plugins and their creators.
//
// A plugin object implements all three IPluginV3One capabilities (core, build, runtime), as TensorRT's
// own V3 plugins do; subclasses supply the op-specific build and runtime methods and their attributes.
// Every method that can fail runs inside guarded(), which reports the error (naming the plugin and the
// layer) and returns TensorRT's failure value, so no exception crosses into TensorRT.
#pragma once

#include "attributes.h"
#include "logging.h"
#include "trt_api.h"

#include <string>

namespace pem
{

constexpr char const* kPluginNamespace = "pem";
constexpr char const* kPluginVersion = "1";

//! "FLOAT", "HALF", ... for messages.
char const* dataTypeName(nvinfer1::DataType type) noexcept;

//! "[1, 3, -1, -1]" for messages.
std::string formatDims(nvinfer1::Dims const& dims);

class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime
{
public:
    PluginBase(char const* type, std::string layerName);
    PluginBase(PluginBase const&) = default;
    PluginBase& operator=(PluginBase const&) = delete;
    ~PluginBase() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild (the op-specific methods are in the subclasses)
    int32_t getNbOutputs() const noexcept override;

    // IPluginV3OneRuntime
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    //! A heap copy of the concrete plugin (may throw).
    virtual PluginBase* cloneImpl() const = 0;
    //! The attributes to serialise; the creator must accept them back in the kRUNTIME phase.
    virtual void writeAttributes(AttributeWriter& writer) const = 0;

    //! "PEM plugin ModulatedDeformConv2d (layer 'name')", the prefix of every message.
    std::string const& context() const noexcept
    {
        return mContext;
    }

    template <typename R, typename F>
    R guard(char const* method, R onError, F&& body) const noexcept
    {
        return guarded(mContext, method, mRecorder, onError, static_cast<F&&>(body));
    }

    //! Report a CUDA failure of enqueue; returns the status to give TensorRT (0 only on success).
    int32_t cudaStatus(cudaError_t status) const noexcept;

    //! Shared checks of the build methods: the input/output counts.
    void expectIo(int32_t nbInputs, int32_t minInputs, int32_t maxInputs, int32_t nbOutputs) const;

private:
    char const* mType;
    std::string mLayerName;
    std::string mContext;
    nvinfer1::IErrorRecorder* mRecorder{nullptr};
    AttributeWriter mSerialized;
};

//! The shared base of the creators; the field list is a static array owned by the subclass.
class CreatorBase : public nvinfer1::IPluginCreatorV3One
{
public:
    CreatorBase(char const* type, AttributeSpec const* specs, nvinfer1::PluginField const* fieldNames,
        int32_t nbFields) noexcept;

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

protected:
    //! Build the plugin from validated attributes (throws PluginError on a bad value).
    virtual PluginBase* create(std::string const& layerName, AttributeReader const& attributes) const = 0;

private:
    char const* mType;
    AttributeSpec const* mSpecs;
    nvinfer1::PluginFieldCollection mFieldNames;
};

} // namespace pem
