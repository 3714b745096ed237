/* vm-boot-harness report: heatmap with pivoting and per-cell drill-down.
   Vanilla JS, no network. Every text from the data goes through textContent. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var KEYS = DATA.keys;                 // axes then host attributes
  var OUT = ["ok", "vcpu_offline", "boot_failure", "infra_error"];
  var LABEL = {ok: "ok", vcpu_offline: "vCPU offline", boot_failure: "boot failure",
               infra_error: "infrastructure error"};
  var PAGE = 50;                        // boots per drill-down page
  var Z = DATA.run.z;                   // normal quantile of the run's confidence
  var state = {rows: DATA.view.rows, cols: DATA.view.cols, metric: "verdict",
               filters: {}, selected: null, failedOnly: true, search: ""};

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) { for (var k in attrs) { if (attrs[k] !== null) { e.setAttribute(k, attrs[k]); } } }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function pct(x) {
    if (x === null || x === undefined) { return "n/a"; }
    var v = 100 * x;
    if ((v > 0 && v < 1) || (v > 99 && v < 100)) { return v.toFixed(1) + "%"; }
    return v.toFixed(0) + "%";
  }
  // Wilson score interval: display only, for boxes that pool several cells
  // (single cells show the interval computed by harness.stats).
  function wilson(k, n) {
    if (n === 0) { return [null, 0, 1]; }
    var p = k / n, z2 = Z * Z, d = 1 + z2 / n;
    var c = (p + z2 / (2 * n)) / d;
    var h = Z * Math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / d;
    return [p, Math.max(0, c - h), Math.min(1, c + h)];
  }
  function keyval(cell, key) { return cell.k[KEYS.indexOf(key)]; }
  function values(key) {
    var seen = {}, out = [];
    DATA.cells.forEach(function (c) {
      var v = keyval(c, key), s = String(v);
      if (!(s in seen)) { seen[s] = true; out.push(v); }
    });
    out.sort(function (a, b) {
      if (typeof a === "number" && typeof b === "number") { return a - b; }
      return String(a) < String(b) ? -1 : (String(a) > String(b) ? 1 : 0);
    });
    return out.map(String);
  }
  function color(t) {
    // 0 -> green, 0.5 -> amber, 1 -> red; sqrt so that small rates still show
    var s = Math.sqrt(Math.max(0, Math.min(1, t)));
    return "hsl(" + Math.round(120 * (1 - s)) + ", 68%, " + Math.round(62 - 12 * s) + "%)";
  }
  var VCOL = {pass: "hsl(120, 45%, 62%)", clean: "hsl(190, 45%, 62%)", undecided: "hsl(40, 90%, 60%)", fail: "hsl(0, 70%, 55%)",
              not_judged: "#cfd8dc"};

  function visibleCells() {
    var needle = state.search.toLowerCase();
    return DATA.cells.filter(function (c) {
      if (needle && c.id.toLowerCase().indexOf(needle) < 0) { return false; }
      for (var key in state.filters) {
        if (key === state.rows || key === state.cols) { continue; }  // shown, not filtered
        var f = state.filters[key];
        if (f !== "" && String(keyval(c, key)) !== f) { return false; }
      }
      return true;
    });
  }

  function box(cells) {
    var b = {cells: cells, n: {ok: 0, vcpu_offline: 0, boot_failure: 0, infra_error: 0},
             verdict: "not_judged"};
    var rank = {not_judged: 0, pass: 1, clean: 2, undecided: 3, fail: 4};  // the worst wins
    cells.forEach(function (c) {
      OUT.forEach(function (o, i) { b.n[o] += c.n[i]; });
      if (rank[c.v] > rank[b.verdict]) { b.verdict = c.v; }
    });
    b.guest = b.n.ok + b.n.vcpu_offline + b.n.boot_failure;
    return b;
  }
  function boxRate(b, metric) {
    if (b.cells.length === 1) { return b.cells[0].r[metric]; }
    return wilson(b.n[metric], b.guest);
  }
  // The class with the higher rate in the box: what the verdict view shows, so a cell
  // failing by boot failures never reads "0%" because its vCPUs all came up.
  function worstClass(b) {
    var v = boxRate(b, "vcpu_offline"), f = boxRate(b, "boot_failure");
    if (f[0] !== null && (v[0] === null || f[0] > v[0])) { return "boot_failure"; }
    return "vcpu_offline";
  }

  function renderControls() {
    var c = document.getElementById("controls");
    c.textContent = "";
    function select(id, label, options, value, onchange) {
      var lab = el("label", {"for": id}, label + " ");
      var s = el("select", {id: id});
      options.forEach(function (o) {
        var opt = el("option", {value: o[0]}, o[1]);
        if (o[0] === value) { opt.selected = true; }
        s.appendChild(opt);
      });
      s.addEventListener("change", function () { onchange(s.value); render(); });
      lab.appendChild(s);
      c.appendChild(lab);
    }
    var keyopts = KEYS.map(function (k) { return [k, k]; });
    select("pivot-rows", "rows", keyopts, state.rows, function (v) {
      state.rows = v; if (state.cols === v) { state.cols = ""; } });
    select("pivot-cols", "columns", [["", "(none)"]].concat(keyopts), state.cols,
           function (v) { state.cols = v === state.rows ? "" : v; });
    select("metric", "colour", [["verdict", "verdict (worst class's rate)"],
                                 ["vcpu_offline", "vCPU-offline rate"],
                                 ["boot_failure", "boot-failure rate"]], state.metric,
           function (v) { state.metric = v; });
    KEYS.forEach(function (k) {
      if (k === state.rows || k === state.cols) { return; }
      var opts = [["", "all"]].concat(values(k).map(function (v) { return [v, v]; }));
      select("filter-" + k, k, opts, state.filters[k] || "", function (v) {
        state.filters[k] = v; });
    });
    var lab = el("label", {"for": "cell-search"}, "cell id contains ");
    var search = el("input", {id: "cell-search", type: "search", size: "18",
                              placeholder: "e.g. vcpu32"});
    search.value = state.search;
    search.addEventListener("change", function () { state.search = search.value; render(); });
    lab.appendChild(search);
    c.appendChild(lab);
    var legend = el("span", {"class": "legend"});
    if (state.metric === "verdict") {
      ["fail", "undecided", "pass", "not_judged"].forEach(function (v) {
        var sw = el("span", {"class": "swatch"});
        sw.style.background = VCOL[v];
        legend.appendChild(sw);
        legend.appendChild(document.createTextNode(v.replace("_", " ") + " "));
      });
    } else {
      [0, 0.01, 0.05, 0.25, 1].forEach(function (t) {
        var sw = el("span", {"class": "swatch"});
        sw.style.background = color(t);
        legend.appendChild(sw);
        legend.appendChild(document.createTextNode(pct(t)));
      });
    }
    c.appendChild(legend);
  }

  function renderHeatmap() {
    var cells = visibleCells();
    var rowvals = values(state.rows), colvals = state.cols ? values(state.cols) : [""];
    var grid = {};
    cells.forEach(function (c) {
      var key = String(keyval(c, state.rows)) + "\u0000" +
                (state.cols ? String(keyval(c, state.cols)) : "");
      (grid[key] = grid[key] || []).push(c);
    });
    var table = document.getElementById("heatmap");
    table.textContent = "";
    var thead = el("thead"), hr = el("tr");
    hr.appendChild(el("th", {"class": "rowhead"}, state.rows + (state.cols ? " \\ " + state.cols : "")));
    colvals.forEach(function (v) { hr.appendChild(el("th", null, state.cols ? v : "all")); });
    thead.appendChild(hr);
    table.appendChild(thead);
    var tbody = el("tbody");
    rowvals.forEach(function (rv) {
      var tr = el("tr");
      tr.appendChild(el("th", {"class": "rowhead", scope: "row"}, rv));
      colvals.forEach(function (cv) {
        var list = grid[rv + "\u0000" + cv] || [];
        var td;
        if (!list.length) {
          td = el("td", {"class": "hm empty"}, "\u2014");
        } else {
          var b = box(list);
          td = el("td", {"class": "hm", "data-row": rv, "data-col": cv,
                         "data-verdict": b.verdict, "data-cells": String(list.length)});
          var m = state.metric === "verdict" ? worstClass(b) : state.metric;
          var r = boxRate(b, m);
          td.setAttribute("data-class", m);
          td.style.background = state.metric === "verdict" ? VCOL[b.verdict] :
            (r[0] === null ? "#eceff1" : color(r[0]));
          if (state.metric === "verdict") {
            td.appendChild(el("div", {"class": "v"}, b.verdict.replace("_", " ") +
                              (b.n[m] ? " \u00b7 " + LABEL[m] : "")));
          }
          td.appendChild(el("div", {"class": "r"}, pct(r[0])));
          td.appendChild(el("div", null, "[" + pct(r[1]) + ", " + pct(r[2]) + "]"));
          td.appendChild(el("div", null, b.n[m] + "/" + b.guest +
                            (list.length > 1 ? " \u00b7 " + list.length + " cells" : "")));
          td.title = LABEL[m] + " " + b.n[m] + "/" + b.guest + "; verdict " + b.verdict +
                     (b.n.infra_error ? "; " + b.n.infra_error + " infrastructure errors" : "");
          td.addEventListener("click", function () {
            state.selected = {row: rv, col: cv};
            document.querySelectorAll("#heatmap td.selected").forEach(function (x) {
              x.classList.remove("selected"); });
            td.classList.add("selected");
            renderDrill(list, rv, cv);
          });
        }
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    document.getElementById("heatmap-note").textContent =
      cells.length + " of " + DATA.cells.length + " cells shown; a box that pools several " +
      "cells adds their boots (Wilson interval).";
  }

  function renderDrill(list, rv, cv) {
    var d = document.getElementById("drill");
    d.textContent = "";
    d.appendChild(el("h3", null, state.rows + "=" + rv + (state.cols ? ", " + state.cols + "=" + cv : "") +
                     ": " + list.length + " cell" + (list.length === 1 ? "" : "s")));
    var t = el("table", {"class": "data", id: "drill-cells"});
    var hr = el("tr");
    ["cell", "boots", "ok", "vCPU offline", "boot failure", "infra", "verdict", "statement"].forEach(
      function (h) { hr.appendChild(el("th", null, h)); });
    t.appendChild(el("thead")).appendChild(hr);
    var tb = el("tbody");
    list.forEach(function (c) {
      var tr = el("tr");
      var a = el("button", {"class": "linkbtn"}, c.id);
      a.addEventListener("click", function () { renderBoots(c, 0); });
      tr.appendChild(el("td")).appendChild(a);
      tr.appendChild(el("td", {"class": "num"}, c.n[0] + c.n[1] + c.n[2] + c.n[3]));
      tr.appendChild(el("td", {"class": "num"}, c.n[0]));
      [["vcpu_offline", 1], ["boot_failure", 2]].forEach(function (p) {
        var r = c.r[p[0]];
        tr.appendChild(el("td", {"class": "num"}, c.n[p[1]] + " \u00b7 " + pct(r[0]) + " [" +
                          pct(r[1]) + ", " + pct(r[2]) + "]"));
      });
      tr.appendChild(el("td", {"class": "num"}, c.n[3]));
      tr.appendChild(el("td")).appendChild(el("span", {"class": "badge " + c.v},
                                               c.v + (c.e ? " (stopped early)" : "")));
      tr.appendChild(el("td", null, c.s.join("; ")));
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    d.appendChild(t);
    d.appendChild(latencyChart(list));
    d.appendChild(el("div", {id: "boots"}));
    if (list.length === 1) { renderBoots(list[0], 0); }
  }

  // bring-up latency of the boots of some cells, as a small SVG bar chart (counts only)
  function latencyChart(list) {
    var lat = [];
    list.forEach(function (c) {
      DATA.boots[c.i].forEach(function (b) { if (b[2] !== null) { lat.push(b[2]); } });
    });
    var wrap = el("div", {id: "drill-latency"});
    if (!lat.length) { return wrap; }
    var max = Math.max.apply(null, lat), bins = 24, counts = [];
    for (var i = 0; i < bins; i++) { counts.push(0); }
    lat.forEach(function (x) { counts[max > 0 ? Math.min(bins - 1, Math.floor(x / max * bins)) : 0]++; });
    var top = Math.max.apply(null, counts), W = 360, H = 70, NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("width", W); svg.setAttribute("height", H + 16);
    counts.forEach(function (n, i) {
      var r = document.createElementNS(NS, "rect"), h = top ? H * n / top : 0;
      r.setAttribute("x", i * W / bins); r.setAttribute("width", W / bins - 1);
      r.setAttribute("y", H - h); r.setAttribute("height", h); r.setAttribute("fill", "#5c7cfa");
      var t = document.createElementNS(NS, "title");
      t.textContent = (i * max / bins).toFixed(3) + "-" + ((i + 1) * max / bins).toFixed(3) + " s: " + n;
      r.appendChild(t); svg.appendChild(r);
    });
    [[0, "0 s", "start"], [W, max.toFixed(2) + " s", "end"]].forEach(function (a) {
      var t = document.createElementNS(NS, "text");
      t.setAttribute("x", a[0]); t.setAttribute("y", H + 13); t.setAttribute("text-anchor", a[2]);
      t.textContent = a[1]; svg.appendChild(t);
    });
    wrap.appendChild(el("div", {"class": "muted"}, "bring-up latency of these " + lat.length + " boots"));
    wrap.appendChild(svg);
    return wrap;
  }

  function snippet(s) {
    var wrap = el("div");
    wrap.appendChild(el("div", {"class": "muted"}, s.label));
    var pre = el("pre", {"class": "snip"});
    s.lines.forEach(function (line, i) {
      var no = s.first + i;
      var row = el("span", s.mark.indexOf(no) >= 0 ? {"class": "hit"} : null);
      row.appendChild(el("span", {"class": "ln"}, String(no).padStart(5, " ") + "  "));
      row.appendChild(document.createTextNode(line));
      pre.appendChild(row);
      pre.appendChild(document.createTextNode("\n"));
    });
    wrap.appendChild(pre);
    return wrap;
  }

  function renderBoots(c, page) {
    var d = document.getElementById("boots");
    d.textContent = "";
    var boots = DATA.boots[c.i];
    var failedOnly = state.failedOnly;
    var shown = boots.filter(function (b) { return !failedOnly || b[1] !== 0; });
    d.appendChild(el("h3", null, c.id + ": " + boots.length + " boots"));
    var sig = el("div");
    c.g.forEach(function (g) { sig.appendChild(el("div", {"class": "sig"}, g[1] + " \u00d7 " + g[0])); });
    d.appendChild(sig);
    if (c.ver && c.ver.length) {
      d.appendChild(el("div", {"class": "versions"}, "versions: " + c.ver.map(function (v) {
        return v[0] + " " + v[1]; }).join("; ")));
    }
    var pager = el("div", {"class": "pager"});
    var pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(page, pages - 1);
    var prev = el("button", null, "\u2190 previous"), next = el("button", null, "next \u2192");
    prev.disabled = page === 0; next.disabled = page >= pages - 1;
    prev.addEventListener("click", function () { renderBoots(c, page - 1); });
    next.addEventListener("click", function () { renderBoots(c, page + 1); });
    var lab = el("label", null, " only boots that were not ok");
    var cb = el("input", {type: "checkbox", id: "only-failed"});
    cb.checked = failedOnly;
    cb.addEventListener("change", function () { state.failedOnly = cb.checked; renderBoots(c, 0); });
    lab.insertBefore(cb, lab.firstChild);
    pager.appendChild(prev);
    pager.appendChild(el("span", null, "page " + (page + 1) + " of " + pages + " (" + shown.length + " boots)"));
    pager.appendChild(next);
    pager.appendChild(lab);
    d.appendChild(pager);
    shown.slice(page * PAGE, (page + 1) * PAGE).forEach(function (b) {
      // b = [index, outcome, latency, reason, offline cpus, detail index or -1]
      var o = OUT[b[1]];
      var box = el("div", {"class": "boot " + o});
      var head = "boot " + b[0] + ": " + LABEL[o];
      if (b[4] && b[3].indexOf("offline") < 0) { head += " (CPU " + b[4] + " offline)"; }
      if (b[3]) { head += " \u2014 " + b[3]; }
      if (b[2] !== null) { head += " \u00b7 bring-up " + b[2].toFixed(3) + " s"; }
      box.appendChild(el("div", null, head));
      if (b[5] >= 0) {
        var det = DATA.details[b[5]];
        det.sn.forEach(function (s) { box.appendChild(snippet(s)); });
        if (det.a.length) {
          var links = el("div", {"class": "muted"}, "artifacts: ");
          det.a.forEach(function (a) {
            // artifact paths are relative to the report; never follow a scheme
            if (/^[a-z][a-z0-9+.-]*:/i.test(a[1])) { return; }
            links.appendChild(el("a", {href: a[1]}, a[0]));
            links.appendChild(document.createTextNode(" "));
          });
          box.appendChild(links);
        }
      }
      d.appendChild(box);
    });
  }

  function render() {
    renderControls();
    renderHeatmap();
  }
  window.harnessReport = {render: render, state: state, wilson: wilson};
  render();
})();
