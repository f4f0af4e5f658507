"""Compare our TensorRT plugin ABI declarations with a real TensorRT SDK's headers (not run in CI).

    python plugins/tools/check_abi.py --headers /opt/TensorRT/include [--headers other/include ...]

For each headers directory it compiles one C++ file that includes both the SDK (namespace nvinfer1) and
plugins/common/trt_abi/pem_trt_abi.h (renamed to namespace pemabi), and checks:

1. enum values: every enumerator we declare equals the SDK's (same underlying type); enumerators the SDK
   does not have yet (older TensorRT) are listed, not failed: the plugins never pass them to TensorRT;
2. struct layouts: sizeof, alignof, every member offset and every member's type (as the compiler spells
   it, namespaces normalised) of the structs TensorRT hands to plugins, and the constants we declare;
3. method signatures: for every virtual method we declare, the member-function-pointer type (return,
   parameters, const, noexcept) spelled in both namespaces is exactly the declared one;
4. vtable slots: the slot of every such method, read from compiled code: a program calls each method
   through a member-function pointer on an object whose vtable is a row of functions that each record
   their own index, so the slot is the one the compiler's call reads, on any ABI (x86-64, aarch64);
   the same for the plugin registry's methods that registration on load calls
   (common/trt_abi/pem_trt_registry.h, the layout matching the SDK's major version);
5. whole vtables: g++ -fdump-lang-class of both class sets, namespace-normalised, must be identical
   (entry count, destructor slots, pure/inline pattern) and the class sizes equal;
6. interface kinds: the InterfaceInfo {kind, major, minor} each getInterfaceInfo() returns;
7. source compatibility: the plugin glue compiles against the SDK (PEM_USE_TENSORRT_SDK=1).

Exit status 0 when every headers directory matches. The headers are only read, never copied.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1]
OUR_HEADER = PLUGIN_DIR / "common" / "trt_abi" / "pem_trt_abi.h"
OUR_LOGGER_HEADER = PLUGIN_DIR / "common" / "trt_abi" / "pem_trt_logger.h"
OUR_REGISTRY_HEADER = PLUGIN_DIR / "common" / "trt_abi" / "pem_trt_registry.h"
GLUE_SOURCES = [
    PLUGIN_DIR / "common" / name
    for name in ("attributes.cpp", "logging.cpp", "plugin_base.cpp", "registration.cpp", "registry.cpp")
] + [
    PLUGIN_DIR / "modulated_deform_conv" / "deform_conv_plugin.cpp",
    PLUGIN_DIR / "prototype_selection" / "prototype_selection_plugin.cpp",
]

# (class, method, member-function-pointer type with {N} for the namespace and {C} for the class)
V = "{N}::v_1_0"
METHODS: list[tuple[str, str, str]] = [
    ("{N}::IVersionedInterface", "getAPILanguage", "{N}::APILanguage ({C}::*)() const noexcept"),
    ("{N}::IVersionedInterface", "getInterfaceInfo", "{N}::InterfaceInfo ({C}::*)() const noexcept"),
    (f"{V}::IErrorRecorder", "getInterfaceInfo", "{N}::InterfaceInfo ({C}::*)() const noexcept"),
    (f"{V}::IErrorRecorder", "getNbErrors", "int32_t ({C}::*)() const noexcept"),
    (f"{V}::IErrorRecorder", "getErrorCode", "{N}::ErrorCode ({C}::*)(int32_t) const noexcept"),
    (f"{V}::IErrorRecorder", "getErrorDesc", "char const* ({C}::*)(int32_t) const noexcept"),
    (f"{V}::IErrorRecorder", "hasOverflowed", "bool ({C}::*)() const noexcept"),
    (f"{V}::IErrorRecorder", "clear", "void ({C}::*)() noexcept"),
    (f"{V}::IErrorRecorder", "reportError", "bool ({C}::*)({N}::ErrorCode, char const*) noexcept"),
    (f"{V}::IErrorRecorder", "incRefCount", "int32_t ({C}::*)() noexcept"),
    (f"{V}::IErrorRecorder", "decRefCount", "int32_t ({C}::*)() noexcept"),
    (f"{V}::IPluginV3", "getInterfaceInfo", "{N}::InterfaceInfo ({C}::*)() const noexcept"),
    (
        f"{V}::IPluginV3",
        "getCapabilityInterface",
        "{N}::IPluginCapability* ({C}::*)({N}::PluginCapabilityType) noexcept",
    ),
    (f"{V}::IPluginV3", "clone", "{N}::IPluginV3* ({C}::*)() noexcept"),
    ("{N}::IPluginResourceContext", "getGpuAllocator", "{N}::IGpuAllocator* ({C}::*)() const noexcept"),
    ("{N}::IPluginResourceContext", "getErrorRecorder", "{N}::IErrorRecorder* ({C}::*)() const noexcept"),
    (f"{V}::IPluginV3OneCore", "getInterfaceInfo", "{N}::InterfaceInfo ({C}::*)() const noexcept"),
    (f"{V}::IPluginV3OneCore", "getPluginName", "char const* ({C}::*)() const noexcept"),
    (f"{V}::IPluginV3OneCore", "getPluginVersion", "char const* ({C}::*)() const noexcept"),
    (f"{V}::IPluginV3OneCore", "getPluginNamespace", "char const* ({C}::*)() const noexcept"),
    (f"{V}::IPluginV3OneBuild", "getInterfaceInfo", "{N}::InterfaceInfo ({C}::*)() const noexcept"),
    (
        f"{V}::IPluginV3OneBuild",
        "configurePlugin",
        "int32_t ({C}::*)({N}::DynamicPluginTensorDesc const*, int32_t, {N}::DynamicPluginTensorDesc const*, "
        "int32_t) noexcept",
    ),
    (
        f"{V}::IPluginV3OneBuild",
        "getOutputDataTypes",
        "int32_t ({C}::*)({N}::DataType*, int32_t, {N}::DataType const*, int32_t) const noexcept",
    ),
    (
        f"{V}::IPluginV3OneBuild",
        "getOutputShapes",
        "int32_t ({C}::*)({N}::DimsExprs const*, int32_t, {N}::DimsExprs const*, int32_t, {N}::DimsExprs*, "
        "int32_t, {N}::IExprBuilder&) noexcept",
    ),
    (
        f"{V}::IPluginV3OneBuild",
        "supportsFormatCombination",
        "bool ({C}::*)(int32_t, {N}::DynamicPluginTensorDesc const*, int32_t, int32_t) noexcept",
    ),
    (f"{V}::IPluginV3OneBuild", "getNbOutputs", "int32_t ({C}::*)() const noexcept"),
    (
        f"{V}::IPluginV3OneBuild",
        "getWorkspaceSize",
        "size_t ({C}::*)({N}::DynamicPluginTensorDesc const*, int32_t, {N}::DynamicPluginTensorDesc const*, "
        "int32_t) const noexcept",
    ),
    (f"{V}::IPluginV3OneBuild", "getValidTactics", "int32_t ({C}::*)(int32_t*, int32_t) noexcept"),
    (f"{V}::IPluginV3OneBuild", "getNbTactics", "int32_t ({C}::*)() noexcept"),
    (f"{V}::IPluginV3OneBuild", "getTimingCacheID", "char const* ({C}::*)() noexcept"),
    (f"{V}::IPluginV3OneBuild", "getFormatCombinationLimit", "int32_t ({C}::*)() noexcept"),
    (f"{V}::IPluginV3OneBuild", "getMetadataString", "char const* ({C}::*)() noexcept"),
    (f"{V}::IPluginV3OneRuntime", "getInterfaceInfo", "{N}::InterfaceInfo ({C}::*)() const noexcept"),
    (f"{V}::IPluginV3OneRuntime", "setTactic", "int32_t ({C}::*)(int32_t) noexcept"),
    (
        f"{V}::IPluginV3OneRuntime",
        "onShapeChange",
        "int32_t ({C}::*)({N}::PluginTensorDesc const*, int32_t, {N}::PluginTensorDesc const*, "
        "int32_t) noexcept",
    ),
    (
        f"{V}::IPluginV3OneRuntime",
        "enqueue",
        "int32_t ({C}::*)({N}::PluginTensorDesc const*, {N}::PluginTensorDesc const*, void const* const*, "
        "void* const*, void*, cudaStream_t) noexcept",
    ),
    (
        f"{V}::IPluginV3OneRuntime",
        "attachToContext",
        "{N}::IPluginV3* ({C}::*)({N}::IPluginResourceContext*) noexcept",
    ),
    (
        f"{V}::IPluginV3OneRuntime",
        "getFieldsToSerialize",
        "{N}::PluginFieldCollection const* ({C}::*)() noexcept",
    ),
    (f"{V}::IPluginCreatorV3One", "getInterfaceInfo", "{N}::InterfaceInfo ({C}::*)() const noexcept"),
    (
        f"{V}::IPluginCreatorV3One",
        "createPlugin",
        "{N}::IPluginV3* ({C}::*)(char const*, {N}::PluginFieldCollection const*, "
        "{N}::TensorRTPhase) noexcept",
    ),
    (f"{V}::IPluginCreatorV3One", "getFieldNames", "{N}::PluginFieldCollection const* ({C}::*)() noexcept"),
    (f"{V}::IPluginCreatorV3One", "getPluginName", "char const* ({C}::*)() const noexcept"),
    (f"{V}::IPluginCreatorV3One", "getPluginVersion", "char const* ({C}::*)() const noexcept"),
    (f"{V}::IPluginCreatorV3One", "getPluginNamespace", "char const* ({C}::*)() const noexcept"),
]

# Every polymorphic class of our header (compared as whole vtables and sizes).
INTERFACES = [
    "{N}::IVersionedInterface",
    f"{V}::IErrorRecorder",
    f"{V}::IPluginCapability",
    f"{V}::IPluginCreatorInterface",
    f"{V}::IPluginV3",
    "{N}::IPluginResourceContext",
    f"{V}::IPluginV3OneCore",
    f"{V}::IPluginV3OneBuild",
    f"{V}::IPluginV3OneRuntime",
    f"{V}::IPluginCreatorV3One",
]

STRUCTS: dict[str, list[str]] = {
    "Dims64": ["nbDims", "d"],
    "InterfaceInfo": ["kind", "major", "minor"],
    "PluginField": ["name", "data", "type", "length"],
    "PluginFieldCollection": ["nbFields", "fields"],
    "PluginTensorDesc": ["dims", "type", "format", "scale"],
    "DynamicPluginTensorDesc": ["desc", "min", "max", "opt"],
    "DimsExprs": ["nbDims", "d"],
}
CONSTANTS = [
    "{N}::Dims64::MAX_DIMS",
    "{N}::v_1_0::IErrorRecorder::kMAX_DESC_LENGTH",
    "{N}::v_1_0::IPluginV3OneBuild::kDEFAULT_FORMAT_COMBINATION_LIMIT",
]
# The logger: SDK class -> our declaration of the same layout, per SDK flavour (pem_trt_logger.h).
LOGGER_CLASSES = {
    True: {
        "nvinfer1::v_1_0::ILogger": "pem::trtlog::VersionedLogger",
        "nvinfer1::v_1_0::ILoggerFinder": "pem::trtlog::VersionedLoggerFinder",
    },
    False: {
        "nvinfer1::ILogger": "pem::trtlog::LegacyLogger",
        "nvinfer1::ILoggerFinder": "pem::trtlog::LegacyLoggerFinder",
    },
}


# The slot a virtual call reads, from compiled code: the object's vtable pointer points at a row of 64
# functions trap<0>..trap<63>, each recording its own index; a call through the member-function pointer
# (dummy arguments, the callee ignores them) lands in the trap of the method's slot.
SLOT_PROBE = [
    "#include <array>",
    "#include <utility>",
    "static long gSlot = -1;",
    "template <int I> void trap() { gSlot = I; }",
    "template <int... I> std::array<void*, sizeof...(I)> makeTable(std::integer_sequence<int, I...>) {",
    "  return {{reinterpret_cast<void*>(&trap<I>)...}};",
    "}",
    "static std::array<void*, 64> gTable = makeTable(std::make_integer_sequence<int, 64>{});",
    "struct FakeObject { void** vptr; unsigned char pad[256]; };",
    "template <typename T> T dummy() {",
    "  if constexpr (std::is_reference_v<T>) {",
    "    alignas(64) static unsigned char storage[1024] = {};",
    "    return *reinterpret_cast<std::remove_reference_t<T>*>(storage);",
    "  } else { return T{}; }",
    "}",
    "template <typename M> struct Probe;",
    *[
        f"template <typename C, typename R, typename... A> struct Probe<R (C::*)(A...){q}> {{\n"
        f"  static void call(R (C::*m)(A...){q}) {{ FakeObject o{{gTable.data(), {{}}}}; "
        "(reinterpret_cast<C*>(&o)->*m)(dummy<A>()...); }\n};"
        for q in ("", " const", " noexcept", " const noexcept")
    ],
    "template <typename M> long slotOf(M m) { gSlot = -1; Probe<M>::call(m); return gSlot; }",
    "template <typename T> char const* typeName() { return __PRETTY_FUNCTION__; }",
]

# The plugin registry's virtual methods (registration on load calls getCreator, registerCreator and
# deregisterCreator): name and member-function-pointer type with {C} the class, {I} IPluginCreatorInterface,
# {V2} TensorRT 10's IPluginCreator, {E} IErrorRecorder, {P} IPluginResource.
REGISTRY_V2_METHODS = [
    ("registerCreator", "bool ({C}::*)({V2}&, char const*) noexcept"),
    ("getPluginCreatorList", "{V2}* const* ({C}::*)(int32_t*) const noexcept"),
    ("getPluginCreator", "{V2}* ({C}::*)(char const*, char const*, char const*) noexcept"),
    ("deregisterCreator", "bool ({C}::*)({V2} const&) noexcept"),
]
REGISTRY_METHODS = [
    ("setErrorRecorder", "void ({C}::*)({E}*) noexcept"),
    ("getErrorRecorder", "{E}* ({C}::*)() const noexcept"),
    ("isParentSearchEnabled", "bool ({C}::*)() const"),
    ("setParentSearchEnabled", "void ({C}::*)(bool)"),
    ("loadLibrary", "void* ({C}::*)(char const*) noexcept"),
    ("deregisterLibrary", "void ({C}::*)(void*) noexcept"),
    ("registerCreator", "bool ({C}::*)({I}&, char const*) noexcept"),
    ("getAllCreators", "{I}* const* ({C}::*)(int32_t*) const noexcept"),
    ("getCreator", "{I}* ({C}::*)(char const*, char const*, char const*) noexcept"),
    ("deregisterCreator", "bool ({C}::*)({I} const&) noexcept"),
    ("acquirePluginResource", "{P}* ({C}::*)(char const*, {P}*) noexcept"),
    ("releasePluginResource", "int32_t ({C}::*)(char const*) noexcept"),
]
REGISTRY_NAMES = {
    "sdk": {
        "E": "nvinfer1::IErrorRecorder",
        "P": "nvinfer1::IPluginResource",
        "V2": "nvinfer1::IPluginCreator",
    },
    "ours": {
        "E": "pem::trtreg::IErrorRecorder",
        "P": "pem::trtreg::IPluginResource",
        "V2": "pem::trtreg::IPluginCreator",
    },
}


@dataclass
class Report:
    headers: Path
    version: str = "?"
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def parse_enums(text: str) -> dict[str, dict[str, int]]:
    """``enum class Name : int32_t { kA = 0, ... }`` -> {Name: {kA: 0}} (explicit values only)."""
    enums: dict[str, dict[str, int]] = {}
    for match in re.finditer(r"enum class (\w+)\s*:\s*\w+\s*\{(.*?)\}", strip_comments(text), flags=re.S):
        values: dict[str, int] = {}
        for item in match.group(2).split(","):
            m = re.match(r"\s*(\w+)(?:\s+TRT_DEPRECATED_ENUM)?\s*=\s*(-?\d+)\s*$", item)
            if m:
                values[m.group(1)] = int(m.group(2))
        enums.setdefault(match.group(1), values)
    return enums


def class_bodies(text: str) -> list[tuple[str, str]]:
    """(class name, body) for every class definition, in order (nested braces matched)."""
    text = strip_comments(text)
    out = []
    for match in re.finditer(r"\bclass\s+(?:TRT_DEPRECATED\s+)?(\w+)\s*(?:final\s*)?(?::[^;{]*)?\{", text):
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append((match.group(1), text[match.end() : i]))
    return out


def interface_kinds(texts: Sequence[str]) -> dict[str, tuple[str, int, int]]:
    """Class name -> the InterfaceInfo its getInterfaceInfo() returns (first definition of a name wins)."""
    kinds: dict[str, tuple[str, int, int]] = {}
    pattern = (
        r"getInterfaceInfo\(\)\s*const\s*noexcept\s*(?:override|final)?\s*\{\s*return\s*"
        r"(?:InterfaceInfo)?\s*\{\s*\"([^\"]+)\"\s*,\s*(\d+)\s*,\s*(\d+)"
    )
    for text in texts:
        for name, body in class_bodies(text):
            m = re.search(pattern, body)
            if m and name not in kinds:
                kinds[name] = (m.group(1), int(m.group(2)), int(m.group(3)))
    return kinds


def vtables(dump: str) -> dict[str, tuple[str, list[str]]]:
    """Class -> (size line, vtable entries) from a g++ -fdump-lang-class file."""
    tables: dict[str, tuple[str, list[str]]] = {}
    sizes = dict(re.findall(r"^Class (\S+)\n\s+(size=\d+ align=\d+)", dump, flags=re.M))
    for m in re.finditer(r"^Vtable for (\S+)\n[^\n]*: (\d+) entries\n(.*?)\n\n", dump, flags=re.M | re.S):
        entries = [re.sub(r"^\d+\s+", "", line.strip()) for line in m.group(3).splitlines()]
        tables[m.group(1)] = (sizes.get(m.group(1), "?"), entries)
    return tables


def type_spelling(pretty: str) -> str:
    """The type in a ``typeName<T>()`` __PRETTY_FUNCTION__ ('... [with T = long int [8]]'), our namespace
    spelled as the SDK's."""
    m = re.search(r"\[with T = (.*)\]$", pretty.strip())
    spelled = m.group(1) if m else pretty
    return re.sub(r"\bpemabi::", "nvinfer1::", spelled)


