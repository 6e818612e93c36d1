"""The HTML report: one self-contained page that draws a diff (or one model) as a graph.

This module owns turning an :class:`~archdiff.diff.ArchDiff` (with the two
:class:`~archdiff.model.Architecture` objects it came from) into one HTML
file that opens without any network access: the page's script and styles,
the graph-layout engine (dagre, vendored in ``assets/vendor`` with its
licence) and the data are all inlined. The layout itself runs in the browser,
so that collapsing and expanding runs of layers lays the graph out again.

The data embedded in the page is plain JSON (``<script type=application/json
id=archdiff-data>``):

* ``report``: :meth:`ArchDiff.to_dict` unchanged: the single source of the
  counts, the classification and every change the page shows.
* ``layers``: per side (``a``, ``b``), what the side panel shows of a layer
  (class, output shape, params, weight shapes, trainable).
* ``items``: the merged layer list in the text report's order
  (:func:`archdiff.diff.render.merged`), one per layer or matched pair, with
  its status and its noise-free config (:func:`archdiff.diff.canonical.normal_config`).
* ``graphs``: ``a``, ``b`` and ``merged``: nodes, edges and nested-model
  groups, with edges that pass into a nested model drawn to its input layers
  and out of it from its output layers.
* ``runs``: long runs of unchanged (or added, or removed) layers, split at
  stage boundaries (``conv2_*`` / ``conv3_*``), which the page collapses into
  one box.

It never prints; the CLI writes what :func:`render_diff_html` and
:func:`render_model_html` return.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from typing import Any

from archdiff import __version__
from archdiff.diff.canonical import is_auto_name
from archdiff.model import Architecture, Layer
from archdiff.views import shape_text

#: The page's data format; bump when the embedded JSON changes shape.
PAGE_VERSION = 1
#: Runs of unchanged layers at least this long are collapsed when the page opens.
COLLAPSE_SAME = 4
#: Runs of added or removed layers at least this long are collapsed when the page opens.
COLLAPSE_ADDED_REMOVED = 40
#: A run is split where the stage name changes (``conv2`` -> ``conv3``) only if both parts keep this many.
SPLIT_MIN = 6
#: In the one-model view, runs are collapsed only when the model has more layers than this.
MODEL_COLLAPSE_ABOVE = 300

_STAGE = re.compile(r"^([A-Za-z]+\d+)")


# -- assets ---------------------------------------------------------------------------
def _asset(name: str) -> str:
    return resources.files("archdiff.diff.render").joinpath("assets", name).read_text(encoding="utf-8")


def _csp_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _page(data: dict, *, title: str, fallback_text: str) -> str:
    dagre = _asset("vendor/dagre.min.js")
    app = _asset("app.js")
    css = _asset("style.css")
    template = _asset("template.html")
    # The page may run its own two scripts and nothing else, and may fetch nothing at all:
    # a layer name crafted to inject markup can neither run code nor reach the network.
    csp = ("default-src 'none'; " f"script-src {_csp_hash(dagre)} {_csp_hash(app)}; "
           "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'")
    parts = {
        "TITLE": html.escape(title),
        "CSP": html.escape(csp, quote=True),
        "CSS": css,
        "DATA": _json_for_script(data),
        "FALLBACK": html.escape(fallback_text),
        "DAGRE": dagre,
        "APP": app,
        "VERSION": html.escape(__version__),
    }
    # One pass, so that text substituted in cannot itself contain a placeholder that is replaced.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], template)


# -- one model's layers and edges -----------------------------------------------------------
def _layer_record(arch: Architecture, layer: Layer) -> dict:
    rec: dict[str, Any] = {"n": layer.name, "c": layer.class_name, "g": layer.parent, "i": layer.index}
    shape = shape_text(layer.output_shape)
    if shape:
        rec["o"] = shape
    params = arch.params(layer)
    if params is not None:
        rec["k"] = params
    if layer.weights is not None and not layer.is_model:
        rec["w"] = [[w.name, list(w.shape), w.dtype] + ([] if w.trainable else [False]) for w in layer.weights]
    if layer.trainable is False:
        rec["t"] = False
    if layer.is_model:
        rec["m"] = True
    return rec


def _scoped(layer: Layer, name: str) -> str:
    return f"{layer.parent}/{name}" if layer.parent else name


def _flow_edges(arch: Architecture) -> tuple[list[tuple[str, str, str, str]], dict[str, str]]:
    """The edges to draw: ``(source, target, tensor_source, tensor_target)`` paths.

    A nested model is drawn as a group, not a node: a tensor passed into it is
    drawn to its input layer, one coming out of it from its output layer. The
    last two fields are the tensor edge as :mod:`archdiff.diff` reports it.
    Also returns the implicit inputs (a Sequential's input, not in
    ``model.layers``): path -> the group it sits in.
    """
    by = arch.by_path
    implicit: dict[str, str] = {}
    first_child: dict[str, str] = {}
    for layer in arch.layers:
        if layer.parent and layer.parent not in first_child:
            first_child[layer.parent] = layer.path

    def source_node(path: str, tensor_index: int, scope: str) -> str:
        seen = 0
        layer = by.get(path)
        while layer is not None and layer.is_model and layer.model_outputs and seen < 64:
            ref = layer.model_outputs[min(tensor_index, len(layer.model_outputs) - 1)]
            path, tensor_index = f"{layer.path}/{ref.layer}", ref.tensor_index
            layer, seen = by.get(path), seen + 1
            scope = path.rpartition("/")[0]
        if path not in by:
            implicit.setdefault(path, scope)
        return path

    def target_node(layer: Layer, position: int) -> str:
        seen = 0
        while layer.is_model and seen < 64:
            if layer.model_inputs:
                ref = layer.model_inputs[min(position, len(layer.model_inputs) - 1)]
                path = f"{layer.path}/{ref.layer}"
            elif layer.path in first_child:
                path = first_child[layer.path]
            else:
                return layer.path
            inner = by.get(path)
            if inner is None:
                implicit.setdefault(path, layer.path)
                return path
            layer, position, seen = inner, 0, seen + 1
        return layer.path

    out: list[tuple[str, str, str, str]] = []
    seen_edges: set[tuple[str, str]] = set()
    for layer in arch.layers:
        for call in layer.calls:
            for position, ref in enumerate(call.inputs):
                tensor_source = _scoped(layer, ref.layer)
                src = source_node(tensor_source, ref.tensor_index, layer.parent)
                dst = target_node(layer, position) if layer.is_model else layer.path
                if (src, dst) in seen_edges or src == dst:
                    continue
                seen_edges.add((src, dst))
                out.append((src, dst, tensor_source, layer.path))
    return out, implicit


# -- the merged item list and its runs ----------------------------------------------------------
def _stage(name: str) -> str:
    base = name.rpartition("/")[2]
    m = _STAGE.match(base)
    if m:
        return m.group(1)
    return base.split("_", 1)[0]


def _split(members: list[int], names: list[str]) -> list[list[int]]:
    """Cut a run where a stage begins (``conv2_*`` -> ``conv3_*``): at least SPLIT_MIN layers on each side,
    the new stage name held by SPLIT_MIN layers in a row (Keras' auto names, which change at every layer,
    are no stages)."""
    keys = [_stage(names[i]) for i in members]
    held = [1] * len(members)  # how many layers in a row from here keep this stage name
    for pos in range(len(members) - 2, -1, -1):
        if keys[pos] == keys[pos + 1]:
            held[pos] = held[pos + 1] + 1
    pieces: list[list[int]] = []
    current: list[int] = []
    for pos, item in enumerate(members):
        if current and len(current) >= SPLIT_MIN and held[pos] >= SPLIT_MIN and keys[pos] != keys[pos - 1]:
            pieces.append(current)
            current = []
        current.append(item)
    if current:
        pieces.append(current)
    return pieces


def _run_kind(item: dict) -> str | None:
    """Which kind of run an item can fold into.

    A layer whose Keras auto name shifted (``conv2d_2`` -> ``conv2d_3``, because a Conv2D was added
    earlier) and that is otherwise unchanged folds with the unchanged layers: hundreds of such
    renames are noise in a picture. A rename someone chose (``conv1`` -> ``stem_conv``) stays in sight.
    """
    if item.get("model"):
        return None
    if item["s"] == "renamed":
        return "same" if item.get("auto") else None
    return {"same": "same", "added": "added", "removed": "removed"}.get(item["s"])


def _runs(items: list[dict], scopes: list[tuple], names: list[str], *, collapse: dict[str, int]) -> list[dict]:
    """Runs of consecutive items of one kind in one scope: ``{"s", "from", "to", ...}`` (item indices, inclusive)."""
    out: list[dict] = []
    current: list[int] = []

    def flush() -> None:
        if not current:
            return
        status = _run_kind(items[current[0]])
        for piece in _split(list(current), names):
            if len(piece) < 2:
                continue
            stages = {_stage(names[i]) for i in piece}
            out.append({
                "s": status,
                "from": piece[0],
                "to": piece[-1],
                "renamed": sum(1 for i in piece if items[i]["s"] == "renamed"),
                "stage": stages.pop() if len(stages) == 1 else None,
                "first": names[piece[0]].rpartition("/")[2],
                "last": names[piece[-1]].rpartition("/")[2],
                "collapsed": len(piece) >= collapse.get(status, 10**9),
            })
        current.clear()

    for i, item in enumerate(items):
        kind = _run_kind(item)
        if kind is not None and current and _run_kind(items[current[-1]]) == kind and scopes[current[-1]] == scopes[i]:
            current.append(i)
            continue
        flush()
        if kind is not None:
            current.append(i)
    flush()
    return out


def _config(layer: Layer) -> dict:
    from archdiff.diff.canonical import normal_config

    try:
        return normal_config(layer)
    except Exception:  # a config archdiff cannot normalize is still worth showing as written
        return {k: v for k, v in layer.config.items() if k not in ("layers", "input_layers", "output_layers")}


class _GraphBuilder:
    """Nodes, edges and groups of one drawing (side A, side B, or the two merged)."""

    def __init__(self) -> None:
        self.nodes: list[list] = []
        self.edges: list[list] = []
        self.groups: list[list] = []
        self._node_ids: set[str] = set()
        self._edge_ids: dict[tuple[str, str], int] = {}

    def node(self, node_id: str, item: int, group: str, side: str, path: str) -> None:
        """``[id, item, group, side]``, and the path for a node that is no item (an implicit input)."""
        if node_id in self._node_ids:
            return
        self._node_ids.add(node_id)
        self.nodes.append([node_id, item, group, side] + ([path] if item < 0 else []))

    def group(self, group_id: str, parent: str, item: int) -> None:
        self.groups.append([group_id, parent, item])

    def edge(self, src: str, dst: str, status: str) -> None:
        key = (src, dst)
        if src == dst or src not in self._node_ids or dst not in self._node_ids:
            return
        if key in self._edge_ids:
            if status == "":  # an edge both sides have wins over one side's colour
                self.edges[self._edge_ids[key]][2] = ""
            return
        self._edge_ids[key] = len(self.edges)
        self.edges.append([src, dst, status])

    def to_dict(self) -> dict:
        # Nodes go in layer order, which the page relies on to cut big graphs into segments:
        # an implicit input (added last) goes right before the first layer it feeds.
        position = {n[0]: i for i, n in enumerate(self.nodes)}
        first_use: dict[str, int] = {}
        for src, dst, _ in self.edges:
            if len(self.nodes[position[src]]) > 4:
                first_use[src] = min(first_use.get(src, 10**12), position[dst])
        nodes = sorted(self.nodes, key=lambda n: (first_use.get(n[0], position[n[0]]) - (0.5 if n[0] in first_use else 0)))
        return {"nodes": nodes, "edges": self.edges, "groups": self.groups}


def _side_graph(arch: Architecture, side: str, path_item: dict[str, int],
                flagged: set[tuple[str, str]], flag: str, layers_out: dict) -> dict:
    """One model's drawing; its edges whose tensor edge is in ``flagged`` get the status ``flag``."""
    g = _GraphBuilder()
    edges, implicit = _flow_edges(arch) if arch.has_topology else ([], {})
    node_of: dict[str, str] = {}

    def group_id(parent: str) -> str:
        return f"g{path_item[parent]}" if parent and parent in path_item else ""

    for layer in arch.layers:
        k = path_item[layer.path]
        if layer.is_model:
            g.group(f"g{k}", group_id(layer.parent), k)
            continue
        node_of[layer.path] = f"i{k}"
        g.node(f"i{k}", k, group_id(layer.parent), side, layer.path)
    for path, scope in implicit.items():
        node_of[path] = f"x:{side}:{path}"
        g.node(node_of[path], -1, group_id(scope), side, path)
        layers_out[path] = {"n": path.rpartition("/")[2], "c": "InputLayer", "g": scope, "implicit": True}
    for layer in arch.layers:  # an empty nested model: drawn as a plain node
        if layer.is_model and not any(l.parent == layer.path for l in arch.layers):
            k = path_item[layer.path]
            node_of[layer.path] = f"i{k}"
            g.node(f"i{k}", k, group_id(layer.parent), side, layer.path)
    for src, dst, tsrc, tdst in edges:
        if src in node_of and dst in node_of:
            g.edge(node_of[src], node_of[dst], flag if (tsrc, tdst) in flagged else "")
    if not arch.has_topology:  # no edges to lay out by: keep the file's order, top to bottom
        ordered = [node_of[layer.path] for layer in arch.layers if layer.path in node_of]
        for u, v in zip(ordered, ordered[1:]):
            g.edge(u, v, "order")
    return g.to_dict()


