// Small DOM helpers. Text is always set as text nodes: nothing a document holds is ever parsed as HTML.
const SVG = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
export const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG, tag), attrs, children);
export const $ = (selector) => document.querySelector(selector);
export const fixed = (value, digits = 4) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

export function fill(parent, ...children) {
  parent.replaceChildren();
  return build(parent, {}, children);
}

// The clipboard API needs a secure context (localhost is one); a page opened at a LAN address falls back.
export async function copy(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = h("textarea", { class: "offscreen", readonly: true }, text);
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

export function copyButton(text, what) {
  const button = h("button", { type: "button", class: "copy", "aria-label": `Copy ${what}`, "data-copy": text }, "Copy");
  button.addEventListener("click", async () => {
    await copy(text);
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}

export function selectModels(select, names) {
  const chosen = select.value;
  fill(select, names.map((name) => h("option", { value: name }, name)));
  if (names.includes(chosen)) select.value = chosen;
}
