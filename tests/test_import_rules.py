"""Packages import one way (DESIGN.md): pem_rt is the torch-free core; training, calibration, plugins and
runtime import only pem_rt (runtime also the plugins' loader); export may import every stage; nothing
imports export; and no two modules import each other, directly or in a ring.

Read from the source (every import, lazy ones inside functions included; ``if TYPE_CHECKING:`` blocks
excluded), so a forbidden arrow fails here even when no test runs the code path that makes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pem_rt", "training", "calibration", "plugins", "runtime", "export")
# what each package may import besides itself (a module, or a package and everything in it)
ALLOWED: dict[str, tuple[str, ...]] = {
    "pem_rt": (),
    "training": ("pem_rt",),
    "calibration": ("pem_rt",),
    "plugins": ("pem_rt",),
    "runtime": ("pem_rt", "plugins.loader"),
    "export": ("pem_rt", "training", "calibration", "plugins", "runtime"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts as a.b when that is a module)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            found |= (subs & known) or {node.module}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _allowed(importer: str, imported: str) -> bool:
    pkg = importer.split(".")[0]
    if imported.split(".")[0] == pkg:
        return True
    return any(imported == a or imported.startswith(a + ".") for a in ALLOWED[pkg])


def test_packages_import_one_way() -> None:
    modules = _modules()
    wrong = [
        f"{name} imports {dep}"
        for name, path in modules.items()
        for dep in sorted(_imports(path, set(modules)))
        if not _allowed(name, dep)
    ]
    assert not wrong, "forbidden imports (see DESIGN.md, Packages and dependencies):\n" + "\n".join(wrong)


def test_no_module_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(path, set(modules)) & set(modules) - {name} for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("importer", "imported", "ok"),
    [
        ("runtime.stream", "pem_rt.errors", True),
        ("runtime.backends.tensorrt_backend", "plugins.loader", True),
        ("runtime.stream", "plugins.builder", False),
        ("calibration.calibrate", "export.surgery", False),
        ("training.data.synthetic", "runtime.sources", False),
        ("export.compare", "training.model", True),
        ("pem_rt.cli", "training", False),
    ],
)
def test_the_rule_itself(importer: str, imported: str, ok: bool) -> None:
    assert _allowed(importer, imported) is ok
