// PEM-RT tests: drives libpem_plugins.so through the IPluginV3 interfaces the way TensorRT does (dlopen,
// setLoggerFinder, getCreators, createPlugin, capability casts, build and runtime calls), with a logger
// finder of either TensorRT layout, and checks every result and every reported message.
//
//   plugin_driver <libpem_plugins.so> legacy|versioned|none|fake:<libnvinfer.so.N>
//
// Prints one line per check ("ok ..." / "FAIL ...") and exits 1 if any failed. Test code only.
#include "loggers.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{

int gFailures = 0;
std::vector<std::string>* gMessages = nullptr;
size_t gSeen = 0;

void expect(bool ok, std::string const& what)
{
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    gFailures += ok ? 0 : 1;
}

//! The newest message the logger got since the last call ("" if none).
std::string lastMessage()
{
    if (gMessages == nullptr || gMessages->size() == gSeen)
    {
        return "";
    }
    gSeen = gMessages->size();
    return gMessages->back();
}

void expectLogged(char const* fragment, std::string const& what)
{
    std::string const message = lastMessage();
    bool const ok = gMessages == nullptr || message.find(fragment) != std::string::npos;
    expect(ok, what + " -> logged: " + (gMessages == nullptr ? "(no logger in this mode)" : message));
}

struct RecordingErrorRecorder : IErrorRecorder
{
    std::vector<std::pair<ErrorCode, std::string>> errors;
    int32_t getNbErrors() const noexcept override
    {
        return static_cast<int32_t>(errors.size());
    }
    ErrorCode getErrorCode(int32_t i) const noexcept override
    {
        return errors[static_cast<size_t>(i)].first;
    }
    ErrorDesc getErrorDesc(int32_t i) const noexcept override
    {
        return errors[static_cast<size_t>(i)].second.c_str();
    }
    bool hasOverflowed() const noexcept override
    {
        return false;
    }
    void clear() noexcept override
    {
        errors.clear();
    }
    bool reportError(ErrorCode code, ErrorDesc desc) noexcept override
    {
        errors.emplace_back(code, desc);
        return false;
    }
    RefCount incRefCount() noexcept override
    {
        return 1;
    }
    RefCount decRefCount() noexcept override
    {
        return 0;
    }
};

struct Context : IPluginResourceContext
{
    IErrorRecorder* recorder;
    explicit Context(IErrorRecorder* r)
        : recorder(r)
    {
    }
    IGpuAllocator* getGpuAllocator() const noexcept override
    {
        return nullptr;
    }
    IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return recorder;
    }
};

Dims dims(std::initializer_list<int64_t> values)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(values.size());
    int32_t i = 0;
    for (int64_t v : values)
    {
        d.d[i++] = v;
    }
    return d;
}

DynamicPluginTensorDesc dynamicDesc(Dims const& d, DataType type)
{
    DynamicPluginTensorDesc desc{};
    desc.desc.dims = d;
    desc.desc.type = type;
    desc.desc.format = TensorFormat::kLINEAR;
    desc.min = d;
    desc.max = d;
    desc.opt = d;
    return desc;
}

template <typename T>
T* capability(IPluginV3* plugin, PluginCapabilityType type)
{
    return static_cast<T*>(plugin->getCapabilityInterface(type));
}

