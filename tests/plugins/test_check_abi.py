"""plugins/tools/check_abi.py against a stand-in SDK: our own declarations placed where an SDK's headers go
(NVIDIA's headers are not in this repository), so the tool must report MATCH; then single changes the
tool must catch: a member whose type changed but whose offset did not, two swapped virtual methods, and
two swapped plugin-registry methods (the slots read from compiled calls)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.tools.check_abi import OUR_HEADER, Report, check, default_cuda_include

REGISTRY = """
namespace nvinfer1
{
namespace v_1_0
{
class ILogger : public IVersionedInterface
{
public:
    enum class Severity : int32_t
    {
        kINTERNAL_ERROR = 0,
        kERROR = 1,
        kWARNING = 2,
        kINFO = 3,
        kVERBOSE = 4,
    };
    InterfaceInfo getInterfaceInfo() const noexcept override { return InterfaceInfo{"ILogger", 1, 0}; }
    virtual void log(Severity severity, AsciiChar const* msg) noexcept = 0;
};
class ILoggerFinder : public IVersionedInterface
{
public:
    InterfaceInfo getInterfaceInfo() const noexcept override { return InterfaceInfo{"ILoggerFinder", 1, 0}; }
    virtual ILogger* findLogger() = 0;
};
} // namespace v_1_0
using ILogger = v_1_0::ILogger;
using ILoggerFinder = v_1_0::ILoggerFinder;
class IPluginResource;
class IPluginRegistry
{
public:
    using PluginLibraryHandle = void*;
    virtual ~IPluginRegistry() noexcept = default;
    virtual void setErrorRecorder(IErrorRecorder* const recorder) noexcept = 0;
    virtual IErrorRecorder* getErrorRecorder() const noexcept = 0;
    virtual bool isParentSearchEnabled() const = 0;
    virtual void setParentSearchEnabled(bool const enabled) = 0;
    virtual PluginLibraryHandle loadLibrary(AsciiChar const* pluginPath) noexcept = 0;
    virtual void deregisterLibrary(PluginLibraryHandle handle) noexcept = 0;
    virtual bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept = 0;
    virtual IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept = 0;
    virtual IPluginCreatorInterface* getCreator(
        AsciiChar const* const name, AsciiChar const* const version, AsciiChar const* const ns) noexcept = 0;
    virtual bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept = 0;
    virtual IPluginResource* acquirePluginResource(AsciiChar const* key, IPluginResource* r) noexcept = 0;
    virtual int32_t releasePluginResource(AsciiChar const* key) noexcept = 0;
};
} // namespace nvinfer1
"""
SWAP_CORE = (
    "    virtual AsciiChar const* getPluginName() const noexcept = 0;\n"
    "    virtual AsciiChar const* getPluginVersion() const noexcept = 0;\n"
    "    virtual AsciiChar const* getPluginNamespace() const noexcept = 0;\n"
    "};\n\nclass IPluginV3OneBuild"
)


def stand_in_sdk(folder: Path, change: str | None = None) -> Path:
    """An include dir laid out like an SDK's (TensorRT 11 layout) from our own declarations."""
    original = OUR_HEADER.read_text().replace("PEM_TRT_ABI_NAMESPACE", "STAND_IN_SDK_NAMESPACE")
    base, registry = original, REGISTRY
    if change == "member type":
        base = base.replace("    int32_t length;\n", "    uint32_t length;\n", 1)
    elif change == "virtual order":
        name, version, *rest = SWAP_CORE.splitlines(keepends=True)
        base = base.replace(SWAP_CORE, "".join([version, name, *rest]))
    elif change == "registry order":
        get_all = next(line for line in REGISTRY.splitlines(keepends=True) if "getAllCreators" in line)
        anchor = "    virtual bool deregisterCreator"
        registry = registry.replace(get_all, "").replace(anchor, get_all + anchor)
    assert (change is None) == ((base, registry) == (original, REGISTRY))  # the change took
    include = folder / "include"
    include.mkdir()
    (include / "NvInferRuntimeBase.h").write_text(base)
    (include / "NvInferRuntime.h").write_text('#pragma once\n#include "NvInferRuntimeBase.h"\n' + registry)
    (include / "NvInferVersion.h").write_text(
        "#define TRT_MAJOR_ENTERPRISE 11\n#define TRT_MINOR_ENTERPRISE 1\n#define TRT_PATCH_ENTERPRISE 0\n"
    )
    return include


def run_check(tmp_path: Path, change: str | None) -> Report:
    headers = stand_in_sdk(tmp_path, change)
    work = tmp_path / "work"
    work.mkdir()
    return check(headers, "g++", default_cuda_include(), work)


def test_matching_declarations_pass(tmp_path: Path) -> None:
    report = run_check(tmp_path, None)
    assert report.problems == [], report.problems
    assert report.version == "11.1.0"
    assert "21 member types equal" in report.checks
    assert "plugin registry is the RegistryV11 layout: signatures and slots equal" in report.checks
    assert "58 vtable slots equal (read from compiled calls)" in report.checks


def test_a_member_type_change_with_the_same_offset_fails(tmp_path: Path) -> None:
    report = run_check(tmp_path, "member type")
    assert report.problems == ["type of PluginField::length: SDK unsigned int, ours int"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "want"),
    [
        ("virtual order", "vtable slot of v_1_0::IPluginV3OneCore::getPluginName"),
        ("registry order", "vtable slot of IPluginRegistry::getAllCreators"),
    ],
)
def test_swapped_virtual_methods_fail(tmp_path: Path, change: str, want: str) -> None:
    report = run_check(tmp_path, change)
    assert any(p.startswith(want) for p in report.problems), report.problems
