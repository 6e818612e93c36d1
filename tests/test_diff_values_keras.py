"""Weight values in the diff on models Keras trains and saves itself, in every format, across Keras versions.

Keras 3 builds a small model with a nested base, saves it, trains a copy with the base frozen
(``trainable = False``), saves that, and records both models' arrays (``get_weights()``) in an
``.npz``. tf-keras builds the same model and saves it as ``.h5``; Keras 3 ports those weights into
its own model (``set_weights``), moves one layer and saves a ``.keras``. The diff must report
exactly the layers whose arrays differ in the ``.npz``, with figures equal to numpy's on those
arrays, whatever the pair of formats; a layer declared frozen that moved and a NaN fail the gate.
"""
from __future__ import annotations

import numpy as np
import pytest
from keras_build import build

import archdiff
from archdiff.diff import diff
from archdiff.diff.policy import check, parse_policy

pytestmark = pytest.mark.tensorflow

MODEL = r'''
import numpy as np
L = keras.layers


def make():
    inner_in = keras.Input((8, 8, 3), name="inner_in")
    h = L.Conv2D(4, 3, name="conv")(inner_in)
    h = L.BatchNormalization(name="bn")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    base = keras.Model(inner_in, h, name="base")
    x = keras.Input((8, 8, 3), name="image")
    y = L.Dense(3, name="head")(L.Dense(6, activation="relu", name="fc")(base(x)))
    return keras.Model(x, y, name="net")


LAYERS = {"base/conv": ("base", "conv"), "base/bn": ("base", "bn"), "fc": ("fc",), "head": ("head",)}


def layer_of(model, path):
    found = model
    for name in LAYERS[path]:
        found = found.get_layer(name)
    return found


def arrays(prefix, model, out):
    for path in LAYERS:
        for i, w in enumerate(layer_of(model, path).get_weights()):
            out[f"{prefix}|{path}|{i}"] = w
'''

K2_BUILD = MODEL + r'''
m = make()
m.save(OUT + "/k2.h5")
out = {}
arrays("k2", m, out)
np.savez(OUT + "/k2.npz", **out)
'''

K3_BUILD = MODEL + r'''
import os
rng = np.random.RandomState(0)
xs, ys = rng.rand(32, 8, 8, 3).astype("float32"), rng.rand(32, 3).astype("float32")
a = make()
a.get_layer("base").trainable = False  # every model is saved with its base frozen: only values differ
b = make()
b.set_weights(a.get_weights())
b.get_layer("base").trainable = False
b.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
b.fit(xs, ys, epochs=2, batch_size=8, verbose=0)
c = make()  # trained with everything trainable, then saved as frozen: the "frozen" base moved
c.set_weights(a.get_weights())
c.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
c.fit(xs, ys, epochs=2, batch_size=8, verbose=0)
c.get_layer("base").trainable = False
n = make()
n.get_layer("base").trainable = False
n.set_weights(b.get_weights())
kernel, bias = n.get_layer("head").get_weights()
kernel[0, 0] = np.nan
n.get_layer("head").set_weights([kernel, bias])
out = {}
for name, model in (("a", a), ("b", b), ("c", c), ("n", n)):
    model.save(f"{OUT}/{name}.keras")
    model.save(f"{OUT}/{name}.h5")
    model.save_weights(f"{OUT}/{name}.weights.h5")
    arrays(name, model, out)
k2 = np.load(os.path.join(os.path.dirname(OUT), "k2", "k2.npz"))
port = make()
port.set_weights([k2[k] for k in k2.files])  # saved in get_weights() order, layer by layer
kernel, bias = port.get_layer("fc").get_weights()
port.get_layer("fc").set_weights([kernel, bias + 0.125])
port.save(OUT + "/port.keras")
arrays("port", port, out)
np.savez(OUT + "/k3.npz", **out)
'''


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("values")
    build("k2", K2_BUILD, root / "k2")
    build("k3", K3_BUILD, root / "k3")
    arrays = {**dict(np.load(root / "k2" / "k2.npz")), **dict(np.load(root / "k3" / "k3.npz"))}
    return root, arrays


def layer_arrays(arrays: dict, prefix: str, path: str) -> list[np.ndarray]:
    keys = sorted((k for k in arrays if k.startswith(f"{prefix}|{path}|")), key=lambda k: int(k.rsplit("|", 1)[1]))
    return [arrays[k] for k in keys]


