// cgraph's interactive page: pan and zoom, the node panel, the stepper, the toggles and the theme.
// Every text it shows was written by cgraph in Python and comes from the JSON block (JSON.parse, never eval);
// it is written into the page with textContent only. The script computes nothing but which parts to show.
(function () {
  "use strict";
  var doc = document;
  var root = doc.documentElement;
  var $ = function (id) { return doc.getElementById(id); };
  var data = JSON.parse($("cgraph-data").textContent);
  var nodes = data.nodes, steps = data.steps, edges = data.edges;
  var N = nodes.length, S = steps.length;
  var graph = $("graph"), viewport = $("viewport"), svg = graph.querySelector("svg");

  // -- the SVG's boxes and edges, by node and edge number -------------------------------------------
  var box = new Array(N), copies = new Array(N), edgeEl = new Array(edges.length);
  var els = graph.querySelectorAll("g.node"), k, m;
  for (k = 0; k < els.length; k++) {
    m = /^n(\d+)(?:_(\d+))?$/.exec(els[k].id);
    if (!m) continue;
    els[k].cgNode = +m[1];
    if (m[2] === undefined) box[+m[1]] = els[k];
    else (copies[+m[1]] || (copies[+m[1]] = []))[+m[2]] = els[k];
  }
  els = graph.querySelectorAll("g.edge");
  for (k = 0; k < els.length; k++) {
    m = /^e(\d+)$/.exec(els[k].id);
    if (m) edgeEl[+m[1]] = els[k];
  }
  var inEdges = [];
  for (k = 0; k < edges.length; k++) (inEdges[edges[k][1]] || (inEdges[edges[k][1]] = [])).push(k);

  // -- text helpers ---------------------------------------------------------------------------------
  function el(tag, cls, text) {
    var e = doc.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function tensor(t) {
    // a value or gradient as cgraph formatted it: a number, a matrix, nested lists, or a summary
    if (t.text !== undefined) return el(t.shape === "()" ? "span" : "pre", "num", t.text);
    if (t.rows) {
      var wrap = el("div", "matrix-wrap"), table = el("table", "matrix"), body = el("tbody");
      for (var r = 0; r < t.rows.length; r++) {
        var tr = el("tr");
        for (var c = 0; c < t.rows[r].length; c++) tr.appendChild(el("td", null, t.rows[r][c]));
        body.appendChild(tr);
      }
      table.appendChild(body);
      wrap.appendChild(table);
      return wrap;
    }
    var dl = el("dl", "facts");
    for (var s = 0; s < t.summary.length; s++) {
      dl.appendChild(el("dt", null, t.summary[s][0]));
      dl.appendChild(el("dd", "num", t.summary[s][1]));
    }
    return dl;
  }

  // -- the stepper's state: which values, gradients and edge labels are known at step `at` ----------
  var at = 0;
  var valShown = new Uint8Array(N), gradShown = new Uint8Array(N);
  valShown.fill(1);
  gradShown.fill(1);
  var activeNode = -1, activeEdges = [];
  var phase = "";

  function known(upto) {
    var v = new Uint8Array(N), g = new Uint8Array(N), vAll = upto === 0, gAll = upto === 0, i, j, st;
    for (i = 0; i < upto; i++) {
      st = steps[i];
      if (st.values === "all") vAll = true;
      else for (j = 0; j < st.values.length; j++) v[st.values[j]] = 1;
      if (st.grads === "all") gAll = true;
      else for (j = 0; j < st.grads.length; j++) g[st.grads[j]] = 1;
    }
    if (vAll) v.fill(1);
    if (gAll) g.fill(1);
    return [v, g];
  }

  function setClass(e, cls, on) {
    if (e && e.classList.contains(cls) !== on) e.classList.toggle(cls, on);
  }

  function mark(on) {
    if (activeNode >= 0) setClass(box[activeNode], "active", on);
    for (var a = 0; a < activeEdges.length; a++) {
      var e = edges[activeEdges[a]];
      setClass(edgeEl[activeEdges[a]], "active", on);
      if (e[2] >= 0 && copies[e[0]]) setClass(copies[e[0]][e[2]], "active", on);
    }
  }

  function go(target) {
    target = Math.max(0, Math.min(S, target | 0));
    var kg = known(target), v = kg[0], g = kg[1], i, j;
    for (i = 0; i < N; i++) {
      if (v[i] !== valShown[i]) {
        setClass(box[i], "nv", !v[i]);
        var ins = inEdges[i] || [];
        for (j = 0; j < ins.length; j++) setClass(edgeEl[ins[j]], "nl", !v[i]);
      }
      if (g[i] !== gradShown[i]) setClass(box[i], "ng", !g[i]);
    }
    valShown = v;
    gradShown = g;
    mark(false);
    var st = target > 0 ? steps[target - 1] : null;
    activeNode = st ? st.node : -1;
    activeEdges = st ? st.edges : [];
    phase = st ? st.phase : "";
    mark(true);
    setClass(graph, "forward", phase === "forward");
    setClass(graph, "backward", phase === "backward");
    at = target;
    var cap = $("caption");
    cap.textContent = st ? st.caption : S ? "The whole graph. Press → to step through the forward pass, then the backward pass." : "";
    cap.className = phase;
    $("position").textContent = at + " / " + S;
    $("slider").value = String(at);
    root.setAttribute("data-step", String(at));
    showPanel();
    if (st && box[st.node]) reveal(box[st.node]);
  }

  // -- the panel ------------------------------------------------------------------------------------
  var hover = -1, pinned = -1;

  function section(title, cls, content) {
    var d = el("div", cls);
    d.appendChild(el("h3", null, title));
    d.appendChild(content);
    return d;
  }

  function showPanel() {
    var i = hover >= 0 ? hover : pinned >= 0 ? pinned : activeNode;
    var info = $("info");
    info.textContent = "";
    root.setAttribute("data-panel", String(i));
    if (i < 0) {
      info.appendChild(el("p", "hint", "Hover over a node, or click it to keep it here."));
      if (data.note) info.appendChild(el("p", "note", data.note));
      return;
    }
    var n = nodes[i];
    var h = el("h2", null, n.name);
    h.appendChild(el("span", "sub", n.id));
    info.appendChild(h);
    var dl = el("dl", "facts");
    var facts = [["op", n.glyph ? n.op + "  " + n.glyph : n.op], ["expression", n.expr],
      ["source", "line " + n.line + ", column " + n.col]];
    for (var f = 0; f < facts.length; f++) {
      dl.appendChild(el("dt", null, facts[f][0]));
      dl.appendChild(el("dd", null, facts[f][1]));
    }
    info.appendChild(dl);
    info.appendChild(el("pre", "srcline", n.src));
    if (n.value) {
      var vt = n.value.shape !== "()" ? "value " : "value";
      var vs = valShown[i] ? tensor(n.value) : el("span", "pending", "not computed yet at this step");
      var vsec = section(vt, "value", vs);
      if (n.value.shape !== "()") vsec.firstChild.appendChild(el("span", "shape", n.value.shape));
      info.appendChild(vsec);
    }
    if (n.grad) {
      var gs = gradShown[i] ? tensor(n.grad) : el("span", "pending", "not computed yet at this step");
      var gsec = section("gradient ∂" + data.output + "/∂" + n.name, "grad", gs);
      if (n.grad.shape !== "()") gsec.firstChild.appendChild(el("span", "shape", n.grad.shape));
      info.appendChild(gsec);
    }
    if (n.forward) info.appendChild(stepSection("forward step", fwdAt[i], n.forward));
    if (n.backward) info.appendChild(stepSection("chain rule (backward step)", bwdAt[i], n.backward));
    highlightSource(n.line);
  }

  // the stepper's position of each node's forward and backward step (0: none)
  var fwdAt = new Int32Array(N), bwdAt = new Int32Array(N);
  for (k = 0; k < S; k++) (steps[k].phase === "forward" ? fwdAt : bwdAt)[steps[k].node] = k + 1;

  function stepSection(title, at_, lines) {
    var d = section(title, "step", el("pre", null, lines.join("\n")));
    if (at_ > 0) {
      var b = el("button", "goto", "show step " + at_ + " / " + S);
      b.type = "button";
      b.addEventListener("click", function () { go(at_); });
      d.firstChild.appendChild(b);
    }
    return d;
  }

  function setHover(i) {
    if (i === hover) return;
    if (hover >= 0) setClass(box[hover], "hover", false);
    hover = i;
    if (hover >= 0) setClass(box[hover], "hover", true);
    showPanel();
  }

  function setPinned(i) {
    if (pinned >= 0) setClass(box[pinned], "pinned", false);
    pinned = i === pinned ? -1 : i;
    if (pinned >= 0) setClass(box[pinned], "pinned", true);
    showPanel();
  }

  function nodeOf(target) {
    var g = target && target.closest ? target.closest("g.node") : null;
    return g && g.cgNode !== undefined ? g.cgNode : -1;
  }

  viewport.addEventListener("mouseover", function (e) { setHover(nodeOf(e.target)); });
  viewport.addEventListener("mouseleave", function () { setHover(-1); });

  // -- the program's source, its current line marked ----------------------------------------------
  var srcLines = [];
  if (data.source !== null && data.source !== undefined) {
    var details = el("details"), list = el("div");
    list.id = "source";
    details.appendChild(el("summary", null, "Program"));
    var lines = data.source.split("\n");
    for (k = 0; k < lines.length; k++) {
      var row = el("div");
      row.appendChild(el("span", "ln", k + 1));
      row.appendChild(doc.createTextNode(lines[k]));
      list.appendChild(row);
      srcLines.push(row);
    }
    details.appendChild(list);
    $("panel").insertBefore(details, $("legend"));
  }
  var srcHere = null;
  function highlightSource(line) {
    if (srcHere) srcHere.classList.remove("here");
    srcHere = srcLines[line - 1] || null;
    if (srcHere) srcHere.classList.add("here");
  }

  // -- pan and zoom: the SVG fills the viewport and shows the part of the picture its viewBox names, so the
  // browser draws only what is on screen, at screen resolution, however large the graph. While the wheel
  // turns or the mouse drags, the drawn picture is moved and scaled as one layer (a CSS transform: no redraw);
  // a moment after the gesture the new view is drawn sharp through the viewBox ---------------------------
  var vb0 = svg.viewBox.baseVal, X0 = vb0.x, Y0 = vb0.y, W = vb0.width || 1, H = vb0.height || 1;
  var vx = X0, vy = Y0, sc = 1, minScale = 0.01, maxScale = 8; // the view: top-left in points, pixels per point
  var drawn = { x: vx, y: vy, s: sc }; // the view the viewBox shows now
  var pending = false, settle = 0;

  function commit() {
    clearTimeout(settle);
    var vw = viewport.clientWidth || 1, vh = viewport.clientHeight || 1;
    svg.setAttribute("viewBox", vx + " " + vy + " " + vw / sc + " " + vh / sc);
    graph.style.transform = "";
    drawn = { x: vx, y: vy, s: sc };
  }

  function apply(now) {
    if (now) { commit(); return; }
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      var k = sc / drawn.s;
      graph.style.transform = "translate(" + (drawn.x - vx) * sc + "px," + (drawn.y - vy) * sc + "px) scale(" + k + ")";
      clearTimeout(settle);
      settle = setTimeout(commit, 150);
    });
  }

  function zoomAt(px, py, factor) {
    var ns = Math.max(minScale, Math.min(maxScale, sc * factor));
    vx += px / sc - px / ns;
    vy += py / sc - py / ns;
    sc = ns;
    apply();
  }

  function fit() {
    var vw = viewport.clientWidth || 1, vh = viewport.clientHeight || 1;
    var s = Math.min((vw - 24) / W, (vh - 24) / H, 2);
    if (!(s > 0)) s = 1;
    minScale = Math.min(0.5, s / 4);
    sc = s;
    vx = X0 - (vw / s - W) / 2;
    vy = Y0 - (vh / s - H) / 2;
    apply(true);
  }

  function reveal(e) {
    // bring a box into view when a step moves to it off screen
    var r = e.getBoundingClientRect(), v = viewport.getBoundingClientRect();
    if (r.left >= v.left && r.right <= v.right && r.top >= v.top && r.bottom <= v.bottom) return;
    vx -= ((v.left + v.width / 2) - (r.left + r.width / 2)) / sc;
    vy -= ((v.top + v.height / 2) - (r.top + r.height / 2)) / sc;
    apply(true);
  }

  viewport.addEventListener("wheel", function (e) {
    e.preventDefault();
    var r = viewport.getBoundingClientRect();
    var unit = e.deltaMode === 1 ? 40 : e.deltaMode === 2 ? 800 : 1;
    zoomAt(e.clientX - r.left, e.clientY - r.top, Math.exp(-e.deltaY * unit * 0.0015));
  }, { passive: false });

  var drag = null, dragged = false;
  viewport.addEventListener("pointerdown", function (e) {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, vx: vx, vy: vy, id: e.pointerId, on: false };
    dragged = false;
  });
  viewport.addEventListener("pointermove", function (e) {
    if (!drag || e.pointerId !== drag.id) return;
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.on && dx * dx + dy * dy < 16) return;
    if (!drag.on) {
      drag.on = true;
      dragged = true;
      viewport.setPointerCapture(e.pointerId);
      viewport.classList.add("dragging");
    }
    vx = drag.vx - dx / sc;
    vy = drag.vy - dy / sc;
    apply();
  });
  function endDrag(e) {
    if (!drag || e.pointerId !== drag.id) return;
    if (drag.on) viewport.releasePointerCapture(e.pointerId);
    viewport.classList.remove("dragging");
    drag = null;
  }
  viewport.addEventListener("pointerup", endDrag);
  viewport.addEventListener("pointercancel", endDrag);
  viewport.addEventListener("click", function (e) {
    if (dragged) { dragged = false; return; }
    var i = nodeOf(e.target);
    if (i >= 0) setPinned(i);
    else if (pinned >= 0) setPinned(pinned);
  });

  function zoomCentre(f) { zoomAt(viewport.clientWidth / 2, viewport.clientHeight / 2, f); }
  $("fit").addEventListener("click", fit);
  $("zoom-in").addEventListener("click", function () { zoomCentre(1.25); });
  $("zoom-out").addEventListener("click", function () { zoomCentre(0.8); });

  // -- stepping: buttons, slider, keys -----------------------------------------------------------
  $("first").addEventListener("click", function () { go(0); });
  $("prev").addEventListener("click", function () { go(at - 1); });
  $("next").addEventListener("click", function () { go(at + 1); });
  $("last").addEventListener("click", function () { go(S); });
  $("slider").addEventListener("input", function () { go(+$("slider").value); });
  doc.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var t = e.target, tag = t && t.tagName;
    if (tag === "INPUT" && t.type === "range") return; // the slider steps by itself
    if (tag === "INPUT" && t.type !== "checkbox" || tag === "TEXTAREA") return;
    var handled = true;
    if (e.key === "ArrowRight") go(at + 1);
    else if (e.key === "ArrowLeft") go(at - 1);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(S);
    else if (e.key === "+" || e.key === "=") zoomCentre(1.25);
    else if (e.key === "-") zoomCentre(0.8);
    else if (e.key === "0") fit();
    else if (e.key === "Escape") { if (pinned >= 0) setPinned(pinned); }
    else handled = false;
    if (handled) e.preventDefault();
  });

  // -- toggles and theme ----------------------------------------------------------------------------
  function toggle(id, cls) {
    var box_ = $(id);
    var sync = function () { setClass(graph, cls, !box_.checked); };
    box_.addEventListener("change", sync);
    sync();
  }
  toggle("show-edges", "hide-edges");
  toggle("show-values", "hide-values");
  toggle("show-grads", "hide-grads");
  if (!data.values) { $("show-values").disabled = true; $("show-grads").disabled = true; }
  else if (!data.grads) $("show-grads").disabled = true;

  function setTheme(t) {
    root.setAttribute("data-theme", t);
    $("theme").textContent = t === "dark" ? "Light" : "Dark";
  }
  function themeOfHash() {
    // page.html#dark or #light picks the theme; else a dark picture's (render --theme dark), else the system's preference
    var m = /^#(light|dark)$/.exec(location.hash || "");
    if (m) return m[1];
    if (root.getAttribute("data-picture") === "dark") return "dark";
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  setTheme(themeOfHash());
  window.addEventListener("hashchange", function () { setTheme(themeOfHash()); });
  $("theme").addEventListener("click", function () {
    setTheme(root.getAttribute("data-theme") === "dark" ? "light" : "dark");
  });

  // -- start: the whole picture, fitted -----------------------------------------------------------
  fit();
  go(0);
  window.addEventListener("resize", fit);
  root.setAttribute("data-steps", String(S));
  // when the page became interactive, and when its first frame was drawn (ms since navigation: bench/html_page.py)
  root.setAttribute("data-ready-ms", performance.now().toFixed(1));
  requestAnimationFrame(function () {
    setTimeout(function () { root.setAttribute("data-frame-ms", performance.now().toFixed(1)); }, 0);
  });
  root.setAttribute("data-ready", "1");
})();