def normalise(entry: str) -> str:
    """Our namespace spelled as the SDK's; a slot of an abstract class ("0": its defaulted destructor, or
    __cxa_pure_virtual: a pure one) is the same slot either way."""
    entry = entry.replace("pemabi", "nvinfer1").replace("6nvinfer1", "8nvinfer1")
    return "<abstract>" if entry in ("0", "(int (*)(...))__cxa_pure_virtual") else entry


def registry_probes(v2_registry: bool) -> list[str]:
    """printf lines giving the SDK's and our slot of every registry method (a static_cast to the exact
    member-function-pointer type first: a signature that differs does not compile)."""
    ours = "pem::trtreg::RegistryV10" if v2_registry else "pem::trtreg::RegistryV11"
    methods = (REGISTRY_V2_METHODS if v2_registry else []) + REGISTRY_METHODS
    interface = "nvinfer1::v_1_0::IPluginCreatorInterface"
    out = []
    for method, sig in methods:
        real_sig = sig.format(C="nvinfer1::IPluginRegistry", I=interface, **REGISTRY_NAMES["sdk"])
        our_sig = sig.format(C=ours, I=interface, **REGISTRY_NAMES["ours"])
        label = f"IPluginRegistry::{method}{'(V2)' if '{V2}' in sig else ''}"
        out.append(
            f'  std::printf("slot %s %ld %ld\\n", "{label}", '
            f"slotOf(static_cast<{real_sig}>(&nvinfer1::IPluginRegistry::{method})), "
            f"slotOf(static_cast<{our_sig}>(&{ours}::{method})));"
        )
    return out


