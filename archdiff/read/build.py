"""``--build``: a constructor-config model (keras-hub's backbones and tasks) read from the model Keras builds.

A model whose ``get_config()`` holds constructor arguments
(``{"num_layers": 2, ...}``) and not layers records neither its layer order
nor its classes or connections: only building it tells them (see
:attr:`archdiff.model.Architecture.constructor`). With ``--build`` archdiff
lets Keras build it, and reads Keras' own answers:

- ``model.layers``: order, names, classes and modules, trainable flags, output shapes;
- the graph: Keras' own functional serialization of the built model (what
  ``Functional.get_config`` writes for a model built functionally), read by
  archdiff's config parser like any Functional config;
- every variable: its Keras path (``transformer_layer_0/self_attention_layer/query/kernel``,
  so a composite layer's sub-layers show in its variables' names), shape,
  dtype and trainable flag, and the dataset Keras' own saving code
  (``saving_lib._save_state``) writes it to
  (``layers/transformer_encoder/_self_attention_layer/query_dense/vars/0``):
  where the input holds weights, each variable is located in the file
  through that path, so value diffs and transfers read the right dataset.

Safety: no weights are loaded; Keras' safe mode stays on; the only modules
imported are Keras, keras-hub and those the user names with ``--import``;
every ``module`` the config names must be one of those, or archdiff refuses
before anything is imported. The build runs in a fresh interpreter with a time
limit (``ARCHDIFF_BUILD_TIMEOUT``, seconds, default 600); a constructor that
raises is one error line.

Cache: what a build learned is kept as JSON in
``$ARCHDIFF_CACHE_DIR`` (default ``$XDG_CACHE_HOME/archdiff``, else
``~/.cache/archdiff``), under ``builds/<sha256>.json``, keyed by the
config (canonical JSON), the Keras and keras-hub versions installed and the
``--import`` modules; the next ``--build`` of the same architecture reads it
and imports no Keras. The folder is safe to delete. ``ARCHDIFF_CACHE_DIR=off``
turns the cache off.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from typing import Any, Iterable, Mapping

from archdiff.errors import InputError, MissingDependencyError, UnsafeInputError, UsageError
from archdiff.model import Architecture, Layer, WeightSpec

#: The packages whose modules a config may name without ``--import``.
ALLOWED_PACKAGES = ("keras", "keras_hub", "builtins")
#: What a record holds (3: nested models' layers; 4: shared variables once); another format's entry is rebuilt.
RECORD_FORMAT = 4
DEFAULT_TIMEOUT_S = 600.0
_MAX_CACHE_BYTES = 256 * 1024 * 1024


# -- what may be imported -----------------------------------------------------------------
def check_imports(names: Iterable[str]) -> tuple[str, ...]:
    out = []
    for name in names:
        if not name or not all(part.isidentifier() for part in name.split(".")):
            raise UsageError(f"--import '{name}' is not a module name", hint="for example --import my_pkg.layers")
        out.append(name)
    return tuple(sorted(set(out)))


def _allowed(module: str, imports: tuple[str, ...]) -> bool:
    top = module.split(".")[0]
    return top in ALLOWED_PACKAGES or any(module == m or module.startswith(m + ".") for m in imports)


def named_modules(obj: Any, depth: int = 0) -> set[str]:
    """Every ``module`` a serialized Keras object names (the modules Keras would import to build it)."""
    found: set[str] = set()
    if depth > 200:
        return found
    if isinstance(obj, dict):
        module = obj.get("module")
        if isinstance(module, str) and "class_name" in obj:
            found.add(module)
        for value in obj.values():
            found |= named_modules(value, depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            found |= named_modules(value, depth + 1)
    return found


def refuse_unlisted_modules(config: Mapping[str, Any], imports: tuple[str, ...], *, where: str) -> None:
    for module in sorted(named_modules(config)):
        if not _allowed(module, imports):
            from archdiff.safetext import visible

            raise UnsafeInputError(f"the config names the module '{visible(module)[:120]}', which --build does "
                                   "not import on a file's word", path=where,
                                   hint=f"if you trust it, add --import {visible(module.split('.')[0])[:60]}")


# -- the cache ------------------------------------------------------------------------------
def cache_dir() -> str | None:
    """The folder builds are cached in, or None when the cache is off."""
    configured = os.environ.get("ARCHDIFF_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "none") else configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "archdiff")


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def build_key(config: Mapping[str, Any], imports: tuple[str, ...]) -> str:
    """The cache key: the config as canonical JSON, the Keras and keras-hub installed, the --import modules."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    salt = json.dumps([RECORD_FORMAT, _version("keras"), _version("keras-hub"), list(imports)])
    return hashlib.sha256((salt + "\n" + text).encode("utf-8")).hexdigest()


