// PEM-RT plugin glue: error reporting and the exception barrier.
//
// TensorRT hands a plugin library an ILoggerFinder through the exported setLoggerFinder(); errors go to the
// logger it finds (the application's logger, so they appear in TensorRT's own log and in Python), to the
// execution context's IErrorRecorder when one is attached, and to stderr only when TensorRT gave neither.
// The finder's layout differs between TensorRT versions (trt_abi/pem_trt_logger.h); it is detected once.
// No C++ exception ever leaves a glue method: each one runs its body inside pem::guarded().
#pragma once

#include "trt_abi/pem_trt_logger.h"
#include "trt_api.h"

#include <exception>
#include <stdexcept>
#include <string>

namespace pem
{

//! Thrown by glue code for a user-facing problem (bad attribute, shape or dtype); the message is reported.
class PluginError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(std::string const& message);

//! Which logger layout the finder TensorRT gave us has (see trt_abi/pem_trt_logger.h).
enum class LoggerAbi : int32_t
{
    kNONE = 0,      //!< no finder yet, or its layout could not be told: messages go to stderr
    kVERSIONED = 1, //!< TensorRT >= 11, TensorRT-RTX >= 1.5
    kLEGACY = 2,    //!< TensorRT 8-10, TensorRT-RTX < 1.5
};

//! Keep TensorRT's ILoggerFinder (an opaque pointer: its layout depends on the TensorRT version).
void setLoggerFinder(void* finder) noexcept;

LoggerAbi loggerAbi() noexcept;

//! Log `message` at `severity` through TensorRT's logger (stderr for errors when there is none).
void logMessage(trtlog::Severity severity, char const* message) noexcept;

//! Report an error to TensorRT's logger and, when not null, to the execution context's error recorder.
void reportError(char const* message, nvinfer1::IErrorRecorder* recorder,
    nvinfer1::ErrorCode code = nvinfer1::ErrorCode::kINVALID_ARGUMENT) noexcept;

//! Report "<context> <method>: <what>" for an exception that is not a PluginError.
void reportFailure(std::string const& context, char const* method, char const* what,
    nvinfer1::IErrorRecorder* recorder) noexcept;

//! Run `body`; if it throws, report the error and return `onError` instead. A PluginError's message is
//! complete (it names the plugin and layer); any other exception is reported with `context` and `method`.
template <typename R, typename F>
R guarded(std::string const& context, char const* method, nvinfer1::IErrorRecorder* recorder, R onError,
    F&& body) noexcept
{
    try
    {
        return body();
    }
    catch (PluginError const& e)
    {
        reportError(e.what(), recorder);
    }
    catch (std::exception const& e)
    {
        reportFailure(context, method, e.what(), recorder);
    }
    catch (...)
    {
        reportFailure(context, method, "unknown C++ exception", recorder);
    }
    return onError;
}

} // namespace pem