def generate_source(
    real_enums: dict[str, dict[str, int]],
    ours: dict[str, dict[str, int]],
    versioned_logger: bool,
    report: Report,
    v2_registry: bool = False,
) -> str:
    lines = [
        "#include <NvInferRuntime.h>",
        "#define PEM_TRT_ABI_NAMESPACE pemabi",
        f'#include "{OUR_HEADER}"',
        f'#include "{OUR_LOGGER_HEADER}"',
        "#include <cstddef>",
        "#include <cstdint>",
        "#include <cstdio>",
        "#include <cstring>",
        "#include <type_traits>",
        f'#include "{OUR_REGISTRY_HEADER}"',
        *SLOT_PROBE,
    ]

    def both(template: str) -> tuple[str, str]:
        return template.format(N="nvinfer1"), template.format(N="pemabi")

    n_enum = 0
    for enum, values in ours.items():
        scope = "{N}::" + enum
        real_values = real_enums.get(enum, {})
        real_t, our_t = both(scope)
        lines.append(
            f"static_assert(std::is_same_v<std::underlying_type_t<{real_t}>, "
            f"std::underlying_type_t<{our_t}>>);"
        )
        for name, value in values.items():
            if name not in real_values:
                report.notes.append(f"{enum}::{name} = {value} is not in these headers (newer TensorRT)")
                continue
            lines.append(
                f"static_assert(static_cast<long>({real_t}::{name}) == "
                f'static_cast<long>({our_t}::{name}), "{enum}::{name}");'
            )
            n_enum += 1
    report.checks.append(f"{n_enum} enumerators equal")

    n_layout = 0
    prints: list[str] = []
    for struct, members in STRUCTS.items():
        real_t, our_t = both("{N}::" + struct)
        lines.append(f'static_assert(sizeof({real_t}) == sizeof({our_t}), "sizeof {struct}");')
        lines.append(f'static_assert(alignof({real_t}) == alignof({our_t}), "alignof {struct}");')
        for member in members:
            lines.append(
                f"static_assert(offsetof({real_t}, {member}) == "
                f'offsetof({our_t}, {member}), "{struct}::{member}");'
            )
            prints.append(
                f'  std::printf("member\\t%s\\t%s\\t%s\\n", "{struct}::{member}", '
                f"typeName<decltype({real_t}::{member})>(), typeName<decltype({our_t}::{member})>());"
            )
        n_layout += 2 + len(members)
    for constant in CONSTANTS:
        real_c, our_c = both(constant)
        lines.append(f'static_assert({real_c} == {our_c}, "{constant}");')
        n_layout += 1
    report.checks.append(f"{n_layout} sizes, alignments, offsets and constants equal")

    for cls, method, sig in METHODS:
        real_c, our_c = both(cls)
        real_sig = sig.format(N="nvinfer1", C=real_c)
        our_sig = sig.format(N="pemabi", C=our_c)
        label = f"{cls.format(N='')[2:]}::{method}"
        lines.append(
            f'static_assert(std::is_same_v<decltype(&{real_c}::{method}), {real_sig}>, "SDK {label}");'
        )
        lines.append(
            f'static_assert(std::is_same_v<decltype(&{our_c}::{method}), {our_sig}>, "ours {label}");'
        )
        prints.append(
            f'  std::printf("slot %s %ld %ld\\n", "{label}", '
            f"slotOf(&{real_c}::{method}), slotOf(&{our_c}::{method}));"
        )
    report.checks.append(f"{len(METHODS)} method signatures equal")
    for cls in INTERFACES:
        real_c, our_c = both(cls)
        lines.append(
            f"void* keep_{cls.split('::')[-1]}[] = {{(void*)sizeof({real_c}), (void*)sizeof({our_c})}};"
        )

    # The logger: which of our two layouts this SDK has, checked the same way.
    logger, finder = LOGGER_CLASSES[versioned_logger]
    our_logger, our_finder = (
        LOGGER_CLASSES[versioned_logger][logger],
        LOGGER_CLASSES[versioned_logger][finder],
    )
    for severity in ("kINTERNAL_ERROR", "kERROR", "kWARNING", "kINFO", "kVERBOSE"):
        lines.append(
            f"static_assert(static_cast<int>(nvinfer1::ILogger::Severity::{severity}) == "
            f'static_cast<int>(pem::trtlog::Severity::{severity}), "Severity::{severity}");'
        )
    logger_methods = [
        (logger, our_logger, "log", "void ({C}::*)({S}, char const*) noexcept"),
        (finder, our_finder, "findLogger", "{L}* ({C}::*)()"),
    ]
    for real_c, our_c, method, sig in logger_methods:
        real_sig = sig.format(C=real_c, S="nvinfer1::ILogger::Severity", L="nvinfer1::ILogger")
        our_sig = sig.format(C=our_c, S="pem::trtlog::Severity", L=our_logger)
        lines.append(
            f'static_assert(std::is_same_v<decltype(&{real_c}::{method}), {real_sig}>, "SDK {method}");'
        )
        lines.append(
            f'static_assert(std::is_same_v<decltype(&{our_c}::{method}), {our_sig}>, "ours {method}");'
        )
        prints.append(
            f'  std::printf("slot %s %ld %ld\\n", "{real_c}::{method}", slotOf(&{real_c}::{method}), '
            f"slotOf(&{our_c}::{method}));"
        )
        lines.append(f"void* keep_{method}[] = {{(void*)sizeof({real_c}), (void*)sizeof({our_c})}};")
    flavour = "versioned (TensorRT >= 11)" if versioned_logger else "legacy (TensorRT <= 10)"
    report.checks.append(f"logger ABI is the {flavour} layout: Severity, log and findLogger slots equal")
    prints += registry_probes(v2_registry)
    ours_registry = "RegistryV10" if v2_registry else "RegistryV11"
    report.checks.append(f"plugin registry is the {ours_registry} layout: signatures and slots equal")
    lines += ["int main() {", *prints, "  return 0;", "}"]
    return "\n".join(lines) + "\n"


