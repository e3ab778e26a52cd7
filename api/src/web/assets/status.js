// The status page: GET /api/status every 10 s (while the page is visible and auto-refresh is
// on), then the counts, three SVG charts (charts.js) and the miners table — sortable by any
// column (nulls last), filterable, rendered in one pass so 1,000 rows stay quick.
"use strict";

const REFRESH_MS = 10000;
const $ = (id) => document.getElementById(id);

const state = { data: null, sortKey: "uid", ascending: true, filter: "" };
let timer = null;

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`);
const ms = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);
const shortKey = (k) => (k.length > 12 ? `${k.slice(0, 6)}…${k.slice(-4)}` : k);

/** "12 s ago", "3 min ago", … from an RFC 3339 time, relative to the answer's own clock. */
function ago(iso, now) {
  if (!iso) return "never";
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function compare(key, ascending) {
  const dir = ascending ? 1 : -1;
  return (a, b) => {
    const x = a[key];
    const y = b[key];
    const xNull = x === null || x === undefined;
    const yNull = y === null || y === undefined;
    if (xNull || yNull) return xNull === yNull ? a.uid - b.uid : xNull ? 1 : -1;
    if (typeof x === "number") return (x - y) * dir || a.uid - b.uid;
    return String(x).localeCompare(String(y)) * dir || a.uid - b.uid;
  };
}

function renderTable() {
  const data = state.data;
  if (!data) return;
  const now = Date.parse(data.generated_at);
  const needle = state.filter.toLowerCase();
  const rows = data.miners
    .filter((m) => !needle || `${m.uid} ${m.hotkey} ${m.axon}`.toLowerCase().includes(needle))
    .sort(compare(state.sortKey, state.ascending));
  const health = (v) => (v === null ? "" : v >= 0.9 ? "good" : v < 0.5 ? "poor" : "");
  $("miner-rows").innerHTML = rows
    .map(
      (m) =>
        `<tr data-uid="${m.uid}"><td>${m.uid}</td>` +
        `<td><code title="${escapeHtml(m.hotkey)}">${escapeHtml(shortKey(m.hotkey))}</code></td>` +
        `<td><code>${escapeHtml(m.axon)}</code></td>` +
        `<td>${m.incentive.toFixed(4)}</td><td>${m.stake_tao.toFixed(2)}</td>` +
        `<td>${m.asked}</td><td>${m.replies}</td><td class="${health(m.success_rate)}">${pct(m.success_rate)}</td>` +
        `<td>${pct(m.empty_rate)}</td><td>${ms(m.ttfb_p50_ms)}</td><td>${ms(m.ttfb_p95_ms)}</td>` +
        `<td>${ago(m.last_seen, now)}</td></tr>`,
    )
    .join("");
  $("miner-count").textContent =
    rows.length === data.miners.length ? String(rows.length) : `${rows.length} of ${data.miners.length}`;
  for (const th of document.querySelectorAll("#miners th[data-key]")) {
    if (th.dataset.key === state.sortKey) th.setAttribute("aria-sort", state.ascending ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
}

function renderCharts(data) {
  const { drawBars } = window.sn1Charts;
  const minutes = data.per_minute;
  const clock = (iso) => new Date(iso).toISOString().slice(11, 16);
  drawBars(
    $("chart-requests"),
    minutes.map((m) => ({
      value: m.requests,
      label: clock(m.minute),
      title: `${clock(m.minute)} UTC: ${m.requests} requests, ${m.errors} errors`,
    })),
    { overlay: minutes.map((m) => m.errors), labelEvery: 15 },
  );
  const short = (v) => (v >= 1000 ? `${v / 1000}s` : `${v}ms`);
  const edge = (b, i, all) =>
    b.below_ms === null ? `≥${short(all[i - 1].below_ms)}` : `<${short(b.below_ms)}`;
  drawBars(
    $("chart-ttfb"),
    data.ttfb_histogram.map((b, i, all) => ({
      value: b.count,
      label: edge(b, i, all),
      title: `${edge(b, i, all)}: ${b.count} replies`,
    })),
    { labelEvery: 2 },
  );
  const asked = data.miners.filter((m) => m.success_rate !== null);
  drawBars(
    $("chart-success"),
    asked.map((m) => ({
      value: m.success_rate * 100,
      bad: m.success_rate < 0.5,
      label: String(m.uid),
      title: `uid ${m.uid}: ${pct(m.success_rate)} of ${m.replies} replies`,
    })),
    { max: 100, format: () => "100%", labelEvery: Math.max(1, Math.ceil(asked.length / 12)) },
  );
}

/** Draws a whole answer of GET /api/status (also the test's hook for large tables). */
function render(data) {
  state.data = data;
  $("netuid").textContent = data.netuid === null ? "(no snapshot yet)" : String(data.netuid);
  const updated = new Date(data.generated_at).toLocaleTimeString();
  $("summary").textContent =
    data.block === null
      ? `No metagraph snapshot stored yet · updated ${updated}`
      : `block ${data.block} · snapshot ${Math.round(data.snapshot_age_seconds)} s old · updated ${updated}`;
  for (const k of ["neurons", "serving", "validators", "candidates"]) $(`count-${k}`).textContent = data.counts[k];
  renderCharts(data);
  renderTable();
}

async function refresh() {
  try {
    const response = await fetch("/api/status", { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const why = body && body.error ? body.error.message : `HTTP ${response.status}`;
      throw new Error(why);
    }
    $("error").hidden = true;
    render(body);
  } catch (err) {
    $("error").textContent = `Could not load the status: ${err.message}`;
    $("error").hidden = false;
  }
}

function schedule() {
  clearInterval(timer);
  timer = $("auto-refresh").checked
    ? setInterval(() => document.hidden || refresh(), REFRESH_MS)
    : null;
}

function init() {
  for (const th of document.querySelectorAll("#miners th[data-key]")) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      state.ascending = state.sortKey === key ? !state.ascending : true;
      state.sortKey = key;
      renderTable();
    });
  }
  $("filter").addEventListener("input", (e) => {
    state.filter = e.target.value.trim();
    renderTable();
  });
  $("refresh").addEventListener("click", refresh);
  $("auto-refresh").addEventListener("change", schedule);
  document.addEventListener("visibilitychange", () => document.hidden || refresh());
  schedule();
  refresh();
}

window.sn1Status = { render };
document.addEventListener("DOMContentLoaded", init);
