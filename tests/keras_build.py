"""Build models with real Keras in a fresh process: Keras 3 (``keras``) or Keras 2 (``tf_keras``).

Keras 3 and tf-keras never share a process, and each build starts from a clean
name scope. ``code`` runs with ``keras`` bound to the chosen package, ``OUT``
(a folder to write files into) and ``RESULT`` (a dict returned as JSON).
Holds no tests itself.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

FLAVOURS = {"k3": "import keras", "k2": "import tf_keras as keras"}


def build(flavour: str, code: str, folder: Path, *, timeout: int = 900) -> dict:
    """Run ``code`` under ``flavour`` ("k3" or "k2"); what it put in RESULT."""
    script = textwrap.dedent(f"""
        import json, os, sys
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        OUT = sys.argv[1]
        RESULT = {{}}
        {FLAVOURS[flavour]}
        keras.utils.set_random_seed(0)
    """) + textwrap.dedent(code) + "\nprint('@@' + json.dumps(RESULT))\n"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:  # a hang guard, not a speed check: a build takes seconds
        raise AssertionError(f"the {flavour} build hung: still running after {timeout} s") from None
    assert proc.returncode == 0, f"the {flavour} build failed (not hung: exit {proc.returncode}):\n" \
                                 f"{proc.stderr[-4000:]}"
    line = [x for x in proc.stdout.splitlines() if x.startswith("@@")][-1]
    return json.loads(line[2:])
