"""Shape and weight inference from configs (archdiff.shapes), checked against Keras.

The tests marked ``tensorflow`` build real models with Keras 3 (and tf-keras
for the Keras 2 dialect), turn their ``get_config()`` into an Architecture
with a minimal local reader, and compare every layer's inferred output shape,
weight names/shapes/dtypes/trainable flags and the parameter totals with what
Keras itself reports. The others pin the rules without TensorFlow.
"""
from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archdiff.model import Architecture, Call, Layer, Source, TensorRef, WeightSpec
from archdiff.names import is_operation_module
from archdiff.shapes import infer, layer_output_shapes, layer_weights, registry, variable_dtype

MODEL_CLASSES = {"Functional", "Model", "Sequential"}


# ---------------------------------------------------------------------------
# pure rules (no TensorFlow)
# ---------------------------------------------------------------------------
def _specs(class_name, config, shapes, dialect="keras3"):
    ws = layer_weights(class_name, config, shapes, dialect=dialect)
    return None if ws is None else [(w.name, w.shape, w.dtype, w.trainable) for w in ws]


def test_conv2d_same_and_valid():
    cfg = {"filters": 64, "kernel_size": [7, 7], "strides": [2, 2], "padding": "same",
           "data_format": "channels_last", "dilation_rate": [1, 1], "use_bias": True}
    assert layer_output_shapes("Conv2D", cfg, [(None, 224, 224, 3)]) == ((None, 112, 112, 64),)
    assert _specs("Conv2D", cfg, [(None, 224, 224, 3)]) == [
        ("kernel", (7, 7, 3, 64), "float32", True), ("bias", (64,), "float32", True)]
    valid = dict(cfg, padding="valid")
    assert layer_output_shapes("Conv2D", valid, [(None, 230, 230, 3)]) == ((None, 112, 112, 64),)
    first = dict(cfg, data_format="channels_first", use_bias=False)
    assert layer_output_shapes("Conv2D", first, [(None, 3, 32, None)]) == ((None, 64, 16, None),)
    assert _specs("Conv2D", first, [(None, 3, 32, None)]) == [("kernel", (7, 7, 3, 64), "float32", True)]


def test_conv_transpose_and_pooling():
    cfg = {"filters": 5, "kernel_size": 3, "strides": 2, "padding": "valid", "output_padding": None}
    assert layer_output_shapes("Conv2DTranspose", cfg, [(None, 8, 8, 4)]) == ((None, 17, 17, 5),)
    assert _specs("Conv2DTranspose", cfg, [(None, 8, 8, 4)])[0][1] == (3, 3, 5, 4)
    assert layer_output_shapes("Conv2DTranspose", dict(cfg, padding="same"), [(None, 8, 8, 4)]) == (
        (None, 16, 16, 5),)
    pool = {"pool_size": [3, 3], "strides": [2, 2], "padding": "valid"}
    assert layer_output_shapes("MaxPooling2D", pool, [(None, 112, 112, 64)]) == ((None, 55, 55, 64),)
    assert layer_output_shapes("GlobalAveragePooling2D", {"keepdims": True, "data_format": "channels_first"},
                               [(None, 8, 4, 4)]) == ((None, 8, 1, 1),)


def test_batchnorm_and_depthwise_names_follow_the_dialect():
    bn = {"axis": [1], "center": False}
    assert _specs("BatchNormalization", bn, [(None, 6, 4, 4)]) == [
        ("gamma", (6,), "float32", True), ("moving_mean", (6,), "float32", False),
        ("moving_variance", (6,), "float32", False)]
    dw = {"kernel_size": [3, 3], "depth_multiplier": 2}
    assert _specs("DepthwiseConv2D", dw, [(None, 8, 8, 4)], "keras3")[0][0] == "kernel"
    assert _specs("DepthwiseConv2D", dw, [(None, 8, 8, 4)], "keras2")[0][0] == "depthwise_kernel"
    assert layer_output_shapes("DepthwiseConv2D", dw, [(None, 8, 8, 4)]) == ((None, 6, 6, 8),)


def test_recurrent_layers():
    assert layer_output_shapes("LSTM", {"units": 4, "return_state": True}, [(None, 10, 3)]) == (
        (None, 4), (None, 4), (None, 4))
    assert _specs("GRU", {"units": 4, "reset_after": False}, [(None, 10, 3)]) == [
        ("gru_cell/kernel", (3, 12), "float32", True),
        ("gru_cell/recurrent_kernel", (4, 12), "float32", True),
        ("gru_cell/bias", (12,), "float32", True)]
    assert _specs("GRU", {"units": 4}, [(None, 10, 3)])[-1][1] == (2, 12)


