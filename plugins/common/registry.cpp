// PEM-RT plugin library entry points: the one explicit list of creators.
//
// TensorRT's IPluginRegistry::loadLibrary() (Python: get_plugin_registry().load_library(path)), trtexec
// --dynamicPlugins and engines that embed the library call setLoggerFinder() and getCreators(). Loaders
// that only dlopen the library (polygraphy --plugins, trtexec --plugins, Triton) get the same creators
// registered by the load-time constructor below (registration.h says how the two never collide).
#include "../modulated_deform_conv/deform_conv_plugin.h"
#include "../prototype_selection/prototype_selection_plugin.h"

#include "logging.h"
#include "registration.h"

#include <cuda_runtime_api.h>

#define PEM_EXPORT extern "C" __attribute__((visibility("default")))
#define PEM_STRINGIFY_(x) #x
#define PEM_STRINGIFY(x) PEM_STRINGIFY_(x)

namespace
{

nvinfer1::IPluginCreatorInterface* const* creatorList(int32_t& nbCreators)
{
    // The one list of creators. Their constructors do not allocate (the field lists are static arrays).
    static pem::ModulatedDeformConv2dCreator deformConv;
    static pem::PrototypeSelectionCreator prototypeSelection;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&deformConv, &prototypeSelection};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

__attribute__((constructor)) void registerWhenLoaded()
{
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = creatorList(count);
    pem::registerOnLoad(creators, count);
}

} // namespace

//! The CUDA runtime version the library was built with (what the machine's driver must support), also
//! readable without loading the library: the marker string below.
__attribute__((used)) char const kCudaRuntimeMarker[] = "pem-plugins-cuda-runtime=" PEM_STRINGIFY(CUDART_VERSION);

//! The finder's layout depends on the TensorRT version, so it is taken as an opaque pointer (logging.cpp).
PEM_EXPORT void setLoggerFinder(void* finder)
{
    pem::setLoggerFinder(finder);
}

PEM_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    nvinfer1::IPluginCreatorInterface* const* creators = creatorList(nbCreators);
    pem::releaseOnLoadRegistrations(creators, nbCreators); // the caller registers them now
    return creators;
}

//! Which logger layout setLoggerFinder() detected: 0 none (stderr), 1 versioned, 2 legacy (for tests).
PEM_EXPORT int32_t pem_plugins_logger_abi()
{
    return static_cast<int32_t>(pem::loggerAbi());
}

//! How many plugin registries hold creators the load-time constructor registered (for tests).
PEM_EXPORT int32_t pem_plugins_registered_on_load()
{
    return pem::onLoadRegistrations();
}

//! CUDART_VERSION at build time, e.g. 13000 for CUDA 13.0.
PEM_EXPORT int32_t pem_plugins_cuda_runtime_version()
{
    return CUDART_VERSION;
}
