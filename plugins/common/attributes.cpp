// PEM-RT plugin glue: attribute reader and writer (see attributes.h).
#include "attributes.h"

#include "logging.h"

#include <cstring>
#include <limits>
#include <sstream>

namespace pem
{

std::string formatInts(std::vector<int32_t> const& values)
{
    std::ostringstream out;
    out << "[";
    for (size_t i = 0; i < values.size(); ++i)
    {
        out << (i > 0 ? ", " : "") << values[i];
    }
    out << "]";
    return out.str();
}

AttributeReader::AttributeReader(nvinfer1::PluginFieldCollection const* fields, AttributeSpec const* specs,
    int32_t nbSpecs, std::string context)
    : mSpecs(specs)
    , mNbSpecs(nbSpecs)
    , mContext(std::move(context))
{
    if (fields == nullptr || fields->nbFields == 0)
    {
        return;
    }
    if (fields->nbFields < 0 || fields->fields == nullptr)
    {
        fail(mContext + ": malformed PluginFieldCollection");
    }
    for (int32_t i = 0; i < fields->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = fields->fields[i];
        std::string const name = field.name != nullptr ? field.name : "";
        AttributeSpec const* const known = spec(name.c_str());
        if (known == nullptr)
        {
            std::string allowed;
            for (int32_t s = 0; s < mNbSpecs; ++s)
            {
                allowed += (s > 0 ? ", " : "") + std::string(mSpecs[s].name);
            }
            fail(mContext + ": unknown attribute '" + name + "' (allowed: " + allowed + ")");
        }
        for (auto const& seen : mValues)
        {
            if (seen.first == name)
            {
                fail(mContext + ": attribute '" + name + "' given twice");
            }
        }
        if (field.length < 0 || (field.length > 0 && field.data == nullptr))
        {
            fail(mContext + ": attribute '" + name + "' has no data");
        }
        std::vector<int32_t> values(static_cast<size_t>(field.length));
        if (field.type == nvinfer1::PluginFieldType::kINT32)
        {
            if (field.length > 0)
            {
                std::memcpy(values.data(), field.data, values.size() * sizeof(int32_t));
            }
        }
        else if (field.type == nvinfer1::PluginFieldType::kINT64)
        {
            auto const* wide = static_cast<int64_t const*>(field.data);
            for (size_t v = 0; v < values.size(); ++v)
            {
                if (wide[v] < std::numeric_limits<int32_t>::min() || wide[v] > std::numeric_limits<int32_t>::max())
                {
                    fail(mContext + ": attribute '" + name + "' value " + std::to_string(wide[v])
                        + " does not fit int32");
                }
                values[v] = static_cast<int32_t>(wide[v]);
            }
        }
        else
        {
            fail(mContext + ": attribute '" + name + "' must be integers (ONNX INT/INTS, PluginFieldType kINT32), got "
                + "PluginFieldType " + std::to_string(static_cast<int32_t>(field.type)));
        }
        if (static_cast<int32_t>(values.size()) != known->length)
        {
            fail(mContext + ": attribute '" + name + "' must hold " + std::to_string(known->length)
                + (known->length == 1 ? " integer" : " integers") + ", got " + formatInts(values));
        }
        mValues.emplace_back(name, std::move(values));
    }
}

AttributeSpec const* AttributeReader::spec(char const* name) const
{
    for (int32_t s = 0; s < mNbSpecs; ++s)
    {
        if (std::strcmp(mSpecs[s].name, name) == 0)
        {
            return &mSpecs[s];
        }
    }
    return nullptr;
}

std::vector<int32_t> AttributeReader::ints(char const* name, std::vector<int32_t> const& fallback) const
{
    for (auto const& value : mValues)
    {
        if (value.first == name)
        {
            return value.second;
        }
    }
    AttributeSpec const* const known = spec(name);
    if (known == nullptr || known->required)
    {
        fail(mContext + ": missing required attribute '" + name + "'");
    }
    return fallback;
}

void AttributeWriter::clear()
{
    mValues.clear();
    mFields.clear();
}

void AttributeWriter::add(char const* name, std::vector<int32_t> values)
{
    mValues.emplace_back(name, std::move(values));
}

nvinfer1::PluginFieldCollection const* AttributeWriter::collection()
{
    mFields.clear();
    for (auto const& value : mValues)
    {
        mFields.emplace_back(value.first, value.second.data(), nvinfer1::PluginFieldType::kINT32,
            static_cast<int32_t>(value.second.size()));
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
    return &mCollection;
}

} // namespace pem
