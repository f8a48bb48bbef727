// The console's Operations view (/#operations): polls the command API's GET /ops/overview (one
// database snapshot: runners and their leases, due work per shard, projector lag and the
// horizon's age, runs by status, every tenant's usage per model and day) every few seconds while
// the view is shown, through the TypeScript client (client/client.js), and draws it as tables and
// uPlot charts. The charts over time are samples this page accumulates (the last hour); the
// per-day charts and tables are what the snapshot says. uPlot is vendored by the client's build
// (gateway/static/vendor/) and loaded the first time the view opens. `?refresh=S` sets the poll
// interval (1-60 s, default 5); the token box's token is sent (operators only with auth on).
import { Client } from "./client/client.js";
import { APIError } from "./client/errors.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const REFRESH_MS = 1000 * Math.min(60, Math.max(1, Number(params.get("refresh")) || 5));
const HISTORY = 720; // samples kept per series (an hour at the default interval)
const DAYS = 14;
const COLORS = ["#1f6fb2", "#d9822b", "#7a4fb5", "#1f7a3a", "#a11", "#5a6270", "#0f8b8d", "#b5478f"];

const ops = {
  timer: null,
  polling: false,
  uPlot: null, // the library, once loaded
  charts: new Map(), // name -> {plot, key}
  samples: { t: [], queued: [], running: [], suspended: [], completed: [], failed: [], cancelled: [],
             horizon: [], due: [], lag: new Map() }, // lag: checkpoint name -> values
  lastSampleAt: 0,
};

// --- the views ------------------------------------------------------------------------------

function route() {
  const view = location.hash === "#operations" ? "operations" : "session";
  document.body.dataset.view = view;
  $("session-view").hidden = view !== "session";
  $("ops-view").hidden = view !== "operations";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "operations") start();
  else stop();
}

function start() {
  if (ops.polling) return;
  ops.polling = true;
  poll();
}

function stop() {
  ops.polling = false;
  clearTimeout(ops.timer);
}

async function poll() {
  if (!ops.polling) return;
  clearTimeout(ops.timer);
  try {
    if (!ops.uPlot) ops.uPlot = await loadUPlot();
    const client = new Client(location.origin, { token: $("token").value.trim() || null, timeoutMs: 10_000 });
    const overview = await client.operations.overview({ days: DAYS });
    if (!ops.polling) return;
    render(overview);
    setStatus("live", `updated ${new Date().toLocaleTimeString()} · every ${REFRESH_MS / 1000} s`);
    showError(null);
  } catch (error) {
    if (error instanceof APIError && (error.status === 401 || error.status === 403)) {
      setStatus("error", error.status === 403 ? "not an operator" : "unauthorized");
      showError(error.status === 403
        ? `This token is not an operator's: ${error.detail} (the server's AGENTLANE_OPERATOR_CLAIM).`
        : `Unauthorized: ${error.detail}. Put a token in the token box.`);
    } else {
      setStatus("retrying", String(error.message ?? error));
    }
  }
  if (ops.polling) ops.timer = setTimeout(poll, REFRESH_MS);
}

function setStatus(state, text) {
  const badge = $("ops-status");
  badge.dataset.state = state;
  badge.textContent = text;
}

function showError(text) {
  const box = $("ops-error");
  box.hidden = !text;
  box.textContent = text ?? "";
}

function loadUPlot() {
  return new Promise((resolve, reject) => {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/console/vendor/uPlot.min.css";
    document.head.append(css);
    const script = document.createElement("script");
    script.src = "/console/vendor/uPlot.iife.min.js";
    script.onload = () => resolve(globalThis.uPlot);
    script.onerror = () => reject(new Error("cannot load /console/vendor/uPlot.iife.min.js"));
    document.head.append(script);
  });
}

// --- one snapshot ---------------------------------------------------------------------------

function render(o) {
  sample(o);
  tiles(o);
  runners(o);
  shards(o);
  usage(o);
  charts(o);
  document.body.dataset.opsSnapshots = Number(document.body.dataset.opsSnapshots ?? 0) + 1;
}

