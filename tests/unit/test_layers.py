"""The package's layers depend one way, and no module imports another that imports it back
(function-level imports count too). CI runs this with the rest of the suite."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "lrlab"
# Lower layers never import higher ones. Packages of one layer may use each other (acyclically).
LAYERS = [
    {"__init__", "errors", "utils", "runtime", "parallel"},
    {"data", "models", "optim", "lr_finder", "tracking", "analysis"},
    {"engine"},
    {"callbacks"},
    {"tasks"},
    {"cli"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every lrlab module `path` imports, at module level or inside functions."""
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {  # `if TYPE_CHECKING:` imports are for annotations, never run
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lrlab"):
            submodules = {f"{node.module}.{a.name}" for a in node.names} & set(MODULE_NAMES)
            # `from lrlab.x import module` needs that module, not all of lrlab.x
            found |= submodules if len(submodules) == len(node.names) else {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lrlab")}
    return found


MODULE_NAMES = [module_name(p) for p in SRC.rglob("*.py")]
MODULES = {module_name(p): p for p in SRC.rglob("*.py")}
GRAPH = {m: {i for i in imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer():
    assert {top(m) for m in MODULES} <= set(LAYER)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    for imported in GRAPH[module]:
        assert LAYER[top(imported)] <= LAYER[top(module)], f"{module} imports {imported}"


def test_no_import_cycles():
    """Depth-first search over the module graph (packages' __init__ re-exports included)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = [*path[path.index(n) :], n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_lr_finder_is_pure_algorithm():
    """torch and numpy only (no Hydra/OmegaConf, no training code): reusable anywhere."""
    for name, path in MODULES.items():
        if top(name) != "lr_finder":
            continue
        text = path.read_text()
        assert "omegaconf" not in text and "hydra" not in text, name
        assert {top(i) for i in GRAPH[name]} <= {"lr_finder", "errors", "utils"}, name


# Modules are sized by their job; this only flags one that has grown several jobs (the shared
# tool's limit, ../shared/tools/layers.py).
MAX_LINES = 600


def test_modules_stay_small():
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"
