"""Nothing is lost: every command that writes, killed (SIGKILL) at seeded random moments.

For export (every format), diff -o, transfer (into .weights.h5, .keras and
a Keras 2 .h5) and git-config --write-attributes: a reference run measures
how long the command takes, then runs are killed at random points across
that time, half of them while its temporary output file exists. After
each kill the target path must hold nothing, or a file identical in content
to the reference (never a partial one); the only other thing allowed beside
it is archdiff's hidden temporary file (``.OUT.*``), which a SIGKILL cannot
clean up; and every input must be byte-identical. Two transfers racing to the
same OUT must both finish and leave one complete file.

The models are generated here (a few tens of MB each), so the writing lasts
long enough to be hit.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import harness
import pytest

#: Seeded: the same kill points every run.
SEED = 6
#: How many kill points each command gets; counted for the closing note.
POINTS = {"export": 3, "diff": 3, "transfer": 8, "git-config": 5}
KILLED: dict[str, int] = {}
MID_WRITE: dict[str, int] = {}

UNITS = 1024  # Dense(1024) layers: 4 MiB kernels
LAYERS = 6


def _dense_config(name: str, units: int, layers: int) -> dict:
    """A Keras 3 Sequential config of Dense layers, as model.to_json() writes it."""
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    entries = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                "config": {"batch_shape": [None, units], "dtype": "float32", "sparse": False, "ragged": False,
                           "name": "input_layer", "optional": False}}]
    for i in range(layers):
        entries.append({"module": "keras.layers", "class_name": "Dense", "registered_name": None,
                        "build_config": {"input_shape": [None, units]},
                        "config": {"name": f"block{i}", "trainable": True, "dtype": policy, "units": units,
                                   "activation": "relu", "use_bias": True, "kernel_initializer": None,
                                   "bias_initializer": None, "kernel_regularizer": None, "bias_regularizer": None,
                                   "kernel_constraint": None, "bias_constraint": None}})
    return {"module": "keras", "class_name": "Sequential", "config": {"name": name, "trainable": True,
                                                                      "dtype": policy, "layers": entries}}


def _keras3_weights(path: Path, seed: int | None) -> None:
    import h5py
    import numpy as np

    gen = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_group("vars").attrs["name"] = "big"
        for i in range(LAYERS):
            vars_ = f.create_group(f"layers/dense_{i}/vars" if i else "layers/dense/vars")
            vars_.attrs["name"] = f"block{i}"
            kernel = gen.standard_normal((UNITS, UNITS), dtype=np.float32) if seed is not None else np.zeros(
                (UNITS, UNITS), "f4")
            vars_.create_dataset("0", data=kernel)
            vars_.create_dataset("1", data=np.full(UNITS, 0.5 if seed is not None else 0.0, "f4"))


def _keras2_weights(path: Path, seed: int | None) -> None:
    import h5py
    import numpy as np

    gen = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([f"block{i}".encode() for i in range(LAYERS)])
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["backend"] = "tensorflow"
        for i in range(LAYERS):
            g = f.create_group(f"block{i}")
            g.attrs["weight_names"] = np.array([f"block{i}/kernel:0".encode(), f"block{i}/bias:0".encode()])
            kernel = gen.standard_normal((UNITS, UNITS), dtype=np.float32) if seed is not None else np.zeros(
                (UNITS, UNITS), "f4")
            g.create_dataset(f"block{i}/kernel:0", data=kernel)
            g.create_dataset(f"block{i}/bias:0", data=np.zeros(UNITS, "f4"))


def _keras_zip(path: Path, weights: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"}))
        zf.writestr("config.json", json.dumps(_dense_config("big", UNITS, LAYERS)))
        zf.write(weights, "model.weights.h5")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    _keras3_weights(folder / "source.weights.h5", seed=0)
    _keras3_weights(folder / "target.weights.h5", seed=None)
    _keras_zip(folder / "source.keras", folder / "source.weights.h5")
    _keras_zip(folder / "target.keras", folder / "target.weights.h5")
    _keras2_weights(folder / "source.h5", seed=1)
    _keras2_weights(folder / "target.h5", seed=None)
    return folder


def digest(path: Path) -> str:
    """What a file says, independent of incidental bytes: HDF5 datasets by name, zip members by name."""
    h = hashlib.sha256()
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        import io

        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                h.update(info.filename.encode())
                content = zf.read(info.filename)
                if info.filename.endswith(".h5"):
                    tmp = path.parent / f".digest-{os.getpid()}.h5"
                    tmp.write_bytes(content)
                    h.update(digest(tmp).encode())
                    tmp.unlink()
                else:
                    h.update(content)
        return h.hexdigest()
    if data[:8] == b"\x89HDF\r\n\x1a\n":
        import h5py

        with h5py.File(path, "r") as f:
            def visit(name, obj):
                h.update(name.encode())
                if isinstance(obj, h5py.Dataset):
                    h.update(obj[()].tobytes())
            f.visititems(visit)
        return h.hexdigest()
    return hashlib.sha256(data).hexdigest()


def _argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "archdiff", *args]


def _run_killed(args, folder: Path, out: Path, at: float, env: dict, *, writing: bool) -> bool:
    """Start, SIGKILL ``at`` seconds later (with ``writing``: ``at`` seconds after the temporary file
    appears beside OUT); return whether a temporary file was there at the kill."""
    proc = subprocess.Popen(_argv(args), cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=harness.limit_memory)

    def temporary() -> bool:
        return any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir())

    if writing:
        deadline = time.monotonic() + 60
        while not temporary() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
    time.sleep(at)
    mid_write = temporary()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return mid_write


def kill_and_check(label: str, args: list[str], out: Path, inputs: list[Path], tmp_path: Path, canary_env,
                   points: int, *, cwd: Path | None = None, prepare=None):
    """``prepare`` puts OUT's previous content in place before each run (a file the command updates):
    after a kill, OUT is then that previous content or the new one, whole."""
    env = harness.child_env(canary_env)
    before = {p: harness.sha256(p) for p in inputs}
    # The reference: an uninterrupted run.
    ref_dir = out.parent
    previous = None
    if prepare:
        prepare()
        previous = out.read_bytes()
    already = {p.name for p in ref_dir.iterdir()} - {out.name}
    start = time.perf_counter()
    done = subprocess.run(_argv(args), cwd=cwd or tmp_path, env=env, capture_output=True, timeout=300)
    duration = time.perf_counter() - start
    assert done.returncode in (0, 1), done.stderr.decode()[-2000:]
    reference = digest(out)
    reference_bytes = out.read_bytes()
    rnd = random.Random(f"{SEED}:{label}")
    for i in range(points):
        for p in list(ref_dir.iterdir()):
            if p.name.startswith(f".{out.name}.") or p == out:
                p.unlink()
        if prepare:
            prepare()
        # Even points: any moment of the run; odd points: a moment while the output is being written.
        writing = bool(i % 2)
        if not writing:
            at = rnd.uniform(0.05, 1.0) * duration
        elif label.startswith("transfer"):
            at = rnd.uniform(0.0, 0.15) * duration
        else:
            at = 0.0  # a text output is written in milliseconds: kill as soon as its temporary file is seen
        mid_write = _run_killed(args, cwd or tmp_path, out, at, env, writing=writing)
        KILLED[label] = KILLED.get(label, 0) + 1
        MID_WRITE[label] = MID_WRITE.get(label, 0) + int(mid_write)
        if previous is not None and out.read_bytes() == previous:
            pass  # killed before the new content was renamed into place
        elif out.exists():
            # Only ever the whole file: renamed into place after it was written (and, for transfer, verified).
            assert digest(out) == reference, f"{label}: killed at {at:.2f}s, OUT differs from the reference"
            if not label.startswith("transfer"):
                assert out.read_bytes() == reference_bytes
        left = [p.name for p in ref_dir.iterdir() if p != out and p.name not in already]
        assert all(name.startswith(f".{out.name}.") for name in left), (label, at, left)
        assert {p: harness.sha256(p) for p in inputs} == before, f"{label}: an input changed"
    assert not canary_env["canary"].exists()


EXPORTS = list(harness.EXPORT_FORMATS.items())


@pytest.mark.parametrize("fmt, suffix", EXPORTS, ids=[f for f, _ in EXPORTS])
def test_kill_export(fmt, suffix, tmp_path, canary_env):
    model = harness.FIXTURES / "keras3" / "resnet_small.keras"
    out = tmp_path / "out" / f"model{suffix}"
    out.parent.mkdir()
    kill_and_check(f"export:{fmt}", ["export", str(model), "--format", fmt, "-o", str(out)], out, [model],
                   tmp_path, canary_env, POINTS["export"])


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_kill_diff_output(fmt, tmp_path, canary_env):
    a = harness.FIXTURES / "keras3" / "resnet_small.keras"
    b = harness.FIXTURES / "keras2" / "resnet_small.h5"
    out = tmp_path / "out" / f"report.{fmt}"
    out.parent.mkdir()
    kill_and_check(f"diff:{fmt}", ["diff", str(a), str(b), "--format", fmt, "-o", str(out)], out, [a, b],
                   tmp_path, canary_env, POINTS["diff"])


@pytest.mark.parametrize("kind", ["weights.h5", "keras", "h5"])
def test_kill_transfer(kind, models, tmp_path, canary_env):
    source, target = models / f"source.{kind}", models / f"target.{kind}"
    out = tmp_path / "out" / f"new.{kind}"
    out.parent.mkdir()
    kill_and_check(f"transfer:{kind}", ["transfer", str(source), str(target), "-o", str(out), "--no-progress"], out,
                   [source, target], tmp_path, canary_env, POINTS["transfer"])


@pytest.mark.git
def test_kill_git_config_write_attributes(tmp_path, canary_env):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    attributes = repo / ".gitattributes"
    original = "*.png binary\n"

    def prepare():
        attributes.write_text(original)

    kill_and_check("git-config", ["git-config", "--write-attributes"], attributes, [], tmp_path, canary_env,
                   POINTS["git-config"], cwd=repo, prepare=prepare)


def test_two_transfers_to_one_out(models, tmp_path, canary_env):
    """Both finish (each renames a complete file into place); OUT is one complete file, nothing else is left."""
    env = harness.child_env(canary_env)
    source, target = models / "source.weights.h5", models / "target.weights.h5"
    out = tmp_path / "out" / "new.weights.h5"
    out.parent.mkdir()
    reference = None
    for _ in range(3):
        procs = [subprocess.Popen(_argv(["transfer", str(source), str(target), "-o", str(out), "--no-progress"]),
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        results = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [r[1].decode()[-800:] for r in results]
        assert [p.name for p in out.parent.iterdir()] == [out.name]
        reference = reference or digest(out)
        assert digest(out) == reference
        out.unlink()


def test_zz_kill_count(capsys):
    if not KILLED:
        pytest.skip("no kill test ran in this session")
    with capsys.disabled():
        print(f"\nkill points: {sum(KILLED.values())} ({sum(MID_WRITE.values())} while a temporary file was being "
              f"written) {json.dumps(KILLED)} mid-write {json.dumps(MID_WRITE)}")
