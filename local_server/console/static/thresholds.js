// Thresholds: per model, the scores this server returned recently (a bounded sketch, no text), their percentiles,
// and what a Dify score_threshold of x would keep.
import { $, fill, h, selectModels, svg } from "./dom.js";

const W = 640;
const H = 220;
const PAD = 28;
let latest = null;

function histogram(bins, x) {
  const top = Math.max(...bins, 1);
  const width = (W - 2 * PAD) / bins.length;
  const bars = bins.map((count, i) => svg("rect", {
    x: (PAD + i * width + 1).toFixed(1), y: (H - PAD - (count / top) * (H - 2 * PAD)).toFixed(1),
    width: (width - 2).toFixed(1), height: ((count / top) * (H - 2 * PAD)).toFixed(1),
    class: (i + 1) / bins.length <= x ? "bin below" : "bin" }, svg("title", {}, `${(i / bins.length).toFixed(2)}–${((i + 1) / bins.length).toFixed(2)}: ${count}`)));
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => svg("text", { x: PAD + t * (W - 2 * PAD), y: H - 8, class: "tick" }, t));
  const lineX = (PAD + x * (W - 2 * PAD)).toFixed(1);
  return [...bars, ...ticks, svg("line", { x1: PAD, x2: W - PAD, y1: H - PAD, y2: H - PAD, class: "axis" }),
    svg("line", { x1: lineX, x2: lineX, y1: PAD / 2, y2: H - PAD, class: "cut", "data-threshold": x }),
    svg("text", { x: lineX, y: PAD / 2 - 2, class: "cut-label" }, `score_threshold ${x.toFixed(2)}`)];
}

function render() {
  if (!latest) return;
  const model = latest.models.find((m) => m.name === $("#th-model").value) || latest.models[0];
  if (!model) return;
  const scores = model.scores;
  const x = Number($("#th-x").value);
  $("#th-x-value").textContent = x.toFixed(2);
  fill($("#th-count"), scores.count
    ? `The last ${scores.count} scores ${model.name} returned (of ${scores.seen} since start; raw logits are not counted).`
    : `${model.name} has returned no scores yet: rerank something (Try, or any client) and they appear here.`);
  fill($("#th-hist"), scores.count ? histogram(scores.histogram, x) : []);
  const names = Object.keys(scores.percentiles);
  fill($("#th-percentiles thead tr"), names.map((name) => h("th", { scope: "col" }, name)));
  fill($("#th-percentiles tbody tr"), names.map((name) => h("td", { "data-percentile": name }, scores.percentiles[name].toFixed(4))));
  if (!scores.count) return fill($("#th-keeps"));
  const share = scores.keeps[Math.round(x * 100)];
  fill($("#th-keeps"), `A Dify score_threshold of ${x.toFixed(2)} keeps `, h("strong", { "data-keeps": share }, `${(share * 100).toFixed(1)}%`),
    ` of documents (${Math.round(share * scores.count)} of the last ${scores.count}).`);
}

export function update(stats) {
  latest = stats;
  selectModels($("#th-model"), stats.models.map((m) => m.name));
  render();
}

export function init() {
  $("#th-model").addEventListener("change", render);
  $("#th-x").addEventListener("input", render);
}
