"""Compare archdiff's answers on one built zoo file with Keras' recorded ones (``truth.json``).

Each ``check_*`` returns a list of disagreements (empty: archdiff agrees with
Keras), so a failing test names all of them at once. archdiff runs in this
process: its CLI through ``archdiff.cli.main.main`` (what a user sees from
``archdiff layers --format json`` / ``summary --format json``) and its API.
Independent of archdiff: the expected values come from Keras (``truth``) and
the stored bytes from h5py.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MODEL_CLASSES = ("Functional", "Sequential", "Model")
#: Formats whose file holds no topology: Keras 3 ``.weights.h5``, Keras 2 ``save_weights`` ``.h5``.
WEIGHTS_ONLY = ("weights", "weights_h5")
#: Formats whose file holds weights (a transfer can read and write them).
WITH_WEIGHTS = ("keras", "h5", "weights", "weights_h5")


def cli_json(*args) -> dict:
    """``archdiff ARGS --format json`` in this process; its parsed output (exit 0 required)."""
    from archdiff.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args] + ["--format", "json"])
    assert code == 0, f"archdiff {' '.join(map(str, args))} exited {code}: {err.getvalue().strip()}"
    return json.loads(out.getvalue())


@contextlib.contextmanager
def weights_h5(path: Path):
    """The HDF5 file holding ``path``'s weights (a ``.keras`` zip's ``model.weights.h5``), open read-only."""
    import h5py

    if zipfile.is_zipfile(path) and path.suffix == ".keras":
        with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as member:
            with h5py.File(io.BytesIO(member.read()), "r") as f:
                yield f
    else:
        with h5py.File(path, "r") as f:
            yield f


def digest(array) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def check_layers(truth: dict, path: Path, fmt: str) -> list[str]:
    """``archdiff layers --format json`` (its rows, from the API): index, name, path, depth, class as
    ``enumerate(model.layers)``, and every weight's shape and dtype. Weights-only files: the index and class
    may be unknown, never wrong."""
    import archdiff

    table = archdiff.layer_rows(load(path))  # what `archdiff layers --format json` prints as "layers"
    keras_rows = {row[2]: row for row in truth["rows"]}
    problems = []
    got_paths = [r["path"] for r in table]
    if fmt in WEIGHTS_ONLY:
        # The top level is all there; a nested model's layers may be unknown (a Keras 2 weights file keeps
        # only the nested variables), never made up.
        top = {p for p, row in keras_rows.items() if row[3] == 0}
        listed = {r["path"] for r in table if r["depth"] == 0}
        if listed != top or not set(got_paths) <= set(keras_rows):
            problems.append(f"layer paths differ: missing {sorted(top - listed)[:8]}, "
                            f"extra {sorted(set(got_paths) - set(keras_rows))[:8]}")
    else:
        got = [(r["index"], r["name"], r["path"], r["depth"], r["class_name"]) for r in table]
        want = [tuple(row[:5]) for row in truth["rows"]]
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            problems.append(f"layer table differs from model.layers ({len(got)} rows, Keras {len(want)}); first at "
                            f"row {first}: archdiff {got[first] if first < len(got) else None}, "
                            f"Keras {want[first] if first < len(want) else None}")
    for r in table:
        row = keras_rows.get(r["path"])
        if row is None:
            continue
        index, _, _, _, cls, snake = row
        if fmt in WEIGHTS_ONLY:
            if r["index"] not in (None, index):
                problems.append(f"{r['path']}: index {r['index']}, Keras {index}")
            # Unknown ("?"), or the snake-case class a Keras 3 group key records ("?conv2d"), or the class.
            if r["class_name"] not in (cls, "?" + snake, "?"):
                problems.append(f"{r['path']}: class {r['class_name']}, Keras {cls}")
        if cls in MODEL_CLASSES and not (fmt in WEIGHTS_ONLY and r["weights"]):
            continue
        want_w = [(w["shape"], w["dtype"]) for w in keras_weights(truth, r["path"])]
        got_w = [(w["shape"], w["dtype"]) for w in r["weights"]]
        if cls in MODEL_CLASSES:  # a weights-only file's nested model holding its layers' variables
            got_w, want_w = sorted(got_w), sorted(want_w)
        if got_w != want_w:
            problems.append(f"{r['path']}: weights {got_w}, Keras {want_w}")
    return problems


def keras_weights(truth: dict, path: str) -> list[dict]:
    """Keras' variables of the layer at ``path``; for a nested model, those of all the layers inside it."""
    if path in truth["weights"]:
        return truth["weights"][path]
    return [w for p, ws in truth["weights"].items() if p.startswith(path + "/") for w in ws]


