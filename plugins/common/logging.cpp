// PEM-RT plugin glue: error reporting (see logging.h).
#include "logging.h"

#include <cstdio>
#include <mutex>

namespace pem
{
namespace
{

std::mutex gMutex;
nvinfer1::ILoggerFinder* gFinder{nullptr};

nvinfer1::ILogger* findLogger() noexcept
{
    try
    {
        std::lock_guard<std::mutex> lock(gMutex);
        return gFinder != nullptr ? gFinder->findLogger() : nullptr;
    }
    catch (...)
    {
        return nullptr;
    }
}

} // namespace

void fail(std::string const& message)
{
    throw PluginError(message);
}

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    try
    {
        std::lock_guard<std::mutex> lock(gMutex);
        if (finder != nullptr)
        {
            gFinder = finder;
        }
    }
    catch (...)
    {
    }
}

void logMessage(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept
{
    nvinfer1::ILogger* const logger = findLogger();
    if (logger != nullptr)
    {
        logger->log(severity, message.c_str());
    }
    else if (severity <= nvinfer1::ILogger::Severity::kWARNING)
    {
        std::fprintf(stderr, "[pem plugins] %s\n", message.c_str());
    }
}

void reportError(char const* message, nvinfer1::IErrorRecorder* recorder, nvinfer1::ErrorCode code) noexcept
{
    nvinfer1::ILogger* const logger = findLogger();
    if (logger != nullptr)
    {
        logger->log(nvinfer1::ILogger::Severity::kERROR, message);
    }
    else
    {
        std::fprintf(stderr, "[pem plugins] %s\n", message);
    }
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