function sample(o) {
  const s = ops.samples;
  const at = Date.parse(o.at) / 1000;
  // A pause (the view was hidden, the server unreachable) breaks the lines instead of bridging.
  if (s.t.length && at - ops.lastSampleAt > (3 * REFRESH_MS) / 1000) push(s, ops.lastSampleAt + 0.001, null);
  const ended = o.runs.ended;
  const perMinute = (n) => (n * 60) / ended.windowS;
  push(s, at, {
    ...o.runs.active,
    completed: perMinute(ended.completed), failed: perMinute(ended.failed), cancelled: perMinute(ended.cancelled),
    horizon: o.projector.horizonAgeS,
    due: Math.max(0, ...o.shards.rows.map((r) => r.oldestDueAgeS ?? 0)),
    lag: Object.fromEntries(o.projector.checkpoints.map((c) => [c.name, c.lagS])),
  });
  ops.lastSampleAt = at;
}

function push(s, t, values) {
  s.t.push(t);
  for (const key of ["queued", "running", "suspended", "completed", "failed", "cancelled", "horizon", "due"]) {
    s[key].push(values ? values[key] : null);
  }
  for (const name of Object.keys(values?.lag ?? {})) {
    if (!s.lag.has(name)) s.lag.set(name, s.t.slice(0, -1).map(() => null));
  }
  for (const [name, series] of s.lag) series.push(values ? (values.lag[name] ?? null) : null);
  if (s.t.length > HISTORY) {
    s.t.shift();
    for (const key of ["queued", "running", "suspended", "completed", "failed", "cancelled", "horizon", "due"]) s[key].shift();
    for (const series of s.lag.values()) series.shift();
  }
}

function tiles(o) {
  const live = o.runners.filter((r) => r.shards.length && !r.draining).length;
  const active = o.runs.active;
  const ended = o.runs.ended;
  const lag = Math.max(0, ...o.projector.checkpoints.map((c) => c.lagS));
  const lagEvents = Math.max(0, ...o.projector.checkpoints.map((c) => c.lagEvents));
  const due = Math.max(0, ...o.shards.rows.map((r) => r.oldestDueAgeS ?? 0));
  const unowned = o.shards.count - o.shards.held;
  const items = [
    ["runners", `${live} / ${o.runners.length}`, "holding shards / registered", live === 0],
    ["shards", `${o.shards.held} / ${o.shards.count}`, unowned ? `${unowned} without a live lease` : "held", unowned > 0],
    ["active", `${active.queued + active.running + active.suspended}`, `${active.queued} queued · ${active.running} running · ${active.suspended} suspended`, false],
    ["ended", `${ended.completed + ended.failed + ended.cancelled}`, `last ${Math.round(ended.windowS)} s: ${ended.failed} failed · ${ended.cancelled} cancelled`, ended.failed > 0],
    ["lag", duration(lag), `projector lag · ${lagEvents}${o.projector.checkpoints.some((c) => c.lagEventsCapped) ? "+" : ""} events`, lag > 10],
    ["horizon", duration(o.projector.horizonAgeS), "horizon age", o.projector.horizonAgeS > 30],
    ["due", duration(due), "oldest due work", due > 10],
  ];
  $("ops-tiles").replaceChildren(...items.map(([key, value, label, alert]) => {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.tile = key;
    if (alert) tile.dataset.alert = "";
    tile.innerHTML = "<b></b><small></small>";
    tile.querySelector("b").textContent = value;
    tile.querySelector("small").textContent = label;
    return tile;
  }));
}

function runners(o) {
  $("ops-runner-count").textContent = `(${o.runners.length})`;
  rows("ops-runners", o.runners.map((r) => ({
    cells: [
      r.runnerId, ranges(r.shards), [r.shards.length, "n"], [duration(r.heartbeatAgeS), "n"],
      [duration(r.leaseExpiresInS), "n"], [duration(r.upS), "n"],
      r.draining ? "draining" : r.shards.length ? "serving" : "holds no shard",
    ],
    attrs: { "data-runner": r.runnerId },
  })), "no runner is registered");
}

function shards(o) {
  const listed = o.shards.listed === "all" ? "" : ", only the notable";
  $("ops-shard-count").textContent = `(${o.shards.held} of ${o.shards.count} held${listed})`;
  rows("ops-shards", o.shards.rows.map((s) => {
    const moved = s.leaseToken > 1 && (s.heldForS ?? Infinity) < 60;
    const flag = s.runnerId === null ? "unowned" : s.dueRuns ? "due" : moved ? "moved" : null;
    return {
      cells: [
        [s.shard, "n"], s.runnerId ?? "(nobody)", [s.leaseToken, "n"], [duration(s.expiresInS), "n"],
        [duration(s.heldForS), "n"], [s.dueRuns, "n"], [duration(s.oldestDueAgeS), "n"], [duration(s.nextWakeInS), "n"],
      ],
      attrs: { "data-shard": s.shard, ...(flag ? { "data-flag": flag } : {}) },
    };
  }), "no shard");
}

