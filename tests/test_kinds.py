"""Every kind of change ``diff`` knows, each made by a real pair of Keras models with exactly that change.

One row per change: two models built with real Keras (Keras 3, and tf-keras
where the change exists there), saved as Keras saves them, read back by
archdiff without Keras. Each row states every change the pair must show, as
``(where, kind, effect)``, the classification and the exit code; the
expectations follow from what the two Keras models are (a Dense of 8 units
on 4 inputs holds a (4, 8) kernel, a swapped output order is another
interface), never from archdiff's output.

``test_the_table_covers_every_kind_the_code_declares`` fails when the code
declares a kind of change, an effect of one, an input/output aspect or a
classification that no row builds, so a new kind cannot arrive without a test.
"""
from __future__ import annotations

import pytest
from keras_build import build

import archdiff
import archdiff.diff as diff_stage
from archdiff.diff import CHANGE_KINDS, CLASSIFICATIONS, KINDS, DiffOptions, diff

CO, WC, WB, IC, TC = "cosmetic", "weights-compatible", "weights-breaking", "interface-changing", "topology-changing"

#: Keras code shared by both flavours: ``PAIRS[row] = (model_a, model_b, how)``; ``how`` says how to save:
#: "model" (.keras for Keras 3, .h5 for tf-keras), "weights" (save_weights only) or "json" (to_json, edited).
BUILD = r'''
L = keras.layers
PAIRS = {}


def mlp(fc="fc", out="out", inp="x", name="net", act="relu", units=8, trainable=True, dtype=None, extra=False):
    x = keras.Input((4,), name=inp)
    h = L.Dense(units, activation=act, name=fc, trainable=trainable, dtype=dtype)(x)
    if extra:
        h = L.Dense(units, activation="relu", name="extra")(h)
    y = L.Dense(2, name=out)(h)
    return keras.Model(x, y, name=name)


def pooled(pool=L.GlobalAveragePooling2D, size=8):
    x = keras.Input((size, size, 3), name="image")
    h = L.Conv2D(4, 3, name="conv")(x)
    h = pool(name="pool")(h)
    return keras.Model(x, L.Dense(2, name="out")(h), name="net")


def embedded(dtype):
    x = keras.Input((4,), dtype=dtype, name="tokens")
    h = L.Flatten(name="flat")(L.Embedding(10, 3, name="embed")(x))
    return keras.Model(x, L.Dense(2, name="out")(h), name="net")


def wired(swap):
    x = keras.Input((4,), name="x")
    a, b = L.Dense(4, name="a")(x), L.Dense(4, name="b")(x)
    c = L.Dense(4, name="c")(b if swap else a)
    return keras.Model(x, L.Add(name="add")([c, a if swap else b]), name="net")


def branches(n):
    xs = [keras.Input((4,), name=f"x{i}") for i in range(n)]
    hs = [L.Dense(4, name=f"f{i}")(x) for i, x in enumerate(xs)]
    return keras.Model(xs, L.Dense(2, name="out")(L.Add(name="add")(hs)), name="net")


def two_inputs(order):
    xs = {k: keras.Input((4,), name=k) for k in ("xa", "xb")}
    y = L.Dense(2, name="out")(L.Concatenate(name="cat")([xs["xa"], xs["xb"]]))
    return keras.Model([xs[k] for k in order], y, name="net")


def heads(order, names=("p", "q")):
    x = keras.Input((4,), name="x")
    h = L.Dense(8, name="fc")(x)
    outs = {n: L.Dense(3, name=n)(h) for n in names}
    return keras.Model(x, [outs[n] for n in order] if len(order) > 1 else outs[order[0]], name="net")


def reshaped(target):
    x = keras.Input((4,), name="x")
    return keras.Model(x, L.Reshape(target, name="shape")(L.Dense(6, name="fc")(x)), name="net")


def permuted(n_in, units, bias):
    x = keras.Input((n_in,), name="x")
    return keras.Model(x, L.Dense(units, use_bias=bias, name="fc")(x), name="net")


def nested(name="net"):
    inner_in = keras.Input((8,), name="inner_x")
    inner = keras.Model(inner_in, L.Dense(4, name="inner_fc")(inner_in), name="block")
    x = keras.Input((4,), name="x")
    return keras.Model(x, L.Dense(2, name="out")(inner(L.Dense(8, name="fc")(x))), name=name)


PAIRS["identical"] = (mlp(), mlp(), "model")
PAIRS["layer_renamed"] = (mlp(), mlp(fc="hidden"), "model")
PAIRS["model_renamed"] = (mlp(), mlp(name="net2"), "model")
PAIRS["class_changed"] = (pooled(L.GlobalAveragePooling2D), pooled(L.GlobalMaxPooling2D), "model")
PAIRS["dense_to_einsum"] = (
    mlp(),
    keras.Model(*(lambda x: (x, L.Dense(2, name="out")(
        L.EinsumDense("ab,bc->ac", output_shape=8, bias_axes="c", activation="relu", name="fc")(x))))(
        keras.Input((4,), name="x")), name="net"),
    "model")
PAIRS["model_class_changed"] = (
    keras.Sequential([keras.Input((4,), name="x"), L.Dense(8, name="fc"), L.Dense(2, name="out")], name="net"),
    mlp(act="linear"), "model")
PAIRS["config_changed"] = (mlp(), mlp(act="tanh"), "model")
PAIRS["trainable_changed"] = (mlp(), mlp(trainable=False), "model")
PAIRS["weight_shape_weights_only"] = (mlp(), mlp(units=16), "weights")
PAIRS["weight_dtype_weights_only"] = (mlp(), mlp(dtype="float16"), "weights")
PAIRS["permuted_kernel_weights_only"] = (permuted(4, 8, False), permuted(8, 4, False), "weights")
PAIRS["permuted_kernel"] = (permuted(4, 8, False), permuted(8, 4, False), "model")
PAIRS["permuted_kernel_with_bias"] = (permuted(4, 8, True), permuted(8, 4, True), "model")
PAIRS["inputs_changed"] = (wired(False), wired(True), "model")
PAIRS["layer_added"] = (mlp(), mlp(extra=True), "model")
PAIRS["layer_removed"] = (mlp(extra=True), mlp(), "model")
PAIRS["input_shape"] = (pooled(size=8), pooled(size=16), "model")
PAIRS["input_dtype"] = (embedded("float32"), embedded("int32"), "model")
PAIRS["input_renamed"] = (mlp(), mlp(inp="features"), "model")
PAIRS["input_source"] = (two_inputs(("xa", "xb")), two_inputs(("xb", "xa")), "model")
PAIRS["input_added"] = (branches(2), branches(3), "model")
PAIRS["input_removed"] = (branches(3), branches(2), "model")
PAIRS["output_shape"] = (reshaped((2, 3)), reshaped((3, 2)), "model")
PAIRS["output_source"] = (heads(("p", "q")), heads(("q", "p")), "model")
PAIRS["output_renamed"] = (heads(("p", "q")), heads(("p", "r"), names=("p", "r")), "model")
PAIRS["output_added"] = (heads(("p",), names=("p",)), heads(("p", "q")), "model")
PAIRS["output_removed"] = (heads(("p", "q")), heads(("p",), names=("p",)), "model")
def classifier(act):
    x = keras.Input((4,), name="x")
    return keras.Model(x, L.Dense(3, activation=act, name="out")(L.Dense(8, name="fc")(x)), name="net")


# softmax probabilities -> logits: the same weights, outputs that mean something else.
PAIRS["output_activation"] = (classifier("softmax"), classifier("linear"), "model")
PAIRS["dtype_spelling"] = (mlp(), mlp(), "json:dtype")
PAIRS["model_class_spelling"] = (mlp(), mlp(), "json:model")
PAIRS["nested_class_spelling"] = (nested(), nested(), "json:nested")


def retrained():
    """The same model twice, B with fc's kernel doubled: only weight values differ."""
    a, b = mlp(), mlp()
    b.set_weights(a.get_weights())
    kernel, bias = b.get_layer("fc").get_weights()
    b.get_layer("fc").set_weights([kernel * 2, bias])
    return a, b


PAIRS["values_changed"] = (*retrained(), "model")


class Stack(keras.Model):
    """A subclassed model whose config holds its constructor's argument (as keras-hub's backbones do)."""

    def __init__(self, depth=1, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.blocks = [L.Dense(4, name=f"block_{i}") for i in range(depth)]

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def get_config(self):
        return {"name": self.name, "depth": self.depth}


PAIRS["constructor_changed"] = (Stack(1, name="net"), Stack(2, name="net"), "json:plain")

import json as _json


def _spelled(text, which):
    """to_json() with one class spelled 'Model' (Keras 2.0's name for Functional; both load alike)."""
    doc = _json.loads(text)
    if which == "model":
        doc["class_name"] = "Model"
    elif which == "dtype":  # a dtype written as a DTypePolicy object or as its name: the same dtype
        for layer in doc["config"]["layers"]:
            if layer["class_name"] == "Dense":
                dtype = layer["config"].get("dtype")
                layer["config"]["dtype"] = (dtype["config"]["name"] if isinstance(dtype, dict) else
                                            {"module": "keras", "class_name": "DTypePolicy",
                                             "config": {"name": dtype or "float32"}, "registered_name": None})
    else:
        for layer in doc["config"]["layers"]:
            if layer["class_name"] == "Functional":
                layer["class_name"] = "Model"
    return _json.dumps(doc)


MODEL_EXT = ".keras" if keras.__version__.startswith("3") else ".h5"
for row, (a, b, how) in PAIRS.items():
    for side, m in (("a", a), ("b", b)):
        stem = os.path.join(OUT, f"{row}_{side}")
        if how == "model":
            m.save(stem + MODEL_EXT)
            RESULT[row] = MODEL_EXT
        elif how == "weights":
            ext = ".weights.h5" if keras.__version__.startswith("3") else ".h5"
            m.save_weights(stem + ext)
            RESULT[row] = ext
        else:
            text = m.to_json()
            spelled = side == "b" and how != "json:plain"
            open(stem + ".json", "w").write(_spelled(text, how.split(":")[1]) if spelled else text)
            RESULT[row] = ".json"
RESULT["__version__"] = keras.__version__
'''


