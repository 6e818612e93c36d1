"""The zoo's built files: a git-ignored cache keyed by the Keras version and the builder's own code.

``.cache/zoo/keras-3.15.1-<builder hash>/ResNet50/`` holds what
``builder.py`` wrote for Keras 3; ``tf_keras-2.21.0-<hash>/`` for tf-keras. A
model folder without ``truth.json`` is an unfinished build and is built
again. ``ARCHDIFF_ZOO_CACHE`` moves the cache elsewhere.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from zoo.catalog import JSON_ONLY, size_of

ROOT = Path(__file__).resolve().parents[2]
BUILDER = Path(__file__).with_name("builder.py")
PACKAGES = {"k3": "keras", "k2": "tf_keras"}


def folder(flavour: str) -> Path:
    package = PACKAGES[flavour]
    version = importlib.metadata.version(package)
    code = hashlib.sha1(BUILDER.read_bytes()).hexdigest()[:8]
    base = Path(os.environ.get("ARCHDIFF_ZOO_CACHE") or ROOT / ".cache" / "zoo")
    return base / f"{package}-{version}-{code}"


def ensure(wanted: dict[str, tuple[str, ...]], *, timeout: int = 3600) -> dict[str, dict[str, Path]]:
    """Build what the cache lacks of ``{flavour: names}``: one Keras process per flavour, the two side by side
    (Keras 3 and tf-keras never share a process). ``{flavour: {name: folder}}``."""
    running = []
    for flavour, names in wanted.items():
        root = folder(flavour)
        missing = [n for n in names if not (root / n / "truth.json").exists()]
        if missing:
            root.mkdir(parents=True, exist_ok=True)
            specs = [f"{n.removesuffix(JSON_ONLY)}={size_of(n)}" + (":json" if n.endswith(JSON_ONLY) else "")
                     for n in missing]
            log = (root / "build.log").open("w")
            proc = subprocess.Popen([sys.executable, str(BUILDER), flavour, str(root), *specs], stdout=log,
                                    stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            running.append((flavour, proc, log, root / "build.log"))
    for flavour, proc, log, log_path in running:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # a hang guard, not a speed check
            proc.kill()
            raise AssertionError(f"the {flavour} zoo build hung: still running after {timeout} s") from None
        finally:
            log.close()
        assert proc.returncode == 0, \
            f"the {flavour} zoo build failed (exit {proc.returncode}):\n{log_path.read_text()[-4000:]}"
    return {flavour: {n: folder(flavour) / n for n in names} for flavour, names in wanted.items()}


def truth(model_folder: Path) -> dict:
    """Keras' own answers for one built model (written by builder.py)."""
    return json.loads((model_folder / "truth.json").read_text())
