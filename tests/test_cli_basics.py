"""The light commands: layers, summary, export; bad input; no TensorFlow loaded."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile

import h5py
import networkx as nx
import pytest
from support import FIXTURES, ROOT, expected_for, run_cli

RESNET = FIXTURES / "keras3" / "resnet_small.keras"
NESTED_K2 = FIXTURES / "keras2" / "nested.h5"


def test_layers_json_rows_carry_the_documented_fields(cli):
    code, out, err = cli("layers", NESTED_K2, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["layers"]
    want = expected_for(NESTED_K2)["layers"]
    assert [(r["index"], r["name"], r["path"], r["depth"], r["class_name"], r["params"]) for r in rows] == \
           [(w["index"], w["name"], w["path"], w["depth"], w["class_name"], w["params"]) for w in want]
    for r in rows:
        assert {"output_shape", "trainable"} <= set(r)


def test_layers_grep_and_csv(cli):
    code, out, _ = cli("layers", RESNET, "--grep", "conv2_block1", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and all("conv2_block1" in r["path"] for r in rows)
    names = [l["name"] for l in expected_for(RESNET)["layers"]]
    for r in rows:
        assert names[int(r["index"])] == r["name"]


def test_layers_text_shows_nested_paths(cli):
    code, out, _ = cli("layers", FIXTURES / "keras3" / "nested.keras")
    assert code == 0
    assert "base/conv1" in out and "head/head_dense" in out


def test_summary_totals_equal_count_params(cli):
    for path in (RESNET, NESTED_K2, FIXTURES / "keras3" / "sequential.json"):
        code, out, _ = cli("summary", path, "--format", "json")
        assert code == 0
        data = json.loads(out)
        want = expected_for(path)
        assert (data["total_params"], data["trainable_params"], data["non_trainable_params"]) == \
               (want["total_params"], want["trainable_params"], want["non_trainable_params"])
    code, out, _ = cli("summary", RESNET)
    assert f"Total params: {expected_for(RESNET)['total_params']:,}" in out


@pytest.mark.parametrize("fmt,reader", [
    ("graphml", nx.read_graphml),
    ("gexf", nx.read_gexf),
])
def test_graph_exports_read_back(tmp_path, cli, fmt, reader):
    out = tmp_path / f"model.{fmt}"
    code, _, err = cli("export", FIXTURES / "keras3" / "functional.keras", "-o", out)
    assert code == 0, err
    g = reader(out)
    assert g.number_of_nodes() == 8
    # shared_dense is called twice: two edges in, one node.
    assert sum(1 for u, v in g.edges() if v == "shared_dense") == 2


def test_node_link_and_dot_exports(tmp_path, cli):
    out = tmp_path / "g.json"
    code, _, _ = cli("export", FIXTURES / "keras3" / "nested.keras", "--format", "node-link", "-o", out)
    assert code == 0
    g = nx.node_link_graph(json.loads(out.read_text()), edges="edges")
    assert "base/conv1" in g and g.nodes["base/conv1"]["parent"] == "base"
    code, text, _ = cli("export", FIXTURES / "keras3" / "nested.keras", "--format", "dot")
    assert code == 0 and text.startswith("digraph") and "cluster_base" in text


def test_light_commands_never_import_tensorflow(tmp_path):
    """layers, summary, export and importing archdiff load neither tensorflow nor keras."""
    code = f"""
import sys
import archdiff
from archdiff.cli.main import main
for args in (["layers", {str(RESNET)!r}], ["summary", {str(NESTED_K2)!r}],
             ["layers", {str(FIXTURES / "keras2" / "nested.yaml")!r}],
             ["export", {str(RESNET)!r}, "-o", {str(tmp_path / "m.json")!r}],
             ["export", {str(RESNET)!r}, "-o", {str(tmp_path / "m.yaml")!r}],
             ["export", {str(RESNET)!r}, "-o", {str(tmp_path / "m.graphml")!r}],
             ["export", {str(RESNET)!r}, "-o", {str(tmp_path / "m.dot")!r}]):
    assert main(args) == 0, args
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "jax", "torch"))
print("HEAVY:" + ",".join(heavy))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY:"


