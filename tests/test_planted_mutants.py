"""Tests written to kill the mutants ``make mutate`` found alive (docs/mutation.md, docs/mutation-report.md).

Each pins one behaviour no test checked, with the expectation taken from
outside archdiff: Unicode's character database, the Markdown and CSV rules
the escapers follow, the file formats' own signatures.
"""
from __future__ import annotations

import unicodedata

import pytest

from archdiff.safetext import confusable_note, csv_cell, has_hidden, md_code, md_text, skeleton, visible


# -- archdiff.safetext -------------------------------------------------------------------------------
@pytest.mark.parametrize("ch", ["\ufe00", "\ufe01", "\ufe0e", "\ufe0f"])
def test_variation_selectors_at_both_ends_of_their_block_are_escaped(ch):
    # U+FE00..U+FE0F are Mn (not a C* category) but change how the letter before them shows.
    assert unicodedata.category(ch) == "Mn"
    assert visible("a" + ch) == f"a\\u{ord(ch):04x}" and has_hidden(ch)


@pytest.mark.parametrize("ch", ["\ufdff", "\ufe10"])
def test_the_code_points_beside_the_variation_selectors_are_kept(ch):
    if unicodedata.category(ch) in ("Cn", "Co", "Cc", "Cf"):
        pytest.fail(f"U+{ord(ch):04X} is {unicodedata.category(ch)}: pick a printable neighbour")
    assert visible(ch) == ch and not has_hidden(ch)


@pytest.mark.parametrize("ch", sorted("\u115f\u1160\u3164\uffa0\u180e\u034f\u2800"))
def test_every_listed_invisible_letter_is_escaped(ch):
    # Hangul fillers, Mongolian vowel separator, combining grapheme joiner, braille blank: they show nothing.
    assert visible(ch) == f"\\u{ord(ch):04x}" and has_hidden(ch)


def test_short_escapes_and_the_backslash():
    assert visible("\t") == "\\t" and visible("\r") == "\\r" and visible("\n") == "\\n"
    assert visible("\\") == "\\\\" and not has_hidden("\\")
    assert visible("\x7f") == "\\x7f" and visible("\x00") == "\\x00"
    assert visible("\x85") == "\\x85"  # NEL: a C1 control, below U+0100
    assert visible("\U000e0001") == "\\U000e0001"  # LANGUAGE TAG: astral, Cf


def test_printable_ascii_comes_back_unchanged():
    text = "".join(chr(c) for c in range(0x20, 0x7f) if chr(c) != "\\")
    assert visible(text) == text and not has_hidden(text)


def test_confusable_note_names_an_ascii_control_character():
    # Controls have no Unicode name: the code point says which, and the note says it is unnamed.
    assert confusable_note("dense", "den\x1bse") == \
        "the names differ only by look-alike or invisible characters (U+001B unnamed)"


def test_confusable_note_lists_at_most_six_code_points_in_order():
    a = "abcdefgh"
    b = "".join(ch + "\u200b" for ch in a)  # a zero-width space after every letter: one code point, once
    note = confusable_note(a, b)
    assert note == ("the names differ only by look-alike or invisible characters (U+200B ZERO WIDTH SPACE)")
    many = "a\u200b\u200c\u200d\u2060\ufeff\u180e\u034fb"
    note = confusable_note("ab", many)
    assert note.count("U+") == 6 and note.index("U+034F") < note.index("U+180E")
    assert confusable_note("ab", "a\u200b\u200cb") == ("the names differ only by look-alike or invisible characters "
                                                       "(U+200B ZERO WIDTH SPACE, U+200C ZERO WIDTH NON-JOINER)")


def test_skeleton_maps_look_alikes_and_drops_invisibles():
    assert skeleton("\u0440\u0430\u0443\u0440\u0430l") == "paypal"  # Cyrillic р а у р а + Latin l
    assert skeleton("de\u200bnse") == "dense"
    assert skeleton("ｄｅｎｓｅ") == "dense"  # NFKC folds the fullwidth forms
    assert skeleton("a\tb") == "a\tb"  # a tab is shown (escaped), never dropped