def E(where, kind, effect):  # noqa: N802 - reads as a table entry
    return (where, kind, effect)


#: row -> (flavours, DiffOptions kwargs, every change the pair must show, classification).
#: ``where``: "layer" (a matched layer's change), "model" (the model's own name or class), "input"/"output"
#: (an input/output change: kind is what changed about it), "layers" (a layer added/removed, kind "added"/
#: "removed") or "edges" (a connection added/removed).
BOTH = ("k3", "k2")
TABLE = {
    "identical": (BOTH, {}, set(), "identical"),
    # Renaming a layer changes nothing but its name: its consumers follow it.
    "layer_renamed": (BOTH, {}, {E("layer", "renamed", CO)}, CO),
    "model_renamed": (BOTH, {}, {E("model", "renamed", CO)}, CO),
    # GlobalAverage -> GlobalMaxPooling2D: the same config keys and no weights: only the class differs.
    "class_changed": (BOTH, {}, {E("layer", "class", WC)}, WC),
    # Same kernel (4, 8) and bias (8,): the weights load either way; the configs differ (units vs equation).
    "dense_to_einsum": (BOTH, {}, {E("layer", "class", WC), E("layer", "config", WC)}, WC),
    # A Sequential and a Functional model of the same layers: another kind of model. Keras' own
    # Sequential.layers leaves its InputLayer out and the Functional model lists it, so "x" is added and fc
    # reads from it instead of from the Sequential's implicit input.
    "model_class_changed": (BOTH, {}, {E("model", "class", TC), E("layers", "added", TC), E("edges", "added", TC),
                                       E("edges", "removed", TC), E("layer", "inputs", TC)}, TC),
    "config_changed": (BOTH, {}, {E("layer", "config", WC)}, WC),
    "trainable_changed": (BOTH, {}, {E("layer", "trainable", WC)}, WC),
    # Weights-only files: no configs, so only the variables can differ.
    "weight_shape_weights_only": (BOTH, {}, {E("layer", "weight", WB)}, WB),
    "weight_dtype_weights_only": (BOTH, {}, {E("layer", "weight", WC)}, WC),
    # (4, 8) -> (8, 4): as many numbers, another shape: breaking (a count comparison would miss it).
    "permuted_kernel_weights_only": (BOTH, {}, {E("layer", "weight", WB)}, WB),
    # The output layer's units change too: what the outputs mean (output-changing).
    "permuted_kernel": (BOTH, {}, {E("layer", "weight", WB), E("layer", "config", WC), E("input", "shape", IC),
                                   E("output", "shape", IC), E("layer", "config", "output-changing")}, IC),
    "permuted_kernel_with_bias": (BOTH, {}, {E("layer", "weight", WB), E("layer", "config", WC),
                                             E("input", "shape", IC), E("output", "shape", IC),
                                             E("layer", "config", "output-changing")}, IC),
    # c reads b instead of a, add reads a instead of b.
    "inputs_changed": (BOTH, {}, {E("layer", "inputs", TC), E("edges", "added", TC), E("edges", "removed", TC)},
                       TC),
    # A Dense(8) between fc and out: out's kernel stays (8, 2), it reads the new layer.
    "layer_added": (BOTH, {}, {E("layers", "added", TC), E("edges", "added", TC), E("edges", "removed", TC),
                               E("layer", "inputs", TC)}, TC),
    "layer_removed": (BOTH, {}, {E("layers", "removed", TC), E("edges", "added", TC), E("edges", "removed", TC),
                                 E("layer", "inputs", TC)}, TC),
    # 8x8 -> 16x16 images: no weight depends on it (global pooling), the InputLayer's batch_shape does.
    "input_shape": (BOTH, {}, {E("input", "shape", IC), E("layer", "config", WC)}, IC),
    "input_dtype": (BOTH, {}, {E("input", "dtype", IC), E("layer", "config", WC)}, IC),
    "input_renamed": (BOTH, {}, {E("input", "name", CO), E("layer", "renamed", CO)}, CO),
    "input_source": (BOTH, {}, {E("input", "source", IC)}, IC),
    "input_added": (BOTH, {}, {E("input", "added", IC), E("layers", "added", TC), E("edges", "added", TC),
                               E("layer", "inputs", TC)}, TC),
    "input_removed": (BOTH, {}, {E("input", "removed", IC), E("layers", "removed", TC), E("edges", "removed", TC),
                                 E("layer", "inputs", TC)}, TC),
    "output_shape": (BOTH, {}, {E("output", "shape", IC), E("layer", "config", WC)}, IC),
    "output_source": (BOTH, {}, {E("output", "source", IC)}, IC),
    "output_renamed": (BOTH, {}, {E("output", "name", CO), E("layer", "renamed", CO)}, CO),
    "output_added": (BOTH, {}, {E("output", "added", IC), E("layers", "added", TC), E("edges", "added", TC)}, TC),
    "output_removed": (BOTH, {}, {E("output", "removed", IC), E("layers", "removed", TC),
                                  E("edges", "removed", TC)}, TC),
    # 'Model' and 'Functional' name one class: identical by default, a cosmetic class change with --strict.
    "output_activation": (BOTH, {}, {E("layer", "config", "output-changing")}, "output-changing"),
    # A dtype as a DTypePolicy object or as its name is serialization noise: cosmetic with --strict.
    "dtype_spelling": (BOTH, {"strict": True}, {E("layer", "config", CO)}, CO),
    "model_class_spelling": (BOTH, {"strict": True}, {E("model", "class", CO)}, CO),
    "nested_class_spelling": (BOTH, {"strict": True}, {E("layer", "class", CO)}, CO),
    # One kernel doubled, nothing else: the values changed, the architecture did not.
    "values_changed": (BOTH, {"values": "figures"}, {E("layer", "values", "values-changed")}, "values-changed"),
    # A subclassed model's config holds constructor arguments (depth 1 -> 2), not layers: what the argument
    # changes is known only by building, so the most severe kind.
    "constructor_changed": (BOTH, {}, {E("model", "constructor", TC)}, TC),
}


