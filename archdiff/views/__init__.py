"""Views of one Architecture: the graph and its exports, the layer table, the summary, JSON/YAML exports.

This ``__init__`` re-exports the stage's public names, so ``from archdiff.views import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

from archdiff.views.graph import (  # noqa: F401
    shape_text,
    to_graph,
    GRAPH_FORMATS,
    dump_graph,
    to_dot,
)
from archdiff.views.layertable import (  # noqa: F401
    layer_row,
    layer_rows,
    summary,
)
from archdiff.views.export import (  # noqa: F401
    MODEL_FORMATS,
    PAGE_FORMATS,
    FORMATS,
    format_for,
    model_document,
    to_json_text,
    to_yaml_text,
    export_text,
    model_from_yaml,
)

__all__ = ['shape_text', 'to_graph', 'GRAPH_FORMATS', 'dump_graph', 'to_dot', 'layer_row', 'layer_rows', 'summary', 'MODEL_FORMATS', 'PAGE_FORMATS', 'FORMATS', 'format_for', 'model_document', 'to_json_text', 'to_yaml_text', 'export_text', 'model_from_yaml']
