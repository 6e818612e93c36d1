"""Bugs this suite found in modules still being written by others, kept as failing tests.

Each is marked ``xfail(strict=True)``: when the owner fixes it, the test
passes, strict xfail fails, and the marker must be removed (the test then
guards the fix). Listed in docs/robustness.md with the input and traceback.
"""
from __future__ import annotations

from dataclasses import replace

import harness
import pytest

import archdiff
from archdiff.errors import ArchdiffError

KNOWN = [(case, job_command) for case in harness.cases() if case.get("known_bug")
         for job_command in case["known_bug"]["commands"]]


if KNOWN:  # none at the moment: every bug the corpus found is fixed and guarded below
    @pytest.mark.parametrize("case, command", [
        pytest.param(case, command, marks=pytest.mark.xfail(strict=True, reason=case["known_bug"]["bug"]))
        for case, command in KNOWN], ids=[f"{c['file']}::{cmd}" for c, cmd in KNOWN])
    def test_corpus_file_known_to_fail(case, command, tmp_path, canary_env):
        """The (file, command) pairs the manifest marks known_bug, run as a user runs them."""
        job = next(j for j in harness.jobs_for(case, harness.CORPUS / case["file"], tmp_path / "out")
                   if j.command == command)
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        result = harness.run_fresh(job, canary_env, cwd=cwd)
        assert not harness.problems(job, result)


def test_diff_with_an_unhashable_class_name():
    """Was: canonical.py's `class_name in POLICY_CLASSES` raised TypeError on a list class_name."""
    from archdiff.diff import diff

    arch = archdiff.load(harness.CORPUS / "cfg_unhashable_class_name.json")
    try:
        diff(arch, archdiff.load(harness.GOOD_MODEL))
    except ArchdiffError:
        pass


def _rename(arch, index: int, name: str):
    layers = list(arch.layers)
    layers[index] = replace(layers[index], name=name, path=name)
    return replace(arch, layers=tuple(layers))


def test_transfer_plan_with_a_slash_name_beside_a_nested_model():
    """Was: two unruled source claims on one target path crashed on winner.rule (None)."""
    # A Keras 2 weights-only file lists the nested model 'base' (whose weights include conv1/...) and a
    # top-level layer 'base/conv1'; the target has a top-level layer 'base/conv1'. load() now refuses such a
    # legacy file (fixtures/broken/h5_name_slash_ambiguous.h5), but plan_transfer crashes on these
    # Architectures, which a config (tf-keras allows '/' in names) or the API can still produce.
    from archdiff.transfer import plan_transfer

    source = _rename(archdiff.load(harness.FIXTURES / "keras2" / "nested_weights.h5"), 2, "base/conv1")
    target = _rename(archdiff.load(harness.FIXTURES / "keras3" / "functional.keras"), 2, "base/conv1")
    try:
        plan_transfer(source, target)
    except ArchdiffError:
        pass


def test_corrupt_global_heap_does_not_hang(tmp_path, canary_env):
    """Was: libhdf5 looped forever (GIL held) on a global heap object whose size was corrupt;
    h5.check_global_heaps now parses the heap first and refuses it in one line."""
    case = next(c for c in harness.cases() if c["file"] == "h5_global_heap_loop.weights.h5")
    path = harness.CORPUS / case["file"]
    job = harness.Job("loop::layers", "layers", ["layers", str(path)], case, path)
    result = harness.run_fresh(job, canary_env, cwd=tmp_path, timeout=30)
    assert not harness.problems(job, result)


def _vlen_type_flipped(path):
    """A real Keras 3 weights file with one byte changed: the first 'name' attribute's datatype says
    variable-length type 5 (0xB5) instead of string (1). Found by fuzzing a .keras (one byte)."""
    data = bytearray((harness.FIXTURES / "keras3" / "sequential.weights.h5").read_bytes())
    at = data.find(b"name\x00\x00\x00\x00\x19\x01")
    assert at > 0
    data[at + 9] = 0xB5
    path.write_bytes(bytes(data))
    return path


def test_corrupt_vlen_datatype_does_not_crash(tmp_path, canary_env):
    """Was a strict xfail: libhdf5 (1.14.6) segfaults reading a vlen attribute whose datatype message is corrupt
    (vlen type 5). The metadata is now read in a supervised child (archdiff.read.contain): one error line."""
    path = _vlen_type_flipped(tmp_path / "vlen.weights.h5")
    case = {"file": path.name, "expect": "error", "what": "corrupt vlen datatype"}
    job = harness.Job("vlen::layers", "layers", ["layers", str(path)], case, path)
    result = harness.run_fresh(job, canary_env, cwd=tmp_path, timeout=30)
    assert not harness.problems(job, result), result["crash"]
