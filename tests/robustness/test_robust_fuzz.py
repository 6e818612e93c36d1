"""Property-based fuzzing: mutated files and configs raise archdiff's own errors, or nothing.

Three properties, each over real inputs from ``fixtures/``:

* a real file with its bytes mutated (bits flipped, bytes overwritten, cut,
  spliced, runs inserted) either loads or raises an ArchdiffError; when it
  loads, diffing it against a good model (both ways), planning a transfer with
  it (as source and as target), its layer table, summary and canonical text do
  the same. These run in a worker process (fuzz_worker.py) that is timed and
  replaced when libhdf5 loops forever or crashes in C on corrupt metadata, so
  that the run goes on; a hang, a crash in C or a Python exception other than
  ArchdiffError fails (the file is kept for a look);
* a real config with its structure mutated (keys dropped, values replaced
  with other JSON values, layers renamed, duplicated or reordered, inbound
  references pointed elsewhere) does the same through ``load``;
* transfer planning between mutated architectures (renamed layers, changed
  weight shapes and dtypes, dropped weights, random ``--map`` rules) raises
  only ArchdiffError.

Examples are derandomized (the same inputs every run, so CI is stable);
``ARCHDIFF_FUZZ=explore`` draws new ones and ten times as many. A watchdog
(faulthandler) ends the run with a traceback if an in-process example hangs
inside a C library, where no Python timeout can reach.
"""
from __future__ import annotations

import copy
import faulthandler
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import harness
import pytest
from fuzz_worker import exercise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdiff
from archdiff.errors import ArchdiffError

FIXTURES = harness.FIXTURES
EXPLORE = os.environ.get("ARCHDIFF_FUZZ") == "explore"


def _settings(n: int):
    return settings(max_examples=n * (10 if EXPLORE else 1), derandomize=not EXPLORE, database=None,
                    deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)


#: What each property ran, for the closing count.
COUNTS: dict[str, int] = {}
#: Mutated files on which libhdf5 hung (kept for a look; see test_robust_known_bugs.py).
HANGS = Path(tempfile.mkdtemp(prefix="archdiff-fuzz-hangs-"))


#: Seconds one example may take before the watchdog ends the process with every thread's stack: a C library
#: looping with the GIL held, where no Python timeout reaches. Per example, not per test: a test of 2,000
#: examples takes minutes, more on a loaded machine, and a whole-test timer killed a CI worker that was only slow.
EXAMPLE_WATCHDOG_S = 120


def _expect_only_archdiff_errors(fn) -> str:
    faulthandler.dump_traceback_later(EXAMPLE_WATCHDOG_S, exit=True)
    try:
        return _outcome(fn)
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def in_process(monkeypatch):
    """Read configs in this process: what is fuzzed is the parser, and a contained read's cost depends on the
    process (a fresh interpreter per read where another test imported TensorFlow, a fork elsewhere)."""
    monkeypatch.setenv("ARCHDIFF_CONTAIN", "0")


@pytest.fixture(scope="module")
def good():
    return {
        "model": archdiff.load(harness.GOOD_MODEL),
        "k2": archdiff.load(FIXTURES / "keras2" / "functional.h5"),
        "k3": archdiff.load(FIXTURES / "keras3" / "functional.keras"),
        "weights": archdiff.load(harness.GOOD_TARGET),
    }


# -- 1. mutated bytes of real files ------------------------------------------------------
FILES = [
    "keras3/sequential.keras", "keras3/functional.keras", "keras2/functional.keras",
    "keras3/sequential.h5", "keras2/functional.h5", "keras2/sequential_weights.h5",
    "keras3/sequential.weights.h5", "keras3/nested.weights.h5", "keras3/sequential.k213.weights.h5",
    "keras3/functional.json", "keras2/functional.json", "keras3/nested.config.json",
    "keras2/sequential.yaml", "keras2/nested.pyyaml.yaml",
]
_CONTENT = {name: (FIXTURES / name).read_bytes() for name in FILES}

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 30)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("splice"), st.integers(0, 1 << 30), st.integers(0, 1 << 30), st.integers(1, 512)),
    st.tuples(st.just("fill"), st.integers(0, 1 << 30), st.integers(1, 64),
              st.sampled_from([0x00, 0xFF, 0x20, 0x7B, 0x5B])),
)