#: Upper bounds of the colour buckets of a layer's relative change ||B-A||/||A|| (the page's legend says them);
#: past the last, or unknown (A was all zeros), is the last bucket.
VALUE_BUCKETS = (0.001, 0.01, 0.1, 1.0)


def value_bucket(relative: float | None) -> int:
    """The colour bucket (0 .. len(VALUE_BUCKETS)) of a layer changed by value."""
    if relative is None:
        return len(VALUE_BUCKETS)
    return next((i for i, bound in enumerate(VALUE_BUCKETS) if relative < bound), len(VALUE_BUCKETS))


def diff_data(d, a: Architecture, b: Architecture, *, policy=None, exit_code: int | None = None) -> dict:
    """Everything the diff page shows, as the JSON it embeds (see the module docstring)."""
    from archdiff.diff.render import merged, to_json_dict

    report = to_json_dict(d, policy=policy, exit_code=exit_code)
    matched_index = {id(m): i for i, m in enumerate(d.matched)}
    items: list[dict] = []
    item_of_a: dict[str, int] = {}
    item_of_b: dict[str, int] = {}
    for status, entry in merged(d):
        k = len(items)
        if status in ("added", "removed"):
            arch = b if status == "added" else a
            layer = arch.by_path[entry.path]
            item = {"s": status, "a": entry.path if status == "removed" else None,
                    "b": entry.path if status == "added" else None}
            (item_of_b if status == "added" else item_of_a)[entry.path] = k
        else:
            layer = b.by_path[entry.b]
            item = {"s": status, "a": entry.a, "b": entry.b, "x": matched_index[id(entry)]}
            if entry.renamed:
                item["r"] = True
                la = a.by_path[entry.a]
                if is_auto_name(la.name, la.class_name) and is_auto_name(layer.name, layer.class_name):
                    item["auto"] = True
            item_of_a[entry.a] = k
            item_of_b[entry.b] = k
            values = d.values.layer(entry.a, entry.b) if d.values is not None else None
            if values is not None and values.status == "changed":
                item["v"] = value_bucket(values.relative_change)
        if layer.is_model:
            item["model"] = True
        if layer.config and (a.has_topology or b.has_topology):
            item["cfg"] = _config(layer)
        items.append(item)

    layers = {"a": {l.path: _layer_record(a, l) for l in a.layers},
              "b": {l.path: _layer_record(b, l) for l in b.layers}}
    removed = {(e.source, e.target) for e in d.edges_removed}
    added = {(e.source, e.target) for e in d.edges_added}
    graph_a = _side_graph(a, "a", item_of_a, removed, "removed", layers["a"])
    graph_b = _side_graph(b, "b", item_of_b, added, "added", layers["b"])

    # The merged drawing: every item once; B's edges, plus A's removed ones.
    g = _GraphBuilder()
    a_edges, a_implicit = _flow_edges(a) if a.has_topology else ([], {})
    b_edges, b_implicit = _flow_edges(b) if b.has_topology else ([], {})

    def merged_group(k: int) -> str:
        item = items[k]
        parent = None
        if item["b"] is not None:
            parent = b.by_path[item["b"]].parent
            return f"g{item_of_b[parent]}" if parent else ""
        parent = a.by_path[item["a"]].parent
        return f"g{item_of_a[parent]}" if parent else ""

    for k, item in enumerate(items):
        if item.get("model"):
            g.group(f"g{k}", merged_group(k), k)
    has_children = {merged_group(k) for k in range(len(items))}
    merged_node: dict[tuple[str, str], str] = {}
    for k, item in enumerate(items):
        if item.get("model") and f"g{k}" in has_children:
            continue
        g.node(f"i{k}", k, merged_group(k), "b" if item["b"] is not None else "a", item["b"] or item["a"])
        if item["a"] is not None:
            merged_node[("a", item["a"])] = f"i{k}"
        if item["b"] is not None:
            merged_node[("b", item["b"])] = f"i{k}"
    for path, scope in b_implicit.items():
        node_id = f"x:b:{path}"
        g.node(node_id, -1, f"g{item_of_b[scope]}" if scope else "", "b", path)
        merged_node[("b", path)] = node_id
    for path, scope in a_implicit.items():
        mapped_scope = d.matching.a_to_b.get(scope, None) if scope else ""
        twin = (f"{mapped_scope}/{path.rpartition('/')[2]}" if mapped_scope else path.rpartition("/")[2]) \
            if mapped_scope is not None else None
        if twin is not None and ("b", twin) in merged_node:
            merged_node[("a", path)] = merged_node[("b", twin)]
            continue
        node_id = f"x:a:{path}"
        g.node(node_id, -1, f"g{item_of_a[scope]}" if scope else "", "a", path)
        merged_node[("a", path)] = node_id
    for src, dst, tsrc, tdst in b_edges:
        g.edge(merged_node.get(("b", src), ""), merged_node.get(("b", dst), ""),
               "added" if (tsrc, tdst) in added else "")
    for src, dst, tsrc, tdst in a_edges:
        if (tsrc, tdst) in removed:
            g.edge(merged_node.get(("a", src), ""), merged_node.get(("a", dst), ""), "removed")
    if not (a.has_topology and b.has_topology):
        ordered = [f"i{k}" for k, item in enumerate(items) if not item.get("model")]
        for u, v in zip(ordered, ordered[1:]):
            g.edge(u, v, "order")

    names = [item["b"] or item["a"] for item in items]

    def scope(k: int) -> tuple:
        # The nested model(s) holding the item, as items: a run never leaves its group.
        item = items[k]
        pa = a.by_path[item["a"]].parent if item["a"] is not None else None
        pb = b.by_path[item["b"]].parent if item["b"] is not None else None
        return (item_of_a.get(pa) if pa else None, item_of_b.get(pb) if pb else None)

    scopes = [scope(k) for k in range(len(items))]
    runs = _runs(items, scopes, names,
                 collapse={"same": COLLAPSE_SAME, "added": COLLAPSE_ADDED_REMOVED,
                           "removed": COLLAPSE_ADDED_REMOVED})
    return {
        "page_version": PAGE_VERSION,
        "kind": "diff",
        "report": report,
        "layers": layers,
        "items": items,
        "graphs": {"a": graph_a, "b": graph_b, "merged": g.to_dict()},
        "runs": runs,
        "topology": {"a": a.has_topology, "b": b.has_topology},
    }


