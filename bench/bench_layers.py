"""Bench rows for reading: `archdiff layers` against loading with Keras, and against bare JSON parsing."""
from __future__ import annotations

from bench.common import archdiff_argv, ensure_application, row, time_command, time_python


def run() -> list[dict]:
    keras_file = ensure_application("ResNet50")
    json_file = ensure_application("ResNet50", "json")
    rows = []
    ours = time_command(archdiff_argv("layers", str(keras_file)), repeat=5)
    keras = time_python(f"""
        import keras
        m = keras.saving.load_model({str(keras_file)!r}, compile=False)
        for i, l in enumerate(m.layers):
            print(i, l.name, type(l).__name__)
    """, repeat=3)
    rows.append(row("layers resnet50.keras (fresh process)", ours, "Keras load_model + model.layers", keras,
                    target=">= 30x faster (issue 19)"))
    # The same command with the weights tree read by h5py (read/hdf5_lite.py declines every file): what reading
    # the tree without h5py and numpy saves.
    by_h5py = time_command(archdiff_argv("layers", str(keras_file)), repeat=5, env={"ARCHDIFF_LITE_HDF5": "0"})
    rows.append(row("layers resnet50.keras (fresh process)", ours, "archdiff with ARCHDIFF_LITE_HDF5=0 (h5py reads "
                    "the tree)", by_h5py, target="for reference (no target set)"))
    ours_json = time_command(archdiff_argv("layers", str(json_file)), repeat=5)
    bare = time_python(f"""
        import json
        d = json.load(open({str(json_file)!r}))
        for i, l in enumerate(d["config"]["layers"]):
            print(i, l["name"], l["class_name"])
    """, repeat=5)
    rows.append(row("layers resnet50.json (fresh process)", ours_json, "bare python json.load", bare,
                    target="within 3x of bare python (speedup >= 0.33)"))
    return rows
