"""Hostile names through every command and format: nothing raw reaches a terminal, a review or git diff.

Layer, class and model names with ESC/OSC sequences, CR, LF, U+202E,
zero-width characters and Cyrillic look-alikes (tests/safety_support.py
builds them from the fixtures). Every text, Markdown, CSV and textconv output
must hold none of the hidden characters raw (the Unicode database's Cc, Cf,
Zl, Zp, Cs, Co, Cn; LF only between lines), textconv must keep each name on
its own line, look-alike renames must be flagged with their code points, and
JSON and HTML must keep the names exactly.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from safety_support import (
    CYRILLIC_I,
    K3_CLASSES,
    K3_NAMES,
    MODEL_NAME,
    ZW,
    hostile_h5,
    hostile_json,
    hostile_keras,
    k2_names,
    raw_hidden,
)
from support import FIXTURES, run_cli
from test_diff_support import mlp, save

K3_EVIL = [*K3_NAMES.values(), *K3_CLASSES.values(), MODEL_NAME]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return {
        "keras": hostile_keras(folder / "evil.keras"),
        "h5": hostile_h5(folder / "evil.h5"),
        "json": hostile_json(folder / "evil.json"),
        "folder": folder,
    }


def check_text(out: str, *, colour: bool = False) -> None:
    assert out, "the command printed nothing"
    assert raw_hidden(out, colour=colour) == [], out[:2000]


# -- one model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["keras", "h5", "json"])
@pytest.mark.parametrize("argv", [["layers"], ["layers", "--format", "csv"], ["summary"],
                                  ["summary", "--format", "markdown"], ["textconv"]])
def test_people_formats_hold_nothing_raw(files, kind, argv, cli):
    code, out, err = cli(argv[0], files[kind], *argv[1:])
    assert code == 0, err
    check_text(out)
    assert err == ""


@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_layers_show_the_escapes_readably(files, kind, cli):
    _, out, _ = cli("layers", files[kind])
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in out and "\\r" in out and "\\n" in out and "\\u202e" in out
    assert "\\u200b" in out and CYRILLIC_I in out  # a Cyrillic letter is printable: kept as it is


def test_csv_cells_stay_cells(files, cli):
    import csv
    import io

    _, out, _ = cli("layers", files["keras"], "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert len(rows) == 9 and {len(r) for r in rows} == {8}  # a CR or LF in a name splits nothing


@pytest.mark.parametrize("kind", ["keras", "h5", "json"])
def test_textconv_keeps_every_name_on_its_own_line(files, kind, cli):
    _, out, _ = cli("textconv", files[kind])
    lines = out.splitlines()
    assert not any(line.startswith("layer fake") or line.startswith("# fake") for line in lines)
    assert sum(line.startswith("layer ") for line in lines) == 8
    assert sum(line.startswith("model: ") for line in lines) == 1


@pytest.mark.parametrize("kind", ["keras", "h5", "json"])
def test_json_keeps_the_names_exactly(files, kind, cli):
    code, out, _ = cli("layers", files[kind], "--format", "json")
    assert code == 0
    data = json.loads(out)
    names = {r["name"] for r in data["layers"]}
    evil = K3_NAMES.values() if kind != "h5" else k2_names().values()
    assert set(evil) <= names
    assert data["model"] == MODEL_NAME
    _, summary, _ = cli("summary", files[kind], "--format", "json")
    assert json.loads(summary)["name"] == MODEL_NAME


def test_export_json_and_html_keep_the_names_exactly(files, tmp_path, cli):
    code, out, _ = cli("export", files["keras"], "--format", "json")
    assert code == 0
    exported = json.loads(out)
    names = {entry["config"]["name"] for entry in exported["config"]["layers"]}
    assert set(K3_NAMES.values()) <= names
    assert {entry["class_name"] for entry in exported["config"]["layers"]} >= set(K3_CLASSES.values())
    page = tmp_path / "m.html"
    assert cli("export", files["keras"], "-o", page)[0] == 0
    text = page.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="archdiff-data">(.*?)</script>', text,
                                re.S).group(1))
    assert set(K3_NAMES.values()) <= _strings(data)


def _strings(value) -> set[str]:
    out = set()
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            out |= _strings(v)
    elif isinstance(value, list):
        for v in value:
            out |= _strings(v)
    return out


# -- diff -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--color", "never"], ["--color", "always"], ["--format", "markdown"],
                                  ["--strict", "--full", "--color", "never"]])
def test_diff_people_formats_hold_nothing_raw(files, argv, cli):
    for a, b in ((FIXTURES / "keras3" / "functional.keras", files["keras"]),
                 (files["keras"], FIXTURES / "keras3" / "functional.keras"),
                 (FIXTURES / "keras2" / "functional.h5", files["h5"]),
                 (files["json"], files["keras"])):
        code, out, err = cli("diff", a, b, *argv)
        assert code in (0, 1), err
        check_text(out, colour="always" in argv)


def test_diff_json_and_html_keep_the_names_exactly(files, tmp_path, cli):
    plain = FIXTURES / "keras3" / "functional.keras"
    code, out, _ = cli("diff", plain, files["keras"], "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert {m["b"] for m in report["matched"]} >= set(K3_NAMES.values())
    assert report["b"]["name"] == MODEL_NAME
    page = tmp_path / "d.html"
    assert cli("diff", plain, files["keras"], "--format", "html", "-o", page)[0] == 1
    text = page.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="archdiff-data">(.*?)</script>', text,
                                re.S).group(1))
    assert set(K3_NAMES.values()) <= _strings(data)
    for evil in K3_NAMES.values():
        assert evil not in text.split("<script")[0]  # the no-JavaScript text report shows escapes, not raw names


@pytest.fixture
def lookalikes(tmp_path):
    a = save(mlp([8, 8, 2], names=["stem", "classifier", "head"]), tmp_path / "a.json")
    b = save(mlp([8, 8, 2], names=["stem", f"classif{CYRILLIC_I}er", f"he{ZW}ad"]), tmp_path / "b.json")
    return a, b


def test_lookalike_renames_are_flagged_with_their_code_points(lookalikes, cli):
    _, text, _ = cli("diff", *lookalikes, "--color", "never")
    warnings = [line for line in text.splitlines() if "look-alike or invisible" in line]
    assert len(warnings) == 2, text
    assert any("U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I" in w for w in warnings)
    assert any("U+200B ZERO WIDTH SPACE" in w for w in warnings)
    assert "he\\u200bad" in text  # the invisible character is also shown where the name is
    _, md, _ = cli("diff", *lookalikes, "--format", "markdown")
    assert md.count("**warning**: the names differ only by look-alike or invisible characters") == 2
    assert "U+0456" in md and "U+200B" in md
    check_text(md)
    # Without rename detection the pair is a removed and an added layer: flagged too.
    _, text, _ = cli("diff", *lookalikes, "--color", "never", "--no-renames")
    assert "warning: 'classifier' removed and 'classif\u0456er' added: the names differ only" in text
    _, md, _ = cli("diff", *lookalikes, "--format", "markdown", "--no-renames")
    assert "> **Warning:** `classifier` removed and `classif\u0456er` added" in md and "U+0456" in md
    # A rename that is only a rename is not flagged.
    _, plain, _ = cli("diff", lookalikes[0], save(mlp([8, 8, 2], names=["stem", "clf", "head"]),
                                                   lookalikes[0].parent / "c.json"), "--color", "never")
    assert "look-alike" not in plain


# -- transfer, gate, validate, the error line ---------------------------------------------------------
@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_transfer_reports_hold_nothing_raw(files, tmp_path, fmt, cli):
    source = shutil.copy(files["keras"], tmp_path / "source.keras")
    for target in (files["keras"], FIXTURES / "keras3" / "functional.keras"):
        out_path = tmp_path / f"out_{fmt}.keras"
        # --match auto pairs the hostile names with the plain ones (the diff's renames).
        code, out, err = cli("transfer", source, target, "-o", out_path, "--format", fmt, "--match", "auto")
        assert code in (0, 1), err
        check_text(out)
        assert "\\x1b[2J" in out and "\\u202e" in out  # the names are there, escaped
        out_path.unlink()


def test_transfer_json_keeps_the_names_exactly(files, tmp_path, cli):
    source = shutil.copy(files["keras"], tmp_path / "source.keras")
    code, out, err = cli("transfer", source, files["keras"], "-o", tmp_path / "o.keras", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert {layer["target"] for layer in report["layers"]} >= set(K3_NAMES.values())


def test_error_lines_hold_nothing_raw(files, tmp_path, cli):
    config = json.loads(files["json"].read_text())
    config["config"]["layers"][-1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = (
        "missing\x1b[2J\nfake\u202e")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(config))
    code, out, err = cli("layers", broken)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("archdiff: error:") and raw_hidden(err) == []
    assert "missing\\x1b[2J\\nfake\\u202e" in err
    code, _, err = cli("layers", tmp_path / "no\x1b]0;x\x07such\n.keras")
    assert code == 2 and err.count("\n") == 1 and raw_hidden(err) == [] and "no\\x1b]0;x\\x07such\\n" in err


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_gate_reports_hold_nothing_raw(files, tmp_path, fmt):
    env = {"HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_EMAIL": "t@example.invalid", "NO_COLOR": "1"}
    root = tmp_path / "repo"
    root.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=root, env={**os.environ, **env}, check=True,  # noqa: E731
                                    capture_output=True)
    git("init", "-q")
    shutil.copy(FIXTURES / "keras3" / "functional.keras", root / "model.keras")
    git("add", ".")
    git("commit", "-qm", "m")
    shutil.copy(files["keras"], root / "model.keras")
    proc = run_cli("gate", "--format", fmt, "model.keras", cwd=root, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    if fmt == "json":
        report = json.loads(proc.stdout)["files"][0]["report"]
        assert {m["b"] for m in report["matched"]} >= set(K3_NAMES.values())
    else:
        check_text(proc.stdout)


@pytest.mark.tensorflow
def test_validate_reports_hold_nothing_raw(tmp_path):
    # Hostile layer and model names (Keras rebuilds them; an unknown class it would refuse, in one safe line).
    model = hostile_keras(tmp_path / "names.keras", classes={})
    report = tmp_path / "report.md"
    proc = run_cli("validate", model, "--weights", model, "--source", model, "--no-finetune", "-o", report,
                   "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    check_text(report.read_text(encoding="utf-8"))
    proc = run_cli("validate", model, "--weights", model, "--source", model, "--no-finetune")
    assert proc.returncode == 0, proc.stderr
    check_text(proc.stdout)
    assert "\\x1b[2J" in proc.stdout and "\\u202e" in proc.stdout
    assert proc.stderr == ""  # TensorFlow's start-up lines are captured (shown with --debug)
    refused = run_cli("validate", hostile_keras(tmp_path / "classes.keras"), "--no-finetune")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and raw_hidden(refused.stderr) == []
