"""Bench rows for crash containment: what reading untrusted HDF5 in a supervised child costs.

archdiff.read.contain reads the metadata of every HDF5 file (and the HDF5
inside a ``.keras`` zip) in a forked child with a time and memory cap, so
that a libhdf5 segfault or hang is one error line. These rows time
``layers`` and ``diff`` of ResNet50-sized files (Keras-built, weights=None)
with the child (the default) against ``ARCHDIFF_CONTAIN=0`` (in-process),
as fresh processes; speedup < 1 is the containment's cost.
"""
from __future__ import annotations

import statistics
import subprocess
import time

from bench.common import ENV, archdiff_argv, ensure_application, row


def _pair(argv: list[str], *, repeat: int = 9) -> tuple[float, float]:
    """Median seconds with the child and in-process, the two runs alternated so that load hits both alike."""
    envs = {True: {**ENV, "ARCHDIFF_CONTAIN": "1"}, False: {**ENV, "ARCHDIFF_CONTAIN": "0"}}
    for env in envs.values():
        subprocess.run(argv, env=env, capture_output=True)  # warm-up: page cache, bytecode
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeat):
        for contain, env in envs.items():
            start = time.perf_counter()
            proc = subprocess.run(argv, env=env, capture_output=True)
            times[contain].append(time.perf_counter() - start)
            if proc.returncode not in (0, 1):
                raise RuntimeError(f"{argv}: exit {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return statistics.median(times[True]), statistics.median(times[False])


def run() -> list[dict]:
    keras_file = ensure_application("ResNet50")
    h5_file = ensure_application("ResNet50", "h5")
    rows = []
    for label, argv in (
        ("layers resnet50.keras", archdiff_argv("layers", str(keras_file))),
        ("layers resnet50.h5", archdiff_argv("layers", str(h5_file))),
        ("diff resnet50.keras resnet50.h5", archdiff_argv("diff", str(keras_file), str(h5_file), "--format", "json")),
    ):
        contained, in_process = _pair(argv)
        rows.append(row(f"{label} (contained child, default)", contained, "ARCHDIFF_CONTAIN=0 (in-process)",
                        in_process, target="containment costs < 15%",
                        note=f"+{(contained - in_process) * 1000:.0f} ms"))
    return rows
