"""The .pyi stubs beside the .pyx files must not drift from the compiled modules.

A quick check of names and parameters; `stubtest _fastblocks.digest _fastblocks.lz4block` (with
the project root on PYTHONPATH) checks the same and more.
"""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path

import pytest

from _fastblocks import digest, lz4block


def public_names(module: types.ModuleType) -> dict[str, list[str] | None]:
    """Public functions (with parameter names), classes and constants (None) of a module."""
    names: dict[str, list[str] | None] = {}
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if callable(value) and not isinstance(value, type):
            names[name] = list(inspect.signature(value).parameters)
        else:
            names[name] = None
    return names


def stub_names(module: types.ModuleType) -> dict[str, list[str] | None]:
    stub = Path(str(module.__file__)).parent / (module.__name__.rsplit(".", 1)[1] + ".pyi")
    names: dict[str, list[str] | None] = {}
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = [arg.arg for arg in node.args.args]
        elif isinstance(node, ast.ClassDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
    return names


@pytest.mark.parametrize("module", [digest, lz4block], ids=lambda m: m.__name__)
def test_stub_matches_module(module: types.ModuleType) -> None:
    runtime = public_names(module)
    assert stub_names(module) == runtime
