"""Exit codes scripts can use, and reports that never say "copied" of weights not written.

0: the transfer did what was asked (a new head keeps its own weights); 1:
refused on coverage, nothing written (``--require-all``, ``--min-coverage``, or
models that probably do not correspond unless ``--allow-low-coverage``); 2: it
cannot run. Every dry run, refusal and error says its one reason on stderr.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from support import FIXTURES, ROOT
from test_transfer import rng_arrays, write_legacy

from archdiff.transfer import TransferError, TransferOptions, apply_transfer, plan_transfer

DEMO = FIXTURES / "demo"
SCHEMA = json.loads((ROOT / "archdiff" / "schemas" / "transfer.schema.json").read_text())


def statuses(stdout: str) -> set[str]:
    """The status column of a text report's layer table."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("target layer"))
    start = lines[head].index("status")
    end = lines[head].index("source layer")
    out = set()
    for line in lines[head + 2:]:
        if not line.strip():
            break
        out.add(line[start:end].strip())
    return out


def test_a_new_head_exits_0_and_says_what_kept_its_weights(cli, tmp_path):
    out = tmp_path / "out.keras"
    code, stdout, stderr = cli("transfer", DEMO / "source.keras", DEMO / "target.keras", "-o", out)
    assert code == 0 and out.exists() and stderr == ""
    assert "exit 0: written as asked (3 target layers kept their own weights)" in stdout
    assert statuses(stdout) == {"copied", "kept"}


def test_a_dry_run_says_one_line_on_stderr_and_speaks_in_the_conditional(cli, tmp_path):
    out = tmp_path / "out.keras"
    code, stdout, stderr = cli("transfer", DEMO / "source.keras", DEMO / "target.keras", "-o", out, "--dry-run")
    assert code == 0 and not out.exists()
    assert stderr.count("\n") == 1 and stderr.startswith("archdiff: dry run, nothing written: the transfer would copy")
    assert statuses(stdout) == {"would copy", "would keep"}
    assert not re.search(r"\bcopied\b|\bkept\b(?! their)", stdout.replace("would keep their own", "")), stdout
    assert "would copy 5,280 params" in stdout and "dry run, nothing written" in stdout


def test_a_failing_dry_run_exits_2_with_its_reason_on_stderr(cli):
    code, stdout, stderr = cli("transfer", FIXTURES / "keras3/resnet_small.keras", FIXTURES / "keras3/functional.keras",
                               "--dry-run")
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("archdiff: error: dry run: 1 problem, nothing would be written")
    assert "copied" not in stdout and "exit 2" in stdout


def test_mismatches_in_a_dry_run_are_conditional_too(cli, tmp_path):
    k, b = rng_arrays(1, (4, 3), (3,))
    source = write_legacy(tmp_path / "s.h5", {"a": {"kernel": k, "bias": b}, "b": {"kernel": k, "bias": b}})
    target = write_legacy(tmp_path / "t.h5", {"a": {"kernel": k, "bias": b},
                                              "b": {"kernel": np.zeros((4, 5), "f4"), "bias": np.zeros(5, "f4")}})
    code, stdout, stderr = cli("transfer", source, target, "--dry-run")
    assert code == 2 and "1 matched layer would not fit the target, nothing would be written" in stderr
    assert statuses(stdout) == {"would copy", "mismatch"}
    code, stdout, stderr = cli("transfer", source, target, "-o", tmp_path / "o.h5")
    assert code == 2 and "1 matched layer does not fit the target, nothing was written" in stderr
    assert "copied" not in stdout and not (tmp_path / "o.h5").exists()


def test_require_all_refuses_with_exit_1_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "out.keras"
    code, stdout, stderr = cli("transfer", DEMO / "source.keras", DEMO / "target.keras", "-o", out, "--require-all",
                               "--format", "json")
    data = json.loads(stdout)
    assert code == 1 and not out.exists()
    assert stderr.count("\n") == 1 and stderr.startswith("archdiff: refused, nothing was written: --require-all: 3 of 7")
    assert data["exit_code"] == 1 and data["ok"] is False and data["output"]["written"] is False
    assert data["refused"].startswith("--require-all: 3 of 7 target layers with weights would get no source weights")
    import jsonschema

    jsonschema.validate(data, SCHEMA)
    code, _, stderr = cli("transfer", DEMO / "source.keras", DEMO / "target.keras", "--dry-run", "--require-all")
    assert code == 1 and stderr.startswith("archdiff: refused (dry run): --require-all")