def _cache_path(key: str) -> str | None:
    folder = cache_dir()
    return None if folder is None else os.path.join(folder, "builds", key + ".json")


def _cached(key: str) -> dict | None:
    path = _cache_path(key)
    if path is None or not os.path.isfile(path):
        return None
    try:
        if os.path.getsize(path) > _MAX_CACHE_BYTES:
            return None
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return None  # a damaged entry is rebuilt (and replaced)
    return record if _well_formed(record, key) else None


def _store(key: str, record: dict) -> str | None:
    path = _cache_path(key)
    if path is None:
        return None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".json", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return None  # an unwritable cache costs the next run a build, nothing else
    return path


def _well_formed(record: Any, key: str) -> bool:
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or record.get("key") != key:
        return False
    layers = record.get("layers")

    def entries_ok(items: Any) -> bool:
        return isinstance(items, list) and all(
            isinstance(x, dict) and isinstance(x.get("name"), str) and isinstance(x.get("weights"), list)
            and (x.get("layers") is None or entries_ok(x["layers"])) for x in items)

    if not isinstance(layers, list) or not entries_ok(layers):
        return False
    for layer in [*layers, *(inner for x in layers for inner in x.get("layers") or ())]:
        for w in layer["weights"]:
            if not (isinstance(w, dict) and isinstance(w.get("name"), str) and isinstance(w.get("shape"), list)
                    and all(type(d) is int and d >= 0 for d in w["shape"])):
                return False
    return isinstance(record.get("graph"), (dict, type(None)))


# -- both sides alike -----------------------------------------------------------------------
def alike(a: Architecture, b: Architecture, reload) -> tuple[Architecture, Architecture]:
    """``a`` and ``b`` both built or both not: a built model names its variables as Keras does
    (``self_attention_layer/query/kernel``), a weights-only file by their paths in the file
    (``_self_attention_layer/query_dense/0``), and the two cannot be paired variable by variable. When only one
    side could be built (the other holds no config), it is read again without building (``reload(arch)``), and
    a note says so."""
    if (a.built is None) == (b.built is None):
        return a, b
    unbuilt = a if a.built is None else b
    if unbuilt.has_topology and unbuilt.constructor is None:
        return a, b  # a config that lists its layers: its variables carry Keras' names too
    note = ("--build: the other input holds no config to build (a weights-only file), so this one is read without "
            "building too: their variables are paired under the file's names, as Keras' load_weights pairs them")

    def light(arch: Architecture) -> Architecture:
        if arch.built is None:
            return arch
        again = reload(arch)
        return replace(again, notes=again.notes + (note,))

    return light(a), light(b)


# -- building -------------------------------------------------------------------------------
def build(arch: Architecture, *, imports: Iterable[str] = ()) -> Architecture:
    """``arch`` (a constructor-config model, read without Keras) as the model Keras builds from its config.

    An Architecture whose config lists its layers is returned unchanged.
    """
    if arch.constructor is None or not isinstance(arch.config, Mapping):
        return arch
    imports = check_imports(imports)
    where = arch.source.shown
    config = dict(arch.config)
    refuse_unlisted_modules(config, imports, where=where)
    key = build_key(config, imports)
    record = _cached(key)
    cached = record is not None
    if record is None:
        record = _run_build(config, imports, where=where)
        record["key"] = key
        stored = _store(key, record)
    else:
        stored = _cache_path(key)
    return from_record(arch, record, cached=cached, cache_path=stored)