void driveDeformConv(IPluginCreatorV3One* creator)
{
    int32_t const bad[2] = {0, 1};
    PluginField badField("stride", bad, PluginFieldType::kINT32, 2);
    PluginFieldCollection badCollection{1, &badField};
    expect(creator->createPlugin("dcn_bad", &badCollection, TensorRTPhase::kBUILD) == nullptr, "bad stride -> null plugin");
    expectLogged("(layer 'dcn_bad'): attribute 'stride' must be 2 positive integers, got [0, 1]", "bad stride");

    int64_t const wide[2] = {1, 1};
    PluginField fields[] = {PluginField("padding", wide, PluginFieldType::kINT64, 2)};
    PluginFieldCollection collection{1, fields};
    std::unique_ptr<IPluginV3> plugin(creator->createPlugin("dcn0", &collection, TensorRTPhase::kBUILD));
    expect(plugin != nullptr, "create with int64 padding [1, 1] and defaults");
    if (!plugin)
    {
        return;
    }
    auto* core = capability<IPluginV3OneCore>(plugin.get(), PluginCapabilityType::kCORE);
    expect(std::strcmp(core->getPluginName(), "ModulatedDeformConv2d") == 0 && std::strcmp(core->getPluginNamespace(), "pem") == 0
            && std::strcmp(core->getPluginVersion(), "1") == 0,
        "core capability names");
    expect(std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0, "core interface kind");

    auto* build = capability<IPluginV3OneBuild>(plugin.get(), PluginCapabilityType::kBUILD);
    expect(build->getNbOutputs() == 1, "one output");
    DataType types[5] = {DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF};
    DataType out = DataType::kFLOAT;
    expect(build->getOutputDataTypes(&out, 1, types, 5) == 0 && out == DataType::kHALF, "fp16 in -> fp16 out");
    types[0] = DataType::kBF16;
    expect(build->getOutputDataTypes(&out, 1, types, 5) != 0, "bf16 rejected");
    expectLogged("input 'x' is BF16; supported types are FLOAT (fp32) and HALF (fp16)", "bf16 rejected");
    types[0] = DataType::kHALF;
    types[3] = DataType::kFLOAT;
    expect(build->getOutputDataTypes(&out, 1, types, 5) != 0, "mixed types rejected");
    expectLogged("input 'weight' is FLOAT but 'x' is HALF", "mixed types rejected");
    expect(build->getOutputDataTypes(&out, 1, types, 7) != 0, "7 inputs rejected");
    expectLogged("expects 4 or 5 inputs, got 7", "7 inputs rejected");

    // Shapes: x [2, 8, 10, 12], weight [16, 8, 3, 3], stride 1, padding 1 -> [2, 16, 10, 12].
    DynamicPluginTensorDesc io[6] = {dynamicDesc(dims({2, 8, 10, 12}), DataType::kFLOAT),
        dynamicDesc(dims({2, 18, 10, 12}), DataType::kFLOAT), dynamicDesc(dims({2, 9, 10, 12}), DataType::kFLOAT),
        dynamicDesc(dims({16, 8, 3, 3}), DataType::kFLOAT), dynamicDesc(dims({16}), DataType::kFLOAT),
        dynamicDesc(dims({2, 16, 10, 12}), DataType::kFLOAT)};
    expect(build->supportsFormatCombination(0, io, 5, 1), "fp32 linear x supported");
    io[5].desc.type = DataType::kHALF;
    expect(!build->supportsFormatCombination(5, io, 5, 1), "output type must follow x");
    io[5].desc.type = DataType::kFLOAT;
    io[1].desc.format = TensorFormat::kHWC8;
    expect(!build->supportsFormatCombination(1, io, 5, 1), "non-linear format refused");
    io[1].desc.format = TensorFormat::kLINEAR;
    expect(build->configurePlugin(io, 5, io + 5, 1) == 0, "configure consistent shapes");
    io[1].desc.dims.d[2] = -1; // dynamic: unknown dims are not checked at build time
    expect(build->configurePlugin(io, 5, io + 5, 1) == 0, "configure with a dynamic dim");
    io[1].desc.dims.d[2] = 9;
    expect(build->configurePlugin(io, 5, io + 5, 1) != 0, "offset height 9 rejected");
    expectLogged("offset height must be the convolution's output height (got 9 vs 10)", "offset height 9 rejected");
    io[1].desc.dims.d[2] = 10;

    IDimensionExpr const* fake[8];
    for (int32_t i = 0; i < 8; ++i)
    {
        fake[i] = reinterpret_cast<IDimensionExpr const*>(static_cast<intptr_t>(0x1000 + 16 * i));
    }
    DimsExprs in[5]{};
    for (int32_t i = 0; i < 5; ++i)
    {
        in[i].nbDims = i == 4 ? 1 : 4;
        for (int32_t j = 0; j < in[i].nbDims; ++j)
        {
            in[i].d[j] = fake[(i + j) % 8];
        }
    }
    DimsExprs shape{};
    alignas(16) static unsigned char builderStorage[64]; // the plugin never calls the expression builder
    IExprBuilder& builder = *reinterpret_cast<IExprBuilder*>(builderStorage);
    expect(build->getOutputShapes(in, 5, nullptr, 0, &shape, 1, builder) == 0 && shape.nbDims == 4
            && shape.d[0] == in[0].d[0] && shape.d[1] == in[3].d[0] && shape.d[2] == in[1].d[2] && shape.d[3] == in[1].d[3],
        "output shape [B, Cout, Ho, Wo] from the inputs' expressions");
    in[2].nbDims = 3;
    expect(build->getOutputShapes(in, 5, nullptr, 0, &shape, 1, builder) != 0, "3-D mask rejected");
    expectLogged("input 'mask' must be 4-D [B, dg*kh*kw, Ho, Wo], got 3-D", "3-D mask rejected");

    // Serialisation round trip: the runtime phase gets exactly what getFieldsToSerialize wrote.
    auto* runtime = capability<IPluginV3OneRuntime>(plugin.get(), PluginCapabilityType::kRUNTIME);
    PluginFieldCollection const* serialised = runtime->getFieldsToSerialize();
    expect(serialised != nullptr && serialised->nbFields == 5, "five serialised attributes");
    std::unique_ptr<IPluginV3> restored(creator->createPlugin("dcn0", serialised, TensorRTPhase::kRUNTIME));
    expect(restored != nullptr, "runtime-phase plugin from the serialised fields");
    if (restored)
    {
        auto* again = capability<IPluginV3OneRuntime>(restored.get(), PluginCapabilityType::kRUNTIME)->getFieldsToSerialize();
        bool same = again->nbFields == 5;
        for (int32_t i = 0; same && i < 5; ++i)
        {
            same = std::strcmp(again->fields[i].name, serialised->fields[i].name) == 0
                && again->fields[i].length == serialised->fields[i].length
                && std::memcmp(again->fields[i].data, serialised->fields[i].data,
                       sizeof(int32_t) * static_cast<size_t>(again->fields[i].length))
                    == 0;
        }
        expect(same, "serialisation round trip is stable");
        auto const* padding = static_cast<int32_t const*>(again->fields[1].data);
        expect(std::strcmp(again->fields[1].name, "padding") == 0 && padding[0] == 1 && padding[1] == 1,
            "padding survived the round trip");
    }

    // Runtime errors go to the execution context's error recorder as well as the logger.
    RecordingErrorRecorder recorder;
    Context context(&recorder);
    std::unique_ptr<IPluginV3> attached(runtime->attachToContext(&context));
    expect(attached != nullptr && attached.get() != plugin.get(), "attachToContext returns a clone");
    auto* attachedRuntime = capability<IPluginV3OneRuntime>(attached.get(), PluginCapabilityType::kRUNTIME);
    PluginTensorDesc concrete[6];
    for (int32_t i = 0; i < 6; ++i)
    {
        concrete[i] = io[i].desc;
    }
    expect(attachedRuntime->onShapeChange(concrete, 5, concrete + 5, 1) == 0, "onShapeChange with valid shapes");
    concrete[5].dims.d[1] = 15;
    int32_t const status = attachedRuntime->enqueue(concrete, concrete + 5, nullptr, nullptr, nullptr, nullptr);
    expect(status != 0, "enqueue with a wrong output shape fails");
    expectLogged("output channels (got 15 vs 16)", "enqueue with a wrong output shape fails");
    expect(recorder.errors.size() == 1 && recorder.errors[0].second.find("output channels") != std::string::npos,
        "the error recorder got it too");
}

