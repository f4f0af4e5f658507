// PEM-RT: the two IPluginRegistry layouts TensorRT has used, so one plugin binary registers with either.
//
// Registration on load (common/registration.cpp) calls three methods of the registry a TensorRT library
// returns from getPluginRegistry(): getCreator, registerCreator and deregisterCreator for IPluginV3
// creators. Their vtable slots differ: TensorRT 10 declares the IPluginV2 creator methods first, TensorRT
// 11 removed them, and TensorRT-RTX 1.7 has TensorRT 11's layout (measured on libtensorrt_rtx.so 1.7.1:
// getCreator is slot 10). The declarations keep every virtual method of the SDK's class in the SDK's
// order, with the same names and parameter types; classes the calls never touch stay opaque. They live in
// their own namespace, so they never clash with an SDK's nvinfer1. plugins/tools/check_abi.py compares
// the one matching an SDK with that SDK's IPluginRegistry (slots, signatures, whole vtable).
#pragma once

#include <cstdint>

namespace nvinfer1
{
namespace v_1_0
{
class IPluginCreatorInterface;
} // namespace v_1_0
} // namespace nvinfer1

namespace pem
{
namespace trtreg
{

using Creator = nvinfer1::v_1_0::IPluginCreatorInterface;
using PluginLibraryHandle = void*;
class IPluginCreator;   // TensorRT 10's IPluginV2 creator: only passed by reference, never used
class IErrorRecorder;   // opaque here
class IPluginResource;  // opaque here

//! TensorRT 10.0 - 10.16.
class RegistryV10
{
public:
    virtual bool registerCreator(IPluginCreator& creator, char const* const pluginNamespace) noexcept = 0;
    virtual IPluginCreator* const* getPluginCreatorList(int32_t* const numCreators) const noexcept = 0;
    virtual IPluginCreator* getPluginCreator(
        char const* const pluginName, char const* const pluginVersion, char const* const pluginNamespace) noexcept
        = 0;
    virtual ~RegistryV10() noexcept = default;
    virtual void setErrorRecorder(IErrorRecorder* const recorder) noexcept = 0;
    virtual IErrorRecorder* getErrorRecorder() const noexcept = 0;
    virtual bool deregisterCreator(IPluginCreator const& creator) noexcept = 0;
    virtual bool isParentSearchEnabled() const = 0;
    virtual void setParentSearchEnabled(bool const enabled) = 0;
    virtual PluginLibraryHandle loadLibrary(char const* pluginPath) noexcept = 0;
    virtual void deregisterLibrary(PluginLibraryHandle handle) noexcept = 0;
    virtual bool registerCreator(Creator& creator, char const* const pluginNamespace) noexcept = 0;
    virtual Creator* const* getAllCreators(int32_t* const numCreators) const noexcept = 0;
    virtual Creator* getCreator(
        char const* const pluginName, char const* const pluginVersion, char const* const pluginNamespace) noexcept
        = 0;
    virtual bool deregisterCreator(Creator const& creator) noexcept = 0;
    virtual IPluginResource* acquirePluginResource(char const* key, IPluginResource* resource) noexcept = 0;
    virtual int32_t releasePluginResource(char const* key) noexcept = 0;
};

//! TensorRT 11.0 - 11.1 and TensorRT-RTX 1.7.
class RegistryV11
{
public:
    virtual ~RegistryV11() noexcept = default;
    virtual void setErrorRecorder(IErrorRecorder* const recorder) noexcept = 0;
    virtual IErrorRecorder* getErrorRecorder() const noexcept = 0;
    virtual bool isParentSearchEnabled() const = 0;
    virtual void setParentSearchEnabled(bool const enabled) = 0;
    virtual PluginLibraryHandle loadLibrary(char const* pluginPath) noexcept = 0;
    virtual void deregisterLibrary(PluginLibraryHandle handle) noexcept = 0;
    virtual bool registerCreator(Creator& creator, char const* const pluginNamespace) noexcept = 0;
    virtual Creator* const* getAllCreators(int32_t* const numCreators) const noexcept = 0;
    virtual Creator* getCreator(
        char const* const pluginName, char const* const pluginVersion, char const* const pluginNamespace) noexcept
        = 0;
    virtual bool deregisterCreator(Creator const& creator) noexcept = 0;
    virtual IPluginResource* acquirePluginResource(char const* key, IPluginResource* resource) noexcept = 0;
    virtual int32_t releasePluginResource(char const* key) noexcept = 0;
};

} // namespace trtreg
} // namespace pem