def reported(d) -> set[tuple[str, str, str]]:
    """Every change of a diff as ``(where, kind, effect)`` (see TABLE)."""
    out = {E("layer", c.kind, c.effect) for m in d.matched for c in m.changes}
    out |= {E("model", c.kind, c.effect) for c in d.model_changes}
    out |= {E(c.side, c.what, c.effect) for c in d.io_changes}
    out |= {E("layers", "added", TC)} if d.added else set()
    out |= {E("layers", "removed", TC)} if d.removed else set()
    out |= {E("edges", "added", TC)} if d.edges_added else set()
    out |= {E("edges", "removed", TC)} if d.edges_removed else set()
    return out


# -- the table covers the vocabulary (no Keras needed) ---------------------------------------------
#: (kind, effect) pairs a row here cannot build, and the test that builds and asserts each instead.
COVERED_ELSEWHERE = {
    # Both sides built with --build: needs keras-hub (or a module to --import) in the build's own process.
    ("constructor", "cosmetic"):
        "tests/test_keras_hub_oracle.py::test_build_names_a_deeper_bert_by_its_new_block_and_the_argument_is_cosmetic",
}


def test_the_table_covers_every_kind_the_code_declares():
    rows = TABLE.values()
    layer_kinds = {(k, e) for _, _, changes, _ in rows for w, k, e in changes if w in ("layer", "model")}
    layer_kinds |= set(COVERED_ELSEWHERE)
    assert {k for k, _ in layer_kinds} >= set(CHANGE_KINDS), set(CHANGE_KINDS) - {k for k, _ in layer_kinds}
    effects = getattr(diff_stage, "EFFECTS", None)  # the vocabulary's table of kind -> effects, where declared
    if effects is not None:
        declared = {(k, e) for k, es in effects.items() for e in es}
        assert layer_kinds >= declared, f"no row builds {sorted(declared - layer_kinds)}"
    io_whats = {k for _, _, changes, _ in rows for w, k, _ in changes if w in ("input", "output")}
    declared_io = set(getattr(diff_stage, "IO_WHATS", ("added", "removed", "name", "shape", "dtype", "source")))
    assert io_whats >= declared_io, f"no row builds an input/output change {sorted(declared_io - io_whats)}"
    all_effects = {e for _, _, changes, _ in rows for *_, e in changes}
    assert all_effects >= set(KINDS), set(KINDS) - all_effects
    assert {c for *_, c in rows} >= set(CLASSIFICATIONS), set(CLASSIFICATIONS) - {c for *_, c in rows}
    for row, (_, _, changes, classification) in TABLE.items():
        # A row's classification is its most severe effect, so the table is consistent with itself.
        expected = max((KINDS.index(e) for *_, e in changes), default=None)
        assert classification == ("identical" if expected is None else KINDS[expected]), row


