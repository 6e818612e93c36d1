"""An interrupted ``archdiff transfer`` leaves nothing at OUT, and its inputs unchanged.

A model big enough to take a moment (a few hundred MB, written with h5py in
the Keras 3 layout) is transferred in a subprocess that is killed at seeded
random moments: SIGKILL may leave only a hidden temporary file beside OUT,
never OUT itself (unless the run had already finished, and then OUT is the
complete file); SIGTERM and SIGINT leave nothing at all.
"""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import ROOT

#: 8 tensors of 24 MB each: about 200 MB per file.
TENSORS = 8
ELEMENTS = 6 * 1024 * 1024


def write_big(path: Path, seed: int | None) -> Path:
    gen = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for i in range(TENSORS):
            group = f.create_group(f"layers/dense_{i}" if i else "layers/dense")
            var_group = group.create_group("vars")
            var_group.attrs["name"] = f"block{i}"
            data = gen.standard_normal(ELEMENTS, dtype=np.float32) if seed is not None else np.zeros(ELEMENTS, "f4")
            var_group.create_dataset("0", data=data.reshape(2048, -1))
    return path


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    source = write_big(folder / "source.weights.h5", seed=0)
    target = write_big(folder / "target.weights.h5", seed=None)
    reference = folder / "reference.weights.h5"
    start = time.perf_counter()
    done = subprocess.run(argv(source, target, reference), capture_output=True, text=True, cwd=ROOT, timeout=300)
    duration = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    return folder, source, target, sha(reference), duration, {p.name: sha(p) for p in (source, target)}


def argv(source, target, out):
    return [sys.executable, "-m", "archdiff", "transfer", str(source), str(target), "-o", str(out)]


def run_and_signal(big, tmp_path, sig, delay):
    folder, source, target, reference, duration, _ = big
    out = tmp_path / "out.weights.h5"
    proc = subprocess.Popen(argv(source, target, out), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(sig)
    proc.wait(timeout=300)
    return proc.returncode, out


def check_inputs(big):
    folder, source, target, _, _, hashes = big
    assert {p.name: sha(p) for p in (source, target)} == hashes


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_out(big, tmp_path):
    duration = big[4]
    rnd = random.Random(4)
    for attempt in range(6):
        folder = tmp_path / f"run{attempt}"
        folder.mkdir()
        code, out = run_and_signal(big, folder, signal.SIGKILL, rnd.uniform(0.05, duration * 0.95))
        if out.exists():
            # Killed after the rename: OUT is only ever the complete, verified file.
            assert sha(out) == big[3]
            out.unlink()
        left = [p.name for p in folder.iterdir()]
        assert all(name.startswith(".out.weights.h5.") for name in left), left
    check_inputs(big)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_remove_the_temporary_file(big, tmp_path, sig):
    duration = big[4]
    rnd = random.Random(int(sig))
    for attempt in range(3):
        folder = tmp_path / f"run{attempt}"
        folder.mkdir()
        # Past the imports, while the data moves.
        delay = rnd.uniform(duration * 0.4, duration * 0.9)
        code, out = run_and_signal(big, folder, sig, delay)
        if out.exists():
            # The signal came after the rename: the run had finished, OUT is complete.
            assert sha(out) == big[3]
            out.unlink()
        else:
            assert code != 0
        assert list(folder.iterdir()) == [], (code, delay, duration)
    check_inputs(big)


def test_the_complete_run_verifies_and_matches_the_source(big):
    folder, source, _, _, _, _ = big
    with h5py.File(source) as a, h5py.File(folder / "reference.weights.h5") as b:
        for i in range(TENSORS):
            key = f"layers/dense_{i}/vars/0" if i else "layers/dense/vars/0"
            assert np.array_equal(a[key][()], b[key][()])
    assert not [p for p in os.listdir(folder) if p.startswith(".")]
