// PEM-RT ModulatedDeformConv2d: TensorRT IPluginV3 glue (see README.md for the op contract).
#pragma once

#include "../common/plugin_base.h"
#include "deform_conv_kernel.h"

#include <array>

namespace pem
{

struct DeformConvAttributes
{
    std::array<int32_t, 2> stride{1, 1};
    std::array<int32_t, 2> padding{0, 0};
    std::array<int32_t, 2> dilation{1, 1};
    int32_t groups{1};
    int32_t deformableGroups{1};
};

class ModulatedDeformConv2dPlugin final : public PluginBase
{
public:
    static constexpr char const* kName = "ModulatedDeformConv2d";

    ModulatedDeformConv2dPlugin(std::string layerName, DeformConvAttributes const& attributes);

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

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

private:
    PluginBase* cloneImpl() const override;
    void writeAttributes(AttributeWriter& writer) const override;
    //! Check the input (and output) dimensions, -1 meaning "not known yet"; returns the kernel's shape.
    PemDcnShape checkShapes(nvinfer1::Dims const* inputs, int32_t nbInputs, nvinfer1::Dims const* output) const;

    DeformConvAttributes mAttributes;
    int32_t mNbInputs{4}; //!< 5 with bias; set by configurePlugin and onShapeChange
};

class ModulatedDeformConv2dCreator final : public CreatorBase
{
public:
    ModulatedDeformConv2dCreator() noexcept;

protected:
    PluginBase* create(std::string const& layerName, AttributeReader const& attributes) const override;
};

} // namespace pem