def test_variable_dtype():
    assert variable_dtype({}) == "float32"
    assert variable_dtype({"dtype": "float64"}) == "float64"
    assert variable_dtype({"dtype": {"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}}) == "float32"
    assert variable_dtype({"dtype": {"class_name": "Policy", "config": {"name": "mixed_bfloat16"}}}) == "float32"
    assert variable_dtype({"dtype": {"class_name": "DTypePolicy", "config": {"name": "bfloat16"}}}) == "bfloat16"
    assert variable_dtype({"dtype": {"class_name": "QuantizedDTypePolicy",
                                     "config": {"name": "int8_from_mixed_float16"}}}) == "float32"


def test_unknown_and_odd_configs_give_none():
    assert layer_output_shapes("MyCustomLayer", {}, [(None, 3)]) is None
    assert layer_weights("MyCustomLayer", {}, [(None, 3)]) is None
    assert layer_output_shapes("Dense", {"units": "many"}, [(None, 3)]) is None
    assert layer_weights("Dense", {"units": 4}, [(None, None)]) is None  # the kernel needs the fan-in
    assert layer_output_shapes("Conv2D", {"filters": 2, "kernel_size": None}, [(None, 4, 4, 1)]) is None
    assert layer_output_shapes("Dense", {"units": 3}, []) is None
    assert layer_output_shapes("Dense", None, [(None, 3)]) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_shape = st.none() | st.lists(st.none() | st.integers(-1, 9), max_size=5).map(tuple)


@settings(max_examples=300, deadline=None)
@given(
    class_name=st.sampled_from(sorted(set(registry.OUTPUTS) | set(registry.WEIGHTS))),
    config=st.dictionaries(
        st.sampled_from(["units", "filters", "kernel_size", "strides", "padding", "axis", "data_format",
                         "target_shape", "dims", "pool_size", "cropping", "size", "layer", "output_shape",
                         "num_heads", "key_dim", "return_state", "merge_mode", "n", "dtype", "keepdims"]),
        _json, max_size=6),
    shapes=st.lists(_shape, max_size=3),
)
def test_never_raises(class_name, config, shapes):
    layer_output_shapes(class_name, config, shapes)
    layer_weights(class_name, config, shapes)


def test_every_class_with_an_output_rule_has_a_weight_rule():
    """The two rules of a class are filed together, so they cannot drift apart."""
    missing = sorted(set(registry.OUTPUTS) - set(registry.WEIGHTS))
    assert not missing, missing
    assert all(callable(fn) for fn in registry.WEIGHTS.values())
    # A class declared weightless really has no variables, whatever it is built on.
    weightless = sorted(n for n, fn in registry.WEIGHTS.items() if fn is registry.no_weights)
    assert {"Dropout", "Flatten", "MaxPooling2D", "Add", "TFOpLambda", "Lambda"} <= set(weightless)
    for name in weightless:
        assert layer_weights(name, {}, [(None, 4, 4, 3)]) == (), name
    assert layer_weights("Dense", {"units": 2}, [(None, 3)]) != ()


def test_register_refuses_a_missing_weight_rule_and_a_second_registration():
    before = (dict(registry.OUTPUTS), dict(registry.WEIGHTS))
    with pytest.raises(TypeError):
        registry.register("NewLayer", output=lambda cfg, shapes: shapes[0])  # no weights= at all
    with pytest.raises(TypeError):
        registry.register("NewLayer", output=lambda cfg, shapes: shapes[0], weights=None)
    with pytest.raises(ValueError, match="Dense"):
        registry.register(("NewLayer", "Dense"), weights=registry.no_weights)
    with pytest.raises(ValueError):
        registry.register(("NewLayer", "NewLayer"), weights=registry.no_weights)
    assert (registry.OUTPUTS, registry.WEIGHTS) == before  # a refused call files nothing


def test_rules_are_filed_only_through_register_and_every_family_is_imported():
    """No module fills the registry's dicts by hand, and ``archdiff.shapes`` imports every module."""
    import ast
    import sys
    from pathlib import Path

    import archdiff.shapes

    folder = Path(archdiff.shapes.__file__).parent
    for path in sorted(folder.glob("*.py")):
        if path.stem != "__init__":
            assert f"archdiff.shapes.{path.stem}" in sys.modules, f"archdiff.shapes does not import {path.stem}"
        if path.stem == "registry":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            touched = node.value if isinstance(node, (ast.Subscript, ast.Attribute)) else None
            if isinstance(touched, ast.Attribute):
                touched = touched.attr
            elif isinstance(touched, ast.Name):
                touched = touched.id
            assert touched not in ("OUTPUTS", "WEIGHTS"), (path.name, node.lineno)


# ---------------------------------------------------------------------------
# infer() on hand-made Architectures (the Keras 2 dialect: no recorded shapes)
# ---------------------------------------------------------------------------
def _layer(name, class_name, config, inputs=(), *, parent="", depth=0, index=0, **kw):
    calls = (Call(inputs=tuple(TensorRef(n) for n in inputs)),) if inputs else ()
    path = f"{parent}/{name}" if parent else name
    return Layer(name=name, path=path, class_name=class_name, index=index, depth=depth, parent=parent,
                 config={"name": name, **config}, calls=calls, **kw)


def _arch(layers, class_name="Functional", inputs=("x",), outputs=(), **kw):
    return Architecture(name="m", class_name=class_name, layers=tuple(layers),
                        source=Source(path="<test>", format="json", dialect="keras2"),
                        inputs=tuple(TensorRef(n) for n in inputs),
                        outputs=tuple(TensorRef(n) for n in outputs), **kw)


def test_infer_functional_keras2_dialect():
    arch = _arch([
        _layer("x", "InputLayer", {"batch_input_shape": [None, 8]}),
        _layer("d1", "Dense", {"units": 4}, ["x"]),
        _layer("drop", "Dropout", {"rate": 0.5}, ["d1"]),
        _layer("d2", "Dense", {"units": 2, "use_bias": False}, ["drop"]),
    ], outputs=("d2",))
    out = infer(arch)
    assert [l.output_shapes for l in out.layers] == [((None, 8),), ((None, 4),), ((None, 4),), ((None, 2),)]
    assert [l.own_params for l in out.layers] == [0, 36, 0, 8]
    assert out.has_weights and out.param_counts().total == 44
    assert all(w.location is None for l in out.layers for w in l.weights)


def test_infer_unknown_class_leaves_that_layer_unknown():
    arch = _arch([
        _layer("x", "InputLayer", {"batch_input_shape": [None, 8]}),
        _layer("mystery", "MyLayer", {}, ["x"]),
        _layer("d", "Dense", {"units": 2}, ["mystery"]),
    ])
    out = infer(arch)
    assert out.layers[1].output_shapes is None and out.layers[1].weights is None
    assert out.layers[2].output_shapes is None  # nothing is known downstream either
    assert out.layers[2].weights is None  # its fan-in is unknown
    assert not out.has_weights and out.param_counts() is None
    assert any("MyLayer" in n for n in out.notes)


def test_infer_keeps_what_the_reader_knew():
    known = (WeightSpec("kernel", (8, 4), "float32", location="/d/kernel"),)
    arch = _arch([
        _layer("x", "InputLayer", {"batch_input_shape": [None, 8]}),
        _layer("d", "Dense", {"units": 4}, ["x"], weights=known, output_shapes=((None, 99),)),
        _layer("d2", "Dense", {"units": 1}, ["d"], weights=known),
    ], has_weights=True)
    out = infer(arch)
    assert out.layers[1].weights == known and out.layers[1].output_shapes == ((None, 99),)
    assert out.layers[2].output_shapes == ((None, 1),)  # propagated from the reader's shape
    assert out.layers[2].weights == known and out.has_weights


@pytest.mark.parametrize("with_input_layer", [True, False])
def test_infer_sequential(with_input_layer):
    layers = [_layer("in", "InputLayer", {"batch_input_shape": [None, 10]})] if with_input_layer else []
    layers += [_layer("d1", "Dense", {"units": 3, **({} if with_input_layer else {"batch_input_shape": [None, 10]})}),
               _layer("d2", "Dense", {"units": 2})]
    out = infer(_arch(layers, class_name="Sequential", inputs=()))
    assert [l.output_shapes for l in out.layers][-2:] == [((None, 3),), ((None, 2),)]
    assert out.param_counts().total == 33 + 8


def test_infer_nested_model_as_built_and_as_called():
    # inner: Input(None, 3) -> Dense(4); outer calls it on (None, 7, 3)
    inner = _layer("inner", "Functional", {}, ["x"], is_model=True,
                   model_inputs=(TensorRef("inner_in"),), model_outputs=(TensorRef("inner_d"),))
    arch = _arch([
        _layer("x", "InputLayer", {"batch_input_shape": [None, 7, 3]}),
        inner,
        _layer("inner_in", "InputLayer", {"batch_input_shape": [None, None, 3]}, parent="inner", depth=1),
        _layer("inner_d", "Dense", {"units": 4}, ["inner_in"], parent="inner", depth=1),
        _layer("head", "Flatten", {}, ["inner"]),
    ], outputs=("head",))
    out = infer(arch)
    shapes = {l.path: l.output_shapes for l in out.layers}
    assert shapes["inner"] == ((None, 7, 4),)  # what the outer summary shows
    assert shapes["inner/inner_d"] == ((None, None, 4),)  # what the inner model was built with
    assert shapes["head"] == ((None, 28),)
    assert out.layers[1].weights == () and out.param_counts().total == 16


def test_infer_never_raises_on_a_broken_graph():
    arch = _arch([
        _layer("a", "Dense", {"units": 2}, ["b"]),
        _layer("b", "Dense", {"units": 2}, ["a"]),  # a cycle
        _layer("c", "Dense", {"units": 2}, ["nowhere"]),
    ])
    out = infer(arch)
    assert [l.output_shapes for l in out.layers] == [None, None, None]


_names = st.sampled_from(["x", "a", "b", "c", "inner", "ghost"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(
    _names,
    st.sampled_from(["InputLayer", "Dense", "Conv2D", "Add", "Concatenate", "Functional", "Sequential",
                     "Mystery", "Flatten", "LSTM"]),
    st.dictionaries(st.sampled_from(["units", "filters", "kernel_size", "batch_input_shape", "axis",
                                     "layers", "batch_shape"]), _json, max_size=3),
    st.lists(st.tuples(_names, st.integers(-1, 3), st.integers(-1, 2)), max_size=3),
    st.booleans(), st.sampled_from(["", "inner"])), max_size=7))
def test_infer_never_raises_on_random_graphs(entries):
    layers = []
    for name, class_name, config, refs, recorded, parent in entries:
        call = Call(tuple(TensorRef(*r) for r in refs), tuple((None, 3) for _ in refs) if recorded else ())
        layers.append(Layer(name=name, path=f"{parent}/{name}" if parent else name, class_name=class_name,
                            index=0, depth=1 if parent else 0, parent=parent, config=config,
                            calls=(call,) if refs else (), is_model=class_name in MODEL_CLASSES,
                            model_inputs=(TensorRef("x"),), model_outputs=(TensorRef("a"),)))
    for dialect in ("keras2", "keras3", None):
        arch = Architecture(name="m", class_name="Functional", layers=tuple(layers),
                            source=Source(path="<test>", format="json", dialect=dialect),
                            inputs=(TensorRef("x"),), outputs=(TensorRef("c"),))
        infer(arch)


def test_shapes_package_is_pure_python():
    """archdiff/shapes/ imports only the standard library, archdiff.model and its own modules."""
    import ast
    import sys
    from pathlib import Path

    import archdiff.shapes

    files = sorted(Path(archdiff.shapes.__file__).parent.glob("*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imported.add(node.module)
        outside = {m for m in imported if m.split(".")[0] not in set(sys.stdlib_module_names) | {"__future__"}
                   and m != "archdiff.model" and not m.startswith("archdiff.shapes")}
        assert not outside, (path.name, outside)


# ---------------------------------------------------------------------------
# against Keras 3
# ---------------------------------------------------------------------------
def _tensors(obj, refs, shapes):
    """Collect the ``__keras_tensor__`` entries of a Keras 3 inbound node, in order."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            conf = obj["config"]
            refs.append(TensorRef(*conf["keras_history"]))
            shapes.append(tuple(conf["shape"]))
            return
        for value in obj.values():
            _tensors(value, refs, shapes)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _tensors(value, refs, shapes)


def _io_refs(value):
    if not value:
        return ()
    if isinstance(value[0], str):
        value = [value]
    return tuple(TensorRef(*v[:3]) for v in value)


def _k3_layers(model_cfg, model_class, parent, depth, keep_shapes, keep_seq_input):
    """A minimal Keras 3 config reader: just what infer() needs."""
    out = []
    index = 0
    for raw in model_cfg["layers"]:
        conf = raw["config"]
        name = raw.get("name") or conf["name"]
        class_name = raw["class_name"]
        if model_class == "Sequential" and class_name == "InputLayer" and not keep_seq_input:
            continue
        calls = []
        for node in raw.get("inbound_nodes") or ():
            refs, shapes = [], []
            _tensors(node, refs, shapes)
            calls.append(Call(tuple(refs), tuple(shapes) if keep_shapes else ()))
        is_model = class_name in MODEL_CLASSES
        path = f"{parent}/{name}" if parent else name
        out.append(Layer(
            name=name, path=path, class_name=class_name, index=index, depth=depth, parent=parent,
            config=conf, module=raw.get("module"), calls=tuple(calls), is_model=is_model,
            is_operation=is_operation_module(raw.get("module")),
            model_inputs=_io_refs(conf.get("input_layers")) if is_model else (),
            model_outputs=_io_refs(conf.get("output_layers")) if is_model else ()))
        index += 1
        if is_model:
            out += _k3_layers(conf, class_name, path, depth + 1, keep_shapes, keep_seq_input)
    return out


def arch_from_keras3(model, *, keep_shapes=True, keep_seq_input=True) -> Architecture:
    """An Architecture straight from a live Keras 3 model's config, as the config parser would make it."""
    cfg = model.get_config()
    class_name = type(model).__name__
    return Architecture(
        name=cfg["name"], class_name=class_name,
        layers=tuple(_k3_layers(cfg, class_name, "", 0, keep_shapes, keep_seq_input)),
        source=Source(path="<test>", format="json", dialect="keras3"),
        inputs=_io_refs(cfg.get("input_layers")), outputs=_io_refs(cfg.get("output_layers")),
        config={"class_name": class_name, "config": cfg})


def _relative(path: str, layer_name: str) -> str:
    """A variable's name relative to its layer: ``seq/dense/kernel`` -> ``kernel``."""
    parts = path.split("/")
    return "/".join(parts[parts.index(layer_name) + 1:]) if layer_name in parts else parts[-1]


def _keras3_flat(model, prefix=""):
    """Keras' layers in order, plus the operations (``x + y``) a Functional records."""
    import keras

    layers = list(model.layers)
    if not isinstance(model, keras.Sequential):
        layers += [op for op in model.operations if op not in layers]
    for layer in layers:
        path = prefix + layer.name
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from _keras3_flat(layer, path + "/")


def _keras3_expected(model):
    """path -> (output shapes of the first call, weights or None for a model)."""
    import keras
    from keras import tree

    out = {}
    for path, layer in _keras3_flat(model):
        node = layer._inbound_nodes[0]
        shapes = tuple(tuple(t.shape) for t in tree.flatten(node.output_tensors))
        weights = None if isinstance(layer, keras.Model) else [
            (_relative(w.path, layer.name), tuple(w.shape), str(w.dtype), bool(w.trainable))
            for w in getattr(layer, "weights", ())]
        out[path] = (shapes, weights)
    return out


def _check(arch: Architecture, expected: dict, count_params: int, trainable_params: int,
           *, check_shapes=True):
    inferred = infer(arch)
    got = inferred.by_path
    problems = []
    for path, (shapes, weights) in expected.items():
        layer = got.get(path)
        if layer is None:
            problems.append(f"{path}: missing")
            continue
        if check_shapes and layer.output_shapes != shapes:
            problems.append(f"{path} ({layer.class_name}): shape {layer.output_shapes} != keras {shapes}")
        if weights is None:
            if layer.weights != ():
                problems.append(f"{path}: a model's own weights should be ()")
        else:
            mine = None if layer.weights is None else [
                (w.name, w.shape, w.dtype, w.trainable) for w in layer.weights]
            if mine != weights:
                problems.append(f"{path} ({layer.class_name}): weights {mine} != keras {weights}")
    extra = [p for p, l in got.items() if p not in expected and l.class_name != "InputLayer"]
    problems += [f"{p}: not a Keras layer" for p in extra]
    assert not problems, "\n".join(problems)
    assert inferred.has_weights
    counts = inferred.param_counts()
    assert (counts.total, counts.trainable) == (count_params, trainable_params)
    return inferred


def _trainable_count(model):
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def _assert_keras3(model, **arch_kw):
    _check(arch_from_keras3(model, **arch_kw), _keras3_expected(model), model.count_params(),
           _trainable_count(model))


@pytest.fixture(scope="module")
def keras3():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # the tests using it are marked tensorflow, which installs Keras 3: missing fails, not skips

    assert keras.__version__.startswith("3"), f"the tensorflow extra installs Keras 3, found {keras.__version__}"
    return keras


def _model_resnet50(keras):
    return keras.applications.ResNet50(weights=None)


def _model_mobilenet_v2(keras):
    return keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))


def _model_recurrent(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((12,), dtype="int32"),
        L.Embedding(100, 8, name="emb"),
        L.LSTM(16, return_sequences=True, name="lstm"),
        L.GRU(8, return_sequences=True, name="gru"),
        L.GRU(6, reset_after=False, return_sequences=True, name="gru_v1"),
        L.SimpleRNN(4, return_sequences=True, name="rnn"),
        L.Bidirectional(L.LSTM(5, return_sequences=True), name="bi"),
        L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum", name="bi_sum"),
        L.TimeDistributed(L.Dense(3), name="td"),
        L.LSTM(7, use_bias=False, name="last"),
        L.Dense(2, name="out"),
    ], name="recurrent")


def _model_channels_first(keras):
    L = keras.layers
    cf = "channels_first"
    x = keras.Input((3, 32, 30), name="image")
    y = L.Conv2D(8, 3, strides=2, padding="same", data_format=cf, name="conv")(x)
    y = L.BatchNormalization(axis=1, name="bn")(y)
    y = L.ReLU(name="relu")(y)
    y = L.MaxPooling2D(3, strides=2, padding="same", data_format=cf, name="pool")(y)
    y = L.ZeroPadding2D(((1, 2), (3, 4)), data_format=cf, name="pad")(y)
    y = L.Cropping2D(((1, 0), (2, 1)), data_format=cf, name="crop")(y)
    y = L.UpSampling2D((2, 3), data_format=cf, name="up")(y)
    y = L.DepthwiseConv2D(3, depth_multiplier=2, data_format=cf, name="dw")(y)
    y = L.SeparableConv2D(4, 3, dilation_rate=2, data_format=cf, name="sep")(y)
    y = L.Conv2DTranspose(5, 3, strides=2, data_format=cf, name="deconv")(y)
    y = L.AveragePooling2D(2, data_format=cf, name="avg")(y)
    g = L.GlobalAveragePooling2D(data_format=cf, keepdims=True, name="gap")(y)
    m = L.GlobalMaxPooling2D(data_format=cf, name="gmp")(y)
    f = L.Flatten(name="flat")(g)
    s = L.Input((2, 10), name="series")
    c1 = L.Conv1D(4, 3, data_format=cf, name="conv1d_cf")(s)
    v = keras.Input((2, 6, 6, 6), name="volume")
    c3 = L.Conv3D(3, 2, strides=2, data_format=cf, name="conv3d_cf")(v)
    return keras.Model([x, s, v], [L.Concatenate(name="cat")([f, m]), c1, c3], name="cf")


def _model_assorted(keras):
    L = keras.layers
    x = keras.Input((20, 6), name="seq_in")
    a = L.Conv1D(8, 3, padding="causal", dilation_rate=2, name="causal")(x)
    b = L.Conv1D(8, 3, groups=2, strides=2, use_bias=False, name="grouped")(a)
    p = L.MaxPooling1D(2, name="mp1")(b)
    q = L.AveragePooling1D(3, strides=1, padding="same", name="ap1")(p)
    q = L.ZeroPadding1D((1, 2), name="zp1")(q)
    q = L.Cropping1D((2, 0), name="cr1")(q)
    q = L.UpSampling1D(3, name="up1")(q)
    g = L.GlobalMaxPooling1D(keepdims=True, name="gmp1")(q)
    d3 = L.Dense(5, name="dense_rank3")(q)
    ln = L.LayerNormalization(axis=[1, 2], name="ln12")(d3)
    ln2 = L.LayerNormalization(scale=False, name="ln_noscale")(ln)
    gn = L.GroupNormalization(groups=5, name="gn")(ln2)
    nrm = L.Normalization(name="norm")(gn)
    nrm2 = L.Normalization(mean=0.5, variance=2.0, name="norm_fixed")(nrm)
    pr = L.PReLU(shared_axes=[1], name="prelu")(nrm2)
    lr = L.LeakyReLU(name="lrelu")(pr)
    sm = L.Softmax(name="softmax")(lr)
    dr = L.Dropout(0.1, name="drop")(sm)
    lora = L.Dense(4, lora_rank=2, name="lora")(dr)
    mp = L.Dense(4, dtype="mixed_float16", name="mixed")(lora)
    mha = L.MultiHeadAttention(2, 3, name="mha")(mp, mp)
    kv = keras.Input((5, 7), name="kv")
    cross = L.MultiHeadAttention(3, 2, value_dim=4, output_shape=6, use_bias=False, name="cross")(mha, kv)
    rep = L.RepeatVector(2, name="repeat")(L.Flatten(name="flat1")(g))
    img = keras.Input((9, 9, 3), name="img")
    c = L.Conv2D(4, 3, padding="valid", strides=2, name="c2")(img)
    t = L.Conv2DTranspose(6, 3, strides=2, padding="valid", output_padding=1, name="t_valid")(c)
    t2 = L.Conv2DTranspose(2, 4, strides=2, padding="same", dilation_rate=1, name="t_same")(t)
    u = L.UpSampling2D(2, name="up2")(c)
    cr = L.Cropping2D(((1, 1), (0, 2)), name="crop2")(u)
    zp = L.ZeroPadding2D(1, name="pad2")(cr)
    sep = L.SeparableConv2D(5, 2, depth_multiplier=3, strides=2, padding="same", name="sep2")(zp)
    bn = L.BatchNormalization(center=False, name="bn_nocenter")(sep)
    r = L.Reshape((-1, 5), name="reshape")(bn)
    pm = L.Permute((2, 1), name="permute")(r)
    ones = L.Dense(1, name="one")(pm)
    merged = [
        L.Add(name="add")([pm, ones]),
        L.Subtract(name="sub")([pm, pm]),
        L.Multiply(name="mul")([ones, pm]),
        L.Average(name="avg")([pm, pm]),
        L.Maximum(name="max")([pm, pm]),
        L.Minimum(name="min")([pm, pm]),
    ]
    cat = L.Concatenate(axis=1, name="cat1")(merged)
    dot = L.Dot(axes=(2, 2), name="dot")([cross, cross])
    v = keras.Input((4, 4, 4, 2), name="vol")
    c3 = L.Conv3D(3, 3, padding="same", use_bias=False, name="c3")(v)
    p3 = L.MaxPooling3D(2, name="mp3")(c3)
    u3 = L.UpSampling3D(2, name="up3")(p3)
    g3 = L.GlobalAveragePooling3D(name="gap3")(u3)
    r = L.Rescaling(1 / 255, name="rescale")(img)
    act = L.Activation("relu", name="act")(r)
    odd = L.Conv2D(2, 3, strides=2, padding="same", name="odd_same")(act)  # 9 -> 5
    odd = L.MaxPooling2D(2, padding="same", name="odd_pool_same")(odd)  # 5 -> 3
    odd = L.AveragePooling2D(2, strides=1, name="odd_pool_valid")(odd)  # 3 -> 2
    odd = L.RMSNormalization(name="rms")(odd)
    odd = L.UnitNormalization(name="unit")(odd)
    odd = L.Resizing(4, 6, name="resize")(L.SpatialDropout2D(0.1, name="sdrop")(odd))
    odd = L.CenterCrop(3, 2, name="center")(L.GaussianNoise(0.1, name="noise")(odd))
    odd = L.Masking(name="mask")(odd)  # last: a mask would upset the layers after it
    states = L.Bidirectional(L.GRU(3, return_state=True), merge_mode=None, name="bi_states")(x)
    lstm_states = L.LSTM(2, return_sequences=True, return_state=True, name="lstm_states")(x)
    return keras.Model([x, kv, img, v], [rep, t2, cat, dot, g3, odd, *states, *lstm_states],
                       name="assorted")


def _model_nested(keras):
    L = keras.layers
    inner_in = keras.Input((None, 3), name="inner_in")
    inner = keras.Model(inner_in, L.Dense(4, name="inner_dense")(inner_in), name="inner")
    seq = keras.Sequential([keras.Input((7, 4)), L.Dense(5, name="seq_dense"),
                            L.LayerNormalization(name="seq_ln")], name="seq")
    lazy = keras.Sequential([L.Dense(2, name="lazy_dense")], name="lazy")  # built when called
    shared = L.Dense(3, name="shared")
    x = keras.Input((7, 3), name="x")
    a = inner(x)
    a2 = inner(shared(x))
    added = L.Add(name="add")([a, a2])
    b = seq(added)
    c = lazy(b)
    frozen = L.Dense(2, name="frozen")
    frozen.trainable = False
    return keras.Model(x, [c, frozen(c), shared(L.Dense(3, name="back")(c))], name="outer")


_KERAS3_MODELS = {
    "resnet50": _model_resnet50,
    "mobilenet_v2": _model_mobilenet_v2,
    "recurrent": _model_recurrent,
    "channels_first": _model_channels_first,
    "assorted": _model_assorted,
    "nested": _model_nested,
}


@pytest.fixture(scope="module")
def keras3_models(keras3):
    """Models built once per module, on first use."""
    return {}


def _get(cache, keras, name):
    if name not in cache:
        cache[name] = _KERAS3_MODELS[name](keras)
    return cache[name]


@pytest.mark.tensorflow
@pytest.mark.parametrize("keep_shapes", [True, False], ids=["keras3-shapes", "no-shapes"])
@pytest.mark.parametrize("name", list(_KERAS3_MODELS))
def test_matches_keras3(keras3, keras3_models, name, keep_shapes):
    model = _get(keras3_models, keras3, name)
    _assert_keras3(model, keep_shapes=keep_shapes)


@pytest.mark.tensorflow
@pytest.mark.parametrize("keep_seq_input", [True, False], ids=["with-input-layer", "without"])
def test_keras3_sequential_input_layer_kept_or_not(keras3, keras3_models, keep_seq_input):
    _assert_keras3(_get(keras3_models, keras3, "recurrent"), keep_seq_input=keep_seq_input)
    _assert_keras3(_get(keras3_models, keras3, "nested"), keep_seq_input=keep_seq_input, keep_shapes=False)


@pytest.mark.tensorflow
def test_keras3_sequential_built_without_input(keras3):
    L = keras3.layers
    model = keras3.Sequential([L.Conv2D(4, 3, name="c"), L.Flatten(name="f"), L.Dense(2, name="d")])
    model.build((None, 10, 10, 1))
    _assert_keras3(model, keep_seq_input=False)


@pytest.mark.tensorflow
def test_keras3_operations_take_shapes_from_consumers(keras3):
    """``x[..., :2]`` or ``x + y`` become operations Keras 3 records as layers."""
    L = keras3.layers
    x = keras3.Input((6, 4), name="x")
    y = L.Dense(4, name="d")(x)
    s = x + y
    cut = s[..., :2]
    out = L.Dense(3, name="head")(cut)
    model = keras3.Model(x, out)
    _assert_keras3(model)  # the sliced shape comes from what `head` recorded
    # Without recorded shapes the slice is unknown, yet `head` still has its
    # weights: Keras 3 wrote the shape it was built with in `build_config`.
    inferred = _check(arch_from_keras3(model, keep_shapes=False), _keras3_expected(model),
                      model.count_params(), _trainable_count(model), check_shapes=False)
    # Keras numbers auto names per process ("add", "add_3" after other tests): the name it gave this one.
    add = s._keras_history.operation.name
    assert inferred.by_path[add].output_shapes == ((None, 6, 4),)
    assert inferred.by_path["head"].output_shapes is None


# ---------------------------------------------------------------------------
# against Keras 2 (tf-keras): its config dialect and variable names
# ---------------------------------------------------------------------------
def arch_from_tf_keras(model) -> Architecture:
    """The real Keras 2 config reader (it renumbers tf-keras' nested-model calls)."""
    from archdiff.read import from_config_document

    document = {"class_name": type(model).__name__, "config": model.get_config(), "keras_version": "2.21.0"}
    return from_config_document(document, path="<test>", fmt="json")


def _tf_keras_expected(model, prefix=""):
    """path -> (first in-model call's output shapes, weights or None for a model)."""
    import tf_keras

    out = {}
    for layer in model.layers:
        # tf-keras gives a nested model a node of its own graph first: the
        # node of this model's call is the one this model lists.
        node = next((i for i in range(len(layer._inbound_nodes))
                     if f"{layer.name}_ib-{i}" in model._network_nodes), 0)
        shape = layer.get_output_shape_at(node)
        shapes = tuple(tuple(s) for s in shape) if isinstance(shape, list) else (tuple(shape),)
        nested = isinstance(layer, tf_keras.Model)
        weights = None if nested else [
            (_relative(w.name.split(":")[0], layer.name), tuple(w.shape), w.dtype.name, w.trainable)
            for w in layer.weights]
        out[prefix + layer.name] = (shapes, weights)
        if nested:
            out.update(_tf_keras_expected(layer, prefix + layer.name + "/"))
    return out


@pytest.fixture(scope="module")
def tf_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras

    return tf_keras


@pytest.mark.tensorflow
def test_matches_tf_keras_functional(tf_keras):
    L = tf_keras.layers
    img = tf_keras.Input((16, 16, 3), name="img")
    y = L.Conv2D(8, 3, strides=2, padding="same", name="conv")(img)
    y = L.BatchNormalization(name="bn")(y)
    y = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(y)
    y = L.SeparableConv2D(4, 3, padding="same", name="sep")(y)
    y = L.Conv2DTranspose(3, 3, strides=2, name="deconv")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    seq = tf_keras.Input((9,), name="tokens")
    e = L.Embedding(50, 6, name="emb")(seq)
    n = L.Normalization(name="norm")(e)
    t = L.TimeDistributed(L.Dense(4), name="td")(n)
    b = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(t)
    g = L.GRU(5, reset_after=False, name="gru")(b)
    att = L.MultiHeadAttention(2, 3, name="mha")(t, t)
    ln = L.LayerNormalization(name="ln")(att)
    f = L.Flatten(name="flat")(ln)
    out = L.Concatenate(name="cat")([y, g, f])
    model = tf_keras.Model([img, seq], L.Dense(2, dtype="mixed_float16", name="head")(out))
    expected = _tf_keras_expected(model)
    _check(arch_from_tf_keras(model), expected, model.count_params(), _trainable_count(model))


@pytest.mark.tensorflow
def test_matches_tf_keras_sequential(tf_keras):
    L = tf_keras.layers
    model = tf_keras.Sequential([
        L.Conv1D(4, 3, input_shape=(10, 2), name="c"),
        L.MaxPooling1D(name="p"),
        L.LSTM(3, return_sequences=True, name="lstm"),
        L.SimpleRNN(2, name="rnn"),
        L.Dense(1, name="d"),
    ], name="seq")
    _check(arch_from_tf_keras(model), _tf_keras_expected(model), model.count_params(),
           _trainable_count(model))


@pytest.mark.tensorflow
def test_matches_tf_keras_nested_and_tf_ops(tf_keras):
    """Keras 2 numbers a nested model's calls from 1 (its own graph is node 0)."""
    import tensorflow as tf

    L = tf_keras.layers
    inner_in = tf_keras.Input((None, 3), name="inner_in")
    inner = tf_keras.Model(inner_in, L.Dense(4, name="inner_dense")(inner_in), name="inner")
    seq = tf_keras.Sequential([L.Dense(5, input_shape=(7, 4), name="seq_dense"),
                               L.BatchNormalization(name="seq_bn")], name="seq")
    lazy = tf_keras.Sequential([L.Dense(2, name="lazy_dense")], name="lazy")
    x = tf_keras.Input((7, 3), name="x")
    a = inner(x)
    a2 = inner(L.Dense(3, name="d3")(a))
    b = seq(tf.nn.relu(a + a2 * 2.0))  # TFOpLambda layers
    model = tf_keras.Model(x, [L.Dense(2, name="head")(lazy(b)), a2])
    _check(arch_from_tf_keras(model), _tf_keras_expected(model), model.count_params(),
           _trainable_count(model))