function usage(o) {
  if (!o.usage) {
    $("ops-usage-note").textContent = "The read models are being rebuilt; usage comes back in a moment.";
    return;
  }
  $("ops-usage-window").textContent = `(since ${o.usage.since}, UTC)`;
  const totals = new Map();
  for (const d of o.usage.days) {
    const key = `${d.tenant}\u0000${d.model}`;
    const t = totals.get(key) ?? { tenant: d.tenant, model: d.model, calls: 0, input: 0, output: 0, cost: 0 };
    t.calls += d.calls;
    t.input += d.inputTokens;
    t.output += d.outputTokens;
    t.cost += d.costMicros;
    totals.set(key, t);
  }
  const sorted = [...totals.values()].sort((a, b) => b.cost - a.cost || b.input + b.output - a.input - a.output);
  rows("ops-usage", sorted.map((t) => ({
    cells: [t.tenant, t.model, [t.calls, "n"], [t.input.toLocaleString(), "n"], [t.output.toLocaleString(), "n"], [money(t.cost), "n"]],
    attrs: { "data-tenant": t.tenant, "data-model": t.model },
  })), "no model calls in this window");
  $("ops-usage-note").textContent = o.usage.truncated
    ? "Only the 1000 costliest (tenant, model, day) rows of the window are shown."
    : "From the read models: they trail the log by the projector's lag. Cost in the price table's currency.";
}

function rows(tableId, items, empty) {
  const body = $(tableId).querySelector("tbody");
  if (!items.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = $(tableId).querySelectorAll("th").length;
    cell.className = "note";
    cell.textContent = empty;
    row.append(cell);
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...items.map(({ cells, attrs }) => {
    const row = document.createElement("tr");
    for (const [name, value] of Object.entries(attrs ?? {})) row.setAttribute(name, value);
    for (const cell of cells) {
      const td = document.createElement("td");
      const [value, kind] = Array.isArray(cell) ? cell : [cell, null];
      td.textContent = String(value);
      if (kind === "n") td.className = "n";
      row.append(td);
    }
    return row;
  }));
}

// --- charts ---------------------------------------------------------------------------------

function charts(o) {
  const s = ops.samples;
  const lagNames = [...s.lag.keys()];
  timeChart("active", ["queued", "running", "suspended"], [s.t, s.queued, s.running, s.suspended], "runs");
  timeChart("ended", ["completed", "failed", "cancelled"], [s.t, s.completed, s.failed, s.cancelled], "runs/min",
    [COLORS[3], COLORS[4], COLORS[5]]);
  timeChart("lag", [...lagNames.map((n) => `lag ${n}`), "horizon age", "oldest due work"],
    [s.t, ...lagNames.map((n) => s.lag.get(n)), s.horizon, s.due], "seconds");
  const rowsByShard = o.shards.rows;
  barChart("due", ["oldest due (s)"], [rowsByShard.map((r) => r.shard),
    rowsByShard.map((r) => r.oldestDueAgeS ?? 0)], "shard");
  dayCharts(o);
}

// Per model per day, as bars side by side: each model's bars sit at its own offset in its day.
function dayCharts(o) {
  const days = o.usage ? o.usage.days : [];
  const since = Date.parse(o.usage ? `${o.usage.since}T00:00:00Z` : o.at) / 86_400_000;
  const models = [...new Set(days.map((d) => d.model))].sort();
  const width = 0.8 / Math.max(1, models.length);
  const x = [];
  const spend = models.map(() => []);
  const tokens = models.map(() => []);
  const index = new Map(days.map((d) => [`${d.day}\u0000${d.model}`, d]));
  for (let day = 0; day < DAYS; day += 1) {
    const iso = new Date((since + day) * 86_400_000).toISOString().slice(0, 10);
    models.forEach((model, k) => {
      x.push(day + (k - (models.length - 1) / 2) * width);
      const d = index.get(`${iso}\u0000${model}`);
      models.forEach((_, j) => {
        spend[j].push(j === k ? (d ? d.costMicros / 1e6 : 0) : null);
        tokens[j].push(j === k ? (d ? d.inputTokens + d.outputTokens : 0) : null);
      });
    });
  }
  const dayLabel = (value) => {
    const day = Math.round(value);
    return new Date((since + day) * 86_400_000).toISOString().slice(5, 10);
  };
  $("ops-currency").textContent = "(price table's currency)";
  barChart("spend", models, [x, ...spend], "day", dayLabel, amount, true);
  barChart("tokens", models, [x, ...tokens], "day", dayLabel);
}

