"""The package layout is the architecture: each layer imports only what is below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vaultsched

PACKAGE = Path(vaultsched.__file__).parent
# What each layer may import at run time (type-only imports under TYPE_CHECKING are free).
ALLOWED = {
    "core": {"core"},
    "adapters": {"core", "adapters"},
    "trust": {"core", "adapters", "trust"},
    "runtime": {"core", "adapters", "trust", "runtime"},
    "cli": {"core", "adapters", "trust", "runtime", "cli"},
}
# The core does no I/O of its own: none of these, and no open().
# threading is not among them: a lock around a cache is no I/O (starting a thread is, below).
IO_MODULES = {"subprocess", "socket", "fcntl", "watchdog", "shutil", "tempfile"}


def runtime_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of each import that runs when the module is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for node in ast.walk(block)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = (
                [f"{node.module}.{a.name}" for a in node.names]
                if node.module == "vaultsched"
                else [node.module]
            )
            found += [(node.lineno, name) for name in names]
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "vaultsched" and len(parts) > 1 and parts[1] in ALLOWED else None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, module in runtime_imports(path):
            target = layer_of(module)
            if target is not None and target not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert wrong == []


CORE_NEVER_CALLS = ("open", "os.open", "threading.Thread", "threading.Timer")


def test_the_core_does_no_io_of_its_own() -> None:
    wrong = []
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        for line, module in runtime_imports(path):
            if module.split(".")[0] in IO_MODULES:
                wrong.append(f"{path.name}:{line} imports {module}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in CORE_NEVER_CALLS:
                wrong.append(f"{path.name}:{node.lineno} calls {ast.unparse(node.func)}")
    assert wrong == []


def test_every_module_belongs_to_a_layer() -> None:
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "__main__.py"}