def check_operations(truth: dict, path: Path) -> list[str]:
    """``layers --operations``: the Keras 3 operations are listed, with no index; Keras' ``model.operations``
    minus ``model.layers`` has the same classes."""
    table = cli_json("layers", "--operations", path)["layers"]
    ops = [r for r in table if r["is_operation"]]
    problems = [f"operation {r['path']} has index {r['index']}" for r in ops if r["index"] is not None]
    if sorted({r["class_name"] for r in ops}) != truth["operations"]:
        problems.append(f"operation classes {sorted({r['class_name'] for r in ops})}, Keras {truth['operations']}")
    return problems


def check_totals(truth: dict, path: Path, fmt: str) -> list[str]:
    """``summary --format json`` (its data, from the API): total, trainable, non-trainable as Keras counts
    them; in a weights-only file the split may be unknown (null), never wrong."""
    import archdiff

    summary = archdiff.summary(load(path))  # what `archdiff summary --format json` prints
    got = [summary["total_params"], summary["trainable_params"], summary["non_trainable_params"]]
    want = truth["totals"]
    if fmt in WEIGHTS_ONLY:
        ok = got[0] == want[0] and all(g in (None, w) for g, w in zip(got[1:], want[1:]))
        at_least = summary.get("non_trainable_params_at_least")
        if at_least is not None and at_least > want[2]:
            return [f"at least {at_least} non-trainable, Keras counts {want[2]}"]
    else:
        ok = got == want
    return [] if ok else [f"params (total, trainable, non-trainable) {got}, Keras {want}"]


@functools.lru_cache(maxsize=6)
def load(path: Path):
    """archdiff's Architecture of ``path`` (immutable, so the checks of one file share it)."""
    import archdiff

    return archdiff.load(path)


def corner_digest(dataset) -> str:
    """The digest of a variable's corner ``[:2, :2, ...]`` (read with h5py, a few bytes): every zoo variable
    holds distinct random values (builder.seed_weights), so its corner says which variable it is."""
    return digest(dataset[tuple(slice(0, 2) for _ in dataset.shape)] if dataset.shape else dataset[()])


def check_mapping(truth: dict, path: Path) -> list[str]:
    """Every variable archdiff assigns to a layer is the one Keras saved for it: the values at its HDF5
    location (read with h5py) are those of that layer's variable in the live model. So are the values a
    diff compares (read by the diff's own store: ``archdiff.store.lite`` where it reads the file)."""
    from contextlib import ExitStack

    from archdiff.diff.values.compare import _open, has_stored_weights

    arch = load(path)
    problems = []
    with weights_h5(path) as f, ExitStack() as stack:
        store = _open(arch, stack) if has_stored_weights(arch) else None
        for layer in arch.layers:
            if layer.is_model or layer.is_operation:
                continue
            want = [w["corner"] for w in keras_weights(truth, layer.path)]
            specs = layer.weights or ()
            got = [corner_digest(f[spec.location]) if spec.location else None for spec in specs]
            diffed = [corner_digest(store.dataset(spec.location).read()) if spec.location and store else None
                      for spec in specs]
            if layer.path not in truth["weights"]:  # a weights-only file's nested model: its layers' variables
                got, diffed, want = sorted(map(str, got)), sorted(map(str, diffed)), sorted(want)
            if got != want:
                problems.append(f"{layer.path}: the file's variables {[s.location for s in specs]} "
                                f"are not Keras' variables of that layer ({len(got)} vs {len(want)})")
            elif store is not None and diffed != want:
                problems.append(f"{layer.path}: a diff reads other values than Keras saved ({type(store).__name__})")
    return problems


