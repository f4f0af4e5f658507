// PEM-RT: the two logger ABIs TensorRT has used, so one plugin binary logs through either.
//
// TensorRT passes a plugin library an ILoggerFinder (setLoggerFinder). Its layout changed: TensorRT 8-10
// and TensorRT-RTX before 1.5 declare ILoggerFinder / ILogger as plain polymorphic classes; TensorRT 11
// and TensorRT-RTX 1.5+ derive them from IVersionedInterface, which puts two methods and the destructor
// in front. logging.cpp detects the layout of the object it is given at run time (from its RTTI, else
// from the TensorRT library's version) and calls through the matching declaration below; these live in
// their own namespace so they never clash with an SDK's nvinfer1 declarations.
// plugins/tools/check_abi.py compares both with a real SDK's ILogger/ILoggerFinder.
#pragma once

#include <cstdint>

namespace pem
{
namespace trtlog
{

enum class Severity : int32_t
{
    kINTERNAL_ERROR = 0,
    kERROR = 1,
    kWARNING = 2,
    kINFO = 3,
    kVERBOSE = 4,
};

struct InterfaceInfo
{
    char const* kind;
    int32_t major;
    int32_t minor;
};

enum class APILanguage : int32_t
{
    kCPP = 0,
    kPYTHON = 1,
};

// TensorRT >= 11, TensorRT-RTX >= 1.5.
class VersionedInterface
{
public:
    virtual APILanguage getAPILanguage() const noexcept = 0;
    virtual InterfaceInfo getInterfaceInfo() const noexcept = 0;
    virtual ~VersionedInterface() noexcept = default;
};

class VersionedLogger : public VersionedInterface
{
public:
    virtual void log(Severity severity, char const* msg) noexcept = 0;
};

class VersionedLoggerFinder : public VersionedInterface
{
public:
    virtual VersionedLogger* findLogger() = 0;
};

// TensorRT 8 to 10, TensorRT-RTX < 1.5.
class LegacyLogger
{
public:
    virtual void log(Severity severity, char const* msg) noexcept = 0;
    virtual ~LegacyLogger() = default;
};

class LegacyLoggerFinder
{
public:
    virtual LegacyLogger* findLogger() = 0;

protected:
    virtual ~LegacyLoggerFinder() = default;
};

} // namespace trtlog
} // namespace pem
