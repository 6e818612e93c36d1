"""The release artifacts install clean: the sdist and the wheel built as a release builds them, the wheel installed
in a fresh virtual environment outside the source tree, and every light command run from there.

Expected values come from outside the wheel: the file lists from git, the metadata from pyproject.toml (read
with tomllib), model facts from Keras' recorded answers (fixtures/expected), weights compared with h5py.
The light install may fetch its dependencies from the package registry; it must not bring TensorFlow, Keras
or any other backend. Marked slow (about a minute); ``make test`` runs it in CI, on the artifacts .ci/run builds
(``$ARCHDIFF_DIST``).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import h5py
import jsonschema
import numpy as np
import pytest
import tomllib
import yaml
from support import FIXTURES, ROOT, expected_for

pytestmark = pytest.mark.slow

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
#: Distributions a light install must never pull in.
HEAVY = ("tensorflow", "tf-keras", "tf_keras", "keras", "jax", "jaxlib", "torch", "tensorflow-cpu")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would make a venv's Python see this source tree (or pick a
    Keras backend for it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
                                                              "PYTHONSTARTUP", "PYTHONUSERBASE", "KERAS_BACKEND")}
    env.update({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1", "NO_COLOR": "1"})
    env.update(extra)
    return env


def run(argv, *, cwd: Path, timeout: int = 300, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout, **kw)
    if check and proc.returncode:
        raise AssertionError(f"{argv} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def tracked_files(under: str = "") -> list[str]:
    """The repository's files as git knows them (committed or not, ignored ones left out)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", under or "."],
                         cwd=ROOT, capture_output=True, check=True).stdout.decode()
    return sorted(p for p in out.split("\0") if p and (ROOT / p).is_file())


def copy_source(dest: Path) -> Path:
    """A clean copy of the source tree: no build/, egg-info or venv from this checkout can leak into the build."""
    for rel in tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return dest


def make_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, env=clean_env(), timeout=300)
    return path / ("Scripts" if os.name == "nt" else "bin")


