// Try & compare: the documents reranked through POST /v1/rerank as any client would, by one setting or two.
import { call, hasKey } from "./api.js";
import { $, copyButton, fill, fixed, h, selectModels } from "./dom.js";
import { curls, kendall, overlap, parseDocuments, ranks, spearman } from "./rank.js";

function setting(side) {
  const tokens = Number($(`#${side}-max-tokens`).value);
  return { model: $(`#${side}-model`).value, instruction: $(`#${side}-instruction`).value.trim() || undefined,
    max_tokens_per_doc: tokens > 0 ? tokens : undefined };
}

async function rerank(choice, query, documents) {
  const body = await call("/v1/rerank", { ...choice, query, documents, return_documents: false });
  return body.results;
}

function move(from, to, what) {
  const by = from - to;
  const label = by === 0 ? `same place as ${what}` : `${by > 0 ? "up" : "down"} ${Math.abs(by)} from ${what}`;
  return h("span", { class: `move ${by > 0 ? "up" : by < 0 ? "down" : "same"}`, title: label, "aria-label": label },
    by === 0 ? "=" : `${by > 0 ? "▲" : "▼"}${Math.abs(by)}`);
}

// One ranked list: score bars, each document's move (from its input position, or from list A's rank), the
// threshold line where Dify's score_threshold would cut.
function column(title, results, documents, threshold, reference) {
  const items = [];
  let lineDrawn = !(threshold > 0);
  results.forEach((result, rank) => {
    if (!lineDrawn && result.relevance_score < threshold) {
      items.push(h("li", { class: "threshold", role: "separator" }, `score_threshold ${threshold}: Dify drops what follows`));
      lineDrawn = true;
    }
    const bar = h("span", { class: "fill" });
    bar.style.width = `${Math.max(0, Math.min(1, result.relevance_score)) * 100}%`;
    const from = reference ? reference.get(result.index) : result.index;
    items.push(h("li", { class: `doc${lineDrawn && threshold > 0 ? " dropped" : ""}`, "data-index": result.index, "data-score": result.relevance_score },
      h("span", { class: "rank" }, rank + 1), h("span", { class: "bar" }, bar), h("span", { class: "score" }, fixed(result.relevance_score)),
      move(from, rank, reference ? "list A" : "input"), h("span", { class: "text" }, documents[result.index])));
  });
  return h("div", { class: "column" }, h("h3", {}, title), h("ol", { class: "ranked" }, items));
}

const label = (choice) => [choice.model, choice.instruction && "instruction", choice.max_tokens_per_doc && `${choice.max_tokens_per_doc} tokens`]
  .filter(Boolean).join(", ");

function showCurl(choice, query, documents) {
  fill($("#try-curl"), curls(location.origin, choice, query, documents, hasKey()).map(([name, command]) =>
    h("div", { class: "curl" }, h("h3", {}, name), h("pre", {}, h("code", {}, command)), copyButton(command, `the ${name} curl command`))));
}

async function submit(event) {
  event.preventDefault();
  fill($("#try-error"));
  try {
    const query = $("#try-query").value;
    const documents = parseDocuments($("#try-docs").value);
    const threshold = Number($("#try-threshold").value) || 0;
    const a = setting("a");
    const comparing = $("#try-compare").checked;
    const b = comparing ? setting("b") : null;
    const [first, second] = await Promise.all([rerank(a, query, documents), b && rerank(b, query, documents)]);
    showCurl(a, query, documents);
    if (!comparing) {
      fill($("#try-summary"));
      fill($("#try-results"), column(`A: ${label(a)}`, first, documents, threshold, null));
      return;
    }
    const k = Math.min(Math.max(1, Number($("#try-k").value) || 3), documents.length);
    fill($("#try-summary"), h("p", { class: "agreement" },
      h("span", { "data-metric": "overlap" }, `top-${k} overlap: ${overlap(first, second, k)} of ${k}`), " · ",
      h("span", { "data-metric": "spearman" }, `Spearman ρ ${spearman(first, second).toFixed(3)}`), " · ",
      h("span", { "data-metric": "kendall" }, `Kendall τ ${kendall(first, second).toFixed(3)}`)));
    fill($("#try-results"), column(`A: ${label(a)}`, first, documents, threshold, null),
      column(`B: ${label(b)}`, second, documents, threshold, ranks(first)));
  } catch (error) {
    fill($("#try-error"), error.message);
  }
}

export function setModels(names) {
  selectModels($("#a-model"), names);
  selectModels($("#b-model"), names);
  if (names.length > 1 && $("#b-model").value === names[0] && !$("#b-model").dataset.chosen) $("#b-model").value = names[1];
}

export function init() {
  $("#try-form").addEventListener("submit", submit);
  $("#b-model").addEventListener("change", () => { $("#b-model").dataset.chosen = "1"; });
  $("#try-compare").addEventListener("change", (event) => { $("#side-b").hidden = !event.target.checked; });
}