void drivePrototypeSelection(IPluginCreatorV3One* creator)
{
    PluginFieldCollection empty{0, nullptr};
    expect(creator->createPlugin("ps_bad", &empty, TensorRTPhase::kBUILD) == nullptr, "missing heads -> null");
    expectLogged("(layer 'ps_bad'): missing required attribute 'heads'", "missing heads");
    float const wrongType = 8.f;
    PluginField floatHeads("heads", &wrongType, PluginFieldType::kFLOAT32, 1);
    PluginFieldCollection floatCollection{1, &floatHeads};
    expect(creator->createPlugin("ps_float", &floatCollection, TensorRTPhase::kBUILD) == nullptr, "float heads -> null");
    expectLogged("attribute 'heads' must be integers", "float heads");
    int32_t const heads = 8;
    PluginField typo("head", &heads, PluginFieldType::kINT32, 1);
    PluginFieldCollection typoCollection{1, &typo};
    expect(creator->createPlugin("ps_typo", &typoCollection, TensorRTPhase::kBUILD) == nullptr, "unknown field -> null");
    expectLogged("unknown attribute 'head' (allowed: heads)", "unknown field");

    PluginField good("heads", &heads, PluginFieldType::kINT32, 1);
    PluginFieldCollection goodCollection{1, &good};
    std::unique_ptr<IPluginV3> plugin(creator->createPlugin("ps0", &goodCollection, TensorRTPhase::kBUILD));
    expect(plugin != nullptr, "create with heads 8");
    if (!plugin)
    {
        return;
    }
    auto* build = capability<IPluginV3OneBuild>(plugin.get(), PluginCapabilityType::kBUILD);
    DataType types[3] = {DataType::kHALF, DataType::kHALF, DataType::kFLOAT};
    DataType out = DataType::kFLOAT;
    expect(build->getOutputDataTypes(&out, 1, types, 3) == 0 && out == DataType::kHALF, "fp16 features with fp32 logits");
    types[1] = DataType::kFLOAT;
    expect(build->getOutputDataTypes(&out, 1, types, 3) != 0, "queries must follow features");
    expectLogged("input 'queries' is FLOAT but 'features' is HALF", "queries must follow features");

    DynamicPluginTensorDesc io[4] = {dynamicDesc(dims({2, 4096, 256}), DataType::kFLOAT),
        dynamicDesc(dims({2, 100, 256}), DataType::kFLOAT), dynamicDesc(dims({2, 100, 4096}), DataType::kFLOAT),
        dynamicDesc(dims({2, 100, 256}), DataType::kFLOAT)};
    expect(build->configurePlugin(io, 3, io + 3, 1) == 0, "configure [2, 4096, 256] x [2, 100, 256]");
    size_t const small = build->getWorkspaceSize(io, 3, io + 3, 1);
    io[0].max.d[1] = 1 << 20;
    io[2].max.d[2] = 1 << 20;
    expect(small > 0 && build->getWorkspaceSize(io, 3, io + 3, 1) == small, "workspace does not grow with N");
    io[2].desc.dims.d[1] = 99;
    expect(build->configurePlugin(io, 3, io + 3, 1) != 0, "mask_logits queries mismatch rejected");
    expectLogged("mask_logits dim 1 must equal the number of queries (got 99 vs 100)", "mask_logits mismatch");

    // A CUDA failure in enqueue is reported (here: the launcher refuses a null workspace before any launch).
    auto* runtime = capability<IPluginV3OneRuntime>(plugin.get(), PluginCapabilityType::kRUNTIME);
    PluginTensorDesc concrete[4] = {io[0].desc, io[1].desc, io[2].desc, io[3].desc};
    concrete[2].dims.d[1] = 100;
    float dummy = 0.f;
    void const* inputs[3] = {&dummy, &dummy, &dummy};
    void* outputs[1] = {&dummy};
    expect(runtime->enqueue(concrete, concrete + 3, inputs, outputs, nullptr, nullptr) != 0, "enqueue without workspace fails");
    expectLogged("enqueue: CUDA error cudaErrorInvalidValue", "enqueue without workspace fails");
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 3)
    {
        std::fprintf(stderr, "usage: plugin_driver <libpem_plugins.so> legacy|versioned|none|fake:<lib>\n");
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        std::fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    auto setLoggerFinder = reinterpret_cast<void (*)(void*)>(dlsym(lib, "setLoggerFinder"));
    auto getCreators = reinterpret_cast<IPluginCreatorInterface* const* (*) (int32_t&)>(dlsym(lib, "getCreators"));
    auto loggerAbi = reinterpret_cast<int32_t (*)()>(dlsym(lib, "pem_plugins_logger_abi"));
    expect(setLoggerFinder && getCreators && loggerAbi, "entry points exported");
    if (!(setLoggerFinder && getCreators && loggerAbi))
    {
        return 1;
    }

    std::string const mode = argv[2];
    pemtest::LegacyFinder legacy;
    pemtest::VersionedFinder versioned;
    int32_t expectedAbi = 0;
    if (mode == "legacy")
    {
        setLoggerFinder(&legacy);
        gMessages = &legacy.logger.messages;
        expectedAbi = 2;
    }
    else if (mode == "versioned")
    {
        setLoggerFinder(&versioned);
        gMessages = &versioned.logger.messages;
        expectedAbi = 1;
    }
    else if (mode.rfind("fake:", 0) == 0)
    {
        void* fake = dlopen(mode.c_str() + 5, RTLD_NOW | RTLD_LOCAL);
        auto make = fake ? reinterpret_cast<void* (*) (std::vector<std::string>**)>(dlsym(fake, "fakeFinder")) : nullptr;
        auto version = fake ? reinterpret_cast<int32_t (*)()>(dlsym(fake, "getInferLibVersion")) : nullptr;
        expect(make && version, "fake TensorRT library loaded");
        if (!(make && version))
        {
            return 1;
        }
        setLoggerFinder(make(&gMessages));
        expectedAbi = version() >= 110000 ? 1 : 2;
    }
    expect(loggerAbi() == expectedAbi, "logger layout detected: " + std::to_string(loggerAbi()));

    int32_t count = 0;
    IPluginCreatorInterface* const* creators = getCreators(count);
    expect(count == 2, "two creators");
    for (int32_t i = 0; i < count; ++i)
    {
        expect(std::strcmp(creators[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0, "creator kind V3ONE");
        auto* creator = static_cast<IPluginCreatorV3One*>(creators[i]);
        expect(std::strcmp(creator->getPluginNamespace(), "pem") == 0 && std::strcmp(creator->getPluginVersion(), "1") == 0,
            std::string("creator ") + creator->getPluginName() + " namespace pem version 1");
        if (std::strcmp(creator->getPluginName(), "ModulatedDeformConv2d") == 0)
        {
            driveDeformConv(creator);
        }
        else
        {
            drivePrototypeSelection(creator);
        }
    }
    std::printf("%s (%d failed)\n", gFailures == 0 ? "PASSED" : "FAILED", gFailures);
    return gFailures == 0 ? 0 : 1;
}