function container(name) {
  return document.querySelector(`[data-chart="${name}"]`);
}

function timeChart(name, labels, data, unit, colors = COLORS) {
  const series = labels.map((label, i) => ({
    label, stroke: colors[i % colors.length], width: 2, spanGaps: false,
    points: { show: data[0].length < 3 },
  }));
  draw(name, labels, data, () => ({
    scales: { x: { time: true }, y: { range: (_, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{}, { label: unit, size: 50 }],
    series: [{}, ...series],
  }));
}

// `small`: values below 1 are real (money), so the scale is not lifted to 1.
function barChart(name, labels, data, xLabel, xValue = null, yValue = null, small = false) {
  const bars = ops.uPlot.paths.bars({ size: [0.9, 48], align: 0 });
  const top = (max) => (max > 0 ? max * 1.15 : 1);
  draw(name, labels, data, () => ({
    scales: {
      x: { time: false, range: (_, min, max) => [min - 0.6, max + 0.6] },
      y: { range: (_, min, max) => [0, small ? top(max) : Math.max(1, top(max))] },
    },
    axes: [
      { label: xLabel, space: 36, incrs: xValue ? [1, 2, 7] : [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
        ...(xValue ? { values: (_, ticks) => ticks.map(xValue) } : {}) },
      { size: 80, ...(yValue ? { values: (_, ticks) => ticks.map(yValue) } : {}) },
    ],
    series: [
      { label: xLabel, value: xValue ? (_, v) => (v == null ? "" : xValue(v)) : undefined },
      ...labels.map((label, i) => ({
        label, fill: COLORS[i % COLORS.length] + "cc", stroke: COLORS[i % COLORS.length], width: 1, paths: bars,
        points: { show: false }, ...(yValue ? { value: (_, v) => yValue(v) } : {}),
      })),
    ],
  }));
}

// A chart is made once per set of series and then only fed new data.
function draw(name, labels, data, options) {
  const box = container(name);
  const key = labels.join("\u0000");
  let chart = ops.charts.get(name);
  if (!chart || chart.key !== key) {
    chart?.plot.destroy();
    const plot = new ops.uPlot({ width: Math.max(200, box.clientWidth), height: 200, legend: { live: true }, ...options() }, data, box);
    chart = { plot, key };
    ops.charts.set(name, chart);
    new ResizeObserver(() => {
      if (ops.charts.get(name) === chart && box.clientWidth) chart.plot.setSize({ width: box.clientWidth, height: 200 });
    }).observe(box);
  } else {
    chart.plot.setData(data);
  }
  box.dataset.points = String(data[0].length);
  box.dataset.series = labels.join(",");
  box.dataset.values = String(data.slice(1).flat().filter((v) => v != null && v !== 0).length);
}

// --- formatting -----------------------------------------------------------------------------

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const sign = seconds < 0 ? "-" : "";
  const s = Math.abs(seconds);
  if (s < 60) return `${sign}${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86_400) return `${sign}${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${sign}${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

// 0-3,5,7-9: the shards a runner holds, as `agentlane shards` prints them.
function ranges(ids) {
  const parts = [];
  for (let i = 0; i < ids.length; ) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j += 1;
    parts.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return parts.join(",") || "–";
}

// An amount of the price table's currency with enough digits to tell small ones apart.
function amount(value) {
  if (value == null) return "";
  if (value === 0) return "0";
  return value >= 1 ? value.toFixed(2) : String(Number(value.toPrecision(2)));
}

function money(micros) {
  return (micros / 1e6).toFixed(micros < 10_000 ? 6 : 4);
}

window.addEventListener("hashchange", route);
route();
