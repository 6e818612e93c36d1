"""The HTML report's data and page, without a browser (tests/test_html_browser.py drives Chromium).

The configs are plain Keras 3 JSON written here (no TensorFlow), built by the helpers below, which
tests/test_html_browser.py imports too.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import FIXTURES, ROOT

from archdiff.diff import diff
from archdiff.diff.render.html import _split, diff_data, model_data, render_diff_html, render_model_html
from archdiff.read import load

# -- Keras 3 JSON builders (no Keras) ------------------------------------------------------
_DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
_GLOROT = {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None}, "registered_name": None}
_ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def _tensor(source: str) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"shape": None, "dtype": "float32",
                                                       "keras_history": [source, 0, 0]}}


def layer(class_name: str, name: str, inputs: list[str], **config) -> dict:
    cfg = {"name": name, "trainable": True, "dtype": dict(_DTYPE), **config}
    args = [_tensor(inputs[0])] if len(inputs) == 1 else [[_tensor(i) for i in inputs]]
    return {"module": "keras.layers", "class_name": class_name, "config": cfg, "registered_name": None,
            "name": name, "inbound_nodes": [{"args": args, "kwargs": {}}]}


def input_layer(name: str, shape: list) -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": name,
            "config": {"batch_shape": [None, *shape], "dtype": "float32", "sparse": False, "name": name},
            "inbound_nodes": []}


def conv(name: str, filters: int, source: str, strides: int = 1) -> dict:
    return layer("Conv2D", name, [source], filters=filters, kernel_size=[3, 3], strides=[strides, strides],
                 padding="same", data_format="channels_last", dilation_rate=[1, 1], groups=1,
                 activation="linear", use_bias=False, kernel_initializer=_GLOROT, bias_initializer=_ZEROS,
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None)


def bn(name: str, source: str) -> dict:
    return layer("BatchNormalization", name, [source], axis=-1, momentum=0.99, epsilon=0.001, center=True,
                 scale=True)


def relu(name: str, source: str) -> dict:
    return layer("Activation", name, [source], activation="relu")


def dense(name: str, units: int, source: str, activation: str = "linear") -> dict:
    return layer("Dense", name, [source], units=units, activation=activation, use_bias=True,
                 kernel_initializer=_GLOROT, bias_initializer=_ZEROS, kernel_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, bias_constraint=None)


def functional(layers: list[dict], inputs: list[str], outputs: list[str], name: str) -> dict:
    return {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": name, "trainable": True, "layers": layers,
                       "input_layers": [inputs[0], 0, 0] if len(inputs) == 1 else [[i, 0, 0] for i in inputs],
                       "output_layers": [outputs[0], 0, 0] if len(outputs) == 1 else [[o, 0, 0] for o in outputs]},
            "keras_version": "3.15.1", "backend": "tensorflow"}


def small_cnn(*, renamed: bool) -> dict:
    """A small CNN; with ``renamed``: two stem layers renamed, the head widened (64 -> 128 units),
    the dropout rate changed, a LayerNormalization added and the max-pooling removed."""
    stem_conv, stem_bn = ("stem_conv", "stem_bn") if renamed else ("conv1", "bn1")
    layers = [input_layer("image", [32, 32, 3]), conv(stem_conv, 16, "image"), bn(stem_bn, stem_conv),
              relu("relu1", stem_bn), conv("conv2", 32, "relu1"), bn("bn2", "conv2"), relu("relu2", "bn2")]
    if renamed:
        layers.append(conv("conv3", 64, "relu2", strides=2))
    else:
        layers.append(layer("MaxPooling2D", "pool", ["relu2"], pool_size=[2, 2], strides=[2, 2], padding="valid",
                            data_format="channels_last"))
        layers.append(conv("conv3", 64, "pool"))
    layers += [bn("bn3", "conv3"), relu("relu3", "bn3"),
               layer("GlobalAveragePooling2D", "gap", ["relu3"], data_format="channels_last", keepdims=False),
               dense("fc", 128 if renamed else 64, "gap", "relu")]
    last = "fc"
    if renamed:
        layers.append(layer("LayerNormalization", "head_norm", ["fc"], axis=[-1], epsilon=0.001, center=True,
                            scale=True, rms_scaling=False, beta_initializer=_ZEROS,
                            gamma_initializer={"module": "keras.initializers", "class_name": "Ones", "config": {},
                                               "registered_name": None},
                            beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                            gamma_constraint=None))
        last = "head_norm"
    layers += [layer("Dropout", "dropout", [last], rate=0.3 if renamed else 0.5, seed=None, noise_shape=None),
               dense("logits", 10, "dropout", "softmax")]
    return functional(layers, ["image"], ["logits"], name="cnn_v2" if renamed else "cnn")


def residual_net(n_layers: int, *, changed_every: int = 0, name: str = "resnet_like") -> dict:
    """About ``n_layers`` layers in stages of residual blocks (conv-bn-relu-conv-bn-add-relu),
    named like keras.applications' ResNets; ``changed_every``: every n-th conv gets more filters."""
    layers = [input_layer("input", [16, 16, 8])]
    x, block, count = "input", 0, 0
    while len(layers) + 7 + 2 <= n_layers:
        stage = 2 + block // 40
        p = f"conv{stage}_block{block % 40 + 1}"
        block += 1
        layers += [conv(f"{p}_1_conv", 8, x), bn(f"{p}_1_bn", f"{p}_1_conv"), relu(f"{p}_1_relu", f"{p}_1_bn")]
        count += 1
        filters = 8
        layers += [conv(f"{p}_2_conv", filters, f"{p}_1_relu"), bn(f"{p}_2_bn", f"{p}_2_conv"),
                   layer("Add", f"{p}_add", [x, f"{p}_2_bn"]), relu(f"{p}_out", f"{p}_add")]
        if changed_every and block % changed_every == 0:
            layers[-4]["config"]["dilation_rate"] = [2, 2]
        x = f"{p}_out"
    layers += [layer("GlobalAveragePooling2D", "avg_pool", [x], data_format="channels_last", keepdims=False),
               dense("predictions", 10, "avg_pool", "softmax")]
    return functional(layers, ["input"], ["predictions"], name=name)