def test_csv_cells_keep_their_text_after_the_apostrophe():
    assert csv_cell("=1+2") == "'=1+2"
    assert csv_cell("-x") == "'-x" and csv_cell("@a") == "'@a" and csv_cell("+1") == "'+1"
    assert csv_cell("\tx") == "'\\tx" and csv_cell("\rx") == "'\\rx"
    assert csv_cell("a=b") == "a=b" and csv_cell(True) is True and csv_cell(1.5) == 1.5


def test_md_code_of_nothing_is_nothing():
    assert md_code("") == ""


def test_md_text_keeps_the_text_between_two_live_references():
    assert md_text("a @x b @y c") == "a `@x` b `@y` c"
    assert md_text("see #1 and #2.") == "see `#1` and `#2.`"


# -- archdiff.read.sniff ----------------------------------------------------------------------------------
def _aligned_keras(tmp_path, *, deflate_first: bool):
    """A real .keras rebuilt so that its stored model.weights.h5 starts on an HDF5 superblock offset."""
    import struct
    import zipfile

    import h5py
    from support import FIXTURES

    src = zipfile.ZipFile(FIXTURES / "keras3" / "functional.keras")
    members = [(i.filename, src.read(i.filename)) for i in src.infolist()]
    path = tmp_path / "aligned.keras"
    for pad in range(4096):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
            for n, (name, data) in enumerate(members):
                info = zipfile.ZipInfo(name)
                if n == 0 and deflate_first:
                    info.compress_type = zipfile.ZIP_DEFLATED
                if name == "model.weights.h5":  # padding in the local header's extra field
                    info.extra = b"\xfe\xca" + struct.pack("<H", pad) + b"\0" * pad
                dst.writestr(info, data)
        if h5py.is_hdf5(path):
            return path
    pytest.fail("could not align the weights member on an HDF5 superblock offset")


def test_a_deflated_member_before_the_aligned_weights_does_not_hide_them(tmp_path, cli):
    """Keras may deflate config.json and store model.weights.h5: every stored member is looked at."""
    import zipfile

    path = _aligned_keras(tmp_path, deflate_first=True)
    assert zipfile.ZipFile(path).infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    code, out, err = cli("layers", path, "--format", "json")
    assert code == 0, err
    assert '"main_output"' in out


# -- archdiff.shapes.registry -----------------------------------------------------------------------------
def _depthwise(dtype, **extra):
    return {"name": "dw", "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "depth_multiplier": 2,
            "data_format": "channels_last", "dilation_rate": [1, 1], "use_bias": True, "trainable": False,
            "dtype": dtype, **extra}


@pytest.mark.parametrize("config, keras2", [
    # tf-keras writes a dtype Policy object, or a string beside batch_input_shape; Keras 3 a DTypePolicy.
    (_depthwise({"class_name": "Policy", "config": {"name": "float32"}}), True),
    (_depthwise("float32", batch_input_shape=[None, 8, 8, 4]), True),
    (_depthwise({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}), False),
    (_depthwise("float32"), False),
])
def test_without_a_dialect_the_config_tells_keras2_from_keras3(config, keras2):
    """tf-keras names DepthwiseConv2D's kernel depthwise_kernel, Keras 3 kernel; Keras 3 freezes a frozen
    layer's variables, tf-keras leaves them trainable."""
    from archdiff.shapes.registry import layer_weights

    specs = layer_weights("DepthwiseConv2D", config, [(None, 8, 8, 4)])
    assert [(w.name, w.shape) for w in specs] == [("depthwise_kernel" if keras2 else "kernel", (3, 3, 4, 2)),
                                                  ("bias", (8,))]
    assert [w.trainable for w in specs] == [keras2, keras2]
    given = layer_weights("DepthwiseConv2D", config, [(None, 8, 8, 4)], dialect="keras2" if keras2 else "keras3")
    assert given == specs