def mutate_bytes(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for op in ops:
        if not out:
            break
        at = op[1] % len(out)
        if op[0] == "flip":
            out[at] ^= 1 << op[2]
        elif op[0] == "set":
            out[at:at + len(op[2])] = op[2]
        elif op[0] == "cut":
            del out[at:]
        elif op[0] == "insert":
            out[at:at] = op[2]
        elif op[0] == "splice":
            src = op[2] % len(out)
            out[at:at + op[3]] = out[src:src + op[3]]
        elif op[0] == "fill":
            out[at:at + op[2]] = bytes([op[3]]) * op[2]
    return bytes(out)


def _suffix(name: str) -> str:
    base = os.path.basename(name)
    return base[base.index("."):]


def _outcome(fn) -> str:
    try:
        fn()
    except ArchdiffError as exc:
        return type(exc).__name__
    except Exception as exc:
        bug = harness.known_bug(exc)
        if bug is None:
            raise
        return f"known-bug {bug}"
    return "ok"


class Worker:
    """tests/robustness/fuzz_worker.py: loads files out of this process, each within ``timeout`` seconds."""

    def __init__(self, timeout: float = 30.0):  # a hang guard: a mutated file of a few KB loads in milliseconds
        self.timeout = timeout
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fuzz_worker.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, "PYTHONPATH": str(harness.ROOT)},
                                     preexec_fn=harness.limit_memory)
        assert self._reply(120) == {"ready": True}

    def _reply(self, timeout: float):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def load(self, path: Path) -> str:
        """The outcome; ``hang`` (killed after the timeout) or ``died: <status>`` (a crash in C code)."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
        self.proc.stdin.flush()
        reply = self._reply(self.timeout)
        if reply is None:
            status = self.proc.poll()
            self.stop()
            return "hang" if status is None else f"died: {status}"
        return reply["outcome"]

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.stop()


def mutate_member(data: bytes, member: str, ops) -> bytes:
    """A .keras with one member's bytes mutated and the zip rebuilt around it (so its CRC is right)."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == member:
                content = mutate_bytes(content, ops)
            dst.writestr(info, content)
    return out.getvalue()


@_settings(2500)
@given(name=st.sampled_from(FILES), ops=st.lists(mutation, min_size=1, max_size=6),
       inside=st.sampled_from([None, "config.json", "model.weights.h5", "metadata.json"]))
def test_mutated_files(name, ops, inside, tmp_path_factory, worker):
    folder = tmp_path_factory.mktemp("mut", numbered=True)
    path = folder / ("m" + _suffix(name))
    if inside and name.endswith(".keras"):
        path.write_bytes(mutate_member(_CONTENT[name], inside, ops))
    else:
        path.write_bytes(mutate_bytes(_CONTENT[name], ops))
    outcome = worker.load(path)
    kept = None
    if outcome == "hang" or outcome.startswith("died"):
        # libhdf5 looping or crashing in C on corrupt metadata: a failure, not a count (a user's archdiff would
        # hang or die the same way). The file is kept for a look.
        kept = HANGS / f"{len(list(HANGS.iterdir()))}-{outcome.replace(': ', '')}{_suffix(name)}"
        kept.write_bytes(path.read_bytes())
    key = f"files:{_suffix(name).lstrip('.')}{'/' + inside if inside and name.endswith('.keras') else ''}:" \
          f"{outcome.split(':')[0]}"
    COUNTS[key] = COUNTS.get(key, 0) + 1
    shutil.rmtree(folder, ignore_errors=True)
    where = f"{name} mutated by {ops} (inside {inside})"
    assert outcome != "hang", f"{where}: loading hung (killed after {worker.timeout} s); the file is {kept}"
    assert not outcome.startswith("died"), f"{where}: the loading process {outcome} (a crash in C); the file is {kept}"
    assert not outcome.startswith("crash"), f"{where}: {outcome}"


# -- 2. mutated configs ------------------------------------------------------------------------
CONFIGS = ["keras3/sequential.json", "keras3/functional.json", "keras3/nested.json", "keras2/functional.json",
           "keras2/nested.json", "keras3/resnet_small.config.json", "keras2/sequential.json"]
_DOCS = {name: json.loads((FIXTURES / name).read_text()) for name in CONFIGS}

json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 10 ** 6), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=12), st.sampled_from(["", ".", "..", "a/b", "dense", "InputLayer", "Functional",
                                                    "Sequential", "__keras_tensor__", "\x00", "\U0001f600"])),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children,
                                                                               max_size=4)),
    max_leaves=12,
)

