// PEM-RT PrototypeSelection: TensorRT IPluginV3 glue (see README.md for the op contract).
#pragma once

#include "../common/plugin_base.h"
#include "prototype_selection_kernel.h"

namespace pem
{

class PrototypeSelectionPlugin final : public PluginBase
{
public:
    static constexpr char const* kName = "PrototypeSelection";

    PrototypeSelectionPlugin(std::string layerName, int32_t heads);

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

private:
    PluginBase* cloneImpl() const override;
    void writeAttributes(AttributeWriter& writer) const override;
    //! Check the dimensions (-1 = not known yet) and return the kernel's shape.
    PemPsShape checkShapes(nvinfer1::Dims const* inputs, nvinfer1::Dims const* output) const;

    int32_t mHeads;
};

class PrototypeSelectionCreator final : public CreatorBase
{
public:
    PrototypeSelectionCreator() noexcept;

protected:
    PluginBase* create(std::string const& layerName, AttributeReader const& attributes) const override;
};

} // namespace pem