def test_register_checks_its_arguments():
    from archdiff.shapes import registry

    def rule(*_):
        return []

    with pytest.raises(ValueError, match=r"^register\(\) needs at least one class name$"):
        registry.register([], weights=rule)
    with pytest.raises(TypeError, match=r"^register\('NoSuchLayer', \.\.\.\): weights must be a rule "
                                        r"\(registry\.no_weights for a class without variables\)$"):
        registry.register("NoSuchLayer", weights=None)
    with pytest.raises(TypeError, match=r"^register\('NoSuchLayer', \.\.\.\): output must be a rule or None$"):
        registry.register("NoSuchLayer", weights=rule, output="nonsense")
    with pytest.raises(ValueError, match=r"^classes registered twice: Dense$"):
        registry.register(("Dense",), weights=rule)
    with pytest.raises(ValueError, match=r"^classes registered twice: Conv2D, Dense$"):
        registry.register(("Dense", "Conv2D"), weights=rule)
    # A class with a weight rule and no output rule (Lambda: its output is unknown) is taken all the same.
    assert "Lambda" in registry.WEIGHTS and "Lambda" not in registry.OUTPUTS
    with pytest.raises(ValueError, match=r"^classes registered twice: Lambda$"):
        registry.register("Lambda", weights=rule)
    with pytest.raises(ValueError, match=r"^classes registered twice: \('Twice', 'Twice'\)$"):
        registry.register(("Twice", "Twice"), weights=rule)
    try:
        registry.register("PlantedTestLayer", weights=rule, output=rule)
        assert registry.WEIGHTS["PlantedTestLayer"] is rule and registry.OUTPUTS["PlantedTestLayer"] is rule
        registry.register(["PlantedNoOutput"], weights=rule)
        assert registry.WEIGHTS["PlantedNoOutput"] is rule and "PlantedNoOutput" not in registry.OUTPUTS
    finally:
        for name in ("PlantedTestLayer", "PlantedNoOutput"):
            registry.WEIGHTS.pop(name, None)
            registry.OUTPUTS.pop(name, None)


# -- archdiff.names ------------------------------------------------------------------------------------------
def test_model_is_keras_3s_functional():
    """Keras 2.0 serialised a functional model as class Model; Keras 3 (and tf-keras since 2.4) as Functional."""
    from archdiff.names import canonical_class, same_class

    assert canonical_class("Model") == "Functional" and canonical_class("Dense") == "Dense"
    assert same_class("Model", "Functional") and not same_class("Model", "Sequential")


