"""Views of one Architecture: the graph and its exports, the layer table, the summary, JSON/YAML exports
(Keras 2 configs rewritten for Keras 3 by ``upgrade``).

This ``__init__`` re-exports the stage's public names, so ``from archdiff.views import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

from archdiff.views.export import (  # noqa: F401
    DIALECTS,
    FORMATS,
    MODEL_FORMATS,
    PAGE_FORMATS,
    ModelExport,
    document_text,
    export_text,
    format_for,
    model_document,
    model_export,
    model_from_yaml,
    to_json_text,
    to_yaml_text,
)
from archdiff.views.graph import (  # noqa: F401
    GRAPH_FORMATS,
    dump_graph,
    shape_text,
    to_dot,
    to_graph,
)
from archdiff.views.layertable import (  # noqa: F401
    layer_row,
    layer_rows,
    summary,
)
from archdiff.views.upgrade import (  # noqa: F401
    KERAS3_LAYERS,
    Upgraded,
    upgrade_architecture,
    upgrade_config,
)

__all__ = ['shape_text', 'to_graph', 'GRAPH_FORMATS', 'dump_graph', 'to_dot', 'layer_row', 'layer_rows', 'summary', 'MODEL_FORMATS', 'PAGE_FORMATS', 'FORMATS', 'format_for', 'model_document', 'to_json_text', 'to_yaml_text', 'export_text', 'model_from_yaml', 'DIALECTS', 'ModelExport', 'model_export',
           'document_text', 'KERAS3_LAYERS', 'Upgraded', 'upgrade_architecture', 'upgrade_config']
