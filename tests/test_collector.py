"""The cyclic collector while archdiff reads and compares (archdiff.limits.collector_paused).

A read and a diff build large acyclic structures; the collector is paused for
them (a 10,000-layer JSON pair: about a tenth of its diff, bench/bench_diff.py)
and comes back as it was. These tests pin that it is paused where it should
be, that the caller's setting survives (an exception included), and that the
faster copy the shape inference makes of each layer is ``dataclasses.replace``.
"""
from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import pytest

from archdiff.limits import collector_paused
from archdiff.model import Layer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


@pytest.mark.usefixtures("collector_on")
def test_paused_inside_and_back_after():
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_back_after_an_exception():
    with pytest.raises(KeyError):
        with collector_paused():
            raise KeyError("x")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_caller_who_turned_it_off_keeps_it_off():
    gc.disable()
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()  # the inner block does not turn it on for the outer one
    assert not gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_json_read_and_its_inference_run_paused(monkeypatch):
    from archdiff.read import dispatch

    seen = {}
    real_load, real_infer = dispatch._load_json_here, dispatch._infer

    def load_here(path):
        seen["read"] = gc.isenabled()
        return real_load(path)

    def infer(arch):
        seen["infer"] = gc.isenabled()
        return real_infer(arch)

    monkeypatch.setattr(dispatch, "_load_json_here", load_here)
    monkeypatch.setattr(dispatch, "_infer", infer)
    arch = dispatch.load(str(FIXTURES / "keras3" / "functional.json"))
    assert seen == {"read": False, "infer": False}
    assert gc.isenabled()
    assert arch.layers and all(layer.output_shapes for layer in arch.layers)


@pytest.mark.usefixtures("collector_on")
def test_a_diff_runs_paused(monkeypatch):
    from archdiff.diff import engine
    from archdiff.read import load

    a = load(str(FIXTURES / "keras3" / "functional.json"))
    seen = []
    real = engine._Differ.run

    def run(self):
        seen.append(gc.isenabled())
        return real(self)

    monkeypatch.setattr(engine._Differ, "run", run)
    engine.diff(a, a)
    assert seen == [False]
    assert gc.isenabled()


def _fixture_layers():
    from archdiff.read import load

    out = []
    for name in ("keras3/functional.keras", "keras3/nested.keras", "keras2/resnet_small.h5", "keras2/nested.h5"):
        out += load(str(FIXTURES / name)).layers
    return out


def test_the_inference_copy_of_a_layer_is_dataclasses_replace():
    from archdiff.shapes.propagate import _with_changes

    layers = _fixture_layers()
    assert len(layers) > 20
    for layer in layers:
        for changes in ({"output_shapes": ((None, 3),)}, {"weights": ()},
                        {"weights": None, "output_shapes": None}, {}):
            got, want = _with_changes(layer, dict(changes)), dataclasses.replace(layer, **changes)
            assert got == want
            # Fields left out of ==, too.
            assert all(getattr(got, f.name) is getattr(want, f.name) or getattr(got, f.name) == getattr(want, f.name)
                       for f in dataclasses.fields(Layer))
            assert type(got) is Layer and got is not layer
    with pytest.raises(dataclasses.FrozenInstanceError):
        _with_changes(layers[0], {"weights": ()}).name = "x"


def test_the_inference_copy_refuses_what_replace_refuses():
    from archdiff.shapes.propagate import _with_changes

    layer = _fixture_layers()[0]
    with pytest.raises(TypeError):
        _with_changes(layer, {"not_a_field": 1})