# -- the pairs, built by real Keras ------------------------------------------------------------------
@pytest.fixture(scope="module", params=["k3", "k2"])
def pairs(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"kinds_{request.param}")
    saved = build(request.param, BUILD, folder)
    assert set(saved) - {"__version__"} == set(TABLE), "the builder and the table name other rows"
    assert saved["__version__"].startswith("3" if request.param == "k3" else "2")
    return request.param, folder, saved


@pytest.mark.tensorflow
@pytest.mark.parametrize("row", list(TABLE))
def test_each_kind_of_change_is_reported_exactly(pairs, row):
    flavour, folder, saved = pairs
    flavours, options, changes, classification = TABLE[row]
    if flavour not in flavours:
        pytest.fail(f"{row} has no {flavour} pair: the table must say why")  # every row here runs on both
    a = archdiff.load(folder / f"{row}_a{saved[row]}")
    b = archdiff.load(folder / f"{row}_b{saved[row]}")
    # The rows are about the architecture: two models built one after another hold other random weights, so
    # values are compared only where a row asks (values_changed builds B from A's weights).
    d = diff(a, b, DiffOptions(**{"values": "off", **options}))
    assert reported(d) == changes, (flavour, row, sorted(reported(d)), [m.to_dict() for m in d.changed],
                                    [c.to_dict() for c in d.io_changes])
    assert d.classification == classification
    assert d.exit_code == (0 if classification == "identical" else 1)


