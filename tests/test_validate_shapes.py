"""validate on any model shape: two inputs and two outputs, integer ids into an Embedding, a regression head,
a nested base (shared as a whole, or compared from the inside), Keras 3 operations; references on the live model.

Every port is made with Keras itself (set_weights layer by layer), so the tests judge validate.
"""
from __future__ import annotations

import numpy as np
import pytest
from test_validate_support import fast_options, randomize

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def keras():
    from archdiff.lazy import require_keras

    return require_keras()


def _copy_by_name(source, target, prefix=""):
    for layer in target.layers:
        if getattr(layer, "layers", None):
            _copy_by_name(source, layer, prefix)
            continue
        if not layer.weights:
            continue
        try:
            src = source.get_layer(layer.name)
        except ValueError:
            continue
        if [tuple(w.shape) for w in src.weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(src.get_weights())


def _two_by_two(keras, cls_units: int, name: str):
    """image + token ids in; a softmax class and a score (relu: a regression) out."""
    L = keras.layers
    image = keras.Input((16, 16, 3), name="image")
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    x = L.Conv2D(4, 3, name="conv")(image)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    t = L.Embedding(20, 4, name="embed")(tokens)
    t = L.GlobalAveragePooling1D(name="pool_tokens")(t)
    both = L.Concatenate(name="both")([x, t])
    shared = L.Dense(8, activation="relu", name="shared")(both)
    cls = L.Dense(cls_units, activation="softmax", name="cls")(shared)
    score = L.Dense(1, activation="relu", name="score")(shared)
    return keras.Model([image, tokens], [cls, score], name=name)


@pytest.fixture(scope="module")
def two_by_two(keras, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_by_two")
    keras.utils.set_random_seed(3)
    source = _two_by_two(keras, 5, "source")
    randomize(source, seed=3)
    source.save(folder / "source.keras")
    target = _two_by_two(keras, 3, "target")  # a new 3-way class head; the score head fits and is transferred
    _copy_by_name(source, target)
    target.save(folder / "target.keras")
    return folder


def test_a_two_input_two_output_model_validates(two_by_two):
    from archdiff.validate import validate

    report = validate(str(two_by_two / "target.keras"), None, str(two_by_two / "source.keras"),
                      fast_options(scratch=False, freeze_until="shared"), progress=False)
    assert report.exit_code == 0, report.failures
    assert dict(report.checks) == {"rebuild": "pass", "weights_arrived": "pass", "outputs": "pass",
                                   "finetune": "pass"}
    o = report.outputs
    assert set(o.input_shapes) == {"image", "tokens"}
    # Both inputs feed the shared part; the new class head ends it, the transferred score head is compared too.
    assert {x.target_layer for x in o.outputs} == {"shared", "score"}
    assert all(x.max_abs_diff == 0.0 for x in o.outputs)
    f = report.finetune
    assert f.data["kind"] == "random"  # no image-only classification: seeded random inputs and targets
    assert f.losses["cls"]["loss"] == "sparse_categorical_crossentropy" and not f.losses["cls"]["from_logits"]
    assert f.losses["score"]["kind"] == "regression" and f.losses["score"]["loss"] == "mse"
    assert any("random inputs and targets" in n for n in f.notes)


def test_npz_with_named_inputs_and_targets(two_by_two, tmp_path, cli):
    import json

    rng = np.random.default_rng(0)
    n = 60
    np.savez(tmp_path / "data.npz", image=rng.random((n, 16, 16, 3), dtype=np.float32),
             tokens=rng.integers(0, 20, (n, 6)).astype("int32"), cls=rng.integers(0, 3, n),
             score=rng.normal(size=(n, 1)).astype("float32"))
    code, out, err = cli("validate", two_by_two / "target.keras", "--source", two_by_two / "source.keras",
                         "--data", tmp_path / "data.npz", "--epochs", "2", "--batch-size", "16", "--freeze-until",
                         "shared", "--loss", "cls:sparse_categorical_crossentropy", "--format", "json",
                         "--no-progress")
    assert code == 0, out + err
    data = json.loads(out)
    ft = data["finetune"]
    assert ft["data"]["kind"] == "npz" and ft["data"]["train_samples"] == 48
    assert ft["losses"]["score"]["why"] == "its targets are not whole numbers: a regression"
    assert ft["losses"]["cls"]["why"] == "--loss cls:sparse_categorical_crossentropy".replace("cls:", "")
    code, _, err = cli("validate", two_by_two / "target.keras", "--data", tmp_path / "data.npz", "--loss",
                       "nope:mse", "--no-progress", "--allow-skip", "all")
    assert code == 2 and "--loss names output(s) 'nope'" in err


def _nested(keras, head_units: int, name: str, activation=None):
    L = keras.layers
    inner_in = keras.Input((16, 16, 3), name="base_input")
    y = L.Conv2D(4, 3, name="b_conv")(inner_in)
    y = L.BatchNormalization(name="b_bn")(y)
    y = L.ReLU(name="b_relu")(y)
    base = keras.Model(inner_in, y, name="base")
    inputs = keras.Input((16, 16, 3), name="image")
    x = base(inputs, training=False)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(head_units, activation=activation, name="head")(x), name=name)


def test_a_nested_model_shared_as_a_whole_validates_with_a_logits_head(keras, tmp_path):
    from archdiff.validate import validate

    keras.utils.set_random_seed(4)
    source = _nested(keras, 6, "s", activation="softmax")
    randomize(source.get_layer("base"), seed=4)
    source.save(tmp_path / "s.keras")
    target = _nested(keras, 1, "t")  # the guide's Dense(1): logits of a binary task
    target.get_layer("base").set_weights(source.get_layer("base").get_weights())
    target.save(tmp_path / "t.keras")
    report = validate(str(tmp_path / "t.keras"), None, str(tmp_path / "s.keras"), fast_options(scratch=False),
                      progress=False)
    assert report.exit_code == 0, report.failures
    assert sorted(report.weights_arrived.arrived) == ["base/b_bn", "base/b_conv"]
    assert [o.target_layer for o in report.outputs.outputs] == ["gap"]
    f = report.finetune
    assert f.loss_name == "binary_crossentropy (from logits)" and f.data["kind"] == "builtin"
    assert f.data["classes"] == 2


def test_the_comparison_reaches_inside_a_nested_base_from_a_flat_source(keras, tmp_path):
    """A flat source's layers ported into a nested base (the guide's xception, in small)."""
    from archdiff.validate import validate

    L = keras.layers
    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3), name="base_input")
    flat = keras.Model(inputs, L.ReLU(name="b_relu")(L.BatchNormalization(name="b_bn")(
        L.Conv2D(4, 3, name="b_conv")(inputs))), name="flat")
    randomize(flat, seed=5)
    flat.save(tmp_path / "flat.keras")
    target = _nested(keras, 1, "t")
    for name in ("b_conv", "b_bn"):
        target.get_layer("base").get_layer(name).set_weights(flat.get_layer(name).get_weights())
    target.save(tmp_path / "t.keras")
    swapped = target.get_layer("base").get_layer("b_bn")
    gamma, beta, mean, var = swapped.get_weights()
    swapped.set_weights([beta, gamma, mean, var])
    target.save_weights(tmp_path / "swapped.weights.h5")

    maps = (r"re:^(.+)$=base/\1",)
    good = validate(str(tmp_path / "t.keras"), None, str(tmp_path / "flat.keras"),
                    fast_options(finetune=False, maps=maps), progress=False)
    assert good.exit_code == 0, good.failures
    assert good.outputs.nested == ("base",)
    assert [(o.target_layer, o.source_layer, o.status) for o in good.outputs.outputs] == \
        [("base/b_relu", "b_relu", "pass")]
    bad = validate(str(tmp_path / "t.keras"), str(tmp_path / "swapped.weights.h5"), str(tmp_path / "flat.keras"),
                   fast_options(finetune=False, maps=maps), progress=False)
    assert bad.outputs.status == "fail"
    assert [o["layer"] for o in bad.outputs.origin] == ["base/b_bn"]