def check_probe_output(stdout: str, report: Report) -> None:
    """The probe program's lines: ``member<TAB>label<TAB>SDK type<TAB>our type``, ``slot label SDK ours``."""
    slots = members = 0
    for line in stdout.splitlines():
        if line.startswith("member\t"):
            _, label, real_type, our_type = line.split("\t")
            if type_spelling(real_type) != type_spelling(our_type):
                report.problems.append(
                    f"type of {label}: SDK {type_spelling(real_type)}, ours {type_spelling(our_type)}"
                )
            members += 1
            continue
        _, label, real_slot, our_slot = line.split()
        if real_slot != our_slot or real_slot == "-1":
            report.problems.append(f"vtable slot of {label}: SDK {real_slot}, ours {our_slot}")
        slots += 1
    report.checks.append(f"{members} member types equal")
    report.checks.append(f"{slots} vtable slots equal (read from compiled calls)")


def check_vtable_dump(work: Path, versioned_logger: bool, report: Report) -> None:
    """Whole vtables and class sizes from g++ -fdump-lang-class, namespace-normalised."""
    dumps = list(work.glob("*.class"))
    tables = vtables(dumps[0].read_text()) if dumps else {}
    for cls in INTERFACES:
        real_c, our_c = cls.format(N="nvinfer1"), cls.format(N="pemabi")
        if real_c not in tables or our_c not in tables:
            report.problems.append(f"no vtable dump for {real_c}")
            continue
        real_size, real_entries = tables[real_c]
        our_size, our_entries = tables[our_c]
        if real_size != our_size:
            report.problems.append(f"{real_c}: SDK {real_size}, ours {our_size}")
        if [normalise(e) for e in real_entries] != [normalise(e) for e in our_entries]:
            report.problems.append(f"{real_c}: vtables differ: SDK {real_entries} ours {our_entries}")
    for real_c, our_c in LOGGER_CLASSES[versioned_logger].items():
        if real_c not in tables or our_c not in tables:
            report.problems.append(f"no vtable dump for {real_c} or {our_c}")
        elif len(tables[real_c][1]) != len(tables[our_c][1]) or tables[real_c][0] != tables[our_c][0]:
            report.problems.append(f"{real_c}: vtable {tables[real_c]} vs {our_c}: {tables[our_c]}")
    report.checks.append(f"{len(INTERFACES)} whole vtables (g++ -fdump-lang-class) and class sizes equal")


