// PEM-RT tests: a plugin library that registers only one of the two PEM creators (the loader must name
// the missing one). Its creator builds nothing. Test code only.
#include "common/trt_abi/pem_trt_abi.h"

namespace
{
class OnlyDeformConvCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    nvinfer1::IPluginV3* createPlugin(char const*, nvinfer1::PluginFieldCollection const*, nvinfer1::TensorRTPhase) noexcept override
    {
        return nullptr;
    }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mFields;
    }
    char const* getPluginName() const noexcept override
    {
        return "ModulatedDeformConv2d";
    }
    char const* getPluginVersion() const noexcept override
    {
        return "1";
    }
    char const* getPluginNamespace() const noexcept override
    {
        return "pem";
    }

private:
    nvinfer1::PluginFieldCollection mFields{};
};
} // namespace

extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& n)
{
    static OnlyDeformConvCreator creator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
    n = 1;
    return creators;
}

// TensorRT-RTX's loadLibrary() requires this entry point too (left out to test that failure).
#ifndef PEM_TEST_NO_LOGGER_FINDER
extern "C" __attribute__((visibility("default"))) void setLoggerFinder(void*)
{
}
#endif
