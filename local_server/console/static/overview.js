// Overview: the served models and the live figures, from one GET /stats (the counters /metrics publishes).
import { $, fill, h, svg } from "./dom.js";

const history = [];

function sparkline(values) {
  const top = Math.max(...values, 1e-9);
  const step = 120 / Math.max(values.length - 1, 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(26 - (v / top) * 24).toFixed(1)}`).join(" ");
  fill($("#ov-spark"), svg("polyline", { points, class: "spark-line" }));
}

const ms = (value) => (value === null ? "–" : `${value} ms`);

function modelRow(model) {
  const cells = [model.name, model.family, model.backend, model.precision ?? "–", model.device ?? "–",
    model.max_input_length, model.state, model.active, model.requests, model.requests_per_s, model.documents];
  return h("tr", { "data-model": model.name },
    cells.map((value, i) => h(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : { class: i === 6 ? `state ${value}` : null }, value)));
}

export function update(stats) {
  $("#ov-rps").textContent = stats.requests_per_s.toFixed(2);
  $("#ov-pps").textContent = stats.pairs_per_s.toFixed(1);
  $("#ov-p50").textContent = ms(stats.latency_ms.p50);
  $("#ov-p95").textContent = ms(stats.latency_ms.p95);
  $("#ov-queue").textContent = stats.queue_pairs;
  const cache = stats.cache;  // null: RERANK_CACHE_BYTES=0
  $("#ov-cache").textContent = cache === null ? "off" : cache.hit_ratio === null ? "–" : `${(cache.hit_ratio * 100).toFixed(1)}%`;
  $("#ov-cache-size").textContent = cache === null ? "" : `${cache.entries} entries, ${(cache.bytes / 2 ** 20).toFixed(1)} MiB`
    + (cache.shared_errors ? `, ${cache.shared_errors} Redis errors` : "");
  $("#ov-window").textContent = `Rates and latency over the last ${stats.window_s} s of scoring requests; up ${Math.round(stats.uptime_s)} s.`;
  history.push(stats.requests_per_s);
  if (history.length > 60) history.shift();
  sparkline(history);
  fill($("#ov-models tbody"), stats.models.map(modelRow));
  const errors = Object.entries(stats.errors);
  fill($("#ov-errors"), errors.length ? errors.map(([status, count]) => h("span", { class: "pill", "data-status": status }, `${status}: ${count}`))
    : "none");
}
