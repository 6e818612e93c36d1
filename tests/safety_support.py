"""Builders of hostile model files for the safety tests, made from the shipped fixtures.

Names and classes are edited in the files' own structures: ``config.json``
and the weights' ``vars`` name attributes inside a ``.keras`` zip (zipfile,
h5py), the ``model_config`` attribute, the groups and ``layer_names`` /
``weight_names`` of a legacy ``.h5`` (h5py). No bytes are written by hand.
Holds no tests itself.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
import unicodedata
import zipfile
from pathlib import Path

import h5py
import numpy as np
from support import FIXTURES

ESC = "\x1b[2J\x1b]0;pwned\x07"       # clear the screen, set the terminal title
CR = "ok\rEVIL"                       # overwrite what was printed
LF = "\nlayer fake (Dense)\n"         # a fake line in textconv / git diff
RLO = "\u202e"                        # right-to-left override
ZW = "\u200b"                         # zero-width space
CYRILLIC_I = "\u0456"                 # looks like Latin i

#: Keras 3 functional fixture layer -> hostile name (the layers with weights and both outputs).
K3_NAMES = {
    "shared_dense": f"shared{ESC}dense",
    "branch_b": f"branch{CR}{LF}",
    "main_output": f"main{RLO}tuptuo",
    "aux_output": f"cl{ZW}assif{CYRILLIC_I}er",
}
#: A class name with an OSC 8 hyperlink and a bidi override (an unknown class: listed, never imported).
K3_CLASSES = {"add": "Ad\u202ed\x1b]8;;http://evil.example\x07"}
MODEL_NAME = f"model{ESC}{RLO}\n# fake"

#: Characters no text, Markdown, CSV or textconv output may hold raw (LF aside, which separates lines).
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_OUR_COLOURS = re.compile(r"\x1b\[\d+m")


def raw_hidden(text: str, *, colour: bool = False) -> list[str]:
    """The hidden characters ``text`` holds raw (as code points), archdiff's own colour codes aside."""
    if colour:
        text = _OUR_COLOURS.sub("", text)
    return sorted({f"U+{ord(c):04X}" for c in text if c != "\n" and unicodedata.category(c) in _HIDDEN})


def _rename(obj, mapping: dict[str, str]):
    if isinstance(obj, dict):
        return {k: _rename(v, mapping) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename(v, mapping) for v in obj]
    if isinstance(obj, str):
        return mapping.get(obj, obj)
    return obj


def _reclass(config: dict, classes: dict[str, str]) -> None:
    for entry in config["config"]["layers"]:
        new = classes.get(entry["config"].get("name"))
        if new:
            entry["class_name"] = new


def hostile_keras(dst: Path, src: Path = FIXTURES / "keras3" / "functional.keras", names=None, classes=None,
                  model_name: str | None = MODEL_NAME) -> Path:
    """A copy of a Keras 3 ``.keras`` with layers, classes and the model renamed (config and weights alike)."""
    names = K3_NAMES if names is None else names
    classes = K3_CLASSES if classes is None else classes
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json":
                config = _rename(json.loads(data), names)
                _reclass(config, classes)
                if model_name is not None:
                    config["config"]["name"] = model_name
                data = json.dumps(config).encode()
            elif info.filename.endswith(".weights.h5"):
                data = _renamed_weights(data, names)
            zout.writestr(info, data)
    return dst


def _renamed_weights(data: bytes, names: dict[str, str]) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.weights.h5"
        path.write_bytes(data)
        with h5py.File(path, "r+") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Group) and name.endswith("vars"):
                    old = obj.attrs.get("name")
                    old = old.decode() if isinstance(old, bytes) else old
                    if old in names:
                        obj.attrs["name"] = names[old]
            f.visititems(visit)
        return path.read_bytes()


def hostile_json(dst: Path, src: Path = FIXTURES / "keras3" / "functional.json", names=None, classes=None) -> Path:
    names = K3_NAMES if names is None else names
    config = _rename(json.loads(src.read_text()), names)
    _reclass(config, K3_CLASSES if classes is None else classes)
    config["config"]["name"] = MODEL_NAME
    dst.write_text(json.dumps(config))
    return dst


#: Keras 2 functional fixture layer -> hostile name.
def k2_names(path: Path = FIXTURES / "keras2" / "functional.h5") -> dict[str, str]:
    with h5py.File(path, "r") as f:
        layers = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights"].attrs["layer_names"]]
    with_weights = [n for n in layers if not n.startswith("input")]
    tricks = [f"{ESC}", f"{CR}{LF}", f"{RLO}", f"{ZW}{CYRILLIC_I}"]
    return {n: f"{n[:4]}{t}{n[4:]}" for n, t in zip(with_weights, tricks)}


def hostile_h5(dst: Path, src: Path = FIXTURES / "keras2" / "functional.h5", names=None) -> Path:
    """A copy of a legacy full-model ``.h5`` with layers and the model renamed in config, groups and names."""
    names = k2_names(src) if names is None else names
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        raw = f.attrs["model_config"]
        config = _rename(json.loads(raw.decode() if isinstance(raw, bytes) else raw), names)
        config["config"]["name"] = MODEL_NAME
        f.attrs["model_config"] = json.dumps(config).encode()
        weights = f["model_weights"]
        layer_names = []
        for raw_name in weights.attrs["layer_names"]:
            old = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
            new = names.get(old, old)
            if new != old:
                weights.move(old, new)
                group = weights[new]
                if old in group:
                    group.move(old, new)
                group.attrs["weight_names"] = np.array([
                    (w.decode() if isinstance(w, bytes) else w).replace(old + "/", new + "/", 1).encode()
                    for w in group.attrs["weight_names"]])
            layer_names.append(new.encode())
        weights.attrs["layer_names"] = np.array(layer_names)
    return dst


def zip_member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(name)


def h5_bytes_names(data: bytes) -> list[str]:
    with h5py.File(io.BytesIO(data), "r") as f:
        out = []
        f.visititems(lambda n, o: out.append(n))
        return out
