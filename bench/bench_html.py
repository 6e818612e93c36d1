"""Benchmarks of the HTML report: how big the page is and how fast it opens in headless Chromium.

Rows (sizes and load times ride along as extra keys and in the note):

* ``archdiff diff ResNet50.keras ResNet101.keras --format html`` (include_top=False, weights=None,
  built once with Keras and cached) against the same diff as ``--format json``, both as fresh
  processes: what the page costs to write over the JSON report. Target: the page under 1 MB and
  ready in headless Chromium in under 1 s.
* The same for a 1,000-layer pair: synthetic Keras 3 JSON written here (no Keras), residual blocks
  named like keras.applications' ResNets, B with every 11th block's second conv dilated. Target:
  under 1.5 MB, ready in under 1.5 s; "Expand all" (both panes, ~2,000 nodes laid out) is timed too.
* ``archdiff export ResNet101.keras --format html`` (the one-model page) against ``--format json``.

"ready" is the time from navigation to the page's ``<html data-ready=true>`` marker (the first
layout drawn), read from ``performance.now()`` in the page; headless Chromium is Debian's
``/usr/bin/chromium`` (or ``ARCHDIFF_CHROMIUM``) driven by Playwright. Without them the rows keep
the sizes and say why the load times are missing.

Run: ``.venv/bin/python -c "import bench.bench_html as b; print(b.run())"``.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import CACHE, ENV, archdiff_argv, ensure_application, row, time_command

CHROMIUM = os.environ.get("ARCHDIFF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Page loads per report; the median is reported.
LOADS = 3


# -- a synthetic 1,000-layer pair ---------------------------------------------------------------
_DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
_INIT = {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None},
         "registered_name": None}


def _layer(cls: str, name: str, inputs: list[str], **cfg) -> dict:
    args = [{"class_name": "__keras_tensor__", "config": {"shape": None, "dtype": "float32",
                                                         "keras_history": [i, 0, 0]}} for i in inputs]
    return {"module": "keras.layers", "class_name": cls, "registered_name": None, "name": name,
            "config": {"name": name, "trainable": True, "dtype": dict(_DTYPE), **cfg},
            "inbound_nodes": [{"args": args if len(args) == 1 else [args], "kwargs": {}}]}


def residual_config(n_layers: int, *, changed_every: int = 0, change_all: bool = False) -> dict:
    """About n_layers layers: conv-bn-relu-conv-bn-add-relu blocks in stages of 40 blocks.

    ``change_all``: every Conv2D, BatchNormalization and Activation changed (the worst case for the
    page: nothing folds into runs)."""
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": "input",
               "config": {"batch_shape": [None, 16, 16, 8], "dtype": "float32", "sparse": False, "name": "input"},
               "inbound_nodes": []}]
    conv = dict(filters=8, kernel_size=[3, 3], strides=[1, 1], padding="same", data_format="channels_last",
                groups=1, activation="linear", use_bias=False, kernel_initializer=_INIT)
    bn = dict(axis=-1, momentum=0.99, epsilon=0.002 if change_all else 0.001, center=True, scale=True)
    act = "gelu" if change_all else "relu"
    x, block = "input", 0
    while len(layers) + 9 <= n_layers:
        p = f"conv{2 + block // 40}_block{block % 40 + 1}"
        block += 1
        dilation = [2, 2] if change_all or (changed_every and block % changed_every == 0) else [1, 1]
        layers += [_layer("Conv2D", f"{p}_1_conv", [x], dilation_rate=[3, 3] if change_all else [1, 1], **conv),
                   _layer("BatchNormalization", f"{p}_1_bn", [f"{p}_1_conv"], **bn),
                   _layer("Activation", f"{p}_1_relu", [f"{p}_1_bn"], activation=act),
                   _layer("Conv2D", f"{p}_2_conv", [f"{p}_1_relu"], dilation_rate=dilation, **conv),
                   _layer("BatchNormalization", f"{p}_2_bn", [f"{p}_2_conv"], **bn),
                   _layer("Add", f"{p}_add", [x, f"{p}_2_bn"]),
                   _layer("Activation", f"{p}_out", [f"{p}_add"], activation=act)]
        x = f"{p}_out"
    layers += [_layer("GlobalAveragePooling2D", "avg_pool", [x], data_format="channels_last", keepdims=False),
               _layer("Dense", "predictions", ["avg_pool"], units=10, activation="softmax", use_bias=True,
                      kernel_initializer=_INIT)]
    return {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": "residual", "trainable": True, "layers": layers, "input_layers": ["input", 0, 0],
                       "output_layers": ["predictions", 0, 0]},
            "keras_version": "3.15.1", "backend": "tensorflow"}


def synthetic_pair(n_layers: int = 1000) -> tuple[Path, Path]:
    folder = CACHE / "html"
    folder.mkdir(parents=True, exist_ok=True)
    a, b = folder / f"residual_{n_layers}_a.json", folder / f"residual_{n_layers}_b.json"
    a.write_text(json.dumps(residual_config(n_layers)))
    b.write_text(json.dumps(residual_config(n_layers, changed_every=11)))
    return a, b


def worst_case_b(n_layers: int = 1000) -> Path:
    """B of the pair with every conv, batch-norm and activation changed."""
    b = CACHE / "html" / f"residual_{n_layers}_all_changed.json"
    b.write_text(json.dumps(residual_config(n_layers, change_all=True)))
    return b


# -- measuring ------------------------------------------------------------------------------------
def _write(argv: list[str]) -> None:
    result = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr}")


def _time(argv: list[str]) -> float:
    # diff exits 1 when the models differ: time it through a shell that forgives that.
    return time_command(["sh", "-c", " ".join(f"'{a}'" for a in argv) + " >/dev/null; exit 0"], repeat=3)


def load_times(page: Path, *, expand_all: bool = False) -> dict:
    """Median ready time in headless Chromium (and "Expand all"), or why there is none."""
    if not os.path.exists(CHROMIUM):
        return {"why": f"no Chromium at {CHROMIUM}"}
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"why": "Playwright is not installed"}
    ready, wall, expand = [], [], []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                       args=CHROMIUM_ARGS,
                                                       viewport={"width": 1600, "height": 1000})
        try:
            for _ in range(LOADS):
                tab = context.new_page()
                start = time.perf_counter()
                tab.goto(page.resolve().as_uri())
                tab.wait_for_selector("html[data-ready=true]", timeout=120_000)
                wall.append(time.perf_counter() - start)
                ready.append(tab.evaluate("window.archdiff.timings.ready_ms") / 1000)
                if expand_all:
                    start = time.perf_counter()
                    tab.click("#expand-all")
                    tab.evaluate("window.archdiff.idle()")
                    expand.append(time.perf_counter() - start)
                tab.close()
        finally:
            context.close()
    out = {"ready_s": round(sorted(ready)[len(ready) // 2], 3), "open_s": round(sorted(wall)[len(wall) // 2], 3)}
    if expand:
        out["expand_all_s"] = round(sorted(expand)[len(expand) // 2], 3)
    return out


def _row(name: str, html_argv: list[str], json_argv: list[str], page: Path, *, target: str,
         expand_all: bool = False) -> dict:
    _write(html_argv)
    ours = _time(html_argv)
    baseline = _time(json_argv)
    size = page.stat().st_size
    loads = load_times(page, expand_all=expand_all)
    note = f"page {size / 1e6:.2f} MB"
    if "ready_s" in loads:
        note += f"; ready in Chromium {loads['ready_s']:.2f} s"
        if "expand_all_s" in loads:
            note += f"; expand all {loads['expand_all_s']:.2f} s"
    else:
        note += f"; load time not measured: {loads['why']}"
    out = row(name, ours, "same command, --format json", baseline, target=target, note=note)
    out.update({"html_bytes": size, **{k: v for k, v in loads.items() if k != "why"}})
    return out


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        r50 = ensure_application("ResNet50", include_top=False)
        r101 = ensure_application("ResNet101", include_top=False)
        page = tmp / "resnet.html"
        rows.append(_row("diff --format html: ResNet50 vs ResNet101",
                         archdiff_argv("diff", str(r50), str(r101), "--format", "html", "-o", str(page)),
                         archdiff_argv("diff", str(r50), str(r101), "--format", "json"), page,
                         target="page < 1 MB, ready < 1 s"))
        a, b = synthetic_pair(1000)
        page = tmp / "synthetic.html"
        rows.append(_row("diff --format html: 1,000-layer synthetic pair",
                         archdiff_argv("diff", str(a), str(b), "--format", "html", "-o", str(page)),
                         archdiff_argv("diff", str(a), str(b), "--format", "json"), page,
                         target="page < 1.5 MB, ready < 1.5 s", expand_all=True))
        big_a, big_b = synthetic_pair(10_000)
        page = tmp / "synthetic10k.html"
        rows.append(_row("diff --format html: 10,000-layer synthetic pair",
                         archdiff_argv("diff", str(big_a), str(big_b), "--format", "html", "-o", str(page)),
                         archdiff_argv("diff", str(big_a), str(big_b), "--format", "json"), page,
                         target="ready in headless Chromium < 2 s (issue 19)"))
        worst = worst_case_b(1000)
        page = tmp / "worst.html"
        rows.append(_row("diff --format html: 1,000 layers, nearly every layer changed",
                         archdiff_argv("diff", str(a), str(worst), "--format", "html", "-o", str(page)),
                         archdiff_argv("diff", str(a), str(worst), "--format", "json"), page,
                         target="opens (nothing folds: ~2,000 nodes laid out)"))
        page = tmp / "model.html"
        rows.append(_row("export --format html: ResNet101",
                         archdiff_argv("export", str(r101), "--format", "html", "-o", str(page)),
                         archdiff_argv("export", str(r101), "--format", "json"), page,
                         target="page < 1 MB, ready < 1 s"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(json.dumps(r))