def model_data(arch: Architecture) -> dict:
    """Everything the one-model page shows (``archdiff export --format html``)."""
    from archdiff.views import summary

    items: list[dict] = []
    item_of: dict[str, int] = {}
    for layer in arch.layers:
        item_of[layer.path] = len(items)
        item = {"s": "same", "a": None, "b": layer.path}
        if layer.is_model:
            item["model"] = True
        if layer.config and arch.has_topology:
            item["cfg"] = _config(layer)
        items.append(item)
    layers = {"b": {l.path: _layer_record(arch, l) for l in arch.layers}}
    graph = _side_graph(arch, "b", item_of, set(), "", layers["b"])
    names = [layer.path for layer in arch.layers]
    scopes = [(layer.parent,) for layer in arch.layers]
    collapse = {"same": COLLAPSE_SAME} if len(arch.layers) > MODEL_COLLAPSE_ABOVE else {}
    # One model has no changes to tell runs apart: only its stages (conv2_*, conv3_*) are runs.
    runs = [run for run in _runs(items, scopes, names, collapse=collapse) if run["stage"]]
    return {
        "page_version": PAGE_VERSION,
        "kind": "model",
        "model": summary(arch),
        "layers": layers,
        "items": items,
        "graphs": {"b": graph},
        "runs": runs,
        "topology": {"b": arch.has_topology},
    }


# -- pages --------------------------------------------------------------------------------
def render_diff_html(d, a: Architecture, b: Architecture, *, policy=None, exit_code: int | None = None) -> str:
    """The self-contained HTML report of a diff (``archdiff diff --format html``)."""
    from archdiff.diff.render import render_text

    data = diff_data(d, a, b, policy=policy, exit_code=exit_code)
    fallback = render_text(d, policy=policy, exit_code=exit_code)
    return _page(data, title=f"archdiff: {d.a.name} → {d.b.name} ({d.classification})", fallback_text=fallback)


def render_model_html(arch: Architecture) -> str:
    """The self-contained HTML view of one model (``archdiff export --format html``)."""
    from archdiff.views import layer_rows

    data = model_data(arch)
    rows = layer_rows(arch)
    lines = [f"{arch.name} ({arch.class_name or 'weights only'}): {len(arch.layers)} layers", ""]
    lines += [f"{'?' if r['index'] is None else r['index']:>5}  {r['path']}  {r['class_name']}  "
              f"{r['params'] if r['params'] is not None else '?'}"
              for r in rows]
    return _page(data, title=f"archdiff: {arch.name}", fallback_text="\n".join(lines) + "\n")
