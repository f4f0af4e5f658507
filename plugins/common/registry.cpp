// PEM-RT plugin library entry points: the one explicit list of creators.
//
// TensorRT's IPluginRegistry::loadLibrary() (Python: get_plugin_registry().load_library(path)) calls
// setLoggerFinder() and getCreators(); trtexec --dynamicPlugins and polygraphy --plugins do the same. The
// library registers nothing as a side effect of being loaded.
#include "../modulated_deform_conv/deform_conv_plugin.h"
#include "../prototype_selection/prototype_selection_plugin.h"

#include "logging.h"

#define PEM_EXPORT extern "C" __attribute__((visibility("default")))

//! The finder's layout depends on the TensorRT version, so it is taken as an opaque pointer (logging.cpp).
PEM_EXPORT void setLoggerFinder(void* finder)
{
    pem::setLoggerFinder(finder);
}

PEM_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    // The one list of creators. Their constructors do not allocate (the field lists are static arrays).
    static pem::ModulatedDeformConv2dCreator deformConv;
    static pem::PrototypeSelectionCreator prototypeSelection;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&deformConv, &prototypeSelection};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

//! Which logger layout setLoggerFinder() detected: 0 none (stderr), 1 versioned, 2 legacy (for tests).
PEM_EXPORT int32_t pem_plugins_logger_abi()
{
    return static_cast<int32_t>(pem::loggerAbi());
}
