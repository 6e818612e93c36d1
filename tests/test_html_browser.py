"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Each test opens a report from a file:// URL and checks that it loaded without console errors and
without a single network request, that the counts it shows equal the JSON report's, and that
clicking a changed layer shows its old -> new values. Screenshots and load times are saved in
``.archdiff-test-artifacts/`` (ignored by git; CI keeps it as an artifact).

These tests fail (they do not skip) when Chromium or Playwright is missing: CI installs both.
``ARCHDIFF_CHROMIUM`` points at another Chromium binary.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from support import ROOT, run_cli
from test_html import residual_net, small_cnn, write

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ARCHDIFF_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / ".archdiff-test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"headless Chromium is not installed at {CHROMIUM}: the browser tests need Debian's chromium "
                    "package (apt-get install -y chromium; `make test` installs it), or ARCHDIFF_CHROMIUM=/path",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is not installed: pip install -e '.[test]' (it pins playwright); "
                    "do not run `playwright install`, the tests use the system Chromium", pytrace=False)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport=VIEWPORT)
        try:
            yield context
        finally:
            context.close()


class Report:
    """One opened report: the page, and what it logged and requested.

    The page's CSP forbids eval, so waits go through ``window.archdiff.idle()`` (a promise), never
    ``wait_for_function`` with a string."""

    def __init__(self, context, path: Path):
        self.path = path
        self.url = path.resolve().as_uri()
        self.page = context.new_page()
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        start = time.perf_counter()
        self.page.goto(self.url)
        self.page.wait_for_selector("html[data-ready=true]", timeout=120_000)
        self.load_s = time.perf_counter() - start
        self.timings = self.page.evaluate("window.archdiff.timings")

    def check_clean(self) -> None:
        bad = [(t, m) for t, m in self.console if t in ("error", "warning")]
        assert not bad, f"console errors: {bad}"
        assert not self.errors, f"uncaught errors: {self.errors}"
        assert self.requests == [self.url], f"the page fetched something: {self.requests[1:]}"
        assert not self.dialogs

    def counts(self) -> dict[str, str]:
        return self.page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-count]')]"
            ".map(e => [e.dataset.count, e.dataset.value ?? e.textContent.trim()]))")

    def click_node(self, name: str, pane: int = 2) -> None:
        assert self.page.evaluate("name => window.archdiff.reveal(name)", name), f"no layer {name}"
        self.page.locator(f".pane:nth-child({pane}) .node[data-item]", has_text=name).first.click()
        self.page.wait_for_selector("#details:not([hidden])")
        self.settle()

    def settle(self) -> None:
        """Wait for the layouts asked for so far (big ones run on the next frame)."""
        self.page.evaluate("window.archdiff.idle()")

    def details(self) -> str:
        return self.page.inner_text("#details")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        out = ARTIFACTS / name
        self.page.screenshot(path=str(out))
        return out

    def close(self) -> None:
        self.page.close()


def _number(text: str) -> int:
    return int(text.replace(",", "").replace("−", "-").strip())