edit = st.one_of(
    st.tuples(st.just("replace"), st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=8), json_value),
    st.tuples(st.just("delete"), st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=8)),
    st.tuples(st.just("duplicate"), st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=6)),
    st.tuples(st.just("shuffle"), st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=6), st.integers(0, 99)),
    st.tuples(st.just("rename"), st.integers(0, 10 ** 6), st.sampled_from(["dense_in", "base", "x", "a/b", ".."])),
    st.tuples(st.just("reroute"), st.integers(0, 10 ** 6), st.integers(0, 10 ** 6), st.integers(-1, 3)),
)


def _walk(doc, path):
    """Follow child indices (modulo each container's size) as far as they go: (container, key) pairs."""
    steps = []
    node = doc
    for i in path:
        if isinstance(node, dict) and node:
            key = list(node)[i % len(node)]
        elif isinstance(node, list) and node:
            key = i % len(node)
        else:
            break
        steps.append((node, key))
        node = node[key]
    return steps


def _layers(doc):
    found = []

    def walk(obj):
        if isinstance(obj, dict):
            if isinstance(obj.get("layers"), list):
                found.extend(layer for layer in obj["layers"] if isinstance(layer, dict))
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(doc)
    return found


def mutate_doc(doc, edits):
    doc = copy.deepcopy(doc)
    for e in edits:
        if e[0] in ("replace", "delete", "duplicate", "shuffle"):
            steps = _walk(doc, e[1])
            if not steps:
                continue
            parent, key = steps[-1]
            if e[0] == "replace":
                parent[key] = copy.deepcopy(e[2])
            elif e[0] == "delete":
                del parent[key]
            elif e[0] == "duplicate" and isinstance(parent, list):
                parent.insert(key, copy.deepcopy(parent[key]))
            elif e[0] == "shuffle" and isinstance(parent[key], list):
                random.Random(e[2]).shuffle(parent[key])
        elif e[0] == "rename":
            layers = _layers(doc)
            if layers:
                layer = layers[e[1] % len(layers)]
                layer["name"] = e[2]
                if isinstance(layer.get("config"), dict):
                    layer["config"]["name"] = e[2]
        elif e[0] == "reroute":
            layers = _layers(doc)
            if len(layers) > 1:
                consumer = layers[e[1] % len(layers)]
                producer = layers[e[2] % len(layers)]
                pname = producer.get("name", producer.get("config", {}).get("name"))
                consumer["inbound_nodes"] = [[[pname, max(e[3], 0), 0, {}]]] if e[3] >= 0 else "nonsense"
    return doc


@_settings(2000)
@given(name=st.sampled_from(CONFIGS), edits=st.lists(edit, min_size=1, max_size=5))
def test_mutated_configs(name, edits, tmp_path_factory, good, in_process):
    doc = mutate_doc(_DOCS[name], edits)
    folder = tmp_path_factory.mktemp("cfg", numbered=True)
    path = folder / "m.json"
    path.write_text(json.dumps(doc))

    def run():
        arch = archdiff.load(path)
        exercise(arch, good)

    outcome = _expect_only_archdiff_errors(run)
    COUNTS[f"configs:{outcome}"] = COUNTS.get(f"configs:{outcome}", 0) + 1
    shutil.rmtree(folder, ignore_errors=True)


# -- 3. transfer planning between mutated architectures ------------------------------------------
WEIGHTED = ["keras3/functional.keras", "keras2/functional.h5", "keras3/sequential.weights.h5",
            "keras2/sequential_weights.h5", "keras3/nested.keras", "keras2/nested_weights.h5",
            "keras3/functional.k213.weights.h5"]


@pytest.fixture(scope="module")
def weighted():
    return {name: archdiff.load(FIXTURES / name) for name in WEIGHTED}


