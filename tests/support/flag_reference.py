"""FlagEmbedding's layerwise and lightweight rerankers, run where their model code runs: transformers 4.44.

The tests call `build_tiny` and `reference_scores`, which run this module with the reference venv's Python
(`make test` names it in RERANK_KIT_REFERENCE_PYTHON; requirements/reference.in), from the repository root:

    python -m tests.support.flag_reference build llm-layerwise DIR     # a tiny LayerWiseMiniCPMForCausalLM
    python -m tests.support.flag_reference build llm-layerwise-one-head DIR  # the same, one head for all layers
    python -m tests.support.flag_reference build llm-lightweight DIR   # a tiny CostWiseGemmaForCausalLM
    python -m tests.support.flag_reference score KIND DIR < calls.json  # compute_score per call, JSON on stdout

calls.json is `{"max_length": 64, "calls": [{"pairs": [[q, d], ...], "options": {"cutoff_layers": [3]}}, ...]}`;
the answer is one list of scores per call. The models are saved by FlagEmbedding's own classes, so their
checkpoints have exactly the layout of the published ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import REPO_ROOT
from tests.support.tiny_model import _DECODER_CORPUS, _byte_level_tokenizer

# Four layers with heads from layer 2 on: the tests cut off at 2, 3 and 4 (the last).
LAYERS, START_LAYER = 4, 2


def _sentencepiece_llama_tokenizer(path: Path):
    """MiniCPM's kind of tokenizer: a SentencePiece BPE (byte fallback) as a Llama tokenizer, saved as both
    tokenizer.model and the tokenizer.json Hugging Face's converter makes from it, as published repos ship it.
    Both transformers versions then give the same ids (the template's pieces and the test documents)."""
    import io

    import sentencepiece
    from transformers import LlamaTokenizer, LlamaTokenizerFast
    from transformers.convert_slow_tokenizer import convert_slow_tokenizer

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_DECODER_CORPUS * 5), model_writer=model, vocab_size=600, model_type="bpe",
        byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        remove_extra_whitespaces=False, minloglevel=2)
    (path / "tokenizer.model").write_bytes(model.getvalue())
    roles = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}
    slow = LlamaTokenizer(str(path / "tokenizer.model"), legacy=True, **roles)
    tokenizer = LlamaTokenizerFast(tokenizer_object=convert_slow_tokenizer(slow),
                                   vocab_file=str(path / "tokenizer.model"), legacy=True, **roles)
    tokenizer.save_pretrained(path)
    return tokenizer


def build_layerwise(path: Path, *, head_multi: bool = True) -> None:
    """bge-reranker-v2-minicpm-layerwise's architecture: MiniCPM with scaled embeddings and residual branches,
    one-output heads for the layers from start_layer on (head_type simple; head_multi: one head per layer, else
    one shared by all), and a SentencePiece Llama tokenizer."""
    import torch
    from FlagEmbedding.inference.reranker.decoder_only.models.configuration_minicpm_reranker import (
        LayerWiseMiniCPMConfig,
    )
    from FlagEmbedding.inference.reranker.decoder_only.models.modeling_minicpm_reranker import (
        LayerWiseMiniCPMForCausalLM,
    )

    tokenizer = _sentencepiece_llama_tokenizer(path)
    config = LayerWiseMiniCPMConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, scale_emb=12, dim_model_base=8, scale_depth=1.4, start_layer=START_LAYER,
        head_type="simple", head_multi=head_multi, tie_word_embeddings=False, initializer_range=0.3)
    config.architectures = ["LayerWiseMiniCPMForCausalLM"]
    torch.manual_seed(0)
    LayerWiseMiniCPMForCausalLM(config).eval().save_pretrained(path)


def build_lightweight(path: Path) -> None:
    """bge-reranker-v2.5-gemma2-lightweight's architecture: Gemma 2 with one-output heads (layer_wise). A
    sliding window of 16 tokens, so that the tests' longer pairs reach past it."""
    import torch
    from FlagEmbedding.inference.reranker.decoder_only.models.gemma_config import CostWiseGemmaConfig
    from FlagEmbedding.inference.reranker.decoder_only.models.gemma_model import CostWiseGemmaForCausalLM

    tokenizer = _byte_level_tokenizer(path, special=["<pad>", "<eos>", "<bos>", "<unk>"], added=[], pad_token="<pad>",
                                      eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")
    config = CostWiseGemmaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024, sliding_window=16,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        start_layer=START_LAYER, layer_sep=1, layer_wise=True, initializer_range=0.3)
    config.architectures = ["CostWiseGemmaForCausalLM"]
    torch.manual_seed(0)
    CostWiseGemmaForCausalLM(config).eval().save_pretrained(path)


def score(kind: str, path: Path, request: dict) -> list[list[float]]:
    from FlagEmbedding import LayerWiseFlagLLMReranker, LightWeightFlagLLMReranker

    reranker_class = LayerWiseFlagLLMReranker if kind == "llm-layerwise" else LightWeightFlagLLMReranker
    max_length = request["max_length"]
    reranker = reranker_class(str(path), use_fp16=False, devices=["cpu"], max_length=max_length)
    return [reranker.compute_score(call["pairs"], max_length=max_length, **call.get("options", {}))
            for call in request["calls"]]


def reference_python() -> str:
    from tests.support.other_pythons import python_named_by  # imports pytest, which the reference venv does not have

    return python_named_by("RERANK_KIT_REFERENCE_PYTHON", "the Python of a venv installed from "
                           "requirements/reference-py311.lock (`make test` builds .venv-reference)")


def _run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run([reference_python(), "-m", "tests.support.flag_reference", *args], input=stdin,
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"flag_reference.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def build_tiny(kind: str, path: Path) -> Path:
    """A tiny model of `kind` (llm-layerwise, llm-layerwise-one-head, llm-lightweight) saved to `path` by
    FlagEmbedding's own class."""
    _run("build", kind, str(path))
    return path


def reference_scores(kind: str, path: Path, calls: list[dict[str, Any]], max_length: int) -> list[list[float]]:
    """compute_score(pairs, **options) for each call, by FlagEmbedding on transformers 4.44."""
    return json.loads(_run("score", kind, str(path), stdin=json.dumps({"max_length": max_length, "calls": calls})))


def main() -> None:
    command, kind, folder = sys.argv[1:4]
    path = Path(folder)
    if command == "build":
        path.mkdir(parents=True, exist_ok=True)
        if kind == "llm-lightweight":
            build_lightweight(path)
        else:
            build_layerwise(path, head_multi=kind != "llm-layerwise-one-head")
    else:
        answer = score(kind, path, json.load(sys.stdin))
        sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
