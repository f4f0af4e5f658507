// PEM-RT: the one place that decides which TensorRT declarations the plugin glue compiles against.
//
// PEM_USE_TENSORRT_SDK=1 (set by CMake when NvInferRuntime.h is found through TENSORRT_ROOT): the SDK's own
// headers. Otherwise our minimal, binary-compatible declaration in trt_abi/pem_trt_abi.h.
#pragma once

#if defined(PEM_USE_TENSORRT_SDK) && PEM_USE_TENSORRT_SDK
#include <NvInferRuntime.h>
#else
#include "trt_abi/pem_trt_abi.h"
#endif