@pytest.mark.tensorflow
@pytest.mark.parametrize("row", ["dense_to_einsum", "input_dtype", "permuted_kernel_weights_only"])
def test_the_cli_exit_code_and_json_agree(pairs, row, cli):
    """The planted bugs' pairs through the command a reviewer runs: exit 1 under the default --fail-on."""
    import json

    flavour, folder, saved = pairs
    code, out, err = cli("diff", folder / f"{row}_a{saved[row]}", folder / f"{row}_b{saved[row]}", "--format",
                         "json", "--topology-only")
    assert code == 1 and not err
    data = json.loads(out)
    assert data["classification"] == TABLE[row][3] and data["exit_code"] == 1


@pytest.mark.tensorflow
def test_dense_to_einsum_names_both_classes(pairs):
    flavour, folder, saved = pairs
    d = diff(archdiff.load(folder / f"dense_to_einsum_a{saved['dense_to_einsum']}"),
             archdiff.load(folder / f"dense_to_einsum_b{saved['dense_to_einsum']}"))
    (fc,) = [m for m in d.matched if m.a == "fc"]
    (change,) = [c for c in fc.changes if c.kind == "class"]
    assert (change.path, change.old, change.new, change.effect) == ("class_name", "Dense", "EinsumDense", WC)
    assert not [c for c in fc.changes if c.kind == "weight"], "the same kernel and bias: no weight change"