def write(doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(doc))
    return path


def page_data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="archdiff-data">(.*?)</script>', text, re.S)
    assert m, "the page embeds its data"
    return json.loads(m.group(1))


@pytest.fixture
def renamed_pair(tmp_path):
    return write(small_cnn(renamed=False), tmp_path / "cnn_a.json"), write(small_cnn(renamed=True), tmp_path / "cnn_b.json")


# -- the embedded data ------------------------------------------------------------------------------
def _check_graph(g: dict) -> None:
    ids = [n[0] for n in g["nodes"]]
    assert len(ids) == len(set(ids))
    groups = {gr[0] for gr in g["groups"]}
    for n in g["nodes"]:
        assert n[2] == "" or n[2] in groups
    for src, dst, status in g["edges"]:
        assert src in ids and dst in ids and src != dst
        assert status in ("", "added", "removed", "order")


def test_data_reports_the_diff_unchanged(renamed_pair):
    a, b = load(renamed_pair[0]), load(renamed_pair[1])
    d = diff(a, b)
    data = diff_data(d, a, b)
    expected = json.loads(json.dumps(d.to_dict(), default=str))
    report = dict(data["report"])
    assert report.pop("policy") is None
    expected.pop("policy", None)
    assert report == expected  # ArchDiff.to_dict() is the page's single source of counts and changes
    for key in ("a", "b", "merged"):
        _check_graph(data["graphs"][key])
    statuses = {}
    for item in data["items"]:
        statuses[item["b"] or item["a"]] = (item["s"], item.get("r", False))
    assert statuses["stem_conv"] == ("renamed", True)
    assert statuses["fc"] == ("changed", False)
    assert statuses["head_norm"] == ("added", False)
    assert statuses["pool"] == ("removed", False)
    # A's removed edge into conv3 and B's new one are coloured in the merged drawing.
    merged = data["graphs"]["merged"]
    assert {e[2] for e in merged["edges"]} >= {"added", "removed"}


def test_nested_models_are_groups_and_edges_enter_them(tmp_path):
    arch = load(FIXTURES / "keras3" / "nested.keras")
    data = model_data(arch)
    g = data["graphs"]["b"]
    _check_graph(g)
    items = data["items"]
    group_names = sorted(items[gr[2]]["b"] for gr in g["groups"])
    assert group_names == ["base", "head"]
    path_of = {n[0]: (items[n[1]]["b"] if n[1] >= 0 else n[4]) for n in g["nodes"]}
    edges = {(path_of[s], path_of[t]) for s, t, _ in g["edges"]}
    # Into a nested model: to its input layer; out of it: from its output layer.
    assert ("image", "base/base_input") in edges
    assert ("base/gap", "head/head_input") in edges  # head_input is the Sequential's implicit input
    assert ("head/head_logits", "predictions") in edges
    assert not any("base" == p or "head" == p for p in path_of.values())


def test_keras2_and_keras3_nested_files_draw_the_same(tmp_path):
    a, b = load(FIXTURES / "keras3" / "nested.keras"), load(FIXTURES / "keras2" / "nested.h5")
    data = diff_data(diff(a, b), a, b)
    assert data["report"]["classification"] == "identical"
    assert len(data["graphs"]["a"]["edges"]) == len(data["graphs"]["b"]["edges"]) == len(
        data["graphs"]["merged"]["edges"])


