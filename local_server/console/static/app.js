// The console's shell: the key prompt, the tabs (arrow keys move between them), and the one poll of GET /stats.
import { call, forgetKey, hasKey, setKey } from "./api.js";
import { $, fill } from "./dom.js";
import * as connect from "./connect.js";
import * as overview from "./overview.js";
import * as thresholds from "./thresholds.js";
import * as tryView from "./try.js";

const tabs = [...document.querySelectorAll('[role="tab"]')];
let timer = null;

function select(tab, focus) {
  for (const other of tabs) {
    const chosen = other === tab;
    other.setAttribute("aria-selected", String(chosen));
    other.tabIndex = chosen ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !chosen;
  }
  if (focus) tab.focus();
  history.replaceState(null, "", `#${tab.getAttribute("aria-controls")}`);
}

function keys(event) {
  const at = tabs.indexOf(document.activeElement);
  if (at < 0) return;
  const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  select(tabs[(next + tabs.length) % tabs.length], true);
}

async function refresh() {
  const stats = await call("/stats");
  overview.update(stats);
  thresholds.update(stats);
  tryView.setModels(stats.models.map((m) => m.name));
  $("#server-line").textContent = `${stats.models.length} model${stats.models.length === 1 ? "" : "s"} served`;
  return stats;
}

function lock(message) {
  clearInterval(timer);
  timer = null;
  $("#tabs").hidden = $("#views").hidden = true;
  $("#forget-key").hidden = true;
  $("#key-form").hidden = false;
  fill($("#key-error"), message || "");
  $("#key-input").focus();
}

async function open() {
  try {
    await refresh();
  } catch (error) {
    if (error.status !== 401) throw error;
    const refused = hasKey();
    forgetKey();
    return lock(refused ? "That key was refused." : "");
  }
  $("#key-form").hidden = true;
  $("#tabs").hidden = $("#views").hidden = false;
  $("#forget-key").hidden = !hasKey();
  await connect.load();
  timer = timer || setInterval(() => refresh().catch(() => {}), 2000);
}

document.addEventListener("rerank-kit:locked", () => { if (timer) lock("The key was refused."); });
$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setKey($("#key-input").value);
  $("#key-input").value = "";
  open();
});
$("#forget-key").addEventListener("click", () => { forgetKey(); lock(""); });
$("#tabs").addEventListener("keydown", keys);
for (const tab of tabs) tab.addEventListener("click", () => select(tab, false));
connect.init();
tryView.init();
thresholds.init();
select(tabs.find((tab) => `#${tab.getAttribute("aria-controls")}` === location.hash) || tabs[0], false);
open();