def _record_timing(name: str, report: Report, size: int) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "html-load-times.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {"html_bytes": size, "load_s": round(report.load_s, 3),
                  **{k: round(v, 1) for k, v in report.timings.items()}}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _reports(a: Path, b: Path, out: Path) -> dict:
    result = run_cli("diff", a, b, "--format", "html", "-o", out)
    assert result.returncode in (0, 1), result.stderr
    result = run_cli("diff", a, b, "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def _check_counts(report: Report, expected: dict) -> None:
    shown = report.counts()
    summary = expected["summary"]
    for key in ("matched", "changed", "renamed", "unchanged", "added", "removed"):
        assert _number(shown[key]) == summary[key], key
    if expected["compared_topology"]:
        assert _number(shown["edges_added"]) == summary["edges_added"]
        assert _number(shown["edges_removed"]) == summary["edges_removed"]
    assert _number(shown["io_changes"]) == summary["io_changes"]
    assert _number(shown["layers_a"]) == expected["a"]["layers"]
    assert _number(shown["layers_b"]) == expected["b"]["layers"]
    assert shown["classification"] == expected["classification"]
    assert int(shown["exit_code"]) == expected["exit_code"]
    if expected["params"]["a"] is not None:
        assert _number(shown["params_a"]) == expected["params"]["a"]
        assert _number(shown["params_b"]) == expected["params"]["b"]


# -- the tests -------------------------------------------------------------------------------------------
def test_renamed_layer_diff(browser, tmp_path):
    a = write(small_cnn(renamed=False), tmp_path / "cnn_v1.json")
    b = write(small_cnn(renamed=True), tmp_path / "cnn_v2.json")
    out = tmp_path / "renamed.html"
    expected = _reports(a, b, out)
    assert expected["summary"]["renamed"] == 2
    report = Report(browser, out)
    try:
        report.check_clean()
        _check_counts(report, expected)
        # A changed layer: old -> new values, with the changed config key highlighted.
        report.click_node("fc")
        text = report.details()
        assert "units" in text and "64" in text and "128" in text
        assert report.page.locator("#details .kv tr.chg th", has_text="units").count() == 1
        assert report.page.locator("#details .changes .old", has_text="64").count() >= 1
        assert report.page.locator("#details .changes .new", has_text="128").count() >= 1
        report.screenshot("html-renamed-diff-changed-layer.png")
        # A renamed layer: both names, and how it was matched.
        report.click_node("stem_conv")
        text = report.details()
        assert "conv1" in text and "stem_conv" in text and "neighbours" in text
        # The same layer is marked in A's pane too, under its old name.
        assert report.page.locator(".pane:nth-child(1) .node.twin", has_text="conv1").count() == 1
        report.screenshot("html-renamed-diff.png")
        # Merged view: one graph, the rename drawn as old -> new.
        report.page.click("#view-toggle [data-view=merged]")
        report.settle()
        assert report.page.locator(".node", has_text="conv1 → stem_conv").count() == 1
        report.screenshot("html-renamed-diff-merged.png")
        report.check_clean()
    finally:
        report.close()


def test_search_zoom_and_runs(browser, tmp_path):
    a = write(residual_net(160), tmp_path / "a.json")
    b = write(residual_net(160, changed_every=7), tmp_path / "b.json")
    out = tmp_path / "runs.html"
    expected = _reports(a, b, out)
    report = Report(browser, out)
    try:
        report.check_clean()
        _check_counts(report, expected)
        page = report.page
        runs = page.locator(".pane:nth-child(2) .node.run")
        assert runs.count() >= 1
        before = page.evaluate("window.archdiff.visibleNodes()")
        runs.first.click()  # a collapsed run expands on click
        report.settle()
        assert page.evaluate("window.archdiff.visibleNodes()") > before
        # Search by name: the layer is selected, its run expanded, its details shown.
        page.fill("#search", "conv2_block9_2_bn")
        page.keyboard.press("Enter")
        page.wait_for_selector("#details:not([hidden])")
        report.settle()
        assert "conv2_block9_2_bn" in report.details()
        assert page.locator(".node.sel", has_text="conv2_block9_2_bn").count() == 2  # in A and in B
        # Zoom and pan change the viewport's transform.
        transform = page.get_attribute(".pane:nth-child(2) .viewport", "transform")
        page.click("#zoom-in")
        page.wait_for_timeout(50)
        assert page.get_attribute(".pane:nth-child(2) .viewport", "transform") != transform
        box = page.locator(".pane:nth-child(2) .canvas").bounding_box()
        page.mouse.move(box["x"] + 200, box["y"] + 300)
        page.mouse.down()
        page.mouse.move(box["x"] + 260, box["y"] + 200, steps=5)
        page.mouse.up()
        page.wait_for_timeout(50)
        moved = page.get_attribute(".pane:nth-child(2) .viewport", "transform")
        assert moved != transform
        page.click("#expand-all")
        report.settle()
        assert page.locator(".node.run").count() == 0
        report.check_clean()
    finally:
        report.close()


def test_model_view(browser, tmp_path):
    src = write(residual_net(60), tmp_path / "model.json")
    out = tmp_path / "model.html"
    result = run_cli("export", src, "-o", out)
    assert result.returncode == 0, result.stderr
    report = Report(browser, out)
    try:
        report.check_clean()
        assert _number(report.counts()["layers_total"]) == len(json.loads(src.read_text())["config"]["layers"])
        report.click_node("conv2_block3_1_conv", pane=1)
        assert "kernel" in report.details() and "(3, 3, 8, 8)" in report.details()
        report.screenshot("html-model-view.png")
    finally:
        report.close()


def test_hostile_names_stay_text(browser, tmp_path):
    from test_html import dense, functional, input_layer

    evil = "<img src=x onerror=alert(1)>"
    a = write(functional([input_layer("in", [4]), dense("d", 2, "in")], ["in"], ["d"], name="m"), tmp_path / "a.json")
    b = write(functional([input_layer("in", [4]), dense(evil, 2, "in")], ["in"], [evil], name="m"), tmp_path / "b.json")
    out = tmp_path / "evil.html"
    _reports(a, b, out)
    report = Report(browser, out)
    try:
        report.check_clean()
        assert report.page.locator("img").count() == 0
        assert report.page.locator(".node", has_text=evil).count() >= 1
    finally:
        report.close()


def test_1000_layer_diff_opens_and_stays_responsive(browser, tmp_path):
    a = write(residual_net(1000), tmp_path / "a1000.json")
    b = write(residual_net(1000, changed_every=11), tmp_path / "b1000.json")
    out = tmp_path / "big.html"
    expected = _reports(a, b, out)
    assert expected["a"]["layers"] >= 990
    report = Report(browser, out)
    try:
        report.check_clean()
        _check_counts(report, expected)
        _record_timing("residual_1000", report, out.stat().st_size)
        # Everything expanded, in both panes: still lays out (in segments) and draws.
        start = time.perf_counter()
        report.page.click("#expand-all")
        report.settle()
        expand_s = time.perf_counter() - start
        assert report.page.evaluate("window.archdiff.visibleNodes()") > 1900
        report.click_node("conv3_block4_2_conv")
        assert "dilation_rate" in report.details()
        report.screenshot("html-1000-layers-expanded.png")
        path = ARTIFACTS / "html-load-times.json"
        data = json.loads(path.read_text())
        data["residual_1000"]["expand_all_s"] = round(expand_s, 3)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        report.check_clean()
    finally:
        report.close()


@pytest.mark.tensorflow
def test_resnet50_vs_resnet101(browser, tmp_path):
    code = (
        "import keras, sys\n"
        "keras.utils.set_random_seed(0)\n"
        "keras.applications.ResNet50(include_top=False, weights=None).save(sys.argv[1])\n"
        "keras.applications.ResNet101(include_top=False, weights=None).save(sys.argv[2])\n"
    )
    import subprocess
    import sys

    a, b = tmp_path / "resnet50.keras", tmp_path / "resnet101.keras"
    built = subprocess.run([sys.executable, "-c", code, a, b], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert built.returncode == 0, built.stderr[-2000:]
    out = tmp_path / "resnet50_vs_resnet101.html"
    expected = _reports(a, b, out)
    assert expected["summary"]["added"] == 170
    report = Report(browser, out)
    try:
        report.check_clean()
        _check_counts(report, expected)
        _record_timing("resnet50_vs_resnet101", report, out.stat().st_size)
        report.screenshot("html-resnet50-vs-resnet101.png")
        # conv5_block1's first convs now read conv4_block23_out, not conv4_block6_out.
        report.click_node("conv5_block1_0_conv")
        details = report.page.locator("#details .changes li", has_text="inputs")
        assert details.locator(".old").inner_text() == "conv4_block6_out"
        assert details.locator(".new").inner_text() == "conv4_block23_out"
        report.screenshot("html-resnet50-vs-resnet101-changed-layer.png")
        # The 170 added layers are one green box; a click expands them.
        report.page.keyboard.press("Escape")
        report.page.click("#zoom-fit")  # the whole graph in view
        report.page.locator(".pane:nth-child(2) .node.run.st-added").click()
        report.settle()
        report.page.wait_for_selector(".pane:nth-child(2) .node.st-added >> text=conv4_block23_out")
        report.page.click("#view-toggle [data-view=merged]")
        report.settle()
        report.screenshot("html-resnet50-vs-resnet101-merged.png")
        report.check_clean()
    finally:
        report.close()


def test_layers_changed_by_value_are_coloured_and_list_their_figures(browser, tmp_path):
    """A Keras 3 fixture with one kernel scaled by 1.5 (h5py): its node takes the 10%-100% colour, the legend
    explains the colours, and its panel lists each variable's figures."""
    import shutil

    import h5py

    from archdiff.diff.render.html import VALUE_BUCKETS

    a = ROOT / "fixtures" / "keras3" / "nested.keras"
    b = tmp_path / "retrained.weights.h5"
    shutil.copy(ROOT / "fixtures" / "keras3" / "nested.weights.h5", b)
    with h5py.File(b, "r+") as f:
        kernel = f["layers/dense/vars/0"]
        kernel[...] = kernel[()] * 1.5  # relative change 50%
    out = tmp_path / "values.html"
    expected = _reports(a, b, out)
    assert expected["values"]["changed"] == ["predictions"]
    report = Report(browser, out)
    try:
        report.check_clean()
        bucket = sum(0.5 >= bound for bound in VALUE_BUCKETS)
        assert report.page.locator(f".pane:nth-child(2) .node.vc{bucket}", has_text="predictions").count() == 1
        assert report.page.locator(".node.vc", has_text="base").count() == 0  # bitwise equal: not coloured
        report.click_node("predictions")
        text = report.details()
        assert "weight values" in text.lower() and "rel 50% · max |Δ|" in text and "bitwise equal" in text
        legend = report.page.inner_text("#summary") + report.page.inner_text("body")
        assert "10% – 100%" in legend
        report.screenshot("html-values-diff.png")
        report.check_clean()
    finally:
        report.close()