@pytest.mark.tensorflow
def test_input_dtype_change_names_both_dtypes(pairs):
    flavour, folder, saved = pairs
    d = diff(archdiff.load(folder / f"input_dtype_a{saved['input_dtype']}"),
             archdiff.load(folder / f"input_dtype_b{saved['input_dtype']}"))
    (change,) = [c for c in d.io_changes if c.what == "dtype"]
    assert (change.side, change.index, change.old, change.new, change.effect) == ("input", 0, "float32", "int32", IC)


def test_inputs_follow_input_layers_not_the_layer_list(tmp_path):
    """Keras' model.inputs follow the config's input_layers; the layer list may order the InputLayers otherwise."""
    from test_diff_support import arch, input_layer, layer, model

    def two(order):
        layers = [input_layer("xa", [4]), input_layer("xb", [6]), layer("Concatenate", "cat", ["xa", "xb"])]
        return arch(model(layers, list(order), ["cat"]), tmp_path, f"{''.join(order)}.json")

    a, b = two(("xa", "xb")), two(("xb", "xa"))
    assert [(s.name, s.shape) for s in b.input_specs] == [("xb", (None, 6)), ("xa", (None, 4))]
    d = diff(a, b)
    assert {(c.side, c.index, c.what) for c in d.io_changes} >= {("input", 0, "source"), ("input", 1, "source")}
    assert d.classification == IC