# -- archdiff.read.config ---------------------------------------------------------------------------------
#: tf-keras 2.21's to_json() of Model(x, Dense(2, name="head")(Sequential([Dense(8), Dense(3)], name="block")(x))),
#: with the Sequential's InputLayer entry folded into its first layer's batch_input_shape, as Keras 2 wrote it
#: before it listed the InputLayer. tf-keras 2.21 loads this document (model_from_json: layers x, block, head;
#: 75 parameters) and hangs on the same document with head reading block's node 0: rebuilding the Sequential
#: makes an InputLayer from batch_input_shape, whose graph is the Sequential's node 0.
K2_SEQUENTIAL_WITHOUT_INPUT_LAYER = (
    "{\"backend\":\"tensorflow\",\"class_name\":\"Functional\",\"config\":{\"input_layers\":[[\"x\",0,0]],\"layers\":[{\"class"
    "_name\":\"InputLayer\",\"config\":{\"batch_input_shape\":[null,4],\"dtype\":\"float32\",\"name\":\"x\",\"optional\":false"
    ",\"ragged\":false,\"sparse\":false},\"inbound_nodes\":[],\"module\":\"keras.layers\",\"name\":\"x\",\"registered_name\":"
    "null},{\"build_config\":{\"input_shape\":[null,4]},\"class_name\":\"Sequential\",\"config\":{\"layers\":[{\"build_con"
    "fig\":{\"input_shape\":[null,4]},\"class_name\":\"Dense\",\"config\":{\"activation\":\"linear\",\"activity_regularizer"
    "\":null,\"batch_input_shape\":[null,4],\"bias_constraint\":null,\"bias_initializer\":{\"class_name\":\"Zeros\",\"con"
    "fig\":{},\"module\":\"keras.initializers\",\"registered_name\":null},\"bias_regularizer\":null,\"dtype\":\"float32\","
    "\"kernel_constraint\":null,\"kernel_initializer\":{\"class_name\":\"GlorotUniform\",\"config\":{\"seed\":null},\"modu"
    "le\":\"keras.initializers\",\"registered_name\":null},\"kernel_regularizer\":null,\"name\":\"s1\",\"trainable\":true,"
    "\"units\":8,\"use_bias\":true},\"module\":\"keras.layers\",\"registered_name\":null},{\"build_config\":{\"input_shape"
    "\":[null,8]},\"class_name\":\"Dense\",\"config\":{\"activation\":\"linear\",\"activity_regularizer\":null,\"bias_const"
    "raint\":null,\"bias_initializer\":{\"class_name\":\"Zeros\",\"config\":{},\"module\":\"keras.initializers\",\"register"
    "ed_name\":null},\"bias_regularizer\":null,\"dtype\":\"float32\",\"kernel_constraint\":null,\"kernel_initializer\":{"
    "\"class_name\":\"GlorotUniform\",\"config\":{\"seed\":null},\"module\":\"keras.initializers\",\"registered_name\":null"
    "},\"kernel_regularizer\":null,\"name\":\"s2\",\"trainable\":true,\"units\":3,\"use_bias\":true},\"module\":\"keras.laye"
    "rs\",\"registered_name\":null}],\"name\":\"block\"},\"inbound_nodes\":[[[\"x\",0,0,{}]]],\"module\":\"keras\",\"name\":\"b"
    "lock\",\"registered_name\":null},{\"build_config\":{\"input_shape\":[null,3]},\"class_name\":\"Dense\",\"config\":{\"a"
    "ctivation\":\"linear\",\"activity_regularizer\":null,\"bias_constraint\":null,\"bias_initializer\":{\"class_name\":"
    "\"Zeros\",\"config\":{},\"module\":\"keras.initializers\",\"registered_name\":null},\"bias_regularizer\":null,\"dtype"
    "\":\"float32\",\"kernel_constraint\":null,\"kernel_initializer\":{\"class_name\":\"GlorotUniform\",\"config\":{\"seed\""
    ":null},\"module\":\"keras.initializers\",\"registered_name\":null},\"kernel_regularizer\":null,\"name\":\"head\",\"tr"
    "ainable\":true,\"units\":2,\"use_bias\":true},\"inbound_nodes\":[[[\"block\",1,0,{}]]],\"module\":\"keras.layers\",\"n"
    "ame\":\"head\",\"registered_name\":null}],\"name\":\"net\",\"output_layers\":[[\"head\",0,0]],\"trainable\":true},\"kera"
    "s_version\":\"2.21.0\"}"
)


def test_a_keras2_sequential_built_from_batch_input_shape_counts_its_own_graph_as_node_zero(tmp_path):
    import json

    import archdiff
    from archdiff.diff import diff

    path = tmp_path / "k2_nested_sequential.json"
    path.write_text(K2_SEQUENTIAL_WITHOUT_INPUT_LAYER)
    arch = archdiff.load(path)
    assert arch.source.dialect == "keras2"
    assert [layer.path for layer in arch.layers] == ["x", "block", "block/s1", "block/s2", "head"]
    (call,) = arch.layer("head").calls
    assert [(r.layer, r.node_index, r.tensor_index) for r in call.inputs] == [("block", 0, 0)]  # its only call
    assert arch.param_counts().total == 75
    # The same model with the InputLayer listed (what tf-keras 2.21 writes) has the same graph.
    doc = json.loads(K2_SEQUENTIAL_WITHOUT_INPUT_LAYER)
    block = doc["config"]["layers"][1]["config"]
    first = block["layers"][0]["config"]
    block["layers"].insert(0, {"class_name": "InputLayer", "config": {
        "batch_input_shape": first.pop("batch_input_shape"), "dtype": "float32", "sparse": False, "ragged": False,
        "name": "s1_input"}})
    doc["config"]["layers"][2]["inbound_nodes"] = [[["block", 1, 0, {}]]]
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps(doc))
    d = diff(archdiff.load(listed), arch)
    assert not d.edges_added and not d.edges_removed and not [c for m in d.matched for c in m.changes
                                                              if c.kind == "inputs"]