arch_edit = st.one_of(
    # Not "base/conv1" beside a nested "base": test_robust_known_bugs.py holds that one until transfer.py is fixed.
    st.tuples(st.just("rename"), st.integers(0, 999), st.sampled_from(["", ".", "dense", "x" * 300, "conv1",
                                                                       "head_dense", "predictions"])),
    st.tuples(st.just("shape"), st.integers(0, 999), st.integers(0, 9),
              st.lists(st.integers(-1, 1 << 40), max_size=4)),
    st.tuples(st.just("dtype"), st.integers(0, 999), st.integers(0, 9),
              st.sampled_from(["float16", "int8", "object", "|S4", "bool", "complex64", "nonsense", ""])),
    st.tuples(st.just("drop"), st.integers(0, 999)),
    st.tuples(st.just("dup"), st.integers(0, 999)),
    st.tuples(st.just("location"), st.integers(0, 999), st.integers(0, 9),
              st.sampled_from([None, "", "/", "../x", "/layers/dense/vars/0", "\x00"])),
)
#: OLD is a source layer (by index) or a fixed text; NEW a target layer (by index) or a fixed text.
map_rule = st.tuples(
    st.one_of(st.integers(0, 999), st.sampled_from(["dense", "base", "a/b", "", "re:.*", "re:(", "re:(.*)_(\\d+)"])),
    st.one_of(st.integers(0, 999), st.sampled_from(["dense_1", "head", "", "x/y", "\\1", "\\9", "\\2_\\1"])),
)


def mutate_arch(arch, edits):
    """Edits that keep what ``load`` guarantees (one layer per path), and break everything else."""
    layers = list(arch.layers)
    for n, e in enumerate(edits):
        if not layers:
            break
        i = e[1] % len(layers)
        layer = layers[i]
        paths = {x.path for x in layers}
        if e[0] == "rename":
            path = f"{layer.parent}/{e[2]}" if layer.parent else e[2]
            if path not in paths and not any(x.parent == layer.path for x in layers):
                layers[i] = replace(layer, name=e[2], path=path)
        elif e[0] in ("shape", "dtype", "location") and layer.weights:
            weights = list(layer.weights)
            j = e[2] % len(weights)
            value = tuple(e[3]) if e[0] == "shape" else e[3]
            weights[j] = replace(weights[j], **{e[0]: value})
            layers[i] = replace(layer, weights=tuple(weights))
        elif e[0] == "drop" and not any(x.parent == layer.path for x in layers):
            del layers[i]
        elif e[0] == "dup" and not layer.is_model:
            name = f"{layer.name}_copy{n}"
            path = f"{layer.parent}/{name}" if layer.parent else name
            if path not in paths:
                layers.insert(i + 1, replace(layer, name=name, path=path))
    return replace(arch, layers=tuple(layers))


@_settings(1000)
@given(source=st.sampled_from(WEIGHTED), target=st.sampled_from(WEIGHTED),
       source_edits=st.lists(arch_edit, max_size=4), target_edits=st.lists(arch_edit, max_size=4),
       rules=st.lists(map_rule, max_size=3), match=st.sampled_from(["name", "auto"]),
       skip=st.booleans(), cast=st.booleans())
def test_transfer_planning(source, target, source_edits, target_edits, rules, match, skip, cast, weighted):
    from archdiff.transfer import TransferOptions, parse_map_rule, plan_transfer

    def run():
        src, tgt = mutate_arch(weighted[source], source_edits), mutate_arch(weighted[target], target_edits)
        maps = []
        for old, new in rules:
            if isinstance(old, int):
                old = src.layers[old % len(src.layers)].path if src.layers else "x"
            if isinstance(new, int):
                new = tgt.layers[new % len(tgt.layers)].path if tgt.layers else "y"
            try:  # a bad rule is the user's error, reported as such; plan with the good ones
                maps.append(parse_map_rule(f"{old}={new}"))
            except ArchdiffError:
                pass
        maps = tuple(maps)
        options = TransferOptions(maps=maps, match=match, skip_mismatch=skip, allow_cast=cast)
        plan_transfer(src, tgt, options)

    outcome = _expect_only_archdiff_errors(run)
    COUNTS[f"transfer:{outcome}"] = COUNTS.get(f"transfer:{outcome}", 0) + 1


def test_zz_fuzz_count(capsys):
    """Runs last in this module: prints how many examples each property ran (for the closing note)."""
    if not COUNTS:
        pytest.skip("the properties did not run in this session")
    total = sum(COUNTS.values())
    with capsys.disabled():
        print(f"\nfuzz examples: {total} " + json.dumps(dict(sorted(COUNTS.items()))))
        hangs = list(HANGS.iterdir())
        if hangs:
            print(f"loading hung or crashed on {len(hangs)} mutated file(s) (each failed), kept in {HANGS}")
    assert total >= 5000 or EXPLORE