def build_pin() -> str:
    (pin,) = [r for r in PYPROJECT["project"]["optional-dependencies"]["test"] if r.startswith("build")]
    return pin


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel: the ones in ``$ARCHDIFF_DIST`` (.ci/run builds them), else built here by
    ``python -m build`` from a clean copy of the tree (the wheel from the sdist, as a release builds it)."""
    given = os.environ.get("ARCHDIFF_DIST")
    if given:
        (sdist,) = Path(given).glob(f"archdiff-{VERSION}.tar.gz")
        (wheel,) = Path(given).glob(f"archdiff-{VERSION}-*.whl")
        return {"sdist": sdist, "wheel": wheel}
    work = tmp_path_factory.mktemp("wheel-build")
    src = copy_source(work / "src")
    out = work / "dist"
    if importlib.util.find_spec("build") is not None:
        python = Path(sys.executable)
    else:  # a checkout whose environment predates the pin: the pinned build in a venv of its own
        tools = make_venv(work / "tools")
        run([tools / "python", "-m", "pip", "install", "-q", build_pin()], cwd=work)
        python = tools / "python"
    run([python, "-m", "build", "--outdir", out, src], cwd=work, timeout=600)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> dict[str, Path]:
    """A fresh virtual environment outside the source tree with the wheel (and its light dependencies) installed."""
    home = tmp_path_factory.mktemp("wheel-venv")
    bin_dir = make_venv(home / "venv")
    run([bin_dir / "python", "-m", "pip", "install", "-q", dist["wheel"]], cwd=home, timeout=600)
    work = home / "work"
    work.mkdir()
    for name in ("functional.keras", "nested.keras", "sequential.keras", "resnet_small.keras"):
        if (FIXTURES / "keras3" / name).exists():
            shutil.copy(FIXTURES / "keras3" / name, work / name)
    shutil.copy(FIXTURES / "demo" / "source.keras", work / "source.keras")
    shutil.copy(FIXTURES / "demo" / "target.keras", work / "target.keras")
    return {"bin": bin_dir, "python": bin_dir / "python", "archdiff": bin_dir / "archdiff", "work": work}


def _requirement(text: str) -> tuple[str, frozenset[str]]:
    """A requirement as name and specifiers, however the metadata orders them (packaging comes with pytest)."""
    from packaging.requirements import Requirement

    req = Requirement(text)
    return req.name.lower(), frozenset(str(s) for s in req.specifier)


# -- the artifacts -----------------------------------------------------------------------------
def test_wheel_holds_every_module_and_the_package_data(dist):
    with zipfile.ZipFile(dist["wheel"]) as zf:
        names = set(zf.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(meta_name).decode()
        entry_points = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    expected = [p for p in tracked_files("archdiff") if not p.endswith((".pyc",)) and "__pycache__" not in p]
    missing = [p for p in expected if p not in names]
    assert not missing, f"the wheel lacks {missing}"
    # The assets the HTML report inlines and the schemas are package data: without them `export --format html` fails.
    assert any(p.startswith("archdiff/diff/render/assets/vendor/") for p in names)
    assert {"archdiff/schemas/diff.schema.json", "archdiff/diff/render/assets/app.js"} <= names
    assert not [n for n in names if n.startswith(("tests/", "fixtures/", "bench/", "scripts/"))]

    # The metadata says what pyproject.toml says.
    project = PYPROJECT["project"]
    assert f"Version: {VERSION}" in metadata
    assert f"Requires-Python: {project['requires-python']}" in metadata
    for classifier in project["classifiers"]:
        assert f"Classifier: {classifier}" in metadata
    for extra in project["optional-dependencies"]:
        assert f"Provides-Extra: {extra}" in metadata
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    light = {_requirement(r) for r in requires if "extra ==" not in r}
    assert light == {_requirement(d) for d in project["dependencies"]}
    assert "archdiff = archdiff.cli:main" in entry_points


def test_sdist_builds_the_wheel_and_carries_the_sources(dist):
    with tarfile.open(dist["sdist"]) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for required in ("pyproject.toml", "README.md", "archdiff/__init__.py", "archdiff/ci.py",
                     "archdiff/diff/render/assets/template.html",
                     "archdiff/diff/render/assets/vendor/LICENSE-dagre.txt", "archdiff/schemas/transfer.schema.json"):
        assert required in names, f"the sdist lacks {required}"


# -- the installed wheel -----------------------------------------------------------------------------
def test_light_install_pulls_no_tensorflow(venv):
    listed = json.loads(run([venv["python"], "-m", "pip", "list", "--format", "json"], cwd=venv["work"]).stdout)
    names = {p["name"].lower().replace("_", "-") for p in listed}
    assert "archdiff" in names
    assert not names & {h.replace("_", "-") for h in HEAVY}, f"the light install pulled {names & set(HEAVY)}"
    run([venv["python"], "-m", "pip", "check"], cwd=venv["work"])
    # And it runs the installed copy, not this source tree.
    where = run([venv["python"], "-c", "import archdiff, sys; print(archdiff.__file__)"], cwd=venv["work"]).stdout
    assert Path(where.strip()).resolve().is_relative_to(venv["bin"].parent.resolve())
    assert not Path(where.strip()).resolve().is_relative_to(ROOT)


def test_version_and_module_entry_point(venv):
    for argv in ([venv["archdiff"]], [venv["python"], "-m", "archdiff"]):
        assert run([*argv, "--version"], cwd=venv["work"]).stdout.strip() == f"archdiff {VERSION}"
    help_text = run([venv["python"], "-m", "archdiff", "--help"], cwd=venv["work"]).stdout
    for command in ("layers", "summary", "export", "diff", "gate", "transfer", "textconv", "validate"):
        assert command in help_text


def test_layers_and_summary_agree_with_keras(venv):
    expected = expected_for(FIXTURES / "keras3" / "functional.keras")
    table = json.loads(run([venv["archdiff"], "layers", "functional.keras", "--format", "json"],
                           cwd=venv["work"]).stdout)
    assert [r["name"] for r in table["layers"]] == [layer["name"] for layer in expected["layers"]]
    assert [r["index"] for r in table["layers"]] == [layer["index"] for layer in expected["layers"]]
    summary = json.loads(run([venv["archdiff"], "summary", "functional.keras", "--format", "json"],
                             cwd=venv["work"]).stdout)
    assert summary["total_params"] == expected["total_params"]
    assert "functional_model" in run([venv["archdiff"], "summary", "functional.keras"], cwd=venv["work"]).stdout


def test_export_writes_every_format(venv):
    work = venv["work"]
    formats = ("json", "yaml", "graphml", "gexf", "dot", "node-link", "html")
    for fmt in formats:
        run([venv["archdiff"], "export", "nested.keras", "-o", work / f"out.{fmt}", "--format", fmt], cwd=work)
    paths = {layer["path"] for layer in expected_for(FIXTURES / "keras3" / "nested.keras")["layers"]}
    config = json.loads((work / "out.json").read_text())
    assert config["class_name"] in ("Functional", "Model")
    assert yaml.safe_load((work / "out.yaml").read_text())["class_name"] == config["class_name"]
    for fmt in ("graphml", "gexf"):
        ET.parse(work / f"out.{fmt}")  # well-formed XML
    assert "digraph" in (work / "out.dot").read_text().split("{", 1)[0]
    node_link = json.loads((work / "out.node-link").read_text())
    assert paths <= {str(n["id"]) for n in node_link["nodes"]}
    page = (work / "out.html").read_text(encoding="utf-8")
    # The page inlines the package data: the app script and the vendored layout engine, byte for byte.
    assert (ROOT / "archdiff/diff/render/assets/app.js").read_text(encoding="utf-8") in page
    assert (ROOT / "archdiff/diff/render/assets/vendor/dagre.min.js").read_text(encoding="utf-8") in page
    assert 'id="archdiff-data"' in page and "nested_model" in page


def test_diff_reports_and_textconv(venv):
    work = venv["work"]
    proc = run([venv["archdiff"], "diff", "functional.keras", "nested.keras"], cwd=work, check=False)
    assert proc.returncode == 1 and "topology-changing" in proc.stdout, proc.stderr
    proc = run([venv["archdiff"], "diff", "functional.keras", "functional.keras", "--format", "json"], cwd=work)
    report = json.loads(proc.stdout)
    schema = json.loads((ROOT / "archdiff/schemas/diff.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report)
    assert report["classification"] == "identical"
    proc = run([venv["archdiff"], "diff", "functional.keras", "nested.keras", "--format", "html", "-o", "d.html"],
               cwd=work, check=False)
    assert proc.returncode == 1 and (work / "d.html").stat().st_size > 10_000
    proc = run([venv["archdiff"], "diff", "functional.keras", "nested.keras", "--summary", "summary.md"],
               cwd=work, check=False)
    assert proc.returncode == 1 and "topology-changing" in (work / "summary.md").read_text(encoding="utf-8")
    text = run([venv["archdiff"], "textconv", "functional.keras"], cwd=work).stdout
    assert "shared_dense" in text and str(work) not in text


def test_transfer_copies_weights_without_tensorflow(venv):
    work = venv["work"]
    proc = run([venv["archdiff"], "transfer", "source.keras", "target.keras", "-o", "out.keras", "--format", "json"],
               cwd=work, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    copied = [v for layer in report["layers"] for v in layer["variables"] if v["action"] == "copy"]
    assert copied and report["totals"]["copied_layers"] > 0

    def dataset(path: Path, name: str) -> np.ndarray:
        with zipfile.ZipFile(path) as zf, zf.open("model.weights.h5") as raw:
            with h5py.File(raw, "r") as f:
                return f[name][()]

    for v in copied[:3]:
        assert np.array_equal(dataset(work / "source.keras", v["source_dataset"]),
                              dataset(work / "out.keras", v["target_dataset"]))


def test_validate_says_how_to_install_tensorflow(venv):
    proc = run([venv["archdiff"], "validate", "target.keras", "--weights", "target.keras"], cwd=venv["work"],
               check=False)
    assert proc.returncode == 2
    assert "archdiff[tensorflow]" in proc.stderr and "Traceback" not in proc.stderr