def test_a_member_whose_header_offset_is_not_a_header_does_not_stop_the_scan(tmp_path, cli):
    """A stored member before the weights whose central-directory offset points at no local header (archdiff
    never reads that member) is passed over; the scan goes on and finds where the weights start."""
    import struct
    import zipfile

    import h5py
    from support import FIXTURES

    src = zipfile.ZipFile(FIXTURES / "keras3" / "functional.keras")
    members = [(i.filename, src.read(i.filename)) for i in src.infolist()]
    path = tmp_path / "offset.keras"
    for pad in range(4096):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
            dst.writestr(zipfile.ZipInfo("assets/pad.bin"), b"\0" * 64)
            for name, data in members:
                info = zipfile.ZipInfo(name)
                if name == "model.weights.h5":
                    info.extra = b"\xfe\xca" + struct.pack("<H", pad) + b"\0" * pad
                dst.writestr(info, data)
        if h5py.is_hdf5(path):
            break
    else:
        pytest.fail("could not align the weights member on an HDF5 superblock offset")
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")  # the first central-directory entry: assets/pad.bin
    assert data[entry + 46:entry + 46 + len(b"assets/pad.bin")] == b"assets/pad.bin"
    struct.pack_into("<I", data, entry + 42, 40)  # its local header offset now points into its own zeros
    path.write_bytes(bytes(data))
    code, out, err = cli("layers", path, "--format", "json")
    assert code == 0, err
    assert '"main_output"' in out


def test_a_keras2_sequential_built_on_its_first_call_counts_that_call_as_node_zero(tmp_path):
    """Without an InputLayer or a batch_input_shape, tf-keras builds the Sequential when it is first called:
    that call is node 0. tf-keras 2.21 loads this document (head reading block's node 0) and hangs on it with
    node 1."""
    import json

    import archdiff

    doc = json.loads(K2_SEQUENTIAL_WITHOUT_INPUT_LAYER)
    doc["config"]["layers"][1]["config"]["layers"][0]["config"].pop("batch_input_shape")
    doc["config"]["layers"][2]["inbound_nodes"] = [[["block", 0, 0, {}]]]
    path = tmp_path / "deferred.json"
    path.write_text(json.dumps(doc))
    arch = archdiff.load(path)
    (call,) = arch.layer("head").calls
    assert [(r.layer, r.node_index, r.tensor_index) for r in call.inputs] == [("block", 0, 0)]


def test_a_keras2_config_nesting_an_empty_sequential_is_read_not_crashed_on(tmp_path):
    import json

    import archdiff

    doc = json.loads(K2_SEQUENTIAL_WITHOUT_INPUT_LAYER)
    doc["config"]["layers"][1]["config"]["layers"] = []
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(doc))
    arch = archdiff.load(path)
    assert [layer.path for layer in arch.layers] == ["x", "block", "head"]


def test_a_keras2_sequential_built_on_its_first_call_and_called_twice_keeps_both_calls(tmp_path):
    """The same Sequential as above, shared by two inputs: its calls are nodes 0 and 1 (tf-keras 2.21 loads
    this document: block has 2 inbound nodes, 83 parameters), so nothing is renumbered."""
    import copy
    import json

    import archdiff

    doc = json.loads(K2_SEQUENTIAL_WITHOUT_INPUT_LAYER)
    layers = doc["config"]["layers"]
    layers[1]["config"]["layers"][0]["config"].pop("batch_input_shape")
    x2 = copy.deepcopy(layers[0])
    x2["name"] = x2["config"]["name"] = "x2"
    layers.insert(1, x2)
    layers[2]["inbound_nodes"] = [[["x", 0, 0, {}]], [["x2", 0, 0, {}]]]
    head2 = copy.deepcopy(layers[3])
    head2["name"] = head2["config"]["name"] = "head2"
    layers[3]["inbound_nodes"] = [[["block", 0, 0, {}]]]
    head2["inbound_nodes"] = [[["block", 1, 0, {}]]]
    layers.append(head2)
    doc["config"]["input_layers"] = [["x", 0, 0], ["x2", 0, 0]]
    doc["config"]["output_layers"] = [["head", 0, 0], ["head2", 0, 0]]
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(doc))
    arch = archdiff.load(path)
    refs = {name: [(r.layer, r.node_index) for c in arch.layer(name).calls for r in c.inputs]
            for name in ("head", "head2")}
    assert refs == {"head": [("block", 0)], "head2": [("block", 1)]}
    assert arch.param_counts().total == 83
