"""The differential oracle over the model zoo: archdiff's answers equal Keras' on every keras.applications model.

Each model is built by real Keras (``weights=None``, the smallest input it
accepts, every variable seeded with distinct values) and saved in every format
its Keras writes: Keras 3 ``.keras``, legacy ``.h5``, ``.weights.h5`` and
``to_json()``; tf-keras ``.h5``, ``save_weights`` ``.h5`` and ``to_json()``.
Keras' own answers (``model.layers``, the parameter totals, every variable's
shape and bytes) are recorded beside the files (tests/zoo/builder.py), which
are cached in ``.cache/zoo/`` keyed by the Keras version (tests/zoo/cache.py).

CI runs a fixed subset (tests/zoo/catalog.py: every family once, every model
with Keras 3 operations); ``make test-zoo`` (``ARCHDIFF_ZOO=all``) runs every
model. A disagreement archdiff could not be fixed for in time is listed in
``KNOWN`` with its reason and runs as a strict xfail.
"""
from __future__ import annotations

import pytest
from zoo import cache, catalog, oracle
from zoo.builder import FORMATS

pytestmark = pytest.mark.tensorflow

#: (flavour, model or "*", format or "*", check) -> why archdiff still disagrees with Keras there.
KNOWN: dict[tuple[str, str, str, str], str] = {}


def _known(flavour: str, model: str, fmt: str, check: str):
    for key in ((flavour, model, fmt, check), (flavour, "*", fmt, check), (flavour, model, "*", check),
                (flavour, "*", "*", check)):
        if key in KNOWN:
            return pytest.mark.xfail(reason=KNOWN[key], strict=True)
    return None


def _params(check: str, formats: tuple[str, ...] | None = None, flavours=("k3", "k2"), only=None):
    out = []
    for flavour in flavours:
        for model in catalog.models(flavour):
            if only is not None and model not in only:
                continue
            for fmt in formats if formats is not None else FORMATS[flavour]:
                if fmt not in _formats(flavour, model):
                    continue
                mark = _known(flavour, model, fmt, check)
                out.append(pytest.param(flavour, model, fmt, id=f"{flavour}-{model}-{fmt}",
                                        marks=[mark] if mark else []))
    return out


@pytest.fixture(scope="session")
def zoo():
    """flavour -> model -> its cache folder; builds what the cache lacks (Keras 3, then tf-keras)."""
    return cache.ensure({flavour: catalog.models(flavour) for flavour in ("k3", "k2")})


def _formats(flavour: str, model: str) -> tuple[str, ...]:
    return ("json",) if model.endswith(catalog.JSON_ONLY) else tuple(FORMATS[flavour])


def _file(zoo, flavour: str, model: str, fmt: str):
    folder = zoo[flavour][model]
    truth = cache.truth(folder)
    return truth, folder / truth["files"][fmt]


def _fail(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} disagreement(s) with Keras:\n  " + "\n  ".join(problems[:20])


@pytest.mark.parametrize(("flavour", "model", "fmt"), _params("file"))
def test_each_file_agrees_with_keras(zoo, flavour, model, fmt):
    """The layer table (index, name, path, class) is ``enumerate(model.layers)``; every weight's shape and dtype,
    the three parameter totals, and (files with weights) which stored variable belongs to which layer are
    Keras'. Weights-only files may say unknown where the file cannot tell, never something else."""
    truth, path = _file(zoo, flavour, model, fmt)
    problems = oracle.check_layers(truth, path, fmt) + oracle.check_totals(truth, path, fmt)
    if fmt in oracle.WITH_WEIGHTS:
        problems += oracle.check_mapping(truth, path)
    _fail(problems)


@pytest.mark.parametrize(("flavour", "model", "fmt"), _params("operations", ("keras", "h5", "json"), ("k3",)))
def test_operations_are_listed_without_an_index(zoo, flavour, model, fmt):
    truth, path = _file(zoo, flavour, model, fmt)
    _fail(oracle.check_operations(truth, path))


def _pairs(flavour: str) -> list[tuple[str, str]]:
    full = [f for f in FORMATS[flavour] if f not in oracle.WEIGHTS_ONLY]
    weights = [f for f in FORMATS[flavour] if f in oracle.WEIGHTS_ONLY]
    return [(a, b) for i, a in enumerate(full) for b in full[i + 1:]] + [(full[0], w) for w in weights]


def _diff_params():
    out = []
    for flavour in ("k3", "k2"):
        for model in catalog.models(flavour):
            if model.endswith(catalog.JSON_ONLY):
                continue
            for a, b in _pairs(flavour):
                mark = _known(flavour, model, f"{a}~{b}", "diff")
                out.append(pytest.param(flavour, model, a, b, id=f"{flavour}-{model}-{a}~{b}",
                                        marks=[mark] if mark else []))
    return out


@pytest.mark.parametrize(("flavour", "model", "a", "b"), _diff_params())
def test_diff_of_a_model_with_itself_across_formats_is_identical(zoo, flavour, model, a, b):
    folder = zoo[flavour][model]
    _fail(oracle.check_diff_identical(folder / FORMATS[flavour][a], folder / FORMATS[flavour][b]))


@pytest.mark.parametrize(("flavour", "model", "fmt"),
                         _params("transfer", oracle.WITH_WEIGHTS, only=None if catalog.FULL else catalog.CI_TRANSFER))
def test_transfer_into_a_zeroed_copy_of_itself_is_bitwise_equal(zoo, flavour, model, fmt, tmp_path):
    _, path = _file(zoo, flavour, model, fmt)
    _fail(oracle.check_transfer(path, tmp_path))


@pytest.mark.parametrize(("flavour", "model", "fmt"),
                         _params("export", ("h5",), ("k2",), only=None if catalog.FULL else catalog.CI_EXPORT))
def test_a_keras2_file_exports_to_a_config_keras3_loads(zoo, flavour, model, fmt, tmp_path):
    truth, path = _file(zoo, flavour, model, fmt)
    _fail(oracle.check_export_to_keras3(truth, path, tmp_path))


def test_ci_subset_holds_every_family():
    """Each Keras 3 family is in CI's Keras 3 part; each family only tf-keras has, in its tf-keras part."""
    assert {catalog.family_of(m) for m in catalog.KERAS3_APPS} == {catalog.family_of(m) for m in catalog.CI_KERAS3}
    tf_keras_only = {catalog.family_of(m) for m in catalog.TF_KERAS_ONLY_APPS}
    assert tf_keras_only == {"RegNetX", "RegNetY", "ResNetRS"}
    assert tf_keras_only <= {catalog.family_of(m) for m in catalog.CI_TF_KERAS}


if catalog.FULL:  # needs every model built; CI collects it not at all (a skip there is a failure)
    def test_ci_subset_holds_every_operation_model(zoo):
        """Each Keras 3 model with operations (as Keras' ``model.operations`` says) is in CI's part."""
        with_ops = sorted(m for m, folder in zoo["k3"].items() if cache.truth(folder)["operations"])
        assert with_ops, "no zoo model has operations: the check below would prove nothing"
        in_ci = set(catalog.CI_KERAS3) | set(catalog.CI_KERAS3_JSON)
        assert set(with_ops) <= in_ci, sorted(set(with_ops) - in_ci)
