"""Exports of one model: Keras JSON, safe YAML, and graph formats.

``to_json_text`` writes what ``keras.models.model_from_json`` reads;
``to_yaml_text`` writes safe YAML (plain mappings, lists and scalars), and
:func:`model_from_yaml` rebuilds a Keras model from it: the safe replacement
of Keras' removed ``to_yaml`` / ``model_from_yaml``.
"""
from __future__ import annotations

import json
import os

from archdiff.errors import TopologyUnknownError, UsageError
from archdiff.views.graph import GRAPH_FORMATS, dump_graph, to_graph
from archdiff.model import Architecture

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


def model_document(arch: Architecture) -> dict:
    """The model config in ``to_json``'s shape: class_name, config, versions."""
    if arch.config is None or not arch.has_topology:
        raise TopologyUnknownError(
            "the input has no model config to export (weights only, or a subclassed model)",
            path=arch.source.path, hint="give a .keras, full-model .h5, .json or .yaml file",
        )
    document = dict(arch.config)
    document.setdefault("keras_version", arch.source.keras_version or ("2.21.0" if arch.source.dialect == "keras2" else "3.15.1"))
    document.setdefault("backend", arch.source.backend or "tensorflow")
    return document


def to_json_text(arch: Architecture) -> str:
    return json.dumps(model_document(arch)) + "\n"


def to_yaml_text(arch: Architecture) -> str:
    import yaml

    return yaml.safe_dump(model_document(arch), sort_keys=False, default_flow_style=False, allow_unicode=True)


def export_text(arch: Architecture, fmt: str) -> str:
    if fmt == "json":
        return to_json_text(arch)
    if fmt == "yaml":
        return to_yaml_text(arch)
    if fmt == "html":
        from archdiff.diff.render.html import render_model_html

        return render_model_html(arch)
    return dump_graph(to_graph(arch), fmt)


def model_from_yaml(text_or_path, custom_objects=None, *, safe_mode: bool = True):
    """Rebuild a Keras 3 model from YAML (archdiff's or old Keras' ``to_yaml``).

    The YAML is read with a safe loader only (old Keras' ``!!python/tuple`` is
    read as a list; any other Python tag is refused). ``safe_mode`` is Keras'
    own: a Lambda layer's code is not deserialized unless it is False.
    """
    from archdiff.read.config import unwrap
    from archdiff.lazy import require_keras
    from archdiff.read import parse_yaml_text, read_yaml_file

    if isinstance(text_or_path, (str, os.PathLike)) and os.path.exists(text_or_path):
        document = read_yaml_file(os.fspath(text_or_path))
        where = os.fspath(text_or_path)
    else:
        text = text_or_path.encode("utf-8") if isinstance(text_or_path, str) else text_or_path
        document = parse_yaml_text(text, where="<yaml>")
        where = "<yaml>"
    serialized, _, _ = unwrap(document, where=where)
    keras = require_keras()
    # Configs from legacy .h5 files and Keras 2 carry no "module": name the
    # model classes so that Keras finds them at every nesting level.
    objects = {"Functional": keras.Model, "Model": keras.Model, "Sequential": keras.Sequential}
    objects.update(custom_objects or {})
    return keras.saving.deserialize_keras_object(
        {k: v for k, v in serialized.items() if k not in ("keras_version", "backend")},
        custom_objects=objects, safe_mode=safe_mode,
    )
