"""The diff reports: JSON against its schema, Markdown that renders, text that reads like a diff."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
from markdown_it import MarkdownIt
from support import FIXTURES, ROOT
from test_diff_support import arch, mlp

from archdiff.diff import DiffOptions, diff
from archdiff.diff.policy import check, parse_policy
from archdiff.diff.render import md_code, md_escape, merged, render_markdown, render_text
from archdiff.read import load

SCHEMA = json.loads((ROOT / "archdiff" / "schemas" / "diff.schema.json").read_text())
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def validate(data: dict, ref: str | None = None) -> None:
    schema = SCHEMA if ref is None else {**SCHEMA, "$ref": f"#/$defs/{ref}"}
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(schema).validate(data)


@pytest.fixture
def pair(tmp_path):
    """A diff with every kind of change: a rename, a config change, a new layer, a wider output."""
    a = mlp([8, 8, 4], names=["stem", "features", "head"])
    b = copy.deepcopy(mlp([8, 8, 8, 6], names=["stem", "embedding", "extra", "head"]))
    b["config"]["layers"][1]["config"]["activation"] = "tanh"  # stem
    b["config"]["layers"][3]["config"]["activation"] = "tanh"  # extra: not a twin of "features"
    return arch(a, tmp_path, "a.json"), arch(b, tmp_path, "b.json")


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$defs"]["diffReport"]["properties"]["schema_version"] == {"const": 1}


def test_json_output_validates(pair, cli, tmp_path):
    d = diff(*pair)
    validate(d.to_dict())
    code, out, _ = cli("diff", tmp_path / "a.json", tmp_path / "b.json", "--format", "json")
    assert code == 1
    data = json.loads(out)
    validate(data)
    assert data["exit_code"] == 1 and data["policy"] is None
    assert {"added", "removed", "matched", "classification", "exit_code"} <= set(data)
    assert [e["path"] for e in data["added"]] == ["extra"]
    assert any(m["a"] == "features" and m["b"] == "embedding" and m["how"] != "name" and m["evidence"]
               for m in data["matched"])
    assert all(isinstance(m["changes"], list) for m in data["matched"])


@pytest.mark.parametrize("a, b", [
    ("keras2/functional.h5", "keras3/functional.keras"),
    ("keras3/nested.keras", "keras3/functional.keras"),
    ("keras3/resnet_small.keras", "keras3/sequential.json"),
    ("keras3/functional.weights.h5", "keras3/functional.keras"),
    ("keras3/subclassed.weights.h5", "keras2/sequential_weights.h5"),
])
def test_json_validates_on_fixture_pairs(a, b):
    d = diff(load(FIXTURES / a), load(FIXTURES / b), DiffOptions(strict=True))
    validate(json.loads(json.dumps(d.to_dict())))


def test_json_with_a_policy_validates(pair, tmp_path, cli):
    policy = tmp_path / "policy.yaml"
    policy.write_text("frozen: [head]\nallow_added: false\nmax_param_growth: 5%\n")
    code, out, _ = cli("diff", tmp_path / "a.json", tmp_path / "b.json", "--format", "json", "--policy", policy)
    data = json.loads(out)
    validate(data)
    assert code == 1 and data["exit_code"] == 1 and data["policy"]["passed"] is False
    assert {r["rule"] for r in data["policy"]["rules"] if not r["passed"]} == {"frozen", "allow_added",
                                                                              "max_param_growth"}


def test_markdown_renders_tables_and_details(pair):
    d = diff(*pair)
    text = render_markdown(d, policy=check(d, parse_policy({"allow_added": False})))
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    kinds = [t.type for t in tokens]
    assert kinds.count("table_open") >= 3
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<table>" in html and "<details>" in html and "<summary>Changed layers" in html
    assert "**failed**" in text
    # The summary table is the first table, with both files in it.
    first = html.index("<table>")
    assert "a.json" in html[first:html.index("</table>")]


def test_markdown_cells_escape_pipes():
    assert "\\|" in md_escape("a|b")
    assert md_code("x|y") == "`x\\|y`"
    html = MarkdownIt("commonmark").enable("table").render(
        "| a | b |\n| --- | --- |\n| " + md_code("p|q") + " | " + md_escape("<b>|") + " |\n")
    assert html.count("<td>") == 2 and "<b>" not in html


def test_markdown_identical():
    a = load(FIXTURES / "keras3" / "functional.keras")
    text = render_markdown(diff(a, a))
    assert text.startswith("### ✅ archdiff: **identical**")


def test_text_summary_first_and_plain_when_piped(pair, cli, tmp_path):
    code, out, _ = cli("diff", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("archdiff: topology-changing")
    assert lines[1].startswith("  A: ") and lines[2].startswith("  B: ")
    assert not ANSI.search(out)
    body = out[out.index("--- A"):]
    assert "+ extra (Dense)  from embedding; into head" in body
    assert "~ features -> embedding (Dense)  renamed, matched by neighbours" in body
    assert "~ stem (Dense)\n    activation: relu -> tanh" in body
    assert out.index("layers ") < out.index("--- A")


def test_text_colour_only_when_asked(pair, cli, tmp_path, monkeypatch):
    code, out, _ = cli("diff", tmp_path / "a.json", tmp_path / "b.json", "--color", "always")
    assert ANSI.search(out)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert ANSI.search(cli("diff", tmp_path / "a.json", tmp_path / "b.json")[1])
    monkeypatch.setenv("NO_COLOR", "1")
    assert not ANSI.search(cli("diff", tmp_path / "a.json", tmp_path / "b.json")[1])
    code, out, _ = cli("diff", tmp_path / "a.json", tmp_path / "b.json", "--color", "never")
    assert not ANSI.search(out)


def test_unchanged_runs_collapse_and_full_lists_them(tmp_path):
    names = [f"l{i}" for i in range(30)]
    a = mlp([8] * 30, names=names)
    b = copy.deepcopy(a)
    b["config"]["layers"][15]["config"]["activation"] = "tanh"
    d = diff(arch(a, tmp_path, "a.json"), arch(b, tmp_path, "b.json"))
    text = render_text(d)
    assert "  ... 15 unchanged layers (input_layer ... l13)" in text
    assert "  ... 15 unchanged layers (l15 ... l29)" in text
    assert "~ l14 (Dense)" in text
    full = render_text(d, full=True)
    assert "  l20 (Dense)" in full and "unchanged layers" not in full


def test_long_added_runs_collapse():
    d = diff(load(FIXTURES / "keras3" / "sequential.keras"), load(FIXTURES / "keras3" / "resnet_small.keras"))
    text = render_text(d)
    assert re.search(r"\+ \.\.\. \d+ more added layers", text)
    assert "- dense_in (Dense)" in text


def test_merged_order_places_removed_layers_where_they_were(tmp_path):
    a = arch(mlp([8, 8, 8, 2], names=["stem", "gone", "mid", "head"]), tmp_path, "a.json")
    b = arch(mlp([8, 8, 8, 2], names=["stem", "mid", "new", "head"]), tmp_path, "b.json")
    d = diff(a, b, DiffOptions(detect_renames=False))
    order = [(kind, getattr(item, "b", None) or item.path) for kind, item in merged(d)]
    assert order.index(("removed", "gone")) == order.index(("same", "stem")) + 1 or \
        order.index(("removed", "gone")) < [p for _, p in order].index("mid")
    assert [p for _, p in order] == ["input_layer", "stem", "gone", "mid", "new", "head"]


def test_identical_text_report(cli):
    path = FIXTURES / "keras3" / "functional.keras"
    code, out, _ = cli("diff", path, FIXTURES / "keras2" / "functional.h5")
    assert code == 0
    assert out.splitlines()[0] == "archdiff: identical"
    assert "identical (serialization noise aside)" in out


def test_renderers_never_print(pair, capsys):
    d = diff(*pair)
    render_text(d)
    render_markdown(d)
    assert capsys.readouterr() == ("", "")


def test_schema_file_is_package_data():
    assert Path(ROOT / "archdiff" / "schemas" / "diff.schema.json").exists()
    assert "schemas/*.json" in (ROOT / "pyproject.toml").read_text()
