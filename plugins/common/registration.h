// PEM-RT plugin library: registration on load, for loaders that only dlopen the library.
//
// polygraphy --plugins (ctypes.CDLL), trtexec --plugins and LD_PRELOAD'ed or backend-config'ed Triton
// servers dlopen the library and never call getCreators(). So when the library is loaded into a process
// that already has a TensorRT or TensorRT-RTX library loaded, a load-time constructor registers the
// creators with that library's plugin registry, once. IPluginRegistry::loadLibrary() (what plugins.load,
// trtexec --dynamicPlugins and engines with the library embedded use) fails when a creator it registers is
// already there, so getCreators() first takes back what the constructor registered: every loader ends
// with each creator registered exactly once, by the loader that asked last.
#pragma once

#include "trt_api.h"

#include <cstdint>

namespace pem
{

//! Register `creators` with the plugin registry of every TensorRT library loaded in this process whose
//! registry layout is known (TensorRT 10.x, 11.x, TensorRT-RTX 1.7+); skipped where one is already there.
void registerOnLoad(nvinfer1::IPluginCreatorInterface* const* creators, int32_t count) noexcept;

//! Deregister what registerOnLoad() registered (called by getCreators(), before a registry registers them).
void releaseOnLoadRegistrations(nvinfer1::IPluginCreatorInterface* const* creators, int32_t count) noexcept;

//! How many registries registerOnLoad() registered the creators with (for tests).
int32_t onLoadRegistrations() noexcept;

} // namespace pem