def datasets(f) -> dict[str, str]:
    """Every dataset of an open HDF5 file: path -> digest of its bytes."""
    import h5py

    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = digest(obj[()])
    f.visititems(visit)
    return out


def zeroed_copy(path: Path, dest: Path) -> Path:
    """A copy of ``path`` with every dataset overwritten by zeros: the same model, none of its weights."""
    import h5py

    if path.suffix == ".keras":
        with tempfile.TemporaryDirectory() as tmp:
            inner = Path(tmp) / "model.weights.h5"
            with zipfile.ZipFile(path) as z:
                inner.write_bytes(z.read("model.weights.h5"))
                others = {n: z.read(n) for n in z.namelist() if n != "model.weights.h5"}
            _zero(h5py, inner)
            with zipfile.ZipFile(dest, "w") as out:
                for name, data in others.items():
                    out.writestr(name, data)
                out.write(inner, "model.weights.h5")
    else:
        shutil.copyfile(path, dest)
        _zero(h5py, dest)
    return dest


def _zero(h5py, path: Path) -> None:
    with h5py.File(path, "r+") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.size:
                obj[...] = np.zeros(obj.shape, obj.dtype)
        f.visititems(visit)


def check_transfer(path: Path, work: Path) -> list[str]:
    """``transfer`` of a model into a zeroed copy of itself: OUT's every dataset is bitwise the source's."""
    from archdiff.transfer import transfer

    target = zeroed_copy(path, work / ("target" + "".join(path.suffixes)))
    out = work / ("out" + "".join(path.suffixes))
    try:
        transfer(path, target, out, progress=False)
        with weights_h5(path) as f:
            want = datasets(f)
        with weights_h5(out) as f:
            got = datasets(f)
        with weights_h5(target) as f:
            zero = datasets(f)
    finally:  # two copies of every zoo file would fill the disk (pytest keeps its temporary folders)
        target.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    problems = [f"{name}: not copied bitwise" for name in want if got.get(name) != want[name]]
    if set(got) != set(want):
        problems.append(f"OUT's datasets differ: {sorted(set(got) ^ set(want))[:8]}")
    if want and want == zero:
        problems.append("the zeroed target equals the source: the check proves nothing")
    return problems


def check_diff_identical(a: Path, b: Path) -> list[str]:
    """``diff`` of one model in two formats: identical."""
    from archdiff.diff import diff

    result = diff(load(a), load(b))
    return [] if result.identical else [f"{a.name} vs {b.name}: {result.classification}"]


def check_export_to_keras3(truth: dict, path: Path, work: Path) -> list[str]:
    """``archdiff export`` of a Keras 2 file writes a config that Keras 3's ``model_from_json`` loads with the
    same parameter count and the same layers, but for what Keras 3 changed and the export says: tf-keras'
    ``TFOpLambda`` become operations (not layers there) and '/' in a name becomes '_'."""
    import keras

    from archdiff.cli.main import main

    out = work / "export.json"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["export", str(path), "-o", str(out)])
    if code != 0:
        return [f"export exited {code}: {err.getvalue().strip()[-500:]}"]
    try:
        model = keras.models.model_from_json(out.read_text())
    except Exception as exc:  # noqa: BLE001 - any failure of Keras to load it is the finding
        return [f"Keras 3 cannot load the export: {type(exc).__name__}: {str(exc)[:300]}"]
    problems = []
    if model.count_params() != truth["totals"][0]:
        problems.append(f"Keras 3 counts {model.count_params()} parameters in the export, "
                        f"tf-keras {truth['totals'][0]}")
    want = [(row[1].replace("/", "_"), row[4]) for row in truth["rows"] if row[3] == 0 and row[4] != "TFOpLambda"]
    got = [(layer.name, type(layer).__name__) for layer in model.layers]
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        problems.append(f"Keras 3's layers of the export differ from tf-keras' ({len(got)} vs {len(want)}); first "
                        f"at {first}: {got[first] if first < len(got) else None} vs "
                        f"{want[first] if first < len(want) else None}")
    return problems
