"""The golden report cases: every report archdiff prints, on the shipped fixtures.

Each case is a command line; its golden file under ``tests/golden/data/`` holds
the exit status, stdout and stderr exactly as archdiff printed them when the
case was recorded (``python tests/golden/record.py``). ``test_golden.py``
runs every case again and compares byte for byte, so a refactor that changes
any report, help text included, fails with the case's readable id.

Commands run in a scratch folder where ``fx`` links to ``fixtures/``, so the
paths printed are the same on every clone.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"

#: Model files of every format, both Keras versions.
MODELS = [
    "keras3/sequential.keras", "keras3/functional.keras", "keras3/nested.keras", "keras3/resnet_small.keras",
    "keras3/functional.h5", "keras3/nested.h5", "keras3/functional.weights.h5", "keras3/nested.k213.weights.h5",
    "keras3/functional.json", "keras3/nested.config.json", "keras3/subclassed.weights.h5",
    "keras3/sharded/resnet_small.weights.json",
    "keras2/sequential.h5", "keras2/functional.h5", "keras2/nested.h5", "keras2/resnet_small.h5",
    "keras2/functional_weights.h5", "keras2/nested_weights.h5", "keras2/many_layers_weights.h5",
    "keras2/functional.json", "keras2/nested.yaml", "keras2/functional.pyyaml.yaml", "keras2/nested.keras",
    "keras2/subclassed_weights.h5",
    "demo/source.keras", "demo/target.keras",
]

DIFF_PAIRS = [
    ("keras2/functional.h5", "keras3/functional.keras"),
    ("keras2/nested.h5", "keras3/nested.keras"),
    ("keras3/sequential.keras", "keras3/functional.keras"),
    ("keras3/resnet_small.keras", "keras2/resnet_small.h5"),
    ("demo/source.keras", "demo/target.keras"),
    ("keras3/functional.weights.h5", "keras3/functional.keras"),
    ("keras3/functional.json", "keras3/nested.json"),
]

TRANSFER_PAIRS = [
    ("demo/source.keras", "demo/target.keras", "out.keras"),
    ("keras2/functional.h5", "keras3/functional.keras", "out.keras"),
    ("keras2/nested_weights.h5", "keras3/nested.weights.h5", "out.weights.h5"),
    ("keras2/resnet_small.h5", "keras3/resnet_small.h5", "out.h5"),
]

COMMANDS = ["layers", "summary", "export", "diff", "gate", "textconv", "git-config", "transfer", "validate"]


def _slug(path: str) -> str:
    return path.replace("/", "_").replace(".", "_")


def cases() -> dict[str, list[str]]:
    """Readable id -> argv (relative to the scratch folder)."""
    out: dict[str, list[str]] = {"help": ["--help"]}
    for command in COMMANDS:
        out[f"help-{command}"] = [command, "--help"]
    for model in MODELS:
        for fmt in ("text", "json", "csv"):
            out[f"layers-{fmt}-{_slug(model)}"] = ["layers", f"fx/{model}", "--format", fmt]
        for fmt in ("text", "json", "markdown"):
            out[f"summary-{fmt}-{_slug(model)}"] = ["summary", f"fx/{model}", "--format", fmt]
        out[f"textconv-{_slug(model)}"] = ["textconv", f"fx/{model}"]
    out["layers-grep-resnet"] = ["layers", "fx/keras3/resnet_small.keras", "--grep", "conv"]
    out["layers-grep-no-match"] = ["layers", "fx/keras3/resnet_small.keras", "--grep", "^nothing$"]
    for a, b in DIFF_PAIRS:
        for fmt in ("text", "json", "markdown"):
            out[f"diff-{fmt}-{_slug(a)}-vs-{_slug(b)}"] = ["diff", f"fx/{a}", f"fx/{b}", "--format", fmt]
    out["diff-strict-k2-k3"] = ["diff", "fx/keras2/functional.h5", "fx/keras3/functional.keras", "--strict"]
    for source, target, dest in TRANSFER_PAIRS:
        for fmt in ("text", "json", "markdown"):
            out[f"transfer-{fmt}-{_slug(source)}-to-{_slug(target)}"] = [
                "transfer", f"fx/{source}", f"fx/{target}", "-o", dest, "--format", fmt]
        out[f"transfer-dry-{_slug(source)}-to-{_slug(target)}"] = [
            "transfer", f"fx/{source}", f"fx/{target}", "-o", dest, "--dry-run"]
    # Issue 13: a dry run that cannot run, a refusal on coverage, the freezing recipe.
    out["transfer-dry-error-resnet-into-functional"] = [
        "transfer", "fx/keras3/resnet_small.keras", "fx/keras3/functional.keras", "--dry-run"]
    out["transfer-require-all-demo"] = ["transfer", "fx/demo/source.keras", "fx/demo/target.keras", "-o", "out.keras",
                                        "--require-all"]
    for fmt in ("text", "json", "python"):
        out[f"layers-freeze-{fmt}-keras3_nested_keras"] = ["layers", "fx/keras3/nested.keras", "--freeze-until",
                                                          "base/conv2", "--format", fmt]
    out["layers-freeze-text-keras2_resnet_small_h5"] = ["layers", "fx/keras2/resnet_small.h5", "--freeze-until", "29"]
    out["error-missing-file"] = ["layers", "fx/keras3/no-such-model.keras"]
    out["error-unsupported"] = ["summary", "fx/README.md"]
    out["error-bad-format"] = ["diff", "fx/keras3/functional.keras", "fx/README.md"]
    out["error-transfer-mismatch"] = ["transfer", "fx/keras3/resnet_small.keras", "fx/keras3/functional.keras",
                                      "-o", "out.keras"]
    return out


def run_case(argv: list[str], scratch: Path) -> str:
    """Run one case in-process in ``scratch``; the golden text of what it printed."""
    from archdiff.cli.main import main

    for leftover in scratch.iterdir():
        if leftover.name != "fx":
            leftover.unlink()
    stdout, stderr = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(scratch)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse's --help and usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(cwd)
    return f"exit: {code}\n--- stdout\n{stdout.getvalue()}--- stderr\n{stderr.getvalue()}"


@contextlib.contextmanager
def scratch_folder(tmp: Path):
    """A folder with ``fx`` -> fixtures/ and a fixed environment for stable output."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "fx").symlink_to(ROOT / "fixtures")
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR", "TERM", "FORCE_COLOR")}
    os.environ.update(COLUMNS="100", NO_COLOR="1", TERM="dumb")
    os.environ.pop("FORCE_COLOR", None)
    try:
        yield tmp
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
