// PEM-RT tests: a stand-in "libnvinfer.so" without RTTI (built with -fno-rtti), so the plugin library must
// tell the logger layout from getInferLibVersion(), as it would with a TensorRT built that way.
// Compiled with -DFAKE_VERSION=101600 (legacy layout) or 110100 (versioned layout). Test code only.
#include "loggers.h"

#include <cstdint>

extern "C" __attribute__((visibility("default"))) int32_t getInferLibVersion() noexcept
{
    return FAKE_VERSION;
}

#if FAKE_VERSION >= 110000
using FakeFinder = pemtest::VersionedFinder;
#else
using FakeFinder = pemtest::LegacyFinder;
#endif

//! The finder, and where its logger keeps the messages.
extern "C" __attribute__((visibility("default"))) void* fakeFinder(std::vector<std::string>** messages)
{
    static FakeFinder finder;
    *messages = &finder.logger.messages;
    return &finder;
}
