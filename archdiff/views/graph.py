"""Architecture -> networkx graph, and the graph file formats.

This module owns the graph view of a model: a ``networkx.MultiDiGraph`` with
one node per layer (keyed by its path; a shared layer is one node with several
calls) and one edge per tensor passed. Attribute values are plain str / int /
bool so that GraphML, GEXF, DOT and node-link JSON all export them.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from archdiff.errors import TopologyUnknownError

if TYPE_CHECKING:  # networkx is imported lazily: `import archdiff` stays cheap
    import networkx as nx

    from archdiff.model import Architecture


def shape_text(shape) -> str:
    """A shape as Keras prints it: ``(None, 7, 7, 2048)``; several as a list."""
    if shape is None:
        return ""
    if isinstance(shape, list):
        return "[" + ", ".join(shape_text(s) for s in shape) + "]"
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def to_graph(arch: "Architecture") -> "nx.MultiDiGraph":
    """The model as a MultiDiGraph; refuses inputs without a topology."""
    import networkx as nx

    if not arch.has_topology:
        raise TopologyUnknownError(
            "the input has no topology (weights only, or a subclassed model), so it has no graph",
            path=arch.source.path,
            hint="give a .keras, full-model .h5, .json or .yaml file",
        )
    g = nx.MultiDiGraph(name=arch.name, model_class=arch.class_name or "")
    for layer in arch.layers:
        attrs = {
            "name": layer.name,
            "path": layer.path,
            "class_name": layer.class_name,
            # -1: not in model.layers (an operation) or not known; GraphML has no null.
            "index": -1 if layer.index is None else layer.index,
            "depth": layer.depth,
            "parent": layer.parent,
            "trainable": bool(layer.trainable),
            "is_model": bool(layer.is_model),
            "is_operation": bool(layer.is_operation),
            "calls": len(layer.calls),
            "output_shape": shape_text(layer.output_shape),
        }
        params = arch.params(layer)
        if params is not None:
            attrs["params"] = int(params)
        g.add_node(layer.path, **attrs)
    for layer in arch.layers:
        for call_index, call in enumerate(layer.calls):
            for position, ref in enumerate(call.inputs):
                source = f"{layer.parent}/{ref.layer}" if layer.parent else ref.layer
                if source not in g:
                    # A Sequential's InputLayer: not in model.layers, still a graph input.
                    g.add_node(source, name=ref.layer, path=source, class_name="InputLayer", index=-1,
                               depth=layer.depth, parent=layer.parent, trainable=True, is_model=False,
                               is_operation=False, calls=0, output_shape="", implicit=True)
                g.add_edge(source, layer.path, key=f"{call_index}:{position}", call=call_index,
                           position=position, node_index=ref.node_index, tensor_index=ref.tensor_index,
                           kind="tensor")
        if layer.is_model:
            for position, ref in enumerate(layer.model_outputs):
                inner = f"{layer.path}/{ref.layer}"
                if inner in g:
                    g.add_edge(inner, layer.path, key=f"out:{position}", call=-1, position=position,
                               node_index=ref.node_index, tensor_index=ref.tensor_index, kind="output")
    return g


GRAPH_FORMATS = ("graphml", "gexf", "dot", "node-link")


def dump_graph(g: "nx.MultiDiGraph", fmt: str) -> str:
    """Serialize a graph to text in one of :data:`GRAPH_FORMATS`."""
    import io

    import networkx as nx

    if fmt == "graphml":
        buf = io.BytesIO()
        nx.write_graphml(g, buf)
        return buf.getvalue().decode("utf-8")
    if fmt == "gexf":
        buf = io.BytesIO()
        nx.write_gexf(g, buf)
        return buf.getvalue().decode("utf-8")
    if fmt == "node-link":
        data = nx.node_link_data(g, edges="edges")
        return json.dumps(data, indent=1, sort_keys=True) + "\n"
    if fmt == "dot":
        return to_dot(g)
    raise ValueError(f"unknown graph format {fmt!r}")


def _dot_id(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: "nx.MultiDiGraph") -> str:
    """Graphviz DOT, nested models drawn as clusters; no pydot needed."""
    lines = [f"digraph {_dot_id(g.graph.get('name', 'model'))} {{", "  rankdir=TB;",
             '  node [shape=box, fontname="Helvetica", fontsize=10];']
    by_parent: dict[str, list[str]] = {}
    for node, data in g.nodes(data=True):
        by_parent.setdefault(data.get("parent", ""), []).append(node)

    def emit(parent: str, indent: str) -> None:
        for node in by_parent.get(parent, []):
            data = g.nodes[node]
            label = f"{data.get('name', node)}\\n{data.get('class_name', '')}"
            if data.get("output_shape"):
                label += f"\\n{data['output_shape']}"
            attrs = ", ".join(f"{k}={_dot_id(v)}" for k, v in sorted(data.items()) if k not in ("name",))
            lines.append(f"{indent}{_dot_id(node)} [label={_dot_id(label).replace(chr(92) * 2 + 'n', chr(92) + 'n')}, {attrs}];")
            if data.get("is_model"):
                lines.append(f"{indent}subgraph {_dot_id('cluster_' + node)} {{")
                lines.append(f"{indent}  label={_dot_id(node)};")
                emit(node, indent + "  ")
                lines.append(f"{indent}}}")

    emit("", "  ")
    for u, v, data in g.edges(data=True):
        style = ', style="dashed"' if data.get("kind") == "output" else ""
        lines.append(f"  {_dot_id(u)} -> {_dot_id(v)} [call={data.get('call', 0)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