@pytest.mark.parametrize("fraction, code", [(0.5, 0), (4 / 7, 0), (0.6, 1), (1.0, 1)])
def test_min_coverage_counts_the_target_layers_filled(cli, tmp_path, fraction, code):
    out = tmp_path / "out.keras"
    got, _, stderr = cli("transfer", DEMO / "source.keras", DEMO / "target.keras", "-o", out, "--min-coverage",
                         str(fraction))
    assert got == code and out.exists() == (code == 0)
    if code:
        assert "--min-coverage" in stderr and "4 of 7 target layers" in stderr


def test_min_coverage_must_be_a_fraction(cli, capsys):
    with pytest.raises(SystemExit) as info:
        cli("transfer", DEMO / "source.keras", DEMO / "target.keras", "--dry-run", "--min-coverage", "90")
    assert info.value.code == 2 and "90 is not between 0 and 1" in capsys.readouterr().err


def unrelated(tmp_path):
    """Ten source layers, ten target layers, one shared name (as DenseNet's and ResNet's 'conv1/conv')."""
    src = {f"dense_block{i}": dict(zip(("kernel", "bias"), rng_arrays(i, (4, 4), (4,)))) for i in range(9)}
    src["conv1"] = dict(zip(("kernel", "bias"), rng_arrays(99, (4, 4), (4,))))
    tgt = {f"stage{i}": {"kernel": np.zeros((4, 4), "f4"), "bias": np.zeros(4, "f4")} for i in range(9)}
    tgt["conv1"] = {"kernel": np.zeros((4, 4), "f4"), "bias": np.zeros(4, "f4")}
    return write_legacy(tmp_path / "s.h5", src), write_legacy(tmp_path / "t.h5", tgt)


def test_models_that_probably_do_not_correspond_are_refused(cli, tmp_path):
    source, target = unrelated(tmp_path)
    out = tmp_path / "o.h5"
    plan = plan_transfer(source, target)
    assert plan.coverage == {"source_layers": 10, "source_layers_used": 1, "source_fraction": 0.1,
                             "target_layers": 10, "target_layers_filled": 1, "target_fraction": 0.1}
    assert plan.exit_code == 1 and "probably do not correspond" in plan.refusal
    with pytest.raises(TransferError) as info:
        apply_transfer(plan, out)
    assert info.value.exit_code == 1 and not out.exists()
    code, stdout, stderr = cli("transfer", source, target, "-o", out, "--skip-mismatch")
    assert code == 1 and not out.exists()
    assert stderr.startswith("archdiff: refused, nothing was written: only 1 of 10 source layers")
    assert "--allow-low-coverage" in stderr and "would copy" in stdout and "copied" not in stdout
    code, stdout, stderr = cli("transfer", source, target, "-o", out, "--allow-low-coverage")
    assert code == 0 and out.exists() and stderr == ""


def test_a_small_target_taking_part_of_a_big_source_is_not_low_coverage(tmp_path):
    source, _ = unrelated(tmp_path)
    target = write_legacy(tmp_path / "small.h5", {"conv1": {"kernel": np.zeros((4, 4), "f4"),
                                                            "bias": np.zeros(4, "f4")}})
    plan = plan_transfer(source, target)
    assert plan.coverage["source_fraction"] == 0.1 and plan.coverage["target_fraction"] == 1.0
    assert plan.exit_code == 0 and plan.refusal is None


def test_options_and_coverage_are_in_the_json(tmp_path):
    from archdiff.transfer import dry_run

    source, target = unrelated(tmp_path)
    plan = plan_transfer(source, target, TransferOptions(allow_low_coverage=True, min_coverage=0.05))
    data = dry_run(plan).to_dict()
    import jsonschema

    jsonschema.validate(data, SCHEMA)
    assert data["options"]["allow_low_coverage"] is True and data["options"]["min_coverage"] == 0.05
    assert data["coverage"]["target_layers_filled"] == 1 and data["refused"] is None and data["exit_code"] == 0
