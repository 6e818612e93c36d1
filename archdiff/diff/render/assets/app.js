/* archdiff HTML report: lays out the embedded graphs with dagre and makes them explorable.
 *
 * Reads the JSON in #archdiff-data (written by archdiff/htmlreport.py); never fetches anything.
 * The counts and classification shown come from DATA.report, which is ArchDiff.to_dict().
 * When the first layout is drawn, <html data-ready="true"> is set and window.archdiff.timings
 * holds how long parsing, layout and drawing took.
 */
(function () {
  "use strict";
  var T0 = performance.now();
  var DATA = JSON.parse(document.getElementById("archdiff-data").textContent);
  var T_PARSE = performance.now();
  var IS_DIFF = DATA.kind === "diff";
  var R = DATA.report || null;
  var ITEMS = DATA.items;
  var RUNS = DATA.runs;
  var LAYERS = DATA.layers;
  var SVGNS = "http://www.w3.org/2000/svg";

  // -- small helpers ----------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function fmt(n) { return n == null ? "?" : Number(n).toLocaleString("en-US"); }
  function plural(n, word) { return fmt(n) + " " + word + (n === 1 ? "" : "s"); }
  function shapeText(s) {
    if (s == null) return "";
    if (Array.isArray(s) && s.length && Array.isArray(s[0])) return "[" + s.map(shapeText).join(", ") + "]";
    var inner = s.map(function (d) { return d == null ? "None" : String(d); }).join(", ");
    return s.length === 1 ? "(" + inner + ",)" : "(" + inner + ")";
  }
  function valueText(v, limit) {
    limit = limit || 160;
    var t;
    if (v === null || v === undefined) t = "—";
    else if (typeof v === "string") t = v;
    else if (typeof v === "object" && !Array.isArray(v) && v.shape && Object.keys(v).length === 2 && "dtype" in v)
      t = shapeText(v.shape) + " " + v.dtype;
    else return prettyValue(v, limit);
    return t.length > limit ? t.slice(0, limit - 1) + "…" : t;
  }
  function el(tag, cls, html) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (html != null) e.innerHTML = html;
    return e;
  }

  // -- item lookups -------------------------------------------------------------------
  RUNS.forEach(function (run) { run.items = []; for (var k = run.from; k <= run.to; k++) run.items.push(k); });
  var itemRun = new Array(ITEMS.length).fill(-1);
  RUNS.forEach(function (run, r) { run.items.forEach(function (k) { itemRun[k] = r; }); });
  var collapsed = new Set();
  RUNS.forEach(function (run, r) { if (run.collapsed) collapsed.add(r); });
  function layerOf(item, side) {
    var p = item[side];
    return p == null ? null : LAYERS[side][p] || null;
  }
  function itemName(k) { var it = ITEMS[k]; return it.b != null ? it.b : it.a; }
  function itemLabel(k) {
    var it = ITEMS[k];
    if (it.r) return it.a + " → " + it.b;
    return itemName(k);
  }
  function itemClass(k) {
    var it = ITEMS[k];
    var lb = layerOf(it, "b"), la = layerOf(it, "a");
    return (lb || la || {}).c || "";
  }
  function matchedOf(k) { var it = ITEMS[k]; return it.x != null && R ? R.matched[it.x] : null; }
  function entryOf(k) {
    var it = ITEMS[k];
    if (!R) return null;
    if (it.s === "added") return R.added.find(function (e) { return e.path === it.b; }) || null;
    if (it.s === "removed") return R.removed.find(function (e) { return e.path === it.a; }) || null;
    return null;
  }
  function statusOf(k) { return IS_DIFF ? ITEMS[k].s : "plain"; }
  var runTitle = function (r) {
    var run = RUNS[r];
    var what = { same: "unchanged", added: "added", removed: "removed" }[run.s] || "";
    if (!IS_DIFF) what = "";
    return (run.stage ? run.stage + " · " : "") + plural(run.items.length, (what ? what + " " : "") + "layer") +
      (run.renamed ? " (" + fmt(run.renamed) + " renamed)" : "");
  };

  // -- text measuring (the layout needs node sizes) ------------------------------------
  var measureCtx = document.createElement("canvas").getContext("2d");
  var FONT = getComputedStyle(document.body).fontFamily;
  var widthCache = {};
  function textWidth(text, size, weight) {
    var key = size + "|" + weight + "|" + text;
    var w = widthCache[key];
    if (w === undefined) {
      measureCtx.font = (weight || 400) + " " + size + "px " + FONT;
      w = widthCache[key] = measureCtx.measureText(text).width;
    }
    return w;
  }
  var MAX_NODE_W = 300, MIN_NODE_W = 96, NODE_H = 40, RUN_H = 48;
  function clip(text, size, weight, max) {
    if (textWidth(text, size, weight) <= max) return text;
    var lo = 0, hi = text.length;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (textWidth(text.slice(0, mid) + "…", size, weight) <= max) lo = mid; else hi = mid - 1;
    }
    return text.slice(0, lo) + "…";
  }

  // -- the visible graph of one drawing, with collapsed runs folded ----------------------
  function visibleGraph(key) {
    var g = DATA.graphs[key];
    var nodes = [], nodeIndex = {}, map = {};
    var groupParent = {}, groupItem = {};
    g.groups.forEach(function (gr) { groupParent[gr[0]] = gr[1]; groupItem[gr[0]] = gr[2]; });
    g.nodes.forEach(function (n) {
      var id = n[0], k = n[1], group = n[2], side = n[3], path = k >= 0 ? ITEMS[k][side] : n[4];
      var r = k >= 0 ? itemRun[k] : -1;
      if (r >= 0 && collapsed.has(r)) {
        var rid = "r" + r;
        map[id] = rid;
        if (nodeIndex[rid] === undefined) {
          nodeIndex[rid] = nodes.length;
          nodes.push({ id: rid, run: r, group: group, items: [], side: side });
        }
        nodes[nodeIndex[rid]].items.push(k);
        return;
      }
      map[id] = id;
      nodeIndex[id] = nodes.length;
      nodes.push({ id: id, item: k, group: group, side: side, path: path });
    });
    var edges = [], seen = {};
    g.edges.forEach(function (e) {
      var s = map[e[0]], t = map[e[1]];
      if (s === undefined || t === undefined || s === t) return;
      var key2 = s + "\u0000" + t;
      if (seen[key2] !== undefined) {
        if (e[2] === "") edges[seen[key2]].status = "";
        return;
      }
      seen[key2] = edges.length;
      edges.push({ s: s, t: t, status: e[2] });
    });
    // Groups that still hold something, with their ancestors.
    var used = {};
    nodes.forEach(function (n) { var gr = n.group; while (gr && !used[gr]) { used[gr] = true; gr = groupParent[gr]; } });
    var groups = g.groups.filter(function (gr) { return used[gr[0]]; }).map(function (gr) {
      return { id: gr[0], parent: gr[1], item: gr[2] };
    });
    return { key: key, nodes: nodes, edges: edges, groups: groups, map: map };
  }

  function nodeBox(n) {
    if (n.run !== undefined) {
      var run = RUNS[n.run];
      var l1 = "▸ " + runTitle(n.run);
      var l2 = run.first + " … " + run.last;
      var w = Math.max(textWidth(l1, 12, 600), textWidth(l2, 10.5, 400)) + 26;
      n.w = Math.min(Math.max(w, 150), MAX_NODE_W + 40);
      n.h = RUN_H;
      n.l1 = clip(l1, 12, 600, n.w - 24); n.l2 = clip(l2, 10.5, 400, n.w - 24);
      return;
    }
    var name, meta;
    if (n.item >= 0) {
      var it = ITEMS[n.item];
      var rec = layerOf(it, n.side) || layerOf(it, "b") || layerOf(it, "a") || {};
      name = it.r && (currentView === "merged") ? it.a.split("/").pop() + " → " + it.b.split("/").pop() : rec.n || itemName(n.item);
      meta = rec.c + (rec.o ? "  " + rec.o : "");
    } else {
      var rec2 = LAYERS[n.side][n.path] || {};
      name = rec2.n || n.path;
      meta = "InputLayer (implicit)";
    }
    var badge = 0;
    if (n.item >= 0 && IS_DIFF) {
      var m = matchedOf(n.item);
      if (m) badge = m.changes.filter(function (c) { return c.kind !== "renamed"; }).length;
    }
    var w2 = Math.max(textWidth(name, 12, 600) + (badge ? 26 : 0), textWidth(meta, 10.5, 400)) + 22;
    n.w = Math.min(Math.max(w2, MIN_NODE_W), MAX_NODE_W);
    n.h = NODE_H;
    n.badge = badge;
    n.l1 = clip(name, 12, 600, n.w - 20 - (badge ? 24 : 0));
    n.l2 = clip(meta, 10.5, 400, n.w - 20);
  }

  // Graphs above this many nodes are cut into segments, each laid out alone and stacked: dagre's
  // cost grows faster than linearly, a network's graph is mostly a chain, and it can be cut where
  // every tensor passes through one top-level layer (between two ResNet blocks, say).
  var SEGMENT_ABOVE = 120, SEGMENT_SIZE = 40;
  function layout(vg) {
    var t = performance.now();
    var segments = vg.nodes.length > SEGMENT_ABOVE ? cutPoints(vg) : [];
    if (!segments.length) {
      layoutPart(vg.nodes, vg.edges, vg.groups, vg);
    } else {
      layoutSegments(vg, segments);
    }
    vg.layoutMs = performance.now() - t;
    vg.segments = segments.length + 1;
    return vg;
  }

  function cutPoints(vg) {
    // Positions p (in the given order, which is topological) such that no edge leaves a node before
    // p for a node after p, no nested model spans p, and the node at p is at the top level.
    var pos = {}, n = vg.nodes.length;
    vg.nodes.forEach(function (nd, i) { pos[nd.id] = i; });
    var span = new Int32Array(n + 1);  // span[i] > 0: an edge or group passes over position i
    function cover(lo, hi) { if (hi - lo >= 2) { span[lo + 1] += 1; span[hi] -= 1; } }
    vg.edges.forEach(function (e) {
      var a = pos[e.s], b = pos[e.t];
      cover(Math.min(a, b), Math.max(a, b));
    });
    var first = {}, last = {}, parentOf = {};
    vg.groups.forEach(function (g) { parentOf[g.id] = g.parent; });
    vg.nodes.forEach(function (nd, i) {
      var g = nd.group;
      while (g) { if (first[g] === undefined) first[g] = i; last[g] = i; g = parentOf[g]; }
    });
    Object.keys(first).forEach(function (g) { cover(first[g] - 1, last[g] + 1); span[first[g]] += 1; span[first[g] + 1] -= 1; });
    var cuts = [], acc = 0, running = 0, lastCut = 0;
    for (var i = 0; i < n; i++) {
      running += span[i];
      if (i - lastCut >= SEGMENT_SIZE && n - i >= SEGMENT_SIZE / 2 && running <= 0 && !vg.nodes[i].group) {
        cuts.push(i);
        lastCut = i;
      }
    }
    return cuts;
  }

  function layoutSegments(vg, cuts) {
    var bounds = [0].concat(cuts).concat([vg.nodes.length - 1]);
    var groupById = {};
    vg.groups.forEach(function (g) { groupById[g.id] = g; });
    var prevNode = null, prevXY = null;
    for (var s = 0; s + 1 < bounds.length; s++) {
      var lo = bounds[s], hi = bounds[s + 1];
      var nodes = vg.nodes.slice(lo, hi + 1), inSeg = {};
      nodes.forEach(function (nd) { inSeg[nd.id] = true; });
      var edges = vg.edges.filter(function (e) { return inSeg[e.s] && inSeg[e.t] && !(nodes[0] === prevNode && e.t === prevNode.id); });
      var used = {};
      nodes.forEach(function (nd) { var g = nd.group; while (g && !used[g]) { used[g] = true; g = groupById[g].parent; } });
      var groups = vg.groups.filter(function (g) { return used[g.id]; });
      var part = {};
      layoutPart(nodes, edges, groups, part, vg.nodes.length > FAST_ORDER_ABOVE);
      if (prevNode) {
        // Move this segment so that its first node lands where the previous segment put it.
        var dx = prevXY.x - nodes[0].x, dy = prevXY.y - nodes[0].y;
        nodes.forEach(function (nd) { nd.x += dx; nd.y += dy; });
        groups.forEach(function (g) { g.x += dx; g.y += dy; g.ly += dy; });
        edges.forEach(function (e) { e.points.forEach(function (p) { p.x += dx; p.y += dy; }); });
      }
      prevNode = nodes[nodes.length - 1];
      prevXY = { x: prevNode.x, y: prevNode.y };
    }
    // Shift everything to start at the margin and measure.
    var minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    function take(x0, y0, x1, y1) { minX = Math.min(minX, x0); minY = Math.min(minY, y0); maxX = Math.max(maxX, x1); maxY = Math.max(maxY, y1); }
    vg.nodes.forEach(function (nd) { take(nd.x - nd.w / 2, nd.y - nd.h / 2, nd.x + nd.w / 2, nd.y + nd.h / 2); });
    vg.groups.forEach(function (g) { take(g.x - g.w / 2, g.y - g.h / 2, g.x + g.w / 2, g.y + g.h / 2); });
    var m = 30, dx2 = m - minX, dy2 = m - minY;
    vg.nodes.forEach(function (nd) { nd.x += dx2; nd.y += dy2; });
    vg.groups.forEach(function (g) { g.x += dx2; g.y += dy2; g.ly += dy2; });
    vg.edges.forEach(function (e) { (e.points || []).forEach(function (p) { p.x += dx2; p.y += dy2; }); if (!e.points) e.points = []; });
    vg.width = maxX - minX + 2 * m; vg.height = maxY - minY + 2 * m;
  }

  // Above this many nodes in a drawing, segments skip dagre's crossing-reduction sweeps (its
  // costliest phase) and keep the initial order, which for a network's layer order is good.
  var FAST_ORDER_ABOVE = 700;
  function layoutPart(nodesIn, edgesIn, groupsIn, out, fast) {
    var vg = { nodes: nodesIn, edges: edgesIn, groups: groupsIn };
    var compound = vg.groups.length > 0;
    var g = new dagre.graphlib.Graph({ compound: compound, multigraph: false });
    g.setGraph({ rankdir: "TB", nodesep: 22, ranksep: 30, edgesep: 12, marginx: 30, marginy: 30 });
    g.setDefaultEdgeLabel(function () { return {}; });
    vg.groups.forEach(function (gr) { g.setNode(gr.id, { paddingTop: 26, paddingLeft: 12, paddingRight: 12, paddingBottom: 12 }); });
    vg.nodes.forEach(function (n) { nodeBox(n); g.setNode(n.id, { width: n.w, height: n.h }); });
    if (compound) {
      vg.groups.forEach(function (gr) { if (gr.parent) g.setParent(gr.id, gr.parent); });
      vg.nodes.forEach(function (n) { if (n.group) g.setParent(n.id, n.group); });
    }
    vg.edges.forEach(function (e) { g.setEdge(e.s, e.t, { weight: e.status === "order" ? 1 : 2, minlen: 1 }); });
    // Each group gets a label node at its top, above everything inside it, so that its
    // title has a place of its own (dagre reserves no room for cluster labels).
    if (compound) {
      var hasInnerPred = {};
      vg.edges.forEach(function (e) {
        var ns = g.parent(e.s), nt = g.parent(e.t);
        if (ns === nt) hasInnerPred[e.t] = true;
      });
      vg.groups.forEach(function (gr) {
        gr.label = groupLabel(gr);
        g.setNode("lbl:" + gr.id, { width: Math.min(textWidth(gr.label, 11.5, 700) + 8, 260), height: 12 });
        g.setParent("lbl:" + gr.id, gr.id);
      });
      vg.nodes.forEach(function (n) {
        if (n.group && !hasInnerPred[n.id]) g.setEdge("lbl:" + n.group, n.id, { weight: 1, minlen: 1 });
      });
      // ... and below whatever feeds the group from outside.
      var parentOf = {};
      vg.groups.forEach(function (gr) { parentOf[gr.id] = gr.parent; });
      var groupOfNode = {};
      vg.nodes.forEach(function (n) { groupOfNode[n.id] = n.group; });
      vg.edges.forEach(function (e) {
        var outer = {}, gs = groupOfNode[e.s];
        while (gs) { outer[gs] = true; gs = parentOf[gs]; }
        var gt = groupOfNode[e.t];
        while (gt && !outer[gt]) {
          if (!g.hasEdge(e.s, "lbl:" + gt)) g.setEdge(e.s, "lbl:" + gt, { weight: 1, minlen: 1 });
          gt = parentOf[gt];
        }
      });
      vg.groups.forEach(function (gr) {
        if (gr.parent) g.setEdge("lbl:" + gr.parent, "lbl:" + gr.id, { weight: 1, minlen: 1 });
      });
    }
    dagre.layout(g, fast ? { disableOptimalOrderHeuristic: true } : {});
    vg.nodes.forEach(function (n) { var p = g.node(n.id); n.x = p.x; n.y = p.y; });
    vg.groups.forEach(function (gr) {
      var p = g.node(gr.id); gr.x = p.x; gr.y = p.y; gr.w = p.width; gr.h = p.height;
      var l = g.node("lbl:" + gr.id); gr.ly = l.y;
    });
    vg.edges.forEach(function (e) { var p = g.edge(e.s, e.t); e.points = p ? p.points : []; });
    var gg = g.graph();
    out.width = gg.width || 100; out.height = gg.height || 100;
  }

  function curve(points) {
    // A smooth path through dagre's points: a uniform B-spline, drawn as d3's curveBasis draws it.
    var d = "", state = 0, x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    function f(v) { return v.toFixed(1); }
    function bez(x, y) {
      d += "C" + f((2 * x0 + x1) / 3) + "," + f((2 * y0 + y1) / 3) + " " + f((x0 + 2 * x1) / 3) + "," + f((y0 + 2 * y1) / 3) +
        " " + f((x0 + 4 * x1 + x) / 6) + "," + f((y0 + 4 * y1 + y) / 6);
    }
    points.forEach(function (p) {
      var x = p.x, y = p.y;
      if (state === 0) { state = 1; d += "M" + f(x) + "," + f(y); }
      else if (state === 1) { state = 2; }
      else {
        if (state === 2) { state = 3; d += "L" + f((5 * x0 + x1) / 6) + "," + f((5 * y0 + y1) / 6); }
        bez(x, y);
      }
      x0 = x1; x1 = x; y0 = y1; y1 = y;
    });
    if (state === 3) bez(x1, y1);
    if (state >= 2) d += "L" + f(x1) + "," + f(y1);
    return d;
  }

  // -- drawing ----------------------------------------------------------------------------
  function nodeSvg(n) {
    var x = (n.x - n.w / 2).toFixed(1), y = (n.y - n.h / 2).toFixed(1);
    var cls = "node", st;
    var s = [];
    if (n.run !== undefined) {
      st = IS_DIFF ? RUNS[n.run].s : "plain";
      cls += " run st-" + st;
      s.push('<g class="' + cls + '" data-id="' + n.id + '" data-run="' + n.run + '" transform="translate(' + x + "," + y + ')">');
      s.push('<title>' + esc(runTitle(n.run) + ": " + RUNS[n.run].first + " … " + RUNS[n.run].last + " (click to expand)") + "</title>");
      s.push('<rect class="stack" x="6" y="6" width="' + n.w + '" height="' + n.h + '" rx="7"/>');
      s.push('<rect class="stack" x="3" y="3" width="' + n.w + '" height="' + n.h + '" rx="7"/>');
      s.push('<rect class="box" width="' + n.w + '" height="' + n.h + '" rx="7"/>');
      s.push('<text class="nm" x="12" y="19">' + esc(n.l1) + "</text>");
      s.push('<text class="meta" x="12" y="36">' + esc(n.l2) + "</text></g>");
      return s.join("");
    }
    if (n.item >= 0) {
      st = statusOf(n.item);
      cls += " st-" + st + (ITEMS[n.item].r ? " renamed" : "");
      if (IS_DIFF && ITEMS[n.item].v != null) cls += " vc vc" + ITEMS[n.item].v;
    } else {
      cls += " implicit st-" + (IS_DIFF ? "same" : "plain");
    }
    s.push('<g class="' + cls + '" data-id="' + esc(n.id) + '"' + (n.item >= 0 ? ' data-item="' + n.item + '"' : "") +
      ' transform="translate(' + x + "," + y + ')">');
    s.push('<rect class="box" width="' + n.w + '" height="' + n.h + '" rx="6"/>');
    s.push('<text class="nm" x="10" y="17">' + esc(n.l1) + "</text>");
    s.push('<text class="meta" x="10" y="32">' + esc(n.l2) + "</text>");
    if (n.badge) {
      s.push('<circle class="count-badge" cx="' + (n.w - 13) + '" cy="13" r="8"/>');
      s.push('<text class="count-text" x="' + (n.w - 13) + '" y="16.5" text-anchor="middle">' + n.badge + "</text>");
    }
    s.push("</g>");
    return s.join("");
  }

  function groupLabel(gr) {
    var it = ITEMS[gr.item] || {};
    var rec = layerOf(it, "b") || layerOf(it, "a") || {};
    return (it.r ? it.a.split("/").pop() + " → " + it.b.split("/").pop() : (rec.n || itemName(gr.item))) + "  ·  " + (rec.c || "model");
  }
  function groupSvg(gr) {
    var it = ITEMS[gr.item] || {};
    var st = IS_DIFF ? it.s : "plain";
    var x = gr.x - gr.w / 2, y = gr.y - gr.h / 2;
    return '<g class="group st-' + st + '" data-group="' + gr.item + '"><rect x="' + x.toFixed(1) + '" y="' + y.toFixed(1) +
      '" width="' + gr.w.toFixed(1) + '" height="' + gr.h.toFixed(1) + '" rx="10"/><text x="' + (x + 10).toFixed(1) +
      '" y="' + (gr.ly + 4).toFixed(1) + '">' + esc(clip(gr.label, 11.5, 700, gr.w - 20)) + "</text></g>";
  }

  var MARKERS = '<defs>' + ["", "added", "removed", "hl"].map(function (k) {
    var col = { "": "#8c959f", added: "#2da44e", removed: "#cf222e", hl: "#0969da" }[k];
    return '<marker id="arr' + k + '" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
      '<path d="M0,1 L9,5 L0,9 z" fill="' + col + '"/></marker>';
  }).join("") + "</defs>";

  function draw(pane) {
    var vg = pane.vg;
    var t = performance.now();
    var parts = [MARKERS, '<g class="viewport">'];
    // Outer groups first, so that inner ones are drawn on top.
    var depth = {};
    vg.groups.forEach(function (gr) { var d = 0, p = gr.parent; while (p) { d++; p = (vg.groups.find(function (q) { return q.id === p; }) || {}).parent; } depth[gr.id] = d; });
    vg.groups.slice().sort(function (a, b) { return depth[a.id] - depth[b.id]; }).forEach(function (gr) { parts.push(groupSvg(gr)); });
    parts.push('<g class="edges">');
    vg.edges.forEach(function (e, i) {
      if (e.status === "order") return;
      parts.push('<path class="edge ' + e.status + '" data-e="' + i + '" d="' + curve(e.points) + '" marker-end="url(#arr' + e.status + ')"/>');
    });
    parts.push("</g><g class=\"nodes\">");
    vg.nodes.forEach(function (n) { parts.push(nodeSvg(n)); });
    parts.push("</g></g>");
    pane.svg.innerHTML = parts.join("");
    pane.viewport = pane.svg.querySelector(".viewport");
    pane.drawMs = performance.now() - t;
    pane.nodeEls = {};
    pane.svg.querySelectorAll(".node").forEach(function (g) { pane.nodeEls[g.getAttribute("data-id")] = g; });
    pane.count.textContent = countText(vg);
    applyTransform(pane);
    drawMinimap(pane);
  }

  function countText(vg) {
    var shown = 0, folded = 0;
    vg.nodes.forEach(function (n) { if (n.run !== undefined) folded += n.items.length; else shown++; });
    return plural(shown, "node") + (folded ? " · " + fmt(folded) + " folded in runs" : "");
  }

  // -- panes, zoom and pan ------------------------------------------------------------
  var panes = [];
  var currentView = IS_DIFF ? "side" : "model";

  function makePane(key, side, title, file) {
    var wrap = el("div", "pane");
    var head = el("div", "pane-head");
    var short = file.split("  →  ").map(function (f) { return f.split(/[\\/]/).pop(); }).join("  →  ");
    head.innerHTML = '<span class="side ' + side + '">' + esc(title) + '</span><span class="file" title="' + esc(file) +
      '">' + esc(short) + '</span><span class="count"></span>';
    var canvas = el("div", "canvas");
    var svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("aria-label", "graph " + title);
    canvas.appendChild(svg);
    var mini = document.createElement("canvas");
    mini.className = "minimap";
    canvas.appendChild(mini);
    canvas.appendChild(el("div", "hint", "drag or scroll to pan · Ctrl+scroll to zoom · click a layer"));
    wrap.appendChild(head);
    wrap.appendChild(canvas);
    var pane = { key: key, side: side, wrap: wrap, canvas: canvas, svg: svg, mini: mini, count: head.querySelector(".count"),
      k: 1, x: 0, y: 0, vg: null };
    wirePane(pane);
    return pane;
  }

  function applyTransform(pane) {
    if (pane.viewport) pane.viewport.setAttribute("transform", "translate(" + pane.x.toFixed(1) + "," + pane.y.toFixed(1) + ") scale(" + pane.k.toFixed(4) + ")");
    drawMinimapView(pane);
  }
  var pending = new Set();
  function scheduleTransform(pane) {
    if (pending.has(pane)) return;
    pending.add(pane);
    requestAnimationFrame(function () { pending.delete(pane); applyTransform(pane); });
  }
  function zoomAt(pane, factor, cx, cy) {
    var k = Math.min(3, Math.max(0.03, pane.k * factor));
    factor = k / pane.k;
    pane.x = cx - (cx - pane.x) * factor;
    pane.y = cy - (cy - pane.y) * factor;
    pane.k = k;
    scheduleTransform(pane);
  }
  function fitWidth(pane) {
    var r = pane.canvas.getBoundingClientRect();
    var vg = pane.vg;
    pane.k = Math.min(1, Math.max(0.05, (r.width - 20) / vg.width));
    pane.x = (r.width - vg.width * pane.k) / 2;
    pane.y = 0;
    applyTransform(pane);
  }
  function fitAll(pane) {
    var r = pane.canvas.getBoundingClientRect();
    var vg = pane.vg;
    pane.k = Math.min(1, Math.max(0.02, Math.min((r.width - 20) / vg.width, (r.height - 20) / vg.height)));
    pane.x = (r.width - vg.width * pane.k) / 2;
    pane.y = (r.height - vg.height * pane.k) / 2;
    applyTransform(pane);
  }
  function centerOn(pane, n, animate) {
    var r = pane.canvas.getBoundingClientRect();
    if (pane.k < 0.6) pane.k = 0.9;
    pane.x = r.width / 2 - n.x * pane.k;
    pane.y = r.height / 2 - n.y * pane.k;
    // No empty band above the graph's top or below its bottom just to centre a layer.
    var h = pane.vg ? pane.vg.height * pane.k : 0;
    if (h > r.height) pane.y = Math.max(r.height - h, Math.min(0, pane.y));
    else pane.y = 0;
    applyTransform(pane);
  }

  function wirePane(pane) {
    var c = pane.canvas, drag = null;
    c.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var r = c.getBoundingClientRect();
      if (ev.ctrlKey || ev.metaKey) {
        zoomAt(pane, Math.exp(-ev.deltaY * (ev.deltaMode ? 0.05 : 0.002)), ev.clientX - r.left, ev.clientY - r.top);
      } else {
        var unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? r.height : 1;
        pane.x -= (ev.shiftKey ? ev.deltaY : ev.deltaX) * unit;
        pane.y -= (ev.shiftKey ? 0 : ev.deltaY) * unit;
        scheduleTransform(pane);
      }
    }, { passive: false });
    c.addEventListener("pointerdown", function (ev) {
      if (ev.button !== 0 || ev.target === pane.mini) return;
      drag = { x: ev.clientX, y: ev.clientY, px: pane.x, py: pane.y, moved: false };
    });
    window.addEventListener("pointermove", function (ev) {
      if (!drag) return;
      var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      if (!drag.moved) { drag.moved = true; c.classList.add("dragging"); }
      pane.x = drag.px + dx; pane.y = drag.py + dy;
      scheduleTransform(pane);
    });
    window.addEventListener("pointerup", function () {
      if (drag && drag.moved) { c.classList.remove("dragging"); pane.justDragged = true; setTimeout(function () { pane.justDragged = false; }, 0); }
      drag = null;
    });
    pane.svg.addEventListener("click", function (ev) {
      if (pane.justDragged) return;
      var node = ev.target.closest(".node");
      if (node) {
        var run = node.getAttribute("data-run");
        if (run != null) { expandRun(+run, pane); return; }
        var item = node.getAttribute("data-item");
        if (item != null) { select(+item, pane); return; }
        showImplicit(pane, node.getAttribute("data-id"));
        return;
      }
      var grp = ev.target.closest(".group");
      if (grp) { select(+grp.getAttribute("data-group"), pane); return; }
    });
    pane.mini.addEventListener("click", function (ev) {
      var m = pane.miniInfo;
      if (!m) return;
      var rect = pane.mini.getBoundingClientRect();
      var gx = (ev.clientX - rect.left) / m.sx, gy = (ev.clientY - rect.top) / m.sy;
      centerOn(pane, { x: gx, y: gy });
    });
  }

  // -- minimap ------------------------------------------------------------------------------
  var MINI_COLORS = { same: "#d0d7de", plain: "#8c959f", added: "#2da44e", removed: "#cf222e", changed: "#d4a72c", renamed: "#218bff" };
  function drawMinimap(pane) {
    var vg = pane.vg, mini = pane.mini;
    var r = pane.canvas.getBoundingClientRect();
    var maxH = Math.min(240, Math.max(80, r.height * 0.35)), maxW = 90;
    var s = Math.min(maxW / vg.width, maxH / vg.height);
    // A very tall graph would make a hair-thin map: stretch it sideways to at least 44px.
    var sx = Math.min(maxW / vg.width, Math.max(s, 44 / vg.width)), sy = s;
    // Only worth its room when the graph is much larger than the pane.
    if (vg.height < r.height * 1.6 && vg.width < r.width * 1.6) { mini.style.display = "none"; pane.miniInfo = null; return; }
    mini.style.display = "";
    var dpr = window.devicePixelRatio || 1;
    var w = Math.max(24, Math.ceil(vg.width * sx)), h = Math.max(24, Math.ceil(vg.height * sy));
    mini.width = w * dpr; mini.height = h * dpr; mini.style.width = w + "px"; mini.style.height = h + "px";
    var ctx = mini.getContext("2d");
    ctx.scale(dpr, dpr);
    vg.nodes.forEach(function (n) {
      var st = n.run !== undefined ? (IS_DIFF ? RUNS[n.run].s : "plain") : n.item >= 0 ? statusOf(n.item) : "same";
      ctx.fillStyle = MINI_COLORS[st] || "#d0d7de";
      ctx.fillRect((n.x - n.w / 2) * sx, (n.y - n.h / 2) * sy, Math.max(2, n.w * sx), Math.max(1.5, n.h * sy));
    });
    // Keep the drawn graph in a second canvas: each pan then only copies it back and adds the frame.
    var base = document.createElement("canvas");
    base.width = mini.width; base.height = mini.height;
    base.getContext("2d").drawImage(mini, 0, 0);
    pane.miniInfo = { sx: sx, sy: sy, w: w, h: h, base: base };
    drawMinimapView(pane);
  }
  function drawMinimapView(pane) {
    var m = pane.miniInfo;
    if (!m) return;
    var ctx = pane.mini.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, pane.mini.width, pane.mini.height);
    ctx.drawImage(m.base, 0, 0);
    var dpr = window.devicePixelRatio || 1;
    ctx.scale(dpr, dpr);
    var r = pane.canvas.getBoundingClientRect();
    var x0 = -pane.x / pane.k, y0 = -pane.y / pane.k;
    ctx.strokeStyle = "#0969da"; ctx.lineWidth = 1.5;
    ctx.fillStyle = "rgba(9,105,218,.08)";
    ctx.fillRect(x0 * m.sx, y0 * m.sy, r.width / pane.k * m.sx, r.height / pane.k * m.sy);
    ctx.strokeRect(x0 * m.sx, y0 * m.sy, r.width / pane.k * m.sx, r.height / pane.k * m.sy);
  }

  // -- building the views ----------------------------------------------------------------
  function paneSpecs() {
    if (!IS_DIFF) return [["b", "m", DATA.model.name, DATA.model.source.path]];
    if (currentView === "merged") return [["merged", "m", "A + B", R.a.path + "  →  " + R.b.path]];
    return [["a", "a", "A", R.a.path], ["b", "b", "B", R.b.path]];
  }

  // Layouts already computed, by drawing and set of collapsed runs: switching views or
  // collapsing back is instant.
  var layoutCache = {};
  var LAYOUT_CACHE_MAX = 12;
  function cachedLayout(key) {
    var sig = key + "|" + Array.from(collapsed).sort(function (a, b) { return a - b; }).join(",");
    var hit = layoutCache[sig];
    if (hit) return hit;
    var vg = layout(visibleGraph(key));
    var keys = Object.keys(layoutCache);
    if (keys.length >= LAYOUT_CACHE_MAX) delete layoutCache[keys[0]];
    layoutCache[sig] = vg;
    return vg;
  }

  // Above this many nodes to lay out, the page says so first and lays out on the next frame.
  var ASYNC_ABOVE = 300;
  var busy = false, queued = null;
  function rebuild(keep, after) {
    if (busy) { queued = [keep, after]; return; }
    var specs = paneSpecs();
    var estimate = specs.reduce(function (n, s) { return n + DATA.graphs[s[0]].nodes.length; }, 0);
    var uncached = specs.some(function (s) {
      return !layoutCache[s[0] + "|" + Array.from(collapsed).sort(function (a, b) { return a - b; }).join(",")];
    });
    function run() {
      var result = rebuildNow(keep);
      busy = false;
      $("status").hidden = true;
      if (after) after(result);
      if (queued) { var q = queued; queued = null; rebuild(q[0], q[1]); }
    }
    busy = true;
    if (uncached && estimate > ASYNC_ABOVE) {
      var status = $("status");
      status.textContent = "Laying out the graph" + (specs.length > 1 ? "s" : "") + "…";
      status.hidden = false;
      requestAnimationFrame(function () { setTimeout(run, 0); });
    } else {
      run();
    }
  }

  function rebuildNow(keep) {
    var old = {};
    panes.forEach(function (p) { old[p.key] = { k: p.k, x: p.x, y: p.y }; });
    var specs = paneSpecs();
    var container = $("panes");
    if (panes.length !== specs.length || panes.some(function (p, i) { return p.key !== specs[i][0]; })) {
      container.innerHTML = "";
      panes = specs.map(function (s) { var p = makePane(s[0], s[1], s[2], s[3]); container.appendChild(p.wrap); return p; });
      keep = false;
    }
    var layoutMs = 0, drawMs = 0;
    panes.forEach(function (p) {
      var t = performance.now();
      p.vg = cachedLayout(p.key);
      layoutMs += performance.now() - t;
      p.nodeOfItem = {};
      p.vg.nodes.forEach(function (n) {
        if (n.item >= 0) p.nodeOfItem[n.item] = n;
        if (n.items) n.items.forEach(function (k) { p.nodeOfItem[k] = n; });
      });
      if (keep && old[p.key]) { p.k = old[p.key].k; p.x = old[p.key].x; p.y = old[p.key].y; }
      draw(p);
      drawMs += p.drawMs;
      if (!keep) fitWidth(p);
    });
    if (selected != null) markSelection();
    lastRebuild = { layout_ms: layoutMs, draw_ms: drawMs, segments: panes.map(function (p) { return p.vg.segments; }) };
    return lastRebuild;
  }

  var lastRebuild = null;
  function expandRun(r, fromPane) {
    collapsed.delete(r);
    rebuild(true, function () {
      var first = RUNS[r].items[0];
      panes.forEach(function (p) { var n = p.nodeOfItem[first]; if (n && n.run === undefined) centerOn(p, n); });
    });
  }

  // -- selection and the side panel --------------------------------------------------------
  var selected = null;
  function markSelection() {
    panes.forEach(function (p) {
      p.svg.querySelectorAll(".node.sel,.node.twin,.group.sel").forEach(function (e) { e.classList.remove("sel", "twin"); });
      p.svg.querySelectorAll(".edge.hl").forEach(function (e) { e.classList.remove("hl"); e.setAttribute("marker-end", "url(#arr" + (e.classList.contains("added") ? "added" : e.classList.contains("removed") ? "removed" : "") + ")"); });
      if (selected == null) return;
      var n = p.nodeOfItem[selected];
      if (n) {
        var g = p.nodeEls[n.id];
        if (g) g.classList.add(p.active ? "sel" : "twin");
        p.vg.edges.forEach(function (e, i) {
          if (e.s === n.id || e.t === n.id) {
            var pe = p.svg.querySelector('.edge[data-e="' + i + '"]');
            if (pe) { pe.classList.add("hl"); pe.setAttribute("marker-end", "url(#arrhl)"); }
          }
        });
      } else {
        var grp = p.svg.querySelector('.group[data-group="' + selected + '"]');
        if (grp) grp.classList.add("sel");
      }
    });
  }

  function ensureVisible(k, after) {
    var r = itemRun[k];
    if (r >= 0 && collapsed.has(r)) { collapsed.delete(r); rebuild(true, after); }
    else if (after) after();
  }

  function select(k, fromPane, center) {
    ensureVisible(k, function () { selectNow(k, fromPane, center); });
  }
  function openDetails() {
    // Opening the side panel narrows the panes: keep what was in their middle in the middle.
    var d = $("details");
    if (!d.hidden) return;
    var before = panes.map(function (p) { return p.canvas.getBoundingClientRect().width; });
    d.hidden = false;
    panes.forEach(function (p, i) {
      p.x -= (before[i] - p.canvas.getBoundingClientRect().width) / 2;
      applyTransform(p);
    });
  }

  function selectNow(k, fromPane, center) {
    openDetails();
    selected = k;
    panes.forEach(function (p) { p.active = !fromPane || p.key === fromPane.key; });
    markSelection();
    panes.forEach(function (p) {
      var n = p.nodeOfItem[k];
      if (n && (center || p !== fromPane)) {
        var r = p.canvas.getBoundingClientRect();
        var sx = n.x * p.k + p.x, sy = n.y * p.k + p.y;
        if (center || sx < 0 || sy < 0 || sx > r.width || sy > r.height) centerOn(p, n);
      } else if (!n && (center || p !== fromPane)) {
        var gr = p.vg.groups.find(function (g) { return g.item === k; });
        if (gr) centerOn(p, { x: gr.x, y: gr.y - gr.h / 2 + 60 });
      }
    });
    showDetails(k);
  }

  // As the text report writes figures (archdiff.diff.render.common.number_text): 3 significant digits for a
  // percentage (whole numbers from 100%), 4 for the rest, no trailing zeros.
  function pct(x) { return x == null ? "?" : (x * 100 >= 100 ? (x * 100).toFixed(0) : String(Number((x * 100).toPrecision(3)))) + "%"; }
  function num(x) { return x == null ? "?" : String(Number(Number(x).toPrecision(4))); }
  function figuresText(f) {
    if (!f) return "changed (figures not computed: --values equal)";
    var bits = ["max |Δ| " + num(f.max_abs_diff), "relative " + pct(f.relative_change), "cosine " + num(f.cosine),
      pct(f.fraction_changed) + " of elements changed"];
    if (f.nan_introduced) bits.push("NaN introduced: " + f.nan_introduced);
    if (f.inf_introduced) bits.push("Inf introduced: " + f.inf_introduced);
    if (f.suspicious && f.suspicious.length) bits.push("suspicious: " + f.suspicious.join(", "));
    return bits.join(", ");
  }
  function valuesOf(it) {
    var V = R && R.values;
    if (!V || it.a == null || it.b == null) return null;
    for (var i = 0; i < V.layers.length; i++) if (V.layers[i].a === it.a && V.layers[i].b === it.b) return V.layers[i];
    return null;
  }
  function valueRows(lv) {
    var rows = lv.variables.map(function (v) {
      var cls = v.status === "changed" ? "chg" : "";
      var flags = [];
      if (v.nan_introduced) flags.push("NaN ×" + v.nan_introduced);
      if (v.inf_introduced) flags.push("Inf ×" + v.inf_introduced);
      (v.suspicious || []).forEach(function (x) { flags.push(x); });
      var what = v.status === "changed" ? (lv.variables.length && v.relative_change == null && v.max_abs_diff == null ? "changed" :
        "rel " + pct(v.relative_change) + " · max |Δ| " + num(v.max_abs_diff) + " · cos " + num(v.cosine) + " · " + pct(v.fraction_changed) + " of elements") :
        v.status === "equal" ? "bitwise equal" : v.status === "same-values" ? "same values, other dtype" : "not compared: " + (v.reason || "");
      return '<tr class="' + cls + '"><th>' + esc(v.name) + "</th><td>" + esc(what) + (flags.length ? ' <span class="chip effect weights-breaking">' + esc(flags.join(", ")) + "</span>" : "") + "</td></tr>";
    });
    return '<table class="kv"><tbody>' + rows.join("") + "</tbody></table>";
  }
  function changeLabel(c) {
    if (c.kind === "values") return "values " + c.path.split(".").slice(1).join(".");
    if (c.kind === "weight") return "weight " + c.path.split(".").slice(1).join(".");
    if (c.kind === "class") return "class";
    return c.path;
  }
  function oldNew(c) {
    if (c.kind === "values") return '<span class="new">' + esc(figuresText(c.new)) + "</span>";
    if (c.op === "added") return '<span class="muted">added</span> <span class="new">' + esc(valueText(c.new)) + "</span>";
    if (c.op === "removed") return '<span class="old">' + esc(valueText(c.old)) + '</span> <span class="muted">removed</span>';
    if (c.kind === "inputs") return '<span class="old">' + esc((c.old || []).join(", ") || "(none)") + '</span><span class="to">→</span><span class="new">' + esc((c.new || []).join(", ") || "(none)") + "</span>";
    return '<span class="old">' + esc(valueText(c.old)) + '</span><span class="to">→</span><span class="new">' + esc(valueText(c.new)) + "</span>";
  }

  function neighbours(k) {
    // Producers and consumers in the merged (or only) drawing, by item.
    var g = DATA.graphs[IS_DIFF ? "merged" : "b"];
    var id = null;
    g.nodes.forEach(function (n) { if (n[1] === k) id = n[0]; });
    var itemOfId = {};
    g.nodes.forEach(function (n) { itemOfId[n[0]] = n; });
    var ins = [], outs = [];
    if (id == null) return { ins: ins, outs: outs };
    g.edges.forEach(function (e) {
      if (e[2] === "order") return;
      if (e[1] === id && itemOfId[e[0]]) ins.push([itemOfId[e[0]], e[2]]);
      if (e[0] === id && itemOfId[e[1]]) outs.push([itemOfId[e[1]], e[2]]);
    });
    return { ins: ins, outs: outs };
  }
  function linkList(list) {
    if (!list.length) return '<span class="muted">none</span>';
    return '<div class="links">' + list.map(function (x) {
      var n = x[0], st = x[1];
      var name = n[1] >= 0 ? itemName(n[1]) : n[4];
      var tag = st === "added" ? " (+)" : st === "removed" ? " (−)" : "";
      return n[1] >= 0 ? '<a data-goto="' + n[1] + '" title="' + esc(name) + '">' + esc(name.split("/").pop()) + tag + "</a>"
        : '<span class="muted">' + esc(name) + "</span>";
    }).join("") + "</div>";
  }

  function prettyValue(v, limit) {
    // Keras objects as Class(key=value, ...); everything else as compact JSON.
    function p(x) {
      if (x && typeof x === "object" && !Array.isArray(x) && typeof x.class_name === "string" && "config" in x) {
        var c = x.config || {};
        var args = typeof c === "object" ? Object.keys(c).filter(function (k) { return c[k] !== null; }).map(function (k) { return k + "=" + p(c[k]); }) : [p(c)];
        return x.class_name + "(" + args.join(", ") + ")";
      }
      if (Array.isArray(x)) return "[" + x.map(p).join(", ") + "]";
      if (x && typeof x === "object") return "{" + Object.keys(x).map(function (k) { return k + ": " + p(x[k]); }).join(", ") + "}";
      if (x === null || x === undefined) return "None";
      return typeof x === "string" ? x : JSON.stringify(x);
    }
    var t = p(v);
    return t.length > limit ? t.slice(0, limit - 1) + "…" : t;
  }

  function flatten(cfg, prefix, out) {
    Object.keys(cfg).forEach(function (key) {
      out.push([prefix + key, cfg[key]]);
    });
    return out;
  }

  function weightRows(la, lb) {
    var wa = (la && la.w) || [], wb = (lb && lb.w) || [];
    if (!wa.length && !wb.length) return "";
    var rows = [], names = [];
    var byA = {}, byB = {};
    wa.forEach(function (w, i) { byA[w[0]] = w; if (names.indexOf(w[0]) < 0) names.push(w[0]); });
    wb.forEach(function (w, i) { byB[w[0]] = w; if (names.indexOf(w[0]) < 0) names.push(w[0]); });
    var positional = wa.length === wb.length && names.length > Math.max(wa.length, wb.length);
    var pairs = positional ? wb.map(function (w, i) { return [wa[i], w]; }) : names.map(function (nm) { return [byA[nm], byB[nm]]; });
    pairs.forEach(function (p) {
      var a = p[0], b = p[1];
      var name = (b || a)[0];
      var ta = a ? shapeText(a[1]) + (a[2] !== "float32" ? " " + a[2] : "") + (a[3] === false ? " (frozen)" : "") : "—";
      var tb = b ? shapeText(b[1]) + (b[2] !== "float32" ? " " + b[2] : "") + (b[3] === false ? " (frozen)" : "") : "—";
      var cls = !IS_DIFF || !la || !lb ? "" : !a ? "add" : !b ? "rem" : (ta !== tb ? "chg" : "");
      if (!IS_DIFF || !la || !lb) rows.push('<tr class="' + cls + '"><th>' + esc(name) + "</th><td>" + esc(b ? tb : ta) + "</td></tr>");
      else rows.push('<tr class="' + cls + '"><th>' + esc(name) + "</th><td>" + esc(ta) + "</td><td>" + esc(tb) + "</td></tr>");
    });
    var head = IS_DIFF && la && lb ? "<thead><tr><th>variable</th><th>A</th><th>B</th></tr></thead>" : "";
    return '<table class="kv">' + head + "<tbody>" + rows.join("") + "</tbody></table>";
  }

  function showImplicit(pane, id) {
    var n = pane.vg.nodes.find(function (x) { return x.id === id; });
    if (!n) return;
    selected = null; markSelection();
    var d = $("details");
    openDetails();
    d.innerHTML = '<button class="close" title="Close (Esc)">×</button><h1>' + esc(n.path) + '</h1><div class="sub"><span class="chip plain">InputLayer</span>' +
      '<span>implicit input: a Sequential model\'s input, not listed in <code>model.layers</code></span></div>';
  }

  function showDetails(k) {
    var it = ITEMS[k];
    var la = layerOf(it, "a"), lb = layerOf(it, "b");
    var m = matchedOf(k);
    var entry = entryOf(k);
    var d = $("details");
    openDetails();
    var st = statusOf(k);
    var h = [];
    h.push('<button class="close" title="Close (Esc)">×</button>');
    if (it.r) h.push("<h1>" + esc(it.a) + ' <span class="arrow">→</span> ' + esc(it.b) + "</h1>");
    else h.push("<h1>" + esc(itemName(k)) + "</h1>");
    var stLabel = { same: "unchanged", plain: "layer" }[st] || st;
    h.push('<div class="sub"><span class="chip ' + st + '">' + esc(stLabel) + "</span>" + (it.r && st === "changed" ? '<span class="chip renamed">renamed</span>' : ""));
    var ca = la && la.c, cb = lb && lb.c;
    if (ca && cb && ca !== cb) h.push('<span><span class="old">' + esc(ca) + '</span><span class="to">→</span><span class="new">' + esc(cb) + "</span></span>");
    else h.push("<span>" + esc(cb || ca || "") + "</span>");
    if ((lb || la || {}).m) h.push('<span class="muted">nested model</span>');
    h.push("</div>");

    if (m) {
      var how = { name: "same name", parent: "same name inside a renamed nested model", signature: "a unique class + config + neighbours signature",
        neighbours: "its neighbours are matched to the same places", order: "its place in the layer order" }[m.how] || m.how;
      h.push("<h2>Matched by</h2><div>" + esc(m.how) + ' <span class="muted">— ' + esc(how) + "</span></div>");
      if (m.evidence && m.evidence.length) h.push('<ul class="evidence">' + m.evidence.map(function (e) { return "<li>" + esc(e) + "</li>"; }).join("") + "</ul>");
      var changes = m.changes.filter(function (c) { return c.kind !== "renamed"; });
      if (changes.length) {
        h.push("<h2>Changes (" + changes.length + ")</h2><ul class=\"changes\">");
        changes.forEach(function (c) {
          h.push('<li data-change-path="' + esc(c.path) + '"><div class="what"><span>' + esc(changeLabel(c)) + '</span><span class="chip effect ' + esc(c.effect) + '">' + esc(c.effect) + '</span></div><div class="vals">' + oldNew(c) + "</div></li>");
        });
        h.push("</ul>");
      }
    } else if (IS_DIFF && entry) {
      h.push("<h2>" + (st === "added" ? "Only in B" : "Only in A") + '</h2><div class="muted">' +
        (st === "added" ? "No layer of A was matched to it." : "No layer of B was matched to it.") + "</div>");
    }

    h.push('<h2>Layer</h2><table class="facts">');
    function row(label, a, b) {
      if (a == null && b == null) return;
      if (IS_DIFF && la && lb && String(a) !== String(b))
        h.push("<tr><th>" + label + '</th><td><span class="old">' + esc(a == null ? "—" : a) + '</span><span class="to">→</span><span class="new">' + esc(b == null ? "—" : b) + "</span></td></tr>");
      else h.push("<tr><th>" + label + "</th><td>" + esc(b != null ? b : a) + "</td></tr>");
    }
    row("params", la && la.k != null ? fmt(la.k) : la ? "?" : null, lb && lb.k != null ? fmt(lb.k) : lb ? "?" : null);
    row("output", la && la.o, lb && lb.o);
    row("trainable", la ? (la.t === false ? "no" : "yes") : null, lb ? (lb.t === false ? "no" : "yes") : null);
    if (la && lb && IS_DIFF) h.push('<tr><th>index</th><td>' + esc(la.i) + ' in A · ' + esc(lb.i) + " in B</td></tr>");
    else row("index", la ? la.i : null, lb ? lb.i : null);
    var within = (lb || la || {}).g;
    if (within) row("inside", la && la.g, lb && lb.g);
    h.push("</table>");

    var wr = weightRows(la, lb);
    if (wr) h.push("<h2>Weights</h2>" + wr);
    var lv = IS_DIFF ? valuesOf(it) : null;
    if (lv) h.push("<h2>Weight values</h2>" + (lv.reason ? '<div class="muted">' + esc(lv.reason) + "</div>" : valueRows(lv)));

    var nb = neighbours(k);
    h.push("<h2>Inputs from</h2>" + linkList(nb.ins));
    h.push("<h2>Feeds</h2>" + linkList(nb.outs));

    if (it.cfg) {
      var changedTop = {};
      if (m) m.changes.forEach(function (c) { if (c.kind === "config") changedTop[c.path.split(/[.[]/)[0]] = c; });
      var rows = flatten(it.cfg, "", []);
      h.push("<h2>Config</h2><table class=\"kv\"><tbody>");
      rows.forEach(function (r) {
        var key = r[0], c = changedTop[key];
        var cls = c ? (c.op === "added" ? "add" : c.op === "removed" ? "rem" : "chg") : "";
        var val = c && c.path === key ? oldNew(c) : esc(prettyValue(r[1], 400));
        if (c && c.path !== key) {
          val = esc(prettyValue(r[1], 400)) + "<div>" + m.changes.filter(function (x) { return x.kind === "config" && x.path.split(/[.[]/)[0] === key; })
            .map(function (x) { return '<span class="muted">' + esc(x.path) + ":</span> " + oldNew(x); }).join("<br>") + "</div>";
        }
        h.push('<tr class="' + cls + '"><th>' + esc(key) + "</th><td>" + val + "</td></tr>");
      });
      if (m) m.changes.forEach(function (c) {
        if (c.kind === "config" && c.op === "removed" && !(c.path.split(/[.[]/)[0] in it.cfg))
          h.push('<tr class="rem"><th>' + esc(c.path) + "</th><td>" + oldNew(c) + "</td></tr>");
      });
      h.push("</tbody></table>");
      h.push('<div class="muted small">Config without serialization noise' + (IS_DIFF ? " (as the diff compares it)." : ".") + "</div>");
    }

    var r = itemRun[k];
    if (r >= 0 && RUNS[r].items.length > 1) {
      h.push("<h2>Run</h2><div>Part of " + esc(runTitle(r)) + ' <button class="btn" data-collapse="' + r + '">Collapse the run</button></div>');
    }
    d.innerHTML = h.join("");
    d.scrollTop = 0;
  }

  $("details").addEventListener("click", function (ev) {
    var t = ev.target;
    if (t.closest(".close")) { $("details").hidden = true; selected = null; markSelection(); return; }
    var go = t.closest("[data-goto]");
    if (go) { select(+go.getAttribute("data-goto"), null, true); return; }
    var col = t.closest("[data-collapse]");
    if (col) { collapsed.add(+col.getAttribute("data-collapse")); selected = null; $("details").hidden = true; rebuild(true); }
  });

  // -- the summary panel -----------------------------------------------------------------------
  function paramsDelta() {
    var p = R.params;
    if (p.delta == null) return "";
    var sign = p.delta > 0 ? "+" : p.delta < 0 ? "−" : "±";
    return ' <span class="delta ' + (p.delta > 0 ? "up" : p.delta < 0 ? "down" : "") + '" data-count="params_delta">' + sign + fmt(Math.abs(p.delta)) +
      (p.percent != null ? " (" + sign + Math.abs(p.percent).toFixed(1) + "%)" : "") + "</span>";
  }
  function ioText(side) {
    if (!R.compared_topology) return "not compared (no topology)";
    var list = R.io_changes.filter(function (c) { return c.side === side; });
    if (!list.length) return "unchanged";
    return list.map(function (c) { return "#" + c.index + " " + c.what + ": " + valueText(c.old, 40) + " → " + valueText(c.new, 40); }).join("; ");
  }
  function sourceText(info) {
    var bits = [info.name];
    if (info.class_name) bits.push(info.class_name);
    bits.push(info.format);
    if (info.keras_version) bits.push("Keras " + info.keras_version);
    return bits.join(", ");
  }

  function renderSummary() {
    var s = $("summary"), h = [];
    if (!IS_DIFF) {
      var M = DATA.model;
      $("headline").innerHTML = '<span class="badge model">model</span><span class="models"><b>' + esc(M.name) + "</b> · " + esc(M.class_name || "weights only") + "</span>";
      h.push("<h2>Model</h2><table class=\"facts\">");
      h.push("<tr><th>name</th><td>" + esc(M.name) + "</td></tr><tr><th>class</th><td>" + esc(M.class_name || "—") + "</td></tr>");
      h.push("<tr><th>file</th><td>" + esc(M.source.path) + "</td></tr><tr><th>format</th><td>" + esc(M.source.format) + (M.source.keras_version ? ", Keras " + esc(M.source.keras_version) : "") + "</td></tr>");
      h.push('<tr><th>layers</th><td data-count="layers_total">' + fmt(M.layers_total) + "</td></tr>");
      h.push('<tr><th>params</th><td data-count="total_params">' + fmt(M.total_params) + "</td></tr>");
      h.push("<tr><th>trainable</th><td>" + fmt(M.trainable_params) + "</td></tr>");
      h.push("<tr><th>inputs</th><td>" + esc(M.inputs.map(function (i) { return i.name + " " + shapeText(i.shape); }).join(", ")) + "</td></tr>");
      h.push("<tr><th>outputs</th><td>" + esc(M.outputs.map(function (o) { return o.layer + " " + shapeText(o.shape); }).join(", ")) + "</td></tr>");
      h.push("</table>");
      M.notes.forEach(function (n) { h.push('<div class="note">' + esc(n) + "</div>"); });
      h.push(legendHtml());
      s.innerHTML = h.join("");
      return;
    }
    var S = R.summary;
    var others = R.kinds.filter(function (k) { return k !== R.classification; });
    $("headline").innerHTML = '<span class="badge ' + esc(R.classification) + '" data-count="classification">' + esc(R.classification) + '</span><span class="models"><b>' +
      esc(R.a.name) + '</b> → <b>' + esc(R.b.name) + "</b></span>";
    h.push("<h2>Summary</h2>");
    h.push('<div class="verdict"><span class="badge ' + esc(R.classification) + '">' + esc(R.classification) + '</span><span class="exit" data-count="exit_code" data-value="' + R.exit_code + '">exit code ' + R.exit_code + "</span></div>");
    if (others.length) h.push('<div class="kinds">also: ' + others.map(esc).join(", ") + "</div>");
    function fileCell(info) {
      var parts = String(info.path).split(/[\\/]/), base = parts.pop(), dir = parts.join("/");
      return '<span class="f" title="' + esc(info.path) + '">' + esc(base) + "<small>" + esc(sourceText(info)) + "</small>" +
        (dir ? '<small class="dir">' + esc(dir) + "</small>" : "") + "</span>";
    }
    h.push('<div class="files"><span class="tag a">A</span>' + fileCell(R.a) + '<span class="tag b">B</span>' + fileCell(R.b) + "</div>");
    h.push("<h2>Layers</h2>");
    h.push('<div class="tiles">' +
      tile("matched", S.matched, "matched") + tile("changed", S.changed, "changed") + tile("renamed", S.renamed, "renamed") +
      tile("same", S.unchanged, "unchanged", "unchanged") + tile("added", S.added, "added") + tile("removed", S.removed, "removed") + "</div>");
    h.push('<table class="facts" style="margin-top:8px">');
    h.push('<tr><th>layers</th><td><span data-count="layers_a">' + fmt(R.a.layers) + '</span> → <span data-count="layers_b">' + fmt(R.b.layers) + "</span></td></tr>");
    if (R.compared_topology) h.push('<tr><th>edges</th><td>+<span data-count="edges_added">' + fmt(S.edges_added) + '</span> −<span data-count="edges_removed">' + fmt(S.edges_removed) + "</span></td></tr>");
    var p = R.params;
    h.push('<tr><th>params</th><td>' + (p.a == null && p.b == null ? "unknown (no weights in either input)" :
      '<span data-count="params_a">' + fmt(p.a) + '</span> → <span data-count="params_b">' + fmt(p.b) + "</span>" + paramsDelta()) + "</td></tr>");
    h.push('<tr><th>inputs</th><td>' + esc(ioText("input")) + "</td></tr>");
    h.push('<tr><th>outputs</th><td>' + esc(ioText("output")) + '</td></tr>');
    h.push('<tr><th>i/o changes</th><td data-count="io_changes">' + fmt(S.io_changes) + "</td></tr>");
    R.model_changes.forEach(function (c) { h.push("<tr><th>model</th><td>" + esc(c.path) + ": " + oldNew(c) + "</td></tr>"); });
    if (S.noise_hidden) h.push('<tr><th>noise</th><td><span data-count="noise_hidden">' + fmt(S.noise_hidden) + "</span> layer configs differ only in serialization noise (hidden; --strict shows it)</td></tr>");
    if (S.ignored) h.push('<tr><th>ignored</th><td><span data-count="ignored">' + fmt(S.ignored) + "</span> changes hidden by --ignore</td></tr>");
    h.push("</table>");
    R.notes.forEach(function (n) { h.push('<div class="note">' + esc(n) + "</div>"); });
    if (R.policy) {
      h.push("<h2>Policy</h2><div>" + esc(R.policy.source || "") + " " + (R.policy.passed ? '<span class="chip added">passed</span>' : '<span class="chip removed">failed</span>') + "</div>");
    }
    h.push(changeSections());
    h.push(legendHtml());
    s.innerHTML = h.join("");
  }
  function tile(cls, v, label, key) {
    return '<div class="tile ' + cls + '"><div class="v" data-count="' + (key || label) + '">' + fmt(v) + '</div><div class="l">' + label + "</div></div>";
  }
  var LIST_LIMIT = 60;
  function changeSections() {
    var groups = { changed: [], renamed: [], added: [], removed: [] };
    ITEMS.forEach(function (it, k) {
      if (it.s === "changed") groups.changed.push(k);
      if (it.r) groups.renamed.push(k);
      if (it.s === "added") groups.added.push(k);
      if (it.s === "removed") groups.removed.push(k);
    });
    var h = [];
    [["changed", "Changed"], ["renamed", "Renamed"], ["added", "Added"], ["removed", "Removed"]].forEach(function (g) {
      var list = groups[g[0]];
      if (!list.length) return;
      h.push("<h2>" + g[1] + " (" + fmt(list.length) + ')</h2><ul class="changelist" data-list="' + g[0] + '">');
      list.slice(0, LIST_LIMIT).forEach(function (k) { h.push(listItem(k, g[0])); });
      h.push("</ul>");
      if (list.length > LIST_LIMIT) h.push('<button class="more" data-more="' + g[0] + '">show all ' + fmt(list.length) + "</button>");
    });
    changeLists = groups;
    return h.join("");
  }
  var changeLists = {};
  function listItem(k, kind) {
    var m = matchedOf(k);
    var n = m ? m.changes.filter(function (c) { return c.kind !== "renamed"; }).length : 0;
    var label = kind === "renamed" ? ITEMS[k].a + " → " + ITEMS[k].b : itemName(k);
    return '<li data-goto="' + k + '" title="' + esc(label) + '"><span class="chip ' + kind + '">' + { changed: "~", renamed: "→", added: "+", removed: "−" }[kind] +
      '</span><span class="nm">' + esc(label) + '</span><span class="n">' + (kind === "changed" ? plural(n, "change") : esc(itemClass(k))) + "</span></li>";
  }
  function legendHtml() {
    if (!IS_DIFF) return '<h2>Legend</h2><div class="legend"><span><i class="plain"></i>layer</span><span><i class="group"></i>nested model</span>' +
      '<span><i class="implicit"></i>implicit input</span><span><i class="run"></i>collapsed run</span></div>';
    return '<h2>Legend</h2><div class="legend"><span><i class="added"></i>added (B only)</span><span><i class="removed"></i>removed (A only)</span>' +
      '<span><i class="changed"></i>changed</span><span><i class="renamed"></i>renamed</span><span><i class="same"></i>unchanged</span>' +
      '<span><i class="run"></i>collapsed run</span><span><i class="eadd"></i>edge added</span><span><i class="erem"></i>edge removed</span></div>' +
      (R && R.values && R.values.changed.length ? '<h2>Weights changed (relative change ‖B−A‖/‖A‖)</h2><div class="legend">' +
        '<span><i class="vc0"></i>under 0.1%</span><span><i class="vc1"></i>0.1% – 1%</span><span><i class="vc2"></i>1% – 10%</span>' +
        '<span><i class="vc3"></i>10% – 100%</span><span><i class="vc4"></i>100% or more (or A was zero)</span><span><i class="same"></i>bitwise equal</span></div>' : "");
  }
  $("summary").addEventListener("click", function (ev) {
    var go = ev.target.closest("[data-goto]");
    if (go) { select(+go.getAttribute("data-goto"), null, true); return; }
    var more = ev.target.closest("[data-more]");
    if (more) {
      var kind = more.getAttribute("data-more");
      var ul = $("summary").querySelector('[data-list="' + kind + '"]');
      ul.innerHTML = changeLists[kind].map(function (k) { return listItem(k, kind); }).join("");
      more.remove();
    }
  });

  // -- search -----------------------------------------------------------------------------------
  var searchIndex = ITEMS.map(function (it, k) {
    return { k: k, text: ((it.a || "") + " " + (it.b || "")).toLowerCase() };
  });
  var hits = [], cur = 0;
  function runSearch(q) {
    var box = $("search-results");
    q = q.trim().toLowerCase();
    if (!q) { box.hidden = true; hits = []; return; }
    hits = [];
    for (var i = 0; i < searchIndex.length && hits.length < 200; i++) {
      var pos = searchIndex[i].text.indexOf(q);
      if (pos >= 0) hits.push({ k: searchIndex[i].k, exact: itemName(searchIndex[i].k).toLowerCase() === q || (ITEMS[i].a || "").toLowerCase() === q });
    }
    hits.sort(function (a, b) { return (b.exact ? 1 : 0) - (a.exact ? 1 : 0); });
    cur = 0;
    box.hidden = false;
    if (!hits.length) { box.innerHTML = '<div class="none">no layer matches</div>'; return; }
    box.innerHTML = hits.slice(0, 50).map(function (h, i) {
      var st = statusOf(h.k);
      return '<div class="hit' + (i === 0 ? " cur" : "") + '" data-goto="' + h.k + '"><span class="chip ' + st + '">' + esc({ same: "=", plain: "·", changed: "~", renamed: "→", added: "+", removed: "−" }[st]) +
        '</span><span class="nm">' + esc(itemLabel(h.k)) + '</span><span class="cl">' + esc(itemClass(h.k)) + "</span></div>";
    }).join("") + (hits.length > 50 ? '<div class="none">' + (hits.length >= 200 ? "200+" : hits.length) + " matches; type more to narrow</div>" : "");
  }
  $("search").addEventListener("input", function (ev) { runSearch(ev.target.value); });
  $("search").addEventListener("keydown", function (ev) {
    var box = $("search-results");
    var rows = box.querySelectorAll(".hit");
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (!rows.length) return;
      rows[cur].classList.remove("cur");
      cur = (cur + (ev.key === "ArrowDown" ? 1 : rows.length - 1)) % rows.length;
      rows[cur].classList.add("cur");
      rows[cur].scrollIntoView({ block: "nearest" });
    } else if (ev.key === "Enter") {
      if (rows.length) { select(+rows[cur].getAttribute("data-goto"), null, true); box.hidden = true; }
    } else if (ev.key === "Escape") {
      box.hidden = true; ev.target.blur();
    }
  });
  $("search-results").addEventListener("mousedown", function (ev) {
    var hit = ev.target.closest("[data-goto]");
    if (hit) { ev.preventDefault(); select(+hit.getAttribute("data-goto"), null, true); $("search-results").hidden = true; }
  });
  $("search").addEventListener("blur", function () { setTimeout(function () { $("search-results").hidden = true; }, 100); });
  $("search").addEventListener("focus", function (ev) { if (ev.target.value) runSearch(ev.target.value); });

  // -- toolbar and keys ---------------------------------------------------------------------
  document.querySelectorAll("#view-toggle button").forEach(function (b) {
    b.addEventListener("click", function () {
      currentView = b.getAttribute("data-view");
      document.querySelectorAll("#view-toggle button").forEach(function (x) { x.classList.toggle("on", x === b); });
      rebuild(false, function () { if (selected != null) select(selected, null, true); });
    });
  });
  $("expand-all").addEventListener("click", function () { collapsed.clear(); rebuild(true); });
  $("collapse-all").addEventListener("click", function () {
    RUNS.forEach(function (run, r) { if (run.items.length >= 4) collapsed.add(r); });
    rebuild(false);
  });
  function activePanes() { return panes; }
  $("zoom-in").addEventListener("click", function () { activePanes().forEach(function (p) { var r = p.canvas.getBoundingClientRect(); zoomAt(p, 1.25, r.width / 2, r.height / 2); }); });
  $("zoom-out").addEventListener("click", function () { activePanes().forEach(function (p) { var r = p.canvas.getBoundingClientRect(); zoomAt(p, 0.8, r.width / 2, r.height / 2); }); });
  var fitToggle = false;
  $("zoom-fit").addEventListener("click", function () {
    fitToggle = !fitToggle;
    activePanes().forEach(function (p) { if (fitToggle) fitAll(p); else fitWidth(p); });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.target.tagName === "INPUT") return;
    if (ev.key === "/") { ev.preventDefault(); $("search").focus(); }
    else if (ev.key === "Escape") { $("details").hidden = true; selected = null; markSelection(); }
    else if (ev.key === "+" || ev.key === "=") $("zoom-in").click();
    else if (ev.key === "-") $("zoom-out").click();
    else if (ev.key === "0") $("zoom-fit").click();
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { panes.forEach(function (p) { drawMinimap(p); }); }, 150);
  });

  // -- start ----------------------------------------------------------------------------------
  if (!IS_DIFF) $("view-toggle").hidden = true;
  else document.querySelector('#view-toggle [data-view="side"]').classList.add("on");
  if (!RUNS.length) { $("expand-all").parentNode.hidden = true; }
  renderSummary();
  var T_SUMMARY = performance.now();
  window.archdiff = {
    ready: false,
    data: DATA,
    select: function (k) { select(k, null, true); },
    // Bring a layer (by name or path, in A or B) into view in every pane, without selecting it.
    reveal: function (name) {
      var k = ITEMS.findIndex(function (it) {
        return [it.a, it.b].some(function (p) { return p != null && (p === name || p.split("/").pop() === name); });
      });
      if (k < 0) return Promise.resolve(false);
      return new Promise(function (resolve) {
        ensureVisible(k, function () {
          panes.forEach(function (p) { var n = p.nodeOfItem[k]; if (n) centerOn(p, n); });
          resolve(true);
        });
      });
    },
    // Resolves when every layout asked for so far is drawn.
    idle: function () {
      return new Promise(function (resolve) {
        (function wait() { if (!busy && !queued) resolve(true); else setTimeout(wait, 20); })();
      });
    },
    view: function (v) { var b = document.querySelector('#view-toggle [data-view="' + v + '"]'); if (b) b.click(); },
    timings: null,
    lastRebuild: function () { return lastRebuild; },
    visibleNodes: function () { return panes.reduce(function (n, p) { return n + (p.vg ? p.vg.nodes.length : 0); }, 0); }
  };
  rebuild(false, function (first) {
    var T_READY = performance.now();
    window.archdiff.timings = { parse_ms: T_PARSE - T0, summary_ms: T_SUMMARY - T_PARSE, layout_ms: first.layout_ms,
      draw_ms: first.draw_ms, script_ms: T_READY - T0, ready_ms: T_READY };
    window.archdiff.ready = true;
    document.documentElement.setAttribute("data-ready", "true");
  });
})();
