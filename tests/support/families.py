"""The model families' shared test inputs and their references: the engine built as the server builds it, the
Qwen3-Reranker model card's formula and FlagLLMReranker, on the tiny models (tests.support.tiny_model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from local_server.backends import load_backend
from local_server.engine import RerankEngine
from local_server.settings import Settings
from tests.support.tiny_model import MAX_LENGTH, QWEN3_MAX_LENGTH

QUERY = "which city is the capital of france"
DOCS = [
    "paris is the capital city of france",
    "dog",
    "the weather in paris is sunny and the cat sat on the mat " * 8,  # cut at max_length
    "Yes no yes",
    "(a) the river in the city",
]
TOLERANCE = 1e-4


def engine_for(model_dir: Path, *, max_length: int = MAX_LENGTH, **values: object) -> RerankEngine:
    settings = Settings(model=str(model_dir), offline=True, max_length=max_length, **values)
    return RerankEngine(load_backend(settings), settings)


def raw_scores(engine: RerankEngine, documents: list[str], **options: object) -> np.ndarray:
    return engine.logits(engine.encode(QUERY, documents, **options))


# -- the references --------------------------------------------------------------------------------------

QWEN3_PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
                "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n")
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def qwen3_model_card(model_dir: Path, query: str, documents: list[str], *, instruction: str = QWEN3_INSTRUCTION,
                     max_length: int = QWEN3_MAX_LENGTH) -> np.ndarray:
    """P(yes) as the Qwen3-Reranker model card computes it (huggingface.co/Qwen/Qwen3-Reranker-0.6B, "Transformers
    Usage": format_instruction, process_inputs, compute_logits), each pair alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    token_false_id = tokenizer.convert_tokens_to_ids("no")
    token_true_id = tokenizer.convert_tokens_to_ids("yes")
    prefix_tokens = tokenizer.encode(QWEN3_PREFIX, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(QWEN3_SUFFIX, add_special_tokens=False)
    scores = []
    for document in documents:
        pairs = [f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"]
        inputs = tokenizer(pairs, padding=False, truncation="longest_first", return_attention_mask=False,
                           max_length=max_length - len(prefix_tokens) - len(suffix_tokens))
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = prefix_tokens + ele + suffix_tokens
        inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
        with torch.no_grad():
            batch_scores = model(**inputs).logits[:, -1, :]
        true_vector = batch_scores[:, token_true_id]
        false_vector = batch_scores[:, token_false_id]
        batch_scores = torch.nn.functional.log_softmax(torch.stack([false_vector, true_vector], dim=1), dim=1)
        scores.append(batch_scores[:, 1].exp().item())
    return np.array(scores)


def flag_llm_reference(model_dir: Path, documents: list[str], **options: object) -> np.ndarray:
    from FlagEmbedding import FlagLLMReranker

    reranker = FlagLLMReranker(str(model_dir), use_fp16=False, devices=["cpu"], max_length=MAX_LENGTH)
    return np.array(reranker.compute_score([[QUERY, d] for d in documents], max_length=MAX_LENGTH, **options))
