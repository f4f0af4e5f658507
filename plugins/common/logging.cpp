// PEM-RT plugin glue: error reporting (see logging.h).
#include "logging.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <typeinfo>

namespace pem
{
namespace
{

std::mutex gMutex;
void* gFinder{nullptr};
LoggerAbi gAbi{LoggerAbi::kNONE};

// Itanium C++ ABI type_info layouts of libstdc++/libc++abi (cxxabi.h), read by their mangled class names so
// this works even when TensorRT carries its own copy of the C++ runtime.
struct SiTypeInfo
{
    void const* vtable;
    char const* name;
    std::type_info const* base;
};
struct BaseInfo
{
    std::type_info const* base;
    long flags;
};
struct VmiTypeInfo
{
    void const* vtable;
    char const* name;
    unsigned int flags;
    unsigned int baseCount;
    BaseInfo bases[1];
};

//! 1 when `type` is or derives from nvinfer1::IVersionedInterface, 0 when it is a class without that base
//! that derives from some ILoggerFinder, -1 when RTTI does not tell.
int rttiSaysVersioned(std::type_info const* type, int depth)
{
    if (type == nullptr || depth > 16)
    {
        return -1;
    }
    char const* const name = type->name();
    if (std::strcmp(name, "N8nvinfer119IVersionedInterfaceE") == 0)
    {
        return 1;
    }
    char const* const kind = typeid(*type).name();
    int verdict = std::strstr(name, "ILoggerFinder") != nullptr ? 0 : -1;
    if (std::strcmp(kind, "N10__cxxabiv120__si_class_type_infoE") == 0)
    {
        int const base = rttiSaysVersioned(reinterpret_cast<SiTypeInfo const*>(type)->base, depth + 1);
        verdict = base == -1 ? verdict : (base == 1 ? 1 : 0);
    }
    else if (std::strcmp(kind, "N10__cxxabiv121__vmi_class_type_infoE") == 0)
    {
        auto const* vmi = reinterpret_cast<VmiTypeInfo const*>(type);
        for (unsigned int i = 0; i < vmi->baseCount && verdict != 1; ++i)
        {
            int const base = rttiSaysVersioned(vmi->bases[i].base, depth + 1);
            verdict = base == -1 ? verdict : (base == 1 ? 1 : 0);
        }
    }
    return verdict;
}

//! The layout from the version of the TensorRT library that defines the finder's class.
LoggerAbi versionSays(void const* vtable)
{
    Dl_info info{};
    if (dladdr(vtable, &info) == 0 || info.dli_fname == nullptr)
    {
        return LoggerAbi::kNONE;
    }
    void* const library = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (library == nullptr)
    {
        return LoggerAbi::kNONE;
    }
    using VersionFn = int32_t (*)();
    auto const version = reinterpret_cast<VersionFn>(dlsym(library, "getInferLibVersion"));
    LoggerAbi abi = LoggerAbi::kNONE;
    if (version != nullptr)
    {
        int32_t const v = version(); // major * 10000 + minor * 100 + patch
        bool const rtx = std::strstr(info.dli_fname, "tensorrt_rtx") != nullptr;
        abi = (rtx ? v >= 10500 : v >= 110000) ? LoggerAbi::kVERSIONED : LoggerAbi::kLEGACY;
    }
    dlclose(library);
    return abi;
}

LoggerAbi detect(void* finder)
{
    void const* const* vtable = *static_cast<void const* const* const*>(finder);
    int const rtti = rttiSaysVersioned(static_cast<std::type_info const*>(vtable[-1]), 0);
    if (rtti != -1)
    {
        return rtti == 1 ? LoggerAbi::kVERSIONED : LoggerAbi::kLEGACY;
    }
    return versionSays(vtable);
}

} // namespace

void fail(std::string const& message)
{
    throw PluginError(message);
}

void setLoggerFinder(void* finder) noexcept
{
    try
    {
        std::lock_guard<std::mutex> lock(gMutex);
        if (finder != nullptr && gFinder == nullptr)
        {
            gAbi = detect(finder);
            gFinder = gAbi == LoggerAbi::kNONE ? nullptr : finder;
        }
    }
    catch (...)
    {
    }
}

LoggerAbi loggerAbi() noexcept
{
    std::lock_guard<std::mutex> lock(gMutex);
    return gAbi;
}

void logMessage(trtlog::Severity severity, char const* message) noexcept
{
    try
    {
        std::lock_guard<std::mutex> lock(gMutex);
        if (gAbi == LoggerAbi::kVERSIONED)
        {
            trtlog::VersionedLogger* const logger = static_cast<trtlog::VersionedLoggerFinder*>(gFinder)->findLogger();
            if (logger != nullptr)
            {
                logger->log(severity, message);
                return;
            }
        }
        else if (gAbi == LoggerAbi::kLEGACY)
        {
            trtlog::LegacyLogger* const logger = static_cast<trtlog::LegacyLoggerFinder*>(gFinder)->findLogger();
            if (logger != nullptr)
            {
                logger->log(severity, message);
                return;
            }
        }
    }
    catch (...)
    {
    }
    if (severity <= trtlog::Severity::kWARNING)
    {
        std::fprintf(stderr, "[pem plugins] %s\n", message);
    }
}

void reportError(char const* message, nvinfer1::IErrorRecorder* recorder, nvinfer1::ErrorCode code) noexcept
{
    logMessage(trtlog::Severity::kERROR, message);
    if (recorder != nullptr)
    {
        recorder->reportError(code, message);
    }
}

void reportFailure(std::string const& context, char const* method, char const* what,
    nvinfer1::IErrorRecorder* recorder) noexcept
{
    try
    {
        reportError((context + " " + method + ": " + what).c_str(), recorder, nvinfer1::ErrorCode::kINTERNAL_ERROR);
    }
    catch (...)
    {
        reportError(what, recorder, nvinfer1::ErrorCode::kINTERNAL_ERROR);
    }
}

} // namespace pem