def changed_in_numpy(arrays: dict, pa: str, pb: str) -> set[str]:
    paths = {k.split("|")[1] for k in arrays if k.startswith(pa + "|")}
    return {p for p in paths
            if any(not np.array_equal(x, y, equal_nan=True) for x, y in
                   zip(layer_arrays(arrays, pa, p), layer_arrays(arrays, pb, p)))}


def assert_numpy_figures(lv, xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
    assert len(lv.variables) == len(xs)
    for v, x, y in zip(lv.variables, xs, ys):
        x64, y64 = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
        if np.array_equal(x, y):
            assert v.status == "equal", (lv.b, v.name)
            continue
        assert v.status == "changed", (lv.b, v.name)
        d = y64 - x64
        f = v.figures
        assert f.max_abs_diff == pytest.approx(np.max(np.abs(d)), rel=1e-9)
        na, nb = np.linalg.norm(x64), np.linalg.norm(y64)
        # Unknown (None) where numpy would divide by zero: a bias Keras initialised to zeros, for one.
        assert f.relative_change == (pytest.approx(np.linalg.norm(d) / na, rel=1e-9) if na else None)
        assert f.cosine == (pytest.approx(x64 @ y64 / (na * nb), rel=1e-9) if na and nb else None)
        assert f.fraction_changed == pytest.approx(np.count_nonzero(x64 != y64) / x64.size)


FORMATS = [(".keras", ".keras"), (".h5", ".h5"), (".weights.h5", ".weights.h5"), (".h5", ".keras"),
           (".weights.h5", ".keras")]


@pytest.mark.parametrize("fa,fb", FORMATS, ids=[f"{a}-vs-{b}" for a, b in FORMATS])
def test_exactly_the_trained_layers_are_reported_with_numpys_figures(saved, fa, fb):
    root, arrays = saved
    d = diff(archdiff.load(root / "k3" / f"a{fa}"), archdiff.load(root / "k3" / f"b{fb}"))
    expected = changed_in_numpy(arrays, "a", "b")
    assert expected == {"fc", "head"}  # the base was frozen: Keras kept its arrays (BN statistics included)
    assert d.values is not None
    assert {lv.b for lv in d.values.changed} == expected
    assert {lv.b for lv in d.values.equal} == {"base/conv", "base/bn"}
    for lv in d.values.layers:
        assert_numpy_figures(lv, layer_arrays(arrays, "a", lv.b), layer_arrays(arrays, "b", lv.b))
    if fa == fb:  # the same model saved the same way, retrained: nothing but values changed
        assert d.classification == "values-changed" and d.kinds == ("values-changed",)
    else:
        assert "values-changed" in d.kinds
    # A frozen base that kept its weights passes; a retrained one fails, naming the layer and the figure.
    policy = parse_policy({"frozen": ["base/*"]}, source="policy.yaml")
    assert check(d, policy).passed
    moved = diff(archdiff.load(root / "k3" / f"a{fa}"), archdiff.load(root / "k3" / f"c{fb}"))
    (rule,) = [r for r in check(moved, policy).rules if r.rule == "frozen"]
    assert not rule.passed
    for layer in ("base/conv", "base/bn"):
        assert any(v.startswith(f"'{layer}' (frozen by 'base/*') changed: values ") and "max |Δ|" in v
                   for v in rule.violations), rule.violations


def test_nan_fails_the_gate(saved):
    root, arrays = saved
    d = diff(archdiff.load(root / "k3" / "b.keras"), archdiff.load(root / "k3" / "n.keras"))
    assert {lv.b for lv in d.values.changed} == {"head"} == changed_in_numpy(arrays, "b", "n")
    (rule,) = [r for r in check(d, parse_policy({}, source="p.yaml")).rules if r.rule == "allow_nonfinite"]
    assert not rule.passed and rule.violations == ("'head' kernel: 1 NaN and 0 Inf introduced",)


def test_a_tf_keras_h5_against_its_keras3_port(saved):
    root, arrays = saved
    d = diff(archdiff.load(root / "k2" / "k2.h5"), archdiff.load(root / "k3" / "port.keras"))
    expected = {p for p in {k.split("|")[1] for k in arrays if k.startswith("k2|")}
                if any(not np.array_equal(x, y) for x, y in
                       zip(layer_arrays(arrays, "k2", p), layer_arrays(arrays, "port", p)))}
    assert expected == {"fc"}
    assert {lv.b for lv in d.values.changed} == expected
    assert len(d.values.layers) == 4 and not d.values.not_compared
    for lv in d.values.layers:
        assert_numpy_figures(lv, layer_arrays(arrays, "k2", lv.b), layer_arrays(arrays, "port", lv.b))
