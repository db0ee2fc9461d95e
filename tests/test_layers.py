"""The package's layers: a module imports only from its own layer or below (imports inside
functions count too), no import cycles, and engines stay behind their interface."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Dict, List, Set

import runner

ROOT = Path(runner.__file__).parent

# Lowest first. A module may import modules of its own layer or of a lower one.
LAYERS = [
    ["runner", "runner.errors", "runner.task", "runner.identity"],
    ["runner.spec"],
    ["runner.store", "runner.gpu"],
    ["runner.execution"],
    ["runner.backends"],
    ["runner.results", "runner.sweep", "runner.report"],
    ["runner.cli", "runner.__main__"],
]
# What code outside the engines' own packages may import of runner.backends.
ENGINE_INTERFACE = {"runner.backends", "runner.backends.base", "runner.backends.registry"}
SLURM_PROGRAMS = {"sbatch", "squeue", "sacct", "scancel", "scontrol", "srun"}


def modules() -> Dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer_of(module: str) -> int:
    best, depth = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def imports(path: Path, module: str, known: Set[str]) -> Set[str]:
    """Every runner module that `path` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                base = ".".join(parent[:len(parent) - node.level + 1] + ([base] if base else []))
            # `from package import module` needs the module; other names need `base` itself
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                     for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("runner") and name != module:
                found.add(name)
    return found


def graph() -> Dict[str, Set[str]]:
    known = modules()
    return {module: imports(path, module, set(known)) for module, path in known.items()}


def test_every_module_imports_only_from_its_layer_or_below():
    wrong = [f"{m} (layer {layer_of(m)}) imports {i} (layer {layer_of(i)})"
             for m, targets in graph().items() for i in sorted(targets)
             if layer_of(i) > layer_of(m) and not (m == "runner" and i.startswith("runner."))]
    assert wrong == []


def test_no_import_cycles():
    edges = graph()
    # A package's __init__ importing its own modules is not a cycle of design.
    cycles: List[List[str]] = []
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert cycles == []


def test_engines_are_reached_only_through_their_interface():
    outside = {m: t for m, t in graph().items() if not m.startswith("runner.backends")}
    wrong = [f"{m} imports {i}" for m, targets in outside.items() for i in sorted(targets)
             if i.startswith("runner.backends") and i not in ENGINE_INTERFACE]
    assert wrong == []


def slurm_names(path: Path) -> List[str]:
    """Where code (not prose) names a SLURM program or a SLURM_* variable: a string that is a
    program's name, or any identifier or string holding `SLURM_`."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef,
                                       ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                id(node) not in docstrings):
            text = node.value
            if text.split(" ")[0] in SLURM_PROGRAMS or "SLURM_" in text:
                found.append(f"{path.name}:{node.lineno}: {text[:60]!r}")
        elif isinstance(node, ast.Name) and "SLURM_" in node.id:
            found.append(f"{path.name}:{node.lineno}: {node.id}")
    return found


def test_slurm_is_named_only_inside_its_package():
    wrong = [hit for module, path in modules().items()
             if not module.startswith("runner.backends.slurm") for hit in slurm_names(path)]
    assert wrong == []
    inside = [hit for module, path in modules().items()
              if module.startswith("runner.backends.slurm") for hit in slurm_names(path)]
    assert inside  # the check sees them where they are


def test_the_layers_cover_every_module():
    for module in modules():
        layer_of(module)
    assert os.path.isdir(ROOT / "backends" / "slurm")
