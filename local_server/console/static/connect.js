// Connect: per way of reaching the server, the value of every Dify and RAGFlow field (the same code prints them
// at start), and the Dify plugin's own credential check.
import { call } from "./api.js";
import { $, copyButton, fill, h } from "./dom.js";

function way(item) {
  const title = h("h2", {}, item.title);
  if (!item.base_url) return h("div", { class: "way" }, title, h("p", { class: "note" }, `Not reachable this way: the server ${item.note}`));
  const rows = item.fields.map((field) => h("tr", {},
    h("td", {}, field.platform), h("td", {}, field.provider), h("td", {}, field.label),
    h("td", {}, h("code", {}, field.value)), h("td", {}, copyButton(field.value, `${field.platform} ${field.provider} ${field.label}`))));
  return h("div", { class: "way" }, title, item.note ? h("p", { class: "note" }, item.note) : null,
    h("table", {}, h("thead", {}, h("tr", {}, ["platform", "provider", "field", "value", ""].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows)));
}

export async function load() {
  const values = await call("/console/api/connect");
  fill($("#cn-key"), h("strong", {}, "API key: "), values.api_key);
  fill($("#cn-models"), h("strong", {}, "Model name: "), values.models.join(", "));
  if (values.kubernetes) {
    fill($("#cn-ways"), h("p", {}, `In Kubernetes: ${values.kubernetes}`));
    return;
  }
  fill($("#cn-ways"), values.ways.map(way));
  const first = values.ways.find((item) => item.base_url);
  if (first && !$("#cn-url").value) $("#cn-url").value = first.fields[0].value;
  if (!$("#cn-model").value) $("#cn-model").value = values.models[0];
}

async function check(event) {
  event.preventDefault();
  const verdict = $("#cn-verdict");
  fill(verdict, "Checking…");
  try {
    const report = await call("/console/api/check", { server_url: $("#cn-url").value, api_key: $("#cn-apikey").value, model: $("#cn-model").value });
    fill(verdict, h("p", { class: report.ok ? "verdict ok" : "verdict fail" }, report.ok ? "Dify would accept it. " : "Dify would refuse it: ", report.message),
      report.hint ? h("p", { class: "hint" }, `Hint: ${report.hint}`) : null,
      report.note ? h("p", { class: "note" }, report.note) : null);
  } catch (error) {
    fill(verdict, h("p", { class: "verdict fail" }, error.message));
  }
}

export function init() {
  $("#cn-check").addEventListener("submit", check);
}
