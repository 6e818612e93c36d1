"""The package layout's rules, checked on the source: one boundary to the heavy frameworks.

Only ``archdiff/lazy.py`` may import TensorFlow, Keras, tf-keras, JAX or PyTorch, and
nothing at all imports Keras' private ``keras.src`` by an import statement;
every stage package re-exports its public names.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archdiff"
HEAVY = ("keras", "tensorflow", "tf_keras", "jax", "jaxlib", "torch")
STAGES = ("read", "shapes", "views", "diff", "transfer", "store", "validate", "cli")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_only_the_boundary_module_imports_the_frameworks():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    offenders = [f"{p.relative_to(PACKAGE)}:{line}: {name}" for p in modules if p.name != "lazy.py"
                 for line, name in _imports(p) if name.split(".")[0] in HEAVY]
    assert not offenders, offenders


def test_relative_imports_are_not_used():
    """Absolute imports only: a module's imports read the same wherever it moves."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{path.relative_to(PACKAGE)}:{n.lineno}" for n in ast.walk(tree)
                      if isinstance(n, ast.ImportFrom) and n.level]
    assert not offenders, offenders


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_is_a_package_with_public_names(stage):
    import importlib

    module = importlib.import_module(f"archdiff.{stage}")
    assert (PACKAGE / stage / "__init__.py").is_file()
    exported = getattr(module, "__all__", [])
    assert exported, f"archdiff.{stage} exports nothing"
    for name in exported:
        assert hasattr(module, name), f"archdiff.{stage}.{name} is in __all__ but missing"


def test_readme_python_api_names_resolve():
    import archdiff
    from archdiff.diff import diff
    from archdiff.transfer import TransferOptions, transfer
    from archdiff.validate import ValidateOptions, validate

    assert all(callable(f) for f in (archdiff.load, archdiff.layer_rows, archdiff.to_graph, archdiff.model_from_yaml,
                                     diff, transfer, validate))
    assert TransferOptions() is not None and ValidateOptions is not None


def test_the_diff_stage_imports_its_modules_on_first_use():
    """archdiff.diff re-exports lazily: each name is its home module's object, and a transfer does not
    import the engine, the gate or the value comparison (40 ms of every transfer's start)."""
    import subprocess
    import sys

    code = (
        "import sys, archdiff.transfer.apply\n"
        "print(sorted(m for m in ('archdiff.diff.engine', 'archdiff.diff.gate', 'archdiff.diff.values')"
        " if m in sys.modules))\n"
        "import importlib, archdiff.diff as d\n"
        "for name in d.__all__:\n"
        "    home = importlib.import_module('archdiff.diff.' + d._HOME[name])\n"
        "    assert getattr(d, name) is getattr(home, name), name\n"
        "assert set(d.__all__) == set(d._HOME) and set(d.__all__) <= set(dir(d))\n"
        "try:\n"
        "    d.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print('missing:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "missing: module 'archdiff.diff' has no attribute 'no_such_name'"
