// PEM-RT plugin glue: the one serialisation helper for plugin attributes.
//
// Attributes travel as PluginFields both ways: the ONNX parser turns node attributes into fields
// (INT -> kINT32 of length 1, INTS -> kINT32 of length n), and getFieldsToSerialize() writes the same
// fields into the engine, which TensorRT hands back to createPlugin(..., kRUNTIME). So one reader and
// one writer cover parsing, validation and serialisation. All PEM attributes are int32 vectors.
#pragma once

#include "trt_api.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pem
{

//! Declares one attribute a creator accepts (what getFieldNames() lists).
struct AttributeSpec
{
    char const* name;
    int32_t length;  //!< exact number of values
    bool required;
};

class AttributeReader
{
public:
    //! Index `fields`; unknown names, duplicates and non-integer fields are errors that name the plugin.
    AttributeReader(nvinfer1::PluginFieldCollection const* fields, AttributeSpec const* specs, int32_t nbSpecs,
        std::string context);

    //! The values of `name` (exactly spec.length of them), or `fallback` when absent and not required.
    std::vector<int32_t> ints(char const* name, std::vector<int32_t> const& fallback = {}) const;

    std::string const& context() const noexcept
    {
        return mContext;
    }

private:
    AttributeSpec const* spec(char const* name) const;

    AttributeSpec const* mSpecs;
    int32_t mNbSpecs;
    std::string mContext;
    std::vector<std::pair<std::string, std::vector<int32_t>>> mValues;
};

class AttributeWriter
{
public:
    void clear();
    void add(char const* name, std::vector<int32_t> values);
    //! The collection stays valid until the next clear()/add() or the writer's destruction.
    nvinfer1::PluginFieldCollection const* collection();

private:
    std::vector<std::pair<char const*, std::vector<int32_t>>> mValues;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

//! "[a, b, c]" for messages.
std::string formatInts(std::vector<int32_t> const& values);

} // namespace pem
