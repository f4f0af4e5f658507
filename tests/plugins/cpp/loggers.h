// PEM-RT tests: logger finders in TensorRT's two layouts, with TensorRT's class names (so the mangled names
// the plugin library's RTTI check reads are the real ones). Test code only.
#pragma once

#include "common/trt_abi/pem_trt_abi.h"

#include <string>
#include <vector>

namespace nvinfer1
{
// TensorRT <= 10, TensorRT-RTX < 1.5.
class ILogger
{
public:
    enum class Severity : int32_t
    {
        kINTERNAL_ERROR = 0,
        kERROR = 1,
        kWARNING = 2,
        kINFO = 3,
        kVERBOSE = 4,
    };
    virtual void log(Severity severity, AsciiChar const* msg) noexcept = 0;
    virtual ~ILogger() = default;
};

class ILoggerFinder
{
public:
    virtual ILogger* findLogger() = 0;

protected:
    virtual ~ILoggerFinder() = default;
};

namespace v_1_0
{
// TensorRT >= 11, TensorRT-RTX >= 1.5.
class ILogger : public IVersionedInterface
{
public:
    InterfaceInfo getInterfaceInfo() const noexcept override
    {
        return InterfaceInfo{"ILogger", 1, 0};
    }
    virtual void log(nvinfer1::ILogger::Severity severity, AsciiChar const* msg) noexcept = 0;
};

class ILoggerFinder : public IVersionedInterface
{
public:
    InterfaceInfo getInterfaceInfo() const noexcept override
    {
        return InterfaceInfo{"ILoggerFinder", 1, 0};
    }
    virtual ILogger* findLogger() = 0;
};
} // namespace v_1_0
} // namespace nvinfer1

namespace pemtest
{

template <typename Base>
struct Logger : Base
{
    std::vector<std::string> messages;
    void log(nvinfer1::ILogger::Severity, char const* msg) noexcept override
    {
        messages.emplace_back(msg);
    }
};

template <typename FinderBase, typename LoggerBase>
struct Finder : FinderBase
{
    Logger<LoggerBase> logger;
    LoggerBase* findLogger() override
    {
        return &logger;
    }
};

using LegacyFinder = Finder<nvinfer1::ILoggerFinder, nvinfer1::ILogger>;
using VersionedFinder = Finder<nvinfer1::v_1_0::ILoggerFinder, nvinfer1::v_1_0::ILogger>;

} // namespace pemtest
