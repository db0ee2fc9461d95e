// The report page: builds the summary, the table and the plots from the data that `run report`
// embedded as JSON (element #report-data). Plots are plotly's; the table is plain DOM.
// When everything is drawn, <body data-ready="1"> (or "error" if a part failed).
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const COLORS = {done: "#2da44e", failed: "#cf222e", timeout: "#bc4c00",
                  interrupted: "#d4a72c", running: "#0969da", pending: "#8c959f"};
  const CONFIG = {displaylogo: false, responsive: true};
  const MAX_AXES = 16;  // parallel coordinates: varying params first, then metrics
  const MANY_POINTS = 2000;  // above this, box plots draw no points and markers get smaller
  const MAX_ROWS = 1000;  // table rows drawn at once (the rest after "Show all")
  const MAX_BOXES = 30;
  const MAX_TICKS = 30;  // labelled values on a categorical axis
  const MAX_CATEGORIES = 200;  // a param of more values (all different names?) is not plotted  // with many tasks, a numeric param of at most this many values: boxes
  const COL = {};
  D.columns.forEach((c, i) => { COL[c.name] = i; });
  const $ = (id) => document.getElementById(id);
  let metric = D.metric;

  // -- values ---------------------------------------------------------------------------------
  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number" && !Number.isInteger(v)) {
      const text = String(v);
      return text.length <= 10 ? text : v.toPrecision(6).replace(/\.?0+(e|$)/, "$1");
    }
    return String(v);
  }
  function esc(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }
  function num(v) {  // a finite number, also from a string ("0.1" of a runfile), else null
    if (typeof v === "number") return Number.isFinite(v) ? v : null;
    if (typeof v === "string" && v.trim() !== "") {
      const n = Number(v);
      return Number.isFinite(n) ? n : null;
    }
    return null;
  }
  function metricValue(row, name) {
    const v = row[COL[name]];
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
    const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    const pad = (x) => String(x).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  }
  function natural(a, b) {
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function badge(state, text) {
    return el("span", {class: "state " + (state in COLORS ? state : "other")}, text);
  }

  // -- summary --------------------------------------------------------------------------------
  function drawSummary() {
    const s = D.summary;
    $("title").textContent = D.title;
    $("subtitle").textContent = `${D.output} · report written ${D.generated}` +
      (s.running ? " · still running" : "");
    const dl = $("summary");
    function item(term, value) {
      dl.appendChild(el("dt", {}, term));
      const dd = el("dd");
      if (value instanceof Node) dd.appendChild(value); else dd.textContent = value;
      dl.appendChild(dd);
    }
    const counts = el("span");
    Object.entries(s.counts).sort((a, b) => b[1] - a[1]).forEach(([state, n], i) => {
      if (i) counts.appendChild(document.createTextNode(" "));
      counts.appendChild(badge(state, `${n} ${state}`));
    });
    item("tasks", `${s.tasks} (${s.commands} commands)`);
    item("states", counts);
    item("first start", s.first_start || "-");
    item("last end", s.running ? `${s.last_end} (still running)` : (s.last_end || "-"));
    item("wall time", duration(s.wall_seconds));
    item("task hours", s.task_hours.toFixed(s.task_hours < 10 ? 3 : 1));
    item("GPU hours", s.gpu_hours.toFixed(s.gpu_hours < 10 ? 3 : 1));
    const lanes = s.lanes.length > 24 ? s.lanes.slice(0, 24).join(", ") +
      `, ... (${s.lanes.length} in all)` : s.lanes.join(", ");
    item("slots and hosts", lanes || "-");
  }

  // -- results table --------------------------------------------------------------------------
  const table = {sort: null, desc: false, filter: "", selection: null, all: false,
                 hidden: new Set(D.columns.filter((c) => c.hidden).map((c) => c.name))};
  const stateIndex = COL._state;

  function shownColumns() {
    return D.columns.filter((c) => !table.hidden.has(c.name));
  }
  function compare(a, b, sign) {  // numbers, then strings, then missing values (in any order)
    const rank = (v) => (typeof v === "number" ? 0 : v === null || v === undefined ? 2 : 1);
    const ra = rank(a), rb = rank(b);
    if (ra !== rb) return ra - rb;
    if (ra === 2) return 0;
    return sign * (ra === 0 ? a - b : natural(a, b));
  }
  function drawTable() {
    const columns = shownColumns();
    const thead = document.querySelector("#results thead");
    const head = el("tr");
    columns.forEach((c) => {
      const th = el("th", {"data-column": c.name, title: `${c.kind}: click to sort`}, c.name);
      if (table.sort === c.name) th.className = table.desc ? "sorted-desc" : "sorted-asc";
      head.appendChild(th);
    });
    thead.replaceChildren(head);
    let order = D.rows.map((_, i) => i);
    if (table.selection) order = order.filter((i) => table.selection.has(i));
    if (table.filter) {
      const needle = table.filter.toLowerCase();
      order = order.filter((i) => columns.some(
        (c) => fmt(D.rows[i][COL[c.name]]).toLowerCase().includes(needle)));
    }
    if (table.sort !== null) {
      const k = COL[table.sort], sign = table.desc ? -1 : 1;
      order.sort((i, j) => compare(D.rows[i][k], D.rows[j][k], sign) || i - j);
    }
    const limit = table.all ? order.length : Math.min(order.length, MAX_ROWS);
    const parts = [];
    for (const i of order.slice(0, limit)) {
      const row = D.rows[i];
      parts.push(`<tr class="${esc(String(row[stateIndex]))}">`);
      for (const c of columns) {
        const v = row[COL[c.name]];
        parts.push(typeof v === "number" ? `<td class="num">${fmt(v)}</td>`
                                         : `<td>${esc(fmt(v))}</td>`);
      }
      parts.push("</tr>");
    }
    document.querySelector("#results tbody").innerHTML = parts.join("");
    $("count").textContent = `${order.length} of ${D.rows.length} tasks` +
      (limit < order.length ? ` (the first ${limit} shown; filter or sort to see others)` : "");
    $("show-all").hidden = limit === order.length;
  }
  function setupTable() {
    document.querySelector("#results thead").addEventListener("click", (event) => {
      const name = event.target.getAttribute("data-column");
      if (!name) return;
      table.desc = table.sort === name ? !table.desc : false;
      table.sort = name;
      drawTable();
    });
    let timer = null;
    $("filter").addEventListener("input", (event) => {
      clearTimeout(timer);
      timer = setTimeout(() => { table.filter = event.target.value.trim(); drawTable(); }, 120);
    });
    const box = $("columns");
    D.columns.forEach((c) => {
      const input = el("input", {type: "checkbox", "data-column": c.name});
      input.checked = !table.hidden.has(c.name);
      input.addEventListener("change", () => {
        if (input.checked) table.hidden.delete(c.name); else table.hidden.add(c.name);
        drawTable();
      });
      const label = el("label");
      label.append(input, " " + c.name);
      box.appendChild(label);
    });
    $("show-all").addEventListener("click", () => { table.all = true; drawTable(); });
    $("clear-selection").addEventListener("click", () => {
      const gd = $("parcoords");
      if (gd.data) {
        const update = {};
        gd.data[0].dimensions.forEach((_, k) => {
          update[`dimensions[${k}].constraintrange`] = null;
        });
        Plotly.restyle(gd, update);
      }
      select(null);
    });
    drawTable();
  }
  function select(rows) {
    table.selection = rows;
    $("selection").hidden = !rows;
    if (rows) $("selection-text").textContent = `${rows.size} selected on the parallel coordinates`;
    drawTable();
  }

  // -- the chosen metric ----------------------------------------------------------------------
  function metricPicker() {
    if (D.metrics.length < 2) return;
    const picker = el("select", {id: "metric", "aria-label": "metric"});
    D.metrics.forEach((m) => {
      const option = el("option", {value: m}, m);
      if (m === metric) option.selected = true;
      picker.appendChild(option);
    });
    picker.addEventListener("change", () => { metric = picker.value; drawMetricPlots(); });
    const label = el("label", {}, "metric: ");
    label.appendChild(picker);
    $("parcoords-section").insertBefore(label, $("parcoords-note"));
  }

  // -- parallel coordinates -------------------------------------------------------------------
  function axis(name, values) {  // numbers as they are; anything else as ordered categories
    const param = D.params.find((p) => p.name === name);
    if (!param || param.numeric) return {label: name, values: values.map(num)};
    const text = values.map((v) => (v === null || v === undefined ? "(none)" : fmt(v)));
    const categories = [...new Set(text)].sort(natural);
    const index = new Map(categories.map((c, i) => [c, i]));
    const step = Math.ceil(categories.length / MAX_TICKS);  // label every step-th value
    const ticks = categories.map((_, i) => i).filter((i) => i % step === 0);
    return {label: name, values: text.map((t) => index.get(t)),
            tickvals: ticks, ticktext: ticks.map((i) => categories[i])};
  }
  function drawParcoords() {
    const gd = $("parcoords");
    const others = D.metrics.filter((m) => m !== metric);
    const names = D.params.map((p) => p.name).concat(others, metric ? [metric] : [])
      .slice(-MAX_AXES);
    const metricNames = new Set(D.metrics);
    const rows = D.rows.map((_, i) => i).filter((i) => names.every(
      (n) => !metricNames.has(n) || metricValue(D.rows[i], n) !== null));
    const note = [];
    if (names.length < 2 || !rows.length) {
      $("parcoords-note").textContent = metric === null && !D.params.length
        ? "No task wrote a metric (metrics.json) and no param varies."
        : "Nothing to draw: fewer than two axes, or no task has every metric.";
      Plotly.purge(gd);
      return Promise.resolve();
    }
    if (rows.length < D.rows.length) {
      note.push(`${rows.length} of ${D.rows.length} tasks (those with every metric shown).`);
    }
    if (metric) note.push(`Coloured by ${metric}; drag along an axis to select tasks.`);
    $("parcoords-note").textContent = note.join(" ");
    const dimensions = names.map((n) => axis(n, rows.map((i) => D.rows[i][COL[n]])));
    const color = metric ? rows.map((i) => metricValue(D.rows[i], metric)) : "#0969da";
    const trace = {type: "parcoords", dimensions: dimensions,
                   line: metric ? {color: color, colorscale: "Viridis", showscale: true,
                                   colorbar: {title: {text: metric}}} : {color: color}};
    gd.rowIndex = rows;
    return Plotly.react(gd, [trace], {height: 420, margin: {l: 70, r: 70, t: 60, b: 30}}, CONFIG)
      .then(() => {
        if (gd.brushWired) return;
        gd.brushWired = true;
        gd.on("plotly_restyle", () => select(brushed(gd)));
      });
  }
  function brushed(gd) {  // the rows inside every axis's constraint ranges, or null for none
    const dims = gd.data[0].dimensions;
    const ranges = dims.map((d) => {
      const r = d.constraintrange;
      if (!r || !r.length) return null;
      return Array.isArray(r[0]) ? r : [r];
    });
    if (ranges.every((r) => r === null)) return null;
    const out = new Set();
    gd.rowIndex.forEach((row, line) => {
      const inside = dims.every((d, k) => ranges[k] === null ||
        ranges[k].some(([lo, hi]) => d.values[line] >= lo && d.values[line] <= hi));
      if (inside) out.add(row);
    });
    return out;
  }

  // -- the metric against each varying param --------------------------------------------------
  function drawByParam() {
    const grid = $("by-param");
    grid.querySelectorAll(".plot").forEach((div) => Plotly.purge(div));
    grid.replaceChildren();
    $("by-param-title").textContent = metric ? `${metric} against each varying param`
                                             : "Metric against each varying param";
    if (!metric || !D.params.length) {
      $("by-param-note").textContent = !metric ? "No task wrote a numeric metric (metrics.json)."
                                               : "No param varies between the tasks.";
      return Promise.resolve();
    }
    const rows = D.rows.map((_, i) => i).filter((i) => metricValue(D.rows[i], metric) !== null);
    $("by-param-note").textContent = `${rows.length} of ${D.rows.length} tasks have ${metric}.`;
    const y = rows.map((i) => metricValue(D.rows[i], metric));
    const names = rows.map((i) => D.rows[i][COL._name]);
    return Promise.all(D.params.map((p) => {
      const div = el("div", {class: "plot", "data-param": p.name});
      grid.appendChild(div);
      const raw = rows.map((i) => D.rows[i][COL[p.name]]);
      const many = rows.length > MANY_POINTS;
      const hover = `%{text}<br>${p.name} %{x}<br>${metric} %{y}<extra></extra>`;
      let trace, type = p.numeric ? (p.log ? "log" : "linear") : "category";
      const distinct = new Set(raw.map((v) => fmt(v)));
      if (!p.numeric && distinct.size > MAX_CATEGORIES) {
        div.textContent = `${p.name}: ${distinct.size} different values, too many to plot.`;
        return Promise.resolve();
      }
      if (p.numeric && (!many || distinct.size > MAX_BOXES)) {
        trace = {type: many ? "scattergl" : "scatter", mode: "markers", x: raw.map(num), y: y,
                 text: names, hovertemplate: hover,
                 marker: {size: many ? 4 : 7, opacity: many ? 0.5 : 0.8, color: "#0969da"}};
      } else {  // a box per value: categories, or a few numbers shared by many tasks
        const x = raw.map((v) => (v === null || v === undefined ? "(none)" : fmt(v)));
        trace = {type: "box", x: x, y: y, boxpoints: many ? false : "all", jitter: 0.4,
                 pointpos: 0, marker: {size: 5, color: "#0969da"}, line: {color: "#57606a"}};
        if (!many) Object.assign(trace, {text: names, hovertemplate: hover});
        type = "category";
      }
      const layout = {height: 280, margin: {l: 60, r: 20, t: 30, b: 50}, showlegend: false,
                      xaxis: {title: {text: p.name}, type: type},
                      yaxis: {title: {text: metric}}};
      if (type === "category") {
        layout.xaxis.categoryorder = "array";
        layout.xaxis.categoryarray = [...new Set(trace.x)].sort(
          p.numeric ? (a, b) => Number(a) - Number(b) : natural);
      }
      return Plotly.newPlot(div, [trace], layout, CONFIG);
    }));
  }
  function drawMetricPlots() {
    return Promise.all([guard("parcoords-note", drawParcoords),
                        guard("by-param-note", drawByParam)]);
  }

  // -- timeline -------------------------------------------------------------------------------
  function drawTimeline() {
    const t = D.timeline;
    if (!t.bars.length) {
      $("timeline-note").textContent = "No command has started yet.";
      return Promise.resolve();
    }
    $("timeline-note").textContent = "Every command as a bar on the slot or host it ran on; " +
      "hover for the task, command and duration.";
    // One trace per state; a lane's bars that follow each other without a visible gap share
    // one line (a gap is a null), so 10,000 commands are a few SVG paths, not 10,000.
    const bars = t.bars.slice().sort((a, b) => a[3] - b[3] || a[4] - b[4]);
    const first = bars.reduce((m, b) => Math.min(m, b[4]), Infinity);
    const last = bars.reduce((m, b) => Math.max(m, b[5]), -Infinity);
    const tolerance = (last - first) / 4000;
    const byState = {};
    for (const [row, command, state, lane, start, end] of bars) {
      const trace = byState[state] || (byState[state] = {x: [], y: [], text: [], lane: -1, end: 0});
      const where = t.lanes[lane];
      const text = `${D.rows[row][COL._name]}<br>${t.commands[command]}: ${state}<br>` +
        `${duration((end - start) / 1000)} on ${where}`;
      if (trace.lane !== -1 && (trace.lane !== lane || start - trace.end > tolerance)) {
        trace.x.push(null); trace.y.push(null); trace.text.push(null);
      }
      trace.x.push(start, (start + end) / 2, end);
      trace.y.push(where, where, where);
      trace.text.push(text, text, text);
      trace.lane = lane;
      trace.end = end;
    }
    const laneHeight = Math.max(14, Math.min(36, 600 / t.lanes.length));
    const order = ["done", "running", "interrupted", "timeout", "failed"];
    const rank = (state) => (order.includes(state) ? order.indexOf(state) : order.length);
    const traces = Object.keys(byState).sort((a, b) => rank(a) - rank(b)).map((state) => ({
      type: "scatter", mode: "lines", name: state, x: byState[state].x, y: byState[state].y,
      text: byState[state].text, hoverinfo: "text", connectgaps: false,
      line: {width: Math.max(4, laneHeight * 0.6), color: COLORS[state] || COLORS.pending}}));
    const height = 110 + laneHeight * t.lanes.length;
    const layout = {height: height, hovermode: "closest", showlegend: true,
                    margin: {l: 150, r: 20, t: 30, b: 80},
                    legend: {orientation: "h", x: 0, y: -60 / (height - 90), yanchor: "top"},
                    xaxis: {type: "date"},
                    yaxis: {type: "category", categoryorder: "array", categoryarray: t.lanes,
                            autorange: "reversed"}};
    return Plotly.newPlot($("timeline"), traces, layout, CONFIG);
  }

  // -- failures -------------------------------------------------------------------------------
  function drawFailures() {
    const box = $("failures");
    if (!D.failures.length) {
      $("failures-note").textContent = "No command failed or timed out.";
      return;
    }
    const tails = D.failures.filter((f) => f.tails.length).length;
    $("failures-note").textContent = `${D.failures.length} failed or timed-out commands` +
      (tails < D.failures.length ? `; the log tails of the first ${tails} are included.` : ".");
    D.failures.forEach((f) => {
      const div = el("div", {class: "failure " + f.status});
      const how = f.signal !== null ? `signal ${f.signal}` :
        f.exit_status !== null ? `exit status ${f.exit_status}` : "no exit status";
      const head = el("div");
      head.append(el("strong", {}, f.task), ` ${f.command}: `, badge(f.status, f.status),
                  ` ${how}` + (f.attempts > 1 ? `, after ${f.attempts} attempts` : "") +
                  (f.end ? `, ended ${f.end}` : ""));
      div.appendChild(head);
      f.logs.forEach((path, k) => {
        div.appendChild(el("div", {class: "log"}, "log: " + path));
        const lines = f.tails[k];
        if (lines && lines.length) div.appendChild(el("pre", {}, lines.join("\n")));
      });
      box.appendChild(div);
    });
  }

  // -- all of it ------------------------------------------------------------------------------
  const timings = window.reportTimings = {};  // milliseconds each part took to draw
  function timed(name, draw) {
    const started = performance.now();
    const done = () => { timings[name] = Math.round(performance.now() - started); };
    const result = draw();
    return result && result.then ? result.then(done) : done();
  }
  function guard(noteId, draw) {  // one part's error is shown there; the others still draw
    try {
      return Promise.resolve(timed(draw.name, draw)).catch((e) => fail(noteId, e));
    } catch (e) {
      return Promise.resolve(fail(noteId, e));
    }
  }
  function fail(noteId, error) {
    $(noteId).textContent = "This part could not be drawn: " + error;
    console.error(error);
    document.body.dataset.failed = "1";
  }
  // The summary and table first, painted before the plots (large reports take a while to plot).
  const painted = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  timed("summary", drawSummary);
  timed("table", setupTable);
  timed("failures", drawFailures);
  metricPicker();
  painted()
    .then(() => guard("timeline-note", drawTimeline)).then(painted)
    .then(() => guard("by-param-note", drawByParam)).then(painted)
    .then(() => guard("parcoords-note", drawParcoords))
    .then(() => { document.body.dataset.ready = document.body.dataset.failed ? "error" : "1"; });
})();