def check(headers: Path, cxx: str, cuda_include: Path, work: Path) -> Report:
    report = Report(headers)
    version_text = (headers / "NvInferVersion.h").read_text(errors="replace")
    parts = [
        re.search(rf"#define (?:TRT|NV_TENSORRT)_{p}\w* (\d+)", version_text)
        for p in ("MAJOR", "MINOR", "PATCH")
    ]
    report.version = ".".join(m.group(1) if m else "?" for m in parts)
    real_texts = [p.read_text(errors="replace") for p in sorted(headers.glob("NvInfer*.h"))]
    real_enums: dict[str, dict[str, int]] = {}
    for text in real_texts:
        for name, values in parse_enums(text).items():
            real_enums.setdefault(name, values)
    ours_text = OUR_HEADER.read_text()
    versioned_logger = (
        re.search(r"class ILogger\s*:\s*public IVersionedInterface", "\n".join(real_texts)) is not None
    )
    v2_registry = any(
        name == "IPluginRegistry" and "getPluginCreatorList" in body
        for text in real_texts
        for name, body in class_bodies(text)
    )
    source = work / "abi_check.cpp"
    source.write_text(
        generate_source(real_enums, parse_enums(ours_text), versioned_logger, report, v2_registry)
    )
    binary = work / "abi_check"
    compile_cmd = [cxx, "-std=c++17", "-fdump-lang-class", f"-I{headers}", f"-I{cuda_include}"]
    compile_cmd += ["-Wno-deprecated-declarations", str(source), "-o", str(binary)]
    result = subprocess.run(compile_cmd, cwd=work, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        report.problems += errors[:20] or [result.stderr[-2000:]]
        return report

    run = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
    check_probe_output(run.stdout, report)

    check_vtable_dump(work, versioned_logger, report)

    real_kinds = interface_kinds(real_texts)
    our_kinds = interface_kinds([ours_text])
    for name, info in our_kinds.items():
        if real_kinds.get(name) != info:
            report.problems.append(f"{name}::getInterfaceInfo: SDK {real_kinds.get(name)}, ours {info}")
    report.checks.append(f"{len(our_kinds)} InterfaceInfo kinds/versions equal")

    glue = [
        cxx,
        "-std=c++17",
        "-fsyntax-only",
        "-DPEM_USE_TENSORRT_SDK=1",
        f"-I{headers}",
        f"-I{cuda_include}",
    ]
    glue += [f"-I{PLUGIN_DIR}", "-Wno-deprecated-declarations"]
    for src in GLUE_SOURCES:
        result = subprocess.run([*glue, str(src)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if "error" in line]
            report.problems.append(f"{src.name} does not compile against the SDK: {errors[:3]}")
    report.checks.append(f"{len(GLUE_SOURCES)} plugin glue sources compile against the SDK headers")
    return report


def default_cuda_include() -> Path:
    nvcc = shutil.which("nvcc")
    candidates = [Path("/usr/local/cuda/include")]
    if nvcc:
        candidates.insert(0, Path(nvcc).resolve().parents[1] / "include")
    for candidate in candidates:
        if (candidate / "cuda_runtime_api.h").is_file():
            return candidate
    raise SystemExit("error: cuda_runtime_api.h not found: pass --cuda-include")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--headers", type=Path, action="append", required=True, help="dir with NvInferRuntime.h"
    )
    parser.add_argument("--cuda-include", type=Path, default=None)
    parser.add_argument("--cxx", default="g++")
    args = parser.parse_args(argv)
    cuda_include = args.cuda_include or default_cuda_include()
    failed = False
    for headers in args.headers:
        with tempfile.TemporaryDirectory(prefix="pem_abi_") as tmp:
            report = check(headers.resolve(), args.cxx, cuda_include, Path(tmp))
        status = "MATCH" if not report.problems else "MISMATCH"
        print(f"TensorRT {report.version} headers ({report.headers}): {status}")
        for line in report.checks:
            print(f"  ok   {line}" if not report.problems else f"  run  {line}")
        for line in report.notes:
            print(f"  note {line}")
        for line in report.problems:
            print(f"  FAIL {line}")
        failed |= bool(report.problems)
    print("check_abi: " + ("FAILED" if failed else "PASSED"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