def _run_build(config: dict, imports: tuple[str, ...], *, where: str) -> dict:
    """Build in a fresh interpreter (Keras, its backend and keras-hub are imported there, not here)."""
    try:
        timeout = max(1.0, float(os.environ.get("ARCHDIFF_BUILD_TIMEOUT", DEFAULT_TIMEOUT_S)))
    except ValueError:
        timeout = DEFAULT_TIMEOUT_S
    with tempfile.TemporaryDirectory(prefix="archdiff-build-") as tmp:
        answer = os.path.join(tmp, "answer.json")
        request = json.dumps({"config": config, "imports": list(imports), "answer": answer})
        env = {**os.environ, "ARCHDIFF_CONTAIN": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
        try:
            proc = subprocess.run([sys.executable, "-c", "from archdiff.read.build import _child; _child()"],
                                  input=request.encode("utf-8"), capture_output=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise InputError(f"building the model did not finish within {timeout:.0f} s", path=where,
                             hint="raise ARCHDIFF_BUILD_TIMEOUT for a large model") from None
        try:
            with open(answer, encoding="utf-8") as fh:
                outcome = json.load(fh)
        except (OSError, ValueError):
            outcome = None
    if not isinstance(outcome, dict):
        how = (f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}")
        last = [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()][-1:]
        from archdiff.safetext import visible

        raise InputError(f"building the model stopped without an answer ({how}"
                         + (f": {visible(last[0])[:200]}" if last else "") + ")", path=where,
                         hint="a large model may need more memory than this machine has")
    if outcome.get("error"):
        kind = MissingDependencyError if outcome.get("missing") else InputError
        raise kind(str(outcome["error"]), path=where, hint=outcome.get("hint"))
    return outcome["record"]


def _child() -> None:
    """A fresh interpreter's entry: build the model named on stdin, write the record (or the error) as JSON."""
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    try:
        outcome: dict = {"record": _build_here(request["config"], tuple(request["imports"]))}
    except MissingDependencyError as exc:
        outcome = {"error": exc.message, "hint": exc.hint, "missing": True}
    except (InputError, UsageError) as exc:
        outcome = {"error": exc.message, "hint": exc.hint}
    with open(request["answer"], "w", encoding="utf-8") as fh:
        json.dump(outcome, fh)


def _build_here(config: dict, imports: tuple[str, ...]) -> dict:
    import importlib

    from archdiff.lazy import quiet_frameworks, require_keras, select_backend
    from archdiff.safetext import visible

    select_backend(None)
    keras = require_keras()
    module = str(config.get("module") or "")
    with quiet_frameworks():
        if module.split(".")[0] == "keras_hub":
            try:
                importlib.import_module("keras_hub")
            except ImportError as exc:
                raise MissingDependencyError(f"the model's class comes from keras-hub, which is not installed "
                                             f"({exc.name})", hint="pip install keras-hub") from None
        for name in imports:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - the user's module: one line
                raise InputError(f"--import {name} failed: {type(exc).__name__}: {visible(str(exc))[:300]}") from None
        try:
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        except Exception as exc:  # noqa: BLE001 - the constructor is the model's code: report, don't trace
            raise InputError(f"Keras could not build '{config.get('class_name')}' from its config: "
                             f"{type(exc).__name__}: {visible(str(exc))[:300]}",
                             hint="the constructor refused its arguments, or this keras-hub lacks the class: "
                                  "check the version, or name the module that defines it with --import") from None
    if not isinstance(model, keras.Model):
        raise InputError(f"the config built a {type(model).__name__}, not a Keras model")
    return record_of(model, keras)


def record_of(model, keras) -> dict:
    """What archdiff keeps of a built model: a JSON-able record (the cache entry)."""
    files = _variable_files(model)
    layers = []
    #: id(layer) -> its path where first listed: one layer object in two places (a causal LM's token
    #: embedding, in the task and in its backbone) carries its variables once, as count_params counts them.
    placed: dict[int, str] = {}
    for layer in model.layers:
        inner = _nested_layers(layer, keras)
        if inner is not None:
            # A nested model (a task's backbone): its layers, one level down, carry the variables, as Keras'
            # summary(expand_nested=True) shows them; the model's row carries none of its own.
            entry = _entry(layer, files, {}, "")
            entry["is_model"] = True
            entry["weights"] = []
            entry["layers"] = [_entry(x, files, placed, f"{layer.name}/") for x in inner]
        else:
            entry = _entry(layer, files, placed, "")
        layers.append(entry)
    hub = getattr(sys.modules.get("keras_hub"), "__version__", None)  # imported where it built the model
    graph, unserialized = _graph(model)
    return {"format": RECORD_FORMAT, "class_name": type(model).__name__, "module": type(model).__module__,
            "name": model.name, "keras_version": keras.__version__, "keras_hub_version": hub,
            "backend": keras.backend.backend(), "graph": graph, "unserialized": unserialized, "layers": layers,
            "total_params": int(model.count_params()),
            "trainable_params": int(sum(_size(w) for w in model.trainable_weights))}


def _size(var) -> int:
    n = 1
    for d in var.shape:
        n *= int(d)
    return n


def _output_shapes(layer) -> list | None:
    try:
        output = layer.output
    except Exception:  # noqa: BLE001 - a layer called more than once has no one output
        return None
    from archdiff.lazy import require_keras

    keras = require_keras()
    out = []
    for tensor in keras.tree.flatten(output):
        shape = getattr(tensor, "shape", None)
        if shape is None:
            return None
        out.append([None if d is None else int(d) for d in shape])
    return out


def _graph(model) -> tuple[dict | None, list[str]]:
    """Keras' own functional serialization of the built model: ``Functional.get_config`` as it runs for a model
    built functionally (a subclass with its own constructor serializes its arguments instead), and the layers
    whose own ``get_config`` raised (keras-hub 0.32's LlamaTransformerDecoder does): those keep their class and
    name only, so that the graph is still known."""
    import importlib
    from unittest import mock

    functional = importlib.import_module("keras.src.models.functional")
    serialization_lib = importlib.import_module("keras.src.saving.serialization_lib")
    operation = importlib.import_module("keras.src.ops.operation")
    if not isinstance(model, functional.Functional):
        return None, []
    failed: list[str] = []
    serialize = serialization_lib.serialize_keras_object

    def tolerant(obj):
        try:
            return serialize(obj)
        except Exception as exc:  # noqa: BLE001 - the layer's own code
            if not isinstance(obj, operation.Operation):
                raise
            failed.append(f"{obj.name} ({type(exc).__name__})")
            return {"module": type(obj).__module__, "class_name": type(obj).__name__,
                    "config": {"name": obj.name, "trainable": bool(getattr(obj, "trainable", True))},
                    "registered_name": None}

    try:
        with mock.patch.object(functional, "functional_like_constructor", lambda cls: True), \
                mock.patch.object(serialization_lib, "serialize_keras_object", tolerant):
            config = functional.Functional.get_config(model)
        json.dumps(config)
    except Exception:  # noqa: BLE001 - a graph Keras cannot serialize: layers are still listed, unconnected
        return None, []
    return {"class_name": "Functional", "config": config}, failed


def _entry(layer, files: dict[int, str], placed: dict[int, str], parent: str) -> dict:
    if id(layer) in placed:
        return {"name": layer.name, "class_name": type(layer).__name__, "module": type(layer).__module__,
                "trainable": bool(layer.trainable), "output_shapes": _output_shapes(layer), "weights": [],
                "same_as": placed[id(layer)]}
    here = parent + layer.name
    placed[id(layer)] = here
    weights = []
    shares: list[str] = []
    for var in layer.weights:
        if id(var) in placed:  # a variable of a layer listed earlier (inside a composite layer there)
            if placed[id(var)] not in shares:
                shares.append(placed[id(var)])
            continue
        placed[id(var)] = here
        path = str(getattr(var, "path", None) or var.name)
        name = path[len(layer.name) + 1:] if path.startswith(layer.name + "/") else path
        weights.append({"name": name, "path": path, "shape": [int(d) for d in var.shape],
                        "dtype": str(getattr(var.dtype, "name", var.dtype)),
                        "trainable": bool(getattr(var, "trainable", True)), "file": files.get(id(var))})
    entry = {"name": layer.name, "class_name": type(layer).__name__, "module": type(layer).__module__,
             "trainable": bool(layer.trainable), "output_shapes": _output_shapes(layer), "weights": weights}
    if shares:
        entry["shares"] = shares
    return entry


def _nested_layers(layer, keras) -> list | None:
    """The layers of a nested Keras model whose variables are all its layers' (a backbone), else None."""
    if not isinstance(layer, keras.Model):
        return None
    try:
        inner = list(layer.layers)
    except Exception:  # noqa: BLE001 - a model that cannot list its layers stays one row
        return None
    own = {id(v) for v in layer.weights}
    held = {id(v) for x in inner for v in x.weights}
    if not inner or own != held or len({x.name for x in inner}) != len(inner):
        return None  # variables of its own, or two layers of one name: one row, as before
    return inner


def _variable_files(model) -> dict[int, str]:
    """``id(variable) -> dataset path`` in the file Keras' saving code would write (``layers/.../vars/0``)."""
    import importlib

    saving_lib = importlib.import_module("keras.src.saving.saving_lib")
    found: dict[int, str] = {}

    class _Recorder(saving_lib.H5IOStore):  # type: ignore[name-defined]  # passes _save_state's type check
        def __init__(self) -> None:  # noqa: D107 - no file
            pass

        def __bool__(self) -> bool:
            return True

        def make(self, path, metadata=None):
            return _Entry(path)

    class _Entry(dict):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def __setitem__(self, key, value) -> None:
            found.setdefault(id(value), f"{self.path}/vars/{key}" if self.path else f"vars/{key}")
            super().__setitem__(key, value)

    try:
        saving_lib._save_state(model, _Recorder(), None, "", set())
    except Exception:  # noqa: BLE001 - a future Keras: the file paths are then unknown, not guessed
        return {}
    return found


# -- the record as an Architecture ----------------------------------------------------------
def from_record(arch: Architecture, record: dict, *, cached: bool, cache_path: str | None) -> Architecture:
    """The light Architecture ``arch`` rebuilt from what Keras built: layers, graph and variables."""
    from archdiff.read.assemble import architecture
    from archdiff.read.config import parse

    where = arch.source.shown
    stored = _file_locations(arch)
    by_name: dict[str, dict] = {layer["name"]: layer for layer in record["layers"]}
    graph_known = False
    layers: list[Layer] = []
    if record.get("graph") is not None:
        try:
            parsed = parse(record["graph"], where=where)
            built = architecture(parsed, path=arch.source.path, fmt=arch.source.format, weights=None)
            top = [x.name for x in built.keras_layers() if x.depth == 0]
            graph_known = parsed.has_topology and top == list(by_name)  # Keras' model.layers, in its order
        except InputError:
            graph_known = False
    missing: list[str] = []
    if graph_known:
        inputs, outputs, input_specs = built.inputs, built.outputs, built.input_specs
        expanded = {e["name"] for e in record["layers"] if e.get("layers")}
        for layer in built.layers:
            entry = by_name.get(layer.name) if layer.depth == 0 else None
            if entry is None:
                if not any(layer.path.startswith(p + "/") for p in expanded):  # the record's own, below
                    layers.append(layer)
                continue
            layers.append(_with_record(layer, entry, stored, missing))
            layers.extend(_nested(layers[-1], entry, stored, missing))
    else:
        inputs, outputs, input_specs = (), (), ()
        for index, entry in enumerate(record["layers"]):
            layer = Layer(name=entry["name"], path=entry["name"], class_name=str(entry.get("class_name") or "?"),
                          index=index, depth=0)
            layers.append(_with_record(layer, entry, stored, missing))
            layers.extend(_nested(layers[-1], entry, stored, missing))
    claimed = {w.location.strip("/") for layer in layers for w in (layer.weights or ()) if w.location}
    unclaimed = len(set(stored) - claimed)
    versions = f"Keras {record.get('keras_version')}" + (
        f", keras-hub {record['keras_hub_version']}" if record.get("keras_hub_version") else "")
    notes = [f"layers, classes and {'connections' if graph_known else 'variables'} as Keras built "
             f"'{record.get('class_name')}' from its config ({versions}"
             + (", from archdiff's build cache" if cached else "") + "); a composite layer's sub-layers show in "
             "its variables' names"]
    again = [(e["name"], e["same_as"]) for e in record["layers"] if isinstance(e.get("same_as"), str)]
    if again:
        notes.append("one layer object in two places: " + ", ".join(f"{a} is {b}" for a, b in again[:10])
                     + "; its variables are listed (and counted) once, at the first")
    shared = [(e["name"], ", ".join(str(x) for x in e["shares"])) for e in record["layers"]
              if isinstance(e.get("shares"), list) and e["shares"]]
    if shared:
        notes.append("variables in two places: " + "; ".join(f"{a} holds variables of {b}" for a, b in shared[:10])
                     + "; they are listed (and counted) once, at the first (a head tied to the token embedding)")
    unserialized = [str(x) for x in record.get("unserialized") or ()]
    if unserialized:
        notes.append("the built layers' own get_config raised for: " + ", ".join(unserialized[:10])
                     + (f" and {len(unserialized) - 10} more" if len(unserialized) > 10 else "")
                     + "; their configs are unknown (class and name kept), so a config change there is not seen")
    if not graph_known:
        notes.append("Keras could not serialize the built model's graph: the layer order is Keras', "
                     "the connections are unknown")
    if arch.has_weights:
        if missing:
            notes.append("the file holds no dataset (of the built shape) for: " + ", ".join(missing[:10])
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
        if unclaimed > 0:
            notes.append(f"{unclaimed} dataset(s) in the file belong to no variable of the built model")
    return Architecture(
        name=arch.name, class_name=str(record.get("class_name") or arch.class_name), layers=tuple(layers),
        source=arch.source, inputs=inputs, outputs=outputs, has_topology=graph_known, has_weights=True,
        config=arch.config, notes=tuple(notes) + tuple(n for n in arch.notes if not n.startswith("'")),
        input_specs=input_specs,
        built={"class_name": record.get("class_name"), "module": record.get("module"),
               "keras_version": record.get("keras_version"), "keras_hub_version": record.get("keras_hub_version"),
               "backend": record.get("backend"), "cached": cached, "cache": cache_path,
               "total_params": record.get("total_params"), "trainable_params": record.get("trainable_params"),
               # Keras' functional serialization of the built model: what validate rebuilds sub-models from.
               "graph": record.get("graph") if graph_known else None},
    )


def _file_locations(arch: Architecture) -> dict[str, WeightSpec]:
    """The datasets the light read found in the input's weights: ``location (no leading /) -> spec``."""
    out: dict[str, WeightSpec] = {}
    if not arch.has_weights:
        return out
    for layer in arch.layers:
        for w in layer.weights or ():
            if w.location:
                out[w.location.strip("/")] = w
    return out


def _nested(model: Layer, entry: dict, stored: Mapping[str, WeightSpec], missing: list[str]) -> list[Layer]:
    """A nested model's layers (the record's ``layers`` of its entry), one level below its row."""
    out = []
    for index, inner in enumerate(entry.get("layers") or ()):
        layer = Layer(name=inner["name"], path=f"{model.path}/{inner['name']}",
                      class_name=str(inner.get("class_name") or "?"), index=index, depth=model.depth + 1,
                      parent=model.path)
        out.append(_with_record(layer, inner, stored, missing))
    return out


def _with_record(layer: Layer, entry: dict, stored: Mapping[str, WeightSpec], missing: list[str]) -> Layer:
    specs = []
    for w in entry["weights"]:
        shape = tuple(int(d) for d in w["shape"])
        location = None
        file = w.get("file")
        if stored and isinstance(file, str):
            found = stored.get(file.strip("/"))
            if found is not None and tuple(found.shape) == shape:
                location = found.location
            else:
                missing.append(str(w.get("path") or w["name"]))
        elif stored:
            missing.append(str(w.get("path") or w["name"]))
        specs.append(WeightSpec(name=w["name"], shape=shape, dtype=str(w.get("dtype") or "float32"),
                                trainable=bool(w.get("trainable", True)), location=location))
    shapes = entry.get("output_shapes")
    output_shapes = (tuple(tuple(d for d in s) for s in shapes) if isinstance(shapes, list)
                     and all(isinstance(s, list) for s in shapes) else layer.output_shapes)
    return replace(layer, class_name=str(entry.get("class_name") or layer.class_name),
                   module=entry.get("module") or layer.module, weights=tuple(specs),
                   is_model=bool(entry.get("is_model", layer.is_model)),
                   trainable=bool(entry.get("trainable", True)), output_shapes=output_shapes)
