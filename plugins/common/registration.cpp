// PEM-RT plugin library: registration on load (see registration.h).
#include "registration.h"

#include "logging.h"
#include "trt_abi/pem_trt_registry.h"

#include <dlfcn.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

namespace pem
{
namespace
{

enum class RegistryAbi : int32_t
{
    kUNKNOWN = 0,
    kV10 = 1, //!< TensorRT 10.x
    kV11 = 2, //!< TensorRT 11.x, TensorRT-RTX 1.7+
};

struct Registration
{
    void* registry;
    RegistryAbi abi;
};

//! The libraries that export getPluginRegistry(), by soname: already loaded ones are found even when
//! they were dlopen'ed RTLD_LOCAL (as Python extension modules load them).
constexpr char const* kTensorRTLibraries[] = {
    "libtensorrt_rtx.so.1",
    "libnvinfer.so.11",
    "libnvinfer.so.10",
    "libnvinfer_lean.so.11",
    "libnvinfer_lean.so.10",
};
constexpr int32_t kMaxRegistries = 8;

std::mutex gMutex;
Registration gRegistered[kMaxRegistries];
int32_t gCount{0};
bool gExplicit{false}; //!< getCreators() was called: a loader registers the creators itself from now on

using GetRegistryFn = void* (*) ();
using VersionFn = int32_t (*)();

//! The registry layout of the TensorRT library that defines `getRegistry`, from its name and version.
RegistryAbi abiOf(void* getRegistry)
{
    Dl_info info{};
    if (dladdr(getRegistry, &info) == 0 || info.dli_fname == nullptr)
    {
        return RegistryAbi::kUNKNOWN;
    }
    void* const library = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (library == nullptr)
    {
        return RegistryAbi::kUNKNOWN;
    }
    auto const version = reinterpret_cast<VersionFn>(dlsym(library, "getInferLibVersion"));
    int32_t const v = version != nullptr ? version() : 0; // major * 10000 + minor * 100 + patch
    dlclose(library);
    if (std::strstr(info.dli_fname, "tensorrt_rtx") != nullptr)
    {
        return v >= 10700 && v < 20000 ? RegistryAbi::kV11 : RegistryAbi::kUNKNOWN;
    }
    if (v >= 110000 && v < 120000)
    {
        return RegistryAbi::kV11;
    }
    return v >= 100000 && v < 110000 ? RegistryAbi::kV10 : RegistryAbi::kUNKNOWN;
}

//! Distinct getPluginRegistry entry points loaded in this process (at most `capacity`).
int32_t findRegistryFunctions(void** found, int32_t capacity)
{
    int32_t count = 0;
    auto const add = [&](void* fn) {
        for (int32_t i = 0; i < count; ++i)
        {
            if (found[i] == fn)
            {
                return;
            }
        }
        if (fn != nullptr && count < capacity)
        {
            found[count++] = fn;
        }
    };
    add(dlsym(RTLD_DEFAULT, "getPluginRegistry"));
    for (char const* name : kTensorRTLibraries)
    {
        void* const library = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
        if (library != nullptr)
        {
            add(dlsym(library, "getPluginRegistry"));
            dlclose(library); // NOLOAD took a reference; the library stays loaded by its owner
        }
    }
    return count;
}

nvinfer1::IPluginCreatorV3One* asV3One(nvinfer1::IPluginCreatorInterface* creator)
{
    return static_cast<nvinfer1::IPluginCreatorV3One*>(creator); // every creator in the list is one
}

template <typename Registry>
bool registerAll(Registry* registry, nvinfer1::IPluginCreatorInterface* const* creators, int32_t count)
{
    for (int32_t i = 0; i < count; ++i)
    {
        auto* const c = asV3One(creators[i]);
        if (registry->getCreator(c->getPluginName(), c->getPluginVersion(), c->getPluginNamespace()) != nullptr)
        {
            return false; // registered already (an earlier load, or another copy of this library)
        }
    }
    int32_t done = 0;
    for (; done < count; ++done)
    {
        if (!registry->registerCreator(*creators[done], asV3One(creators[done])->getPluginNamespace()))
        {
            break;
        }
    }
    if (done == count)
    {
        return true;
    }
    for (int32_t i = 0; i < done; ++i) // all or nothing
    {
        registry->deregisterCreator(*creators[i]);
    }
    return false;
}

template <typename Registry>
void deregisterOurs(Registry* registry, nvinfer1::IPluginCreatorInterface* const* creators, int32_t count)
{
    for (int32_t i = 0; i < count; ++i)
    {
        auto* const c = asV3One(creators[i]);
        if (registry->getCreator(c->getPluginName(), c->getPluginVersion(), c->getPluginNamespace()) == creators[i])
        {
            registry->deregisterCreator(*creators[i]);
        }
    }
}

} // namespace

namespace
{

//! Register with every known registry loaded now; gMutex held. Returns how many registries were found.
int32_t registerLocked(nvinfer1::IPluginCreatorInterface* const* creators, int32_t count)
{
    void* functions[kMaxRegistries];
    int32_t const found = findRegistryFunctions(functions, kMaxRegistries);
    for (int32_t i = 0; i < found && gCount < kMaxRegistries; ++i)
    {
        RegistryAbi const abi = abiOf(functions[i]);
        void* const registry = abi == RegistryAbi::kUNKNOWN ? nullptr : reinterpret_cast<GetRegistryFn>(functions[i])();
        bool registered = false;
        if (registry != nullptr && abi == RegistryAbi::kV10)
        {
            registered = registerAll(static_cast<trtreg::RegistryV10*>(registry), creators, count);
        }
        else if (registry != nullptr && abi == RegistryAbi::kV11)
        {
            registered = registerAll(static_cast<trtreg::RegistryV11*>(registry), creators, count);
        }
        if (registered)
        {
            gRegistered[gCount++] = Registration{registry, abi};
        }
    }
    return found;
}

//! The library was loaded before any TensorRT library (Polygraphy's --plugins opens it before importing
//! TensorRT): watch for one to appear and register then, until a loader asks for the creators itself.
//! It polls every millisecond for a minute (TensorRT's Python module takes longer than that to import
//! after its library is loaded), then every 50 ms.
void watchForTensorRT(nvinfer1::IPluginCreatorInterface* const* creators, int32_t count) noexcept
{
    try
    {
        auto const start = std::chrono::steady_clock::now();
        for (;;)
        {
            bool const early = std::chrono::steady_clock::now() - start < std::chrono::seconds(60);
            std::this_thread::sleep_for(std::chrono::milliseconds(early ? 1 : 50));
            std::lock_guard<std::mutex> lock(gMutex);
            if (gExplicit || registerLocked(creators, count) > 0)
            {
                return;
            }
        }
    }
    catch (...)
    {
    }
}

//! Keep this library mapped for the life of the process (RTLD_NODELETE), so a dlclose() cannot unmap the
//! code the watcher thread runs. False when the library cannot be found again.
bool pinned()
{
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&watchForTensorRT), &info) == 0 || info.dli_fname == nullptr)
    {
        return false;
    }
    return dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) != nullptr; // a reference, kept
}

} // namespace

void registerOnLoad(nvinfer1::IPluginCreatorInterface* const* creators, int32_t count) noexcept
{
    try
    {
        std::lock_guard<std::mutex> lock(gMutex);
        if (registerLocked(creators, count) == 0 && pinned())
        {
            std::thread(watchForTensorRT, creators, count).detach();
        }
    }
    catch (...)
    {
    }
}

void releaseOnLoadRegistrations(nvinfer1::IPluginCreatorInterface* const* creators, int32_t count) noexcept
{
    try
    {
        std::lock_guard<std::mutex> lock(gMutex);
        gExplicit = true;
        for (int32_t i = 0; i < gCount; ++i)
        {
            if (gRegistered[i].abi == RegistryAbi::kV10)
            {
                deregisterOurs(static_cast<trtreg::RegistryV10*>(gRegistered[i].registry), creators, count);
            }
            else
            {
                deregisterOurs(static_cast<trtreg::RegistryV11*>(gRegistered[i].registry), creators, count);
            }
        }
        gCount = 0;
    }
    catch (...)
    {
    }
}

int32_t onLoadRegistrations() noexcept
{
    std::lock_guard<std::mutex> lock(gMutex);
    return gCount;
}

} // namespace pem
