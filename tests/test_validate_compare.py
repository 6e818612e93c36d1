"""The pieces of validate that need no TensorFlow: the Polygraphy-style comparator, budgets, stage progress, backends.

The comparator's expected verdicts are worked out by hand from Polygraphy's
rule (``polygraphy/comparator/compare.py``): an element fails when its
absolute error exceeds atol *and* its relative error exceeds rtol; ``max`` /
``mean`` / ``median`` apply the same "both exceeded" rule to that statistic.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

from archdiff.errors import MissingDependencyError, UsageError
from archdiff.validate.comparator import (
    EPSILON,
    Tolerances,
    compare_arrays,
    cosine_similarity,
    parse_per_output,
    tolerance,
)


# -- the comparator ---------------------------------------------------------------------------
def test_elementwise_fails_only_where_both_tolerances_are_exceeded():
    ref = np.array([1.0, 100.0, 0.0], dtype=np.float32)
    # |diff| 0.5 at 1.0 (rel 0.5) fails both; 0.5 at 100.0 is rel 0.005: within rtol 0.01, passes.
    got = np.array([1.5, 100.5, 0.0], dtype=np.float32)
    result = compare_arrays(got, ref, atol=0.1, rtol=0.01)
    assert not result.passed and result.mismatched == 1 and result.size == 3
    assert result.max_abs_diff == pytest.approx(0.5) and result.max_rel_diff == pytest.approx(0.5)
    assert compare_arrays(got, ref, atol=0.6, rtol=0.0).passed  # every |diff| <= atol
    assert compare_arrays(got, ref, atol=0.0, rtol=0.6).passed  # every relative error <= rtol


def test_a_reference_zero_counts_as_epsilon_so_only_atol_can_pass_it():
    ref = np.zeros(4, np.float32)
    got = np.array([0, 0, 0, 1e-7], np.float32)
    result = compare_arrays(got, ref, atol=1e-6, rtol=1e-5)
    assert result.passed
    assert result.max_rel_diff == pytest.approx(float(np.float32(1e-7)) / EPSILON)
    assert not compare_arrays(got, ref, atol=1e-8, rtol=1e-5).passed


@pytest.mark.parametrize("stat, atol, passed", [
    # abs errors 0, 0, 0, 1 (rel 0, 0, 0, 1 against ones): max 1, mean 0.25, median 0
    ("max", 0.5, False), ("max", 1.0, True), ("mean", 0.2, False), ("mean", 0.3, True),
    ("median", 0.0, True), ("elementwise", 0.5, False),
])
def test_error_statistics(stat, atol, passed):
    ref = np.ones(4)
    got = np.array([1.0, 1.0, 1.0, 2.0])
    result = compare_arrays(got, ref, atol=atol, rtol=0.0, stat=stat)
    assert result.passed is passed
    assert (result.mean_abs_diff, result.median_abs_diff) == (0.25, 0.0)


def test_polygraphy_spelling_and_unknown_statistics():
    assert compare_arrays(np.ones(2), np.ones(2), stat="elemwise").error_stat == "elementwise"
    with pytest.raises(UsageError, match="--check-error-stat 'p99' is not one of"):
        compare_arrays(np.ones(2), np.ones(2), stat="p99")


def test_nan_shapes_and_cosine():
    assert not compare_arrays(np.array([np.nan]), np.array([1.0]), atol=1.0, rtol=1.0).passed
    assert compare_arrays(np.array([np.nan]), np.array([1.0]), atol=1.0, rtol=1.0).reason == "non-finite values"
    other = compare_arrays(np.ones((2, 3)), np.ones((3, 2)))
    assert not other.passed and not other.comparable and other.reason == "shapes differ: [2, 3] vs [3, 2]"
    a = np.array([1.0, 0.0])
    assert cosine_similarity(a, np.array([0.0, 1.0])) == 0.0
    assert cosine_similarity(a, 3 * a) == pytest.approx(1.0)
    assert cosine_similarity(np.zeros(2), np.zeros(2)) == 1.0


def test_per_output_tolerances_as_polygraphy_writes_them():
    atol = parse_per_output(["1e-5", "head:1e-2", "a:b:3"], "--atol", tolerance)
    assert atol == (("", 1e-5), ("head", 1e-2), ("a:b", 3.0))
    tol = Tolerances(atol=atol, rtol=(("", 0.0),), check_error_stat=(("", "elementwise"), ("head", "mean")))
    assert tol.for_output("head") == (1e-2, 0.0, "mean")
    assert tol.for_output("xception/head") == (1e-2, 0.0, "mean")  # a nested output by its layer's name
    assert tol.for_output("other") == (1e-5, 0.0, "elementwise")
    with pytest.raises(UsageError, match="--atol 'x:-1'"):
        parse_per_output(["x:-1"], "--atol", tolerance)


# -- budgets, options, progress -------------------------------------------------------------
def test_budgets_fill_what_is_not_given_and_explicit_values_win():
    from archdiff.validate.options import BUDGETS, ValidateOptions

    quick = ValidateOptions.for_budget("quick")
    assert (quick.epochs, quick.samples, quick.compare_batch, quick.scratch) == (2, 16, 2, False)
    assert ValidateOptions.for_budget("standard") == ValidateOptions(budget="standard")  # today's defaults
    full = ValidateOptions.for_budget("full", epochs=3)
    assert full.epochs == 3 and full.unfreeze_lr == BUDGETS["full"]["unfreeze_lr"]
    with pytest.raises(UsageError, match="--budget 'huge'"):
        ValidateOptions.for_budget("huge")
    again = ValidateOptions.from_dict(ValidateOptions.for_budget("quick", output_atol=(("h", 0.1),),
                                                                 backends=("tensorflow", "jax")).to_dict())
    assert again.output_atol == (("h", 0.1),) and again.backends == ("tensorflow", "jax") and again.budget == "quick"


def test_cli_budget_and_tolerance_options():
    from archdiff.cli import build_parser
    from archdiff.cli.validate import options_from

    args = build_parser().parse_args(["validate", "t.keras", "--budget", "quick", "--epochs", "3", "--atol", "1e-4",
                                      "out:1e-2", "--check-error-stat", "median", "--allow-skip",
                                      "outputs,finetune", "--loss", "score:mse"])
    options = options_from(args)
    assert (options.budget, options.epochs, options.samples, options.atol) == ("quick", 3, 16, 1e-4)
    assert options.output_atol == (("out", 1e-2),) and options.check_error_stat == "median"
    assert options.allow_skip == ("outputs", "finetune") and options.loss == (("score", "mse"),)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["validate", "t.keras", "--backends", "tensorflow"])  # two or more


def test_stage_progress_estimates_the_time_left_from_the_pace_so_far():
    from archdiff.progress import StageProgress

    now = [0.0]
    stream = io.StringIO()
    stages = StageProgress([("rebuild", 1.0), ("outputs", 2.0), ("fine-tune", 4.0)], "archdiff validate",
                           stream=stream, enabled=True, clock=lambda: now[0])
    stages.start("rebuild")
    now[0] = 2.0
    stages.start("outputs")  # rebuild took 2 s for a cost of 1: 6 more cost units ahead -> 12 s
    now[0] = 6.0
    stages.start("fine-tune")  # 6 s for 3 units: 4 ahead -> 8 s
    now[0] = 10.0
    stages.finish()
    lines = stream.getvalue().splitlines()
    assert lines == ["archdiff validate [1/3] rebuild: 0.0 s so far, estimating the time left",
                     "archdiff validate [2/3] outputs: 2.0 s so far, about 12 s left",
                     "archdiff validate [3/3] fine-tune: 6.0 s so far, about 8 s left"]
    assert stages.seconds == {"rebuild": 2.0, "outputs": 4.0, "fine-tune": 4.0}
    quiet = io.StringIO()
    StageProgress([("x", 1)], "y", stream=quiet).start("x")  # not a terminal
    assert quiet.getvalue() == ""


# -- the backend boundary -----------------------------------------------------------------------
def test_a_backend_that_is_not_installed_gets_one_line_with_the_install_hint(monkeypatch):
    import archdiff.lazy as lazy
    from archdiff.validate.backends import check_installed

    monkeypatch.setattr(lazy, "backend_installed", lambda name: name != "torch")
    with pytest.raises(MissingDependencyError) as info:
        check_installed(("tensorflow", "torch"))
    assert info.value.one_line() == ("the Keras backend 'torch' is not installed; install it with: pip install torch "
                                     "(a CPU build is enough).")
    monkeypatch.setattr(lazy, "loaded_backend", lambda: None)
    with pytest.raises(MissingDependencyError, match="'torch' is not installed.*pip install torch"):
        lazy.select_backend("torch")


def test_keras_loaded_with_another_backend_is_said_in_one_line(monkeypatch):
    import archdiff.lazy as lazy

    monkeypatch.setattr(lazy, "loaded_backend", lambda: "tensorflow")
    with pytest.raises(lazy.BackendError) as info:
        lazy.select_backend("jax")
    assert info.value.one_line() == (
        "Keras was already imported in this process with the tensorflow backend, so it cannot run on jax; run "
        "archdiff in a fresh process (or set KERAS_BACKEND=jax before anything imports Keras).")
    assert lazy.select_backend("tensorflow") == "tensorflow"
    with pytest.raises(UsageError, match="not one of tensorflow, jax, torch"):
        lazy.select_backend("mxnet")


def test_select_backend_sets_keras_backend_before_the_import(monkeypatch):
    import archdiff.lazy as lazy

    monkeypatch.setattr(lazy, "loaded_backend", lambda: None)
    monkeypatch.setattr(lazy, "backend_installed", lambda name: True)
    # setenv first, so monkeypatch restores the variable's absence afterwards: select_backend sets
    # os.environ itself, and a leaked KERAS_BACKEND=jax changed later tests' subprocesses.
    monkeypatch.setenv("KERAS_BACKEND", "")
    monkeypatch.delenv("KERAS_BACKEND")
    assert lazy.select_backend("jax") == "jax"
    import os

    assert os.environ["KERAS_BACKEND"] == "jax"


def test_backends_are_compared_output_by_output(tmp_path):
    from archdiff.validate.backends import compare_backends, parse_backends
    from archdiff.validate.options import ValidateOptions
    from archdiff.validate.reference import save_reference

    x = {"image": np.ones((2, 3), np.float32)}
    save_reference(str(tmp_path / "a.npz"), x, {"out": np.array([1.0, 2.0]), "aux": np.zeros(2)}, {})
    save_reference(str(tmp_path / "b.npz"), x, {"out": np.array([1.0, 2.5]), "aux": np.zeros(2)}, {})
    check = compare_backends(("tensorflow", "jax"), [str(tmp_path / "a.npz"), str(tmp_path / "b.npz")],
                             ValidateOptions())
    assert check.status == "fail" and check.baseline == "tensorflow"
    by_output = {c["output"]: c for c in check.comparisons}
    assert by_output["aux"]["status"] == "pass" and by_output["out"]["status"] == "fail"
    assert by_output["out"]["max_abs_diff"] == 0.5
    assert check.failures == ("backends: output 'out' on jax differs from tensorflow (1 of 2 elements exceed "
                              "atol 1e-05 and rtol 1e-05; max |diff| 0.5)",)
    loose = ValidateOptions(output_atol=(("out", 1.0),))
    assert compare_backends(("tensorflow", "jax"), [str(tmp_path / "a.npz"), str(tmp_path / "b.npz")],
                            loose).status == "pass"
    assert compare_backends(("tensorflow", "jax"), [str(tmp_path / "a.npz"), None], loose).status == "fail"
    assert parse_backends(" tensorflow , jax ") == ("tensorflow", "jax")
    with pytest.raises(UsageError, match="two or more different"):
        parse_backends("jax,jax")


def test_a_reference_file_round_trips_and_bad_ones_are_refused(tmp_path):
    from archdiff.errors import InputError
    from archdiff.validate.reference import load_reference, save_reference

    path = str(tmp_path / "ref.npz")
    save_reference(path, {"b": np.zeros(1), "a": np.ones(1)}, {"z": np.ones(2)}, {"keras_version": "2.21.0"})
    ref = load_reference(path)
    assert list(ref.inputs) == ["b", "a"] and list(ref.outputs) == ["z"]
    assert ref.meta["keras_version"] == "2.21.0" and ref.meta["format"] == "archdiff-reference/1"
    np.savez(tmp_path / "plain.npz", x=np.zeros(2))
    with pytest.raises(InputError, match="not 'input:NAME' and 'output:NAME'"):
        load_reference(str(tmp_path / "plain.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        load_reference(str(tmp_path / "junk.npz"))