def test_keras3_operations_are_not_paired_as_layers(keras, tmp_path):
    """``x + y`` is a graph node, not in model.layers: validate must neither pair nor miss it."""
    from archdiff.validate import validate

    L = keras.layers

    def model(name, head):
        inputs = keras.Input((8,), name="x")
        a = L.Dense(4, name="a")(inputs)
        b = L.Dense(4, name="b")(inputs)
        return keras.Model(inputs, L.Dense(head, activation="softmax", name="head")(a + b), name=name)

    keras.utils.set_random_seed(6)
    source = model("s", 3)
    randomize(source, seed=6)
    source.save(tmp_path / "s.keras")
    target = model("t", 2)
    _copy_by_name(source, target)
    target.save(tmp_path / "t.keras")
    report = validate(str(tmp_path / "t.keras"), None, str(tmp_path / "s.keras"), fast_options(scratch=False),
                      progress=False)
    assert report.exit_code == 0, report.failures
    assert sorted(report.weights_arrived.arrived) == ["a", "b"]
    assert {x["layer"] for x in report.weights_arrived.not_transferred} == {"head"}
    assert report.outputs.status == "pass"
    assert report.finetune.data["kind"] == "random"


def test_a_saved_reference_is_matched_and_a_wrong_port_is_not(keras, two_by_two, tmp_path):
    from archdiff.validate import validate

    ref = str(tmp_path / "ref.npz")
    first = validate(str(two_by_two / "target.keras"), None, None,
                     fast_options(finetune=False, save_reference=ref, allow_skip=("all",)), progress=False)
    assert first.exit_code == 0 and first.saved_reference == ref
    again = validate(str(two_by_two / "target.keras"), None, None,
                     fast_options(finetune=False, reference=ref, allow_skip=("weights_arrived", "outputs")),
                     progress=False)
    assert again.exit_code == 0, again.failures
    assert [(o.target_layer, o.status, o.max_abs_diff) for o in again.reference.outputs] == \
        [("cls", "pass", 0.0), ("score", "pass", 0.0)]
    other = validate(str(two_by_two / "source.keras"), None, None,
                     fast_options(finetune=False, reference=ref, allow_skip=("all",)), progress=False)
    assert other.reference.status == "fail"
    # The source's class head has 5 units, the reference's 3: not comparable, and said so.
    assert "shapes differ" in other.reference.outputs[0].reason
