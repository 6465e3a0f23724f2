// The pure parts of Try & compare: reading the documents, rank movement and agreement, the request as curl.
export function parseDocuments(text) {
  const trimmed = text.trim();
  if (!trimmed.startsWith("[")) return text.split("\n").map((line) => line.trim()).filter(Boolean);
  let items;
  try {
    items = JSON.parse(trimmed);
  } catch (error) {
    throw new Error(`the documents start with "[" but are not a JSON array: ${error.message}`);
  }
  if (!Array.isArray(items)) throw new Error("the documents' JSON must be an array");
  // Strings, or Dify Knowledge Retrieval result objects (their "content"), or {"text": ...}.
  return items.map((item, i) => {
    if (typeof item === "string") return item;
    const field = item && typeof item === "object" ? ["content", "text"].find((name) => name in item) : undefined;
    if (field && typeof item[field] === "string") return item[field];
    throw new Error(`documents[${i}] is neither a string nor an object with a "content" or "text" string`);
  });
}

// index -> rank (0 = first) of a ranked result list.
export const ranks = (results) => new Map(results.map((result, rank) => [result.index, rank]));

export function overlap(a, b, k) {
  const top = new Set(a.slice(0, k).map((r) => r.index));
  return b.slice(0, k).filter((r) => top.has(r.index)).length;
}

export function spearman(a, b) {
  const n = a.length;
  if (n < 2) return 1;
  const rb = ranks(b);
  const d2 = a.reduce((sum, result, rank) => sum + (rank - rb.get(result.index)) ** 2, 0);
  return 1 - (6 * d2) / (n * (n * n - 1));
}

export function kendall(a, b) {
  const n = a.length;
  if (n < 2) return 1;
  const rb = ranks(b);
  let score = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) score += rb.get(a[i].index) < rb.get(a[j].index) ? 1 : -1;
  }
  return score / ((n * (n - 1)) / 2);
}

const DIALECTS = [
  ["TEI: Dify's Text Embedding Inference, RAGFlow's HuggingFace", "/rerank", "texts"],
  ["Cohere v1, Jina, Xinference, OpenAI-compatible: Dify's and RAGFlow's OpenAI-API-compatible", "/v1/rerank", "documents"],
  ["Jina", "/api/v1/rerank", "documents"],
  ["Cohere v2", "/v2/rerank", "documents"],
  ["Ollama: Dify's Ollama", "/api/rerank", "ollama"],
];

const quote = (text) => `'${text.replaceAll("'", "'\\''")}'`;

// The request a setting makes, as curl in each dialect (the key as a variable, never its value).
export function curls(origin, setting, query, documents, keyed) {
  const extra = setting.instruction ? { instruction: setting.instruction } : {};
  return DIALECTS.map(([name, path, shape]) => {
    const body = shape === "texts" ? { model: setting.model, query, texts: documents, ...extra }
      : { model: setting.model, query, documents, ...extra,
        ...(shape === "documents" && setting.max_tokens_per_doc ? { max_tokens_per_doc: setting.max_tokens_per_doc } : {}) };
    const key = keyed ? ` -H "Authorization: Bearer $RERANK_API_KEY"` : "";
    return [name, `curl -s ${origin}${path} -H 'Content-Type: application/json'${key} -d ${quote(JSON.stringify(body))}`];
  });
}
