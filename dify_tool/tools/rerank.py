"""The Rerank workflow tool: documents in, the same items out best first with their scores (shared client)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage
from tools.inputs import Document, parse_documents, score_threshold, top_n

from rerank_kit.client.forms import FormSettings, shared_client
from rerank_kit.errors import InvalidInputError
from rerank_kit.scores import ranking

OUTPUT_VARIABLE = "ranked"


class RerankTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        """Score the documents against the query and yield the ranked items as JSON, a variable and a line of text.

        Errors (a bad parameter, a dead server, a wrong key) are raised with the client's hint: Dify shows
        the message as the tool node's error.
        """
        query = str(tool_parameters.get("query") or "").strip()
        if not query:
            raise InvalidInputError("query is empty", hint="map the node's query to the user's question")
        documents = parse_documents(tool_parameters.get("documents"))
        limit = top_n(tool_parameters.get("top_n"))
        threshold = score_threshold(tool_parameters.get("score_threshold"))
        settings = FormSettings.parse(self.runtime.credentials, str(tool_parameters.get("model") or "").strip())
        ranked = self._ranked(settings, query, documents, limit, threshold) if documents else []
        yield self.create_json_message({OUTPUT_VARIABLE: ranked})
        yield self.create_variable_message(OUTPUT_VARIABLE, ranked)
        yield self.create_text_message(_summary(len(documents), ranked))

    @staticmethod
    def _ranked(settings: FormSettings, query: str, documents: list[Document], limit: int | None,
                threshold: float | None) -> list[dict[str, Any]]:
        response = shared_client(settings).rerank(query, [document.text for document in documents], top_n=limit)
        results = sorted(response.results, key=lambda result: result.index)  # ties then keep retrieval order
        order = ranking([result.relevance_score for result in results], limit)
        return [{"index": results[i].index, "score": results[i].relevance_score,
                 "document": documents[results[i].index].item}
                for i in order if threshold is None or results[i].relevance_score >= threshold]


def _summary(received: int, ranked: list[dict[str, Any]]) -> str:
    if not ranked:
        return f"Reranked {received} documents; none kept." if received else "No documents to rerank."
    return (f"Reranked {received} documents; kept {len(ranked)}, best score {ranked[0]['score']:.3f} "
            f"(document {ranked[0]['index']}).")
