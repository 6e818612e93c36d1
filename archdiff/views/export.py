"""Exports of one model: Keras JSON, safe YAML, and graph formats.

``to_json_text`` writes what ``keras.models.model_from_json`` reads;
``to_yaml_text`` writes safe YAML (plain mappings, lists and scalars), and
:func:`model_from_yaml` rebuilds a Keras model from it: the safe replacement
of Keras' removed ``to_yaml`` / ``model_from_yaml``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from archdiff.errors import TopologyUnknownError, UsageError
from archdiff.model import Architecture
from archdiff.views.graph import GRAPH_FORMATS, dump_graph, to_graph

MODEL_FORMATS = ("json", "yaml")
#: A self-contained page that draws the model (archdiff.htmlreport).
PAGE_FORMATS = ("html",)
FORMATS = MODEL_FORMATS + GRAPH_FORMATS + PAGE_FORMATS

_SUFFIXES = {
    ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".graphml": "graphml", ".gexf": "gexf",
    ".dot": "dot", ".gv": "dot", ".html": "html", ".htm": "html",
}


def format_for(path: str | None, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise UsageError(f"unknown export format '{fmt}'", hint=f"choose one of {', '.join(FORMATS)}")
        return fmt
    if path:
        lower = path.lower()
        if lower.endswith((".nodelink.json", ".node-link.json")):
            return "node-link"
        ext = os.path.splitext(lower)[1]
        if ext in _SUFFIXES:
            return _SUFFIXES[ext]
    raise UsageError(f"cannot tell the export format from '{path}'",
                     hint=f"use a suffix (.json .yaml .graphml .gexf .dot .html) or --format {{{','.join(FORMATS)}}}")


#: ``--dialect``: Keras 3's config (what Keras 3 loads), or the file's own config as it was written.
DIALECTS = ("keras3", "source")

#: Keras 3's own top-level entries for its model classes (``model.to_json()`` writes them).
_KERAS3_MODEL_ENTRIES = {
    "Functional": {"module": "keras.src.models.functional", "registered_name": "Functional"},
    "Sequential": {"module": "keras", "registered_name": None},
}


@dataclass(frozen=True)
class ModelExport:
    """A model document to write, and what was rewritten to make it (empty for the source dialect)."""

    document: dict
    dialect: str
    source_dialect: str | None
    notes: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()


def model_export(arch: Architecture, dialect: str = "keras3") -> ModelExport:
    """The model config in ``to_json``'s shape, in ``dialect`` (see :data:`DIALECTS`).

    ``keras3`` rewrites a Keras 2 config for Keras 3 (:mod:`archdiff.views.upgrade`)
    and gives a Keras 3 legacy-HDF5 config the ``module`` of its model class, so
    that ``keras.models.model_from_json`` finds it; ``source`` keeps the file's
    own config, adding only ``keras_version`` and ``backend`` where it has none.
    """
    if dialect not in DIALECTS:
        raise UsageError(f"unknown dialect '{dialect}'", hint=f"choose one of {', '.join(DIALECTS)}")
    if arch.config is None or not arch.has_topology:
        raise TopologyUnknownError(
            "the input has no model config to export (weights only, or a subclassed model)",
            path=arch.source.path, hint="give a .keras, full-model .h5, .json or .yaml file",
        )
    source_dialect = arch.source.dialect
    if dialect == "keras3" and source_dialect == "keras2":
        from archdiff.views.upgrade import upgrade_architecture

        upgraded = upgrade_architecture(arch)
        return ModelExport(upgraded.document, dialect, source_dialect,
                           ("rewrote the Keras 2 config for Keras 3",) + upgraded.notes, upgraded.renames)
    document = dict(arch.config)
    notes: tuple[str, ...] = ()
    entry = _KERAS3_MODEL_ENTRIES.get(str(document.get("class_name")))
    if dialect == "keras3" and entry and "module" not in document:
        # A Keras 3 legacy .h5 config: Keras 3 finds its nested layers without a module, but not the top model.
        document = {"module": entry["module"], **document, "registered_name": entry["registered_name"]}
        notes = (f"added Keras 3's module '{entry['module']}' to the top-level {document['class_name']}",)
    document.setdefault("keras_version", arch.source.keras_version or ("2.21.0" if source_dialect == "keras2" else "3.15.1"))
    document.setdefault("backend", arch.source.backend or "tensorflow")
    return ModelExport(document, dialect, source_dialect, notes)


def model_document(arch: Architecture, dialect: str = "keras3") -> dict:
    """The model config in ``to_json``'s shape: class_name, config, versions (see :func:`model_export`)."""
    return model_export(arch, dialect).document


def document_text(document: dict, fmt: str) -> str:
    """A model document as JSON (``to_json``'s text) or safe YAML."""
    if fmt == "json":
        return json.dumps(document) + "\n"
    import yaml

    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)


def to_json_text(arch: Architecture, dialect: str = "keras3") -> str:
    return document_text(model_document(arch, dialect), "json")


def to_yaml_text(arch: Architecture, dialect: str = "keras3") -> str:
    return document_text(model_document(arch, dialect), "yaml")


def export_text(arch: Architecture, fmt: str, dialect: str = "keras3") -> str:
    if fmt in MODEL_FORMATS:
        return document_text(model_document(arch, dialect), fmt)
    if fmt == "html":
        from archdiff.diff.render.html import render_model_html

        return render_model_html(arch)
    return dump_graph(to_graph(arch), fmt)


def model_from_yaml(text_or_path, custom_objects=None, *, safe_mode: bool = True):
    """Rebuild a Keras 3 model from YAML (archdiff's, or old Keras' ``to_yaml``).

    The YAML is read with a safe loader only (old Keras' ``!!python/tuple`` is
    read as a list; any other Python tag is refused). A Keras 2 config is
    rewritten for Keras 3 first, as ``archdiff export`` does
    (:mod:`archdiff.views.upgrade`; :class:`~archdiff.errors.NotConvertibleError`
    names what has no Keras 3 equivalent). ``safe_mode`` is Keras' own: a
    Lambda layer's code is not deserialized unless it is False.
    """
    from archdiff.lazy import require_keras
    from archdiff.read import from_config_document, load, parse_yaml_text
    from archdiff.shapes import infer

    if isinstance(text_or_path, (str, os.PathLike)) and os.path.exists(text_or_path):
        arch = load(os.fspath(text_or_path))
    else:
        text = text_or_path.encode("utf-8") if isinstance(text_or_path, str) else text_or_path
        arch = infer(from_config_document(parse_yaml_text(text, where="<yaml>"), path="<yaml>", fmt="yaml"))
    document = model_document(arch, "keras3")
    keras = require_keras()
    # A config from a legacy .h5 names nested models without a module: name the model classes for Keras.
    objects = {"Functional": keras.Model, "Model": keras.Model, "Sequential": keras.Sequential}
    objects.update(custom_objects or {})
    return keras.saving.deserialize_keras_object(
        {k: v for k, v in document.items() if k not in ("keras_version", "backend")},
        custom_objects=objects, safe_mode=safe_mode,
    )