# -- bad input: one line, exit 2, no traceback, no output file -----------------------
def _truncated(src, dst, keep=0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def bad_inputs(tmp):
    cases = {}
    cases["missing"] = tmp / "nope.keras"
    cases["directory"] = tmp
    cases["truncated-zip"] = _truncated(RESNET, tmp / "trunc.keras")
    cases["truncated-h5"] = _truncated(FIXTURES / "keras3" / "resnet_small.h5", tmp / "trunc.h5")
    cases["json-not-model"] = tmp / "data.json"
    cases["json-not-model"].write_text('{"hello": [1, 2, 3]}')
    cases["yaml-python-tag"] = tmp / "evil.yaml"
    cases["yaml-python-tag"].write_text(
        "!!python/object/apply:os.system ['touch " + str(tmp / "pwned") + "']\n")
    cases["unknown-suffix"] = tmp / "model.onnx"
    cases["unknown-suffix"].write_bytes(b"\x08\x01")
    soft = tmp / "soft.h5"
    with h5py.File(soft, "w") as f:
        f.attrs["layer_names"] = [b"d"]
        g = f.create_group("d")
        g.attrs["weight_names"] = [b"d/kernel:0"]
        f.create_dataset("real", data=[1.0])
        g["d"] = h5py.SoftLink("/real")
    cases["h5-soft-link"] = soft
    ext = tmp / "ext.h5"
    with h5py.File(ext, "w") as f:
        f.attrs["layer_names"] = [b"d"]
        g = f.create_group("d")
        g.attrs["weight_names"] = [b"kernel:0"]
        g["kernel:0"] = h5py.ExternalLink("/etc/passwd", "/x")
    cases["h5-external-link"] = ext
    noconf = tmp / "noconfig.keras"
    with zipfile.ZipFile(noconf, "w") as z:
        z.writestr("metadata.json", "{}")
    cases["keras-without-config"] = noconf
    return cases


@pytest.mark.parametrize("case", ["missing", "directory", "truncated-zip", "truncated-h5", "json-not-model",
                                  "yaml-python-tag", "unknown-suffix", "h5-soft-link", "h5-external-link",
                                  "keras-without-config"])
@pytest.mark.parametrize("command", ["layers", "summary", "export"])
def test_bad_input_gets_one_line_and_exit_2(tmp_path, case, command):
    inputs = tmp_path / "in"
    inputs.mkdir()
    path = bad_inputs(inputs)[case]
    before = {p: p.read_bytes() for p in inputs.iterdir() if p.is_file()}
    out = tmp_path / "out.json"
    args = [command, path] + (["-o", out] if command == "export" else [])
    done = run_cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("archdiff: error: ") and "Traceback" not in done.stderr
    assert str(path) in lines[0] or os.path.basename(str(path)) in lines[0]
    assert done.stdout == ""
    assert not out.exists()
    assert not (inputs / "pwned").exists()
    assert {p: p.read_bytes() for p in inputs.iterdir() if p.is_file()} == before


def test_export_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / "m.json"
    src.write_bytes((FIXTURES / "keras3" / "functional.json").read_bytes())
    before = src.read_bytes()
    done = run_cli("export", src, "-o", src)
    assert done.returncode == 2 and "is the input" in done.stderr
    assert src.read_bytes() == before


def test_old_keras_yaml_with_python_tuples_is_read_safely():
    """Old Keras' to_yaml wrote !!python/tuple; archdiff reads it as a list, nothing else."""
    path = FIXTURES / "keras2" / "resnet_small.pyyaml.yaml"
    assert "!!python/tuple" in path.read_text()
    done = run_cli("layers", path, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["layers"]) == len(expected_for(path)["layers"])


def test_layers_grep_without_a_match_exits_1_like_grep(cli):
    from support import FIXTURES

    code, out, err = cli("layers", FIXTURES / "keras3" / "functional.keras", "--grep", "no_such_layer_xyz")
    assert code == 1 and out == ""
    assert "no layer path or class matches --grep no_such_layer_xyz" in err
    code, out, _ = cli("layers", FIXTURES / "keras3" / "functional.keras", "--grep", "main_output")
    assert code == 0 and "main_output" in out