def test_runs_are_contiguous_fold_renames_and_split_at_stages(tmp_path):
    a_doc = residual_net(200)
    b_doc = residual_net(200, changed_every=9)
    a = load(write(a_doc, tmp_path / "a.json"))
    b = load(write(b_doc, tmp_path / "b.json"))
    data = diff_data(diff(a, b), a, b)
    for run in data["runs"]:
        kinds = {data["items"][k]["s"] for k in range(run["from"], run["to"] + 1)}
        assert kinds <= ({"same", "renamed"} if run["s"] == "same" else {run["s"]})
    assert all(run["collapsed"] for run in data["runs"] if run["to"] - run["from"] + 1 >= 4 and run["s"] == "same")


def test_split_cuts_stages_but_not_auto_names():
    resnet = ([f"conv2_block{i}_{k}" for i in range(1, 4) for k in ("conv", "bn", "relu")]
              + [f"conv3_block{i}_{k}" for i in range(1, 4) for k in ("conv", "bn", "relu")])
    pieces = _split(list(range(len(resnet))), resnet)
    assert [len(p) for p in pieces] == [9, 9]
    auto = ["conv2d", "batch_normalization", "activation"] * 6
    auto = [f"{n}_{i}" for i, n in enumerate(auto)]
    assert len(_split(list(range(len(auto))), auto)) == 1


def test_weights_only_inputs_still_draw(tmp_path):
    a, b = load(FIXTURES / "keras3" / "functional.weights.h5"), load(FIXTURES / "keras3" / "functional.keras")
    data = diff_data(diff(a, b), a, b)
    assert data["topology"] == {"a": False, "b": True}
    assert any(e[2] == "order" for e in data["graphs"]["a"]["edges"])  # kept in file order, top to bottom
    page = render_diff_html(diff(a, b), a, b)
    assert 'data-ready' not in page.split("<script")[0]  # ready is set by the script, not the markup


# -- the page ---------------------------------------------------------------------------------------
def test_page_is_self_contained(renamed_pair):
    a, b = load(renamed_pair[0]), load(renamed_pair[1])
    page = render_diff_html(diff(a, b), a, b)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", page, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page, re.I)
    assert "@import" not in page and "url(http" not in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src &#x27;none&#x27;" in csp or "default-src 'none'" in csp
    assert "sourceMappingURL" not in page
    assert page.count("<script") == 3  # the data, dagre, the app


def test_hostile_names_cannot_break_out_of_the_page(tmp_path):
    evil = "</script><img src=x onerror=alert(1)><!--"
    doc = functional([input_layer("in", [4]), dense(evil, 2, "in")], ["in"], [evil], name="m</script>")
    arch = load(write(doc, tmp_path / "evil.json"))
    page = render_model_html(arch)
    assert evil not in page
    assert page_data(page)["items"][1]["b"] == evil  # still the real name, once parsed
    assert "<img src=x" not in page.replace("&lt;img src=x", "")


def test_cli_diff_html_needs_an_output_file(renamed_pair, cli):
    code, out, err = cli("diff", *renamed_pair, "--format", "html")
    assert code == 2
    assert "-o" in err and out == ""


def test_cli_writes_the_pages(renamed_pair, tmp_path, cli):
    out = tmp_path / "report.html"
    code, _, err = cli("diff", *renamed_pair, "--format", "html", "-o", out)
    assert code == 1, err
    data = page_data(out.read_text())
    code, text, _ = cli("diff", *renamed_pair, "--format", "json")
    report = json.loads(text)
    assert data["report"]["summary"] == report["summary"]
    assert data["report"]["classification"] == report["classification"]
    model_page = tmp_path / "model.html"
    assert cli("export", renamed_pair[0], "-o", model_page)[0] == 0  # the format follows the suffix
    assert page_data(model_page.read_text())["kind"] == "model"
    code, text, _ = cli("export", renamed_pair[0], "--format", "html")
    assert code == 0 and text.startswith("<!DOCTYPE html>")


def test_html_report_needs_no_tensorflow(renamed_pair, tmp_path):
    out = tmp_path / "r.html"
    code = (
        "import sys\n"
        "from archdiff.cli import main\n"
        f"rc = main(['diff', {str(renamed_pair[0])!r}, {str(renamed_pair[1])!r}, '--format', 'html', '-o', {str(out)!r}])\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "sys.exit(rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert out.stat().st_size > 0


def test_assets_ship_with_the_package():
    from importlib import resources

    base = resources.files("archdiff.diff.render").joinpath("assets")
    for name in ("template.html", "app.js", "style.css", "vendor/dagre.min.js", "vendor/LICENSE-dagre.txt"):
        assert base.joinpath(name).is_file(), name
