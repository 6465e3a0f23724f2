"""FlagEmbedding's layerwise rerankers on this stack: bge-reranker-v2-minicpm-layerwise (`llm-layerwise`,
LayerWiseFlagLLMReranker) and bge-reranker-v2.5-gemma2-lightweight (`llm-lightweight`, LightWeightFlagLLMReranker).

Both score a pair with a one-output head on the hidden state after `cutoff_layers` layers, so only those layers
are loaded and run. FlagEmbedding 1.4.2's modeling code for them needs transformers 4.44 (it calls cache and
mask helpers later versions removed), so their checkpoints are loaded into transformers' own Llama and Gemma 2
decoder layers and driven here step for step as that code does; the tests pin the scores to FlagEmbedding's
compute_score running on transformers 4.44. The models' bundled code is never run.

- MiniCPM is Llama with its embeddings scaled by `scale_emb` and each residual branch by
  `scale_depth / sqrt(num_hidden_layers)`; the head of layer k reads norm(h_k) (head_type `simple`).
- The Gemma 2 model can compress the passage: before each of `compress_layers`, every `compress_ratio` passage
  positions become their mean and positions restart at 0 (FlagEmbedding's token_compress). Its attention runs
  as FlagEmbedding's runs it, through SDPA, which has no attention-logit softcapping; and, as its
  CostWiseGemmaForCausalLM does, the first head scores whichever layer is cut off at.

Batches come right-padded and the score is read at each pair's last real position, so a pair's score never
depends on what shares its batch.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from local_server.backends import LoadedModel, ModelLoadError, explain_load_failure
from local_server.backends.device import resolve_device, use_fp16
from local_server.families import family_for
from local_server.model_files import model_folder
from local_server.settings import Settings

log = logging.getLogger(__name__)

_SAFETENSORS, _PYTORCH_BIN = "model*.safetensors", "pytorch_model*.bin"  # Hugging Face's weight file names
_TOKENIZER_AND_CONFIG = ["*.json", "*.model", "*.txt"]
# What FlagEmbedding's configs default to when a config.json leaves them out.
_DEFAULT_START_LAYER = {"llm-layerwise": 8, "llm-lightweight": 28}
_DEFAULT_LAYER_SEP = 28


class LayerwiseBackend:
    """Raw score per pair: the cut-off layer's head at the pair's last real position."""

    name = "torch"

    def __init__(self, stack: MiniCPMLayerwise | Gemma2Lightweight, device: str) -> None:
        self._stack = stack
        self._device = device
        # the lightweight model compresses the passage: it needs where each pair's query and prompt end
        self.extra_inputs = frozenset({"query_lengths", "prompt_lengths"} if isinstance(stack, Gemma2Lightweight)
                                      else ())

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {name: torch.from_numpy(array).to(self._device) for name, array in batch.items()}
        with torch.inference_mode():
            return self._stack(**tensors).float().cpu().numpy()


def causal_mask(mask: torch.Tensor, dtype: torch.dtype, window: int | None = None) -> torch.Tensor:
    """Additive [B, 1, T, T] mask: position i sees the real positions j <= i (and i - j < window)."""
    length = mask.shape[1]
    i = torch.arange(length, device=mask.device)
    allowed = (i[None, :] <= i[:, None])[None] & mask.bool()[:, None, :]
    if window is not None:
        allowed &= (i[:, None] - i[None, :] < window)[None]
    return torch.zeros(allowed.shape, dtype=dtype, device=mask.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)[:, None]


def last_real(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(dim=1) - 1]


class MiniCPMLayerwise(nn.Module):
    """LayerWiseMiniCPMForCausalLM's forward up to one cut-off layer, on transformers' Llama layers."""

    def __init__(self, config: dict[str, Any], cutoff: int) -> None:
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRMSNorm, LlamaRotaryEmbedding

        super().__init__()
        hidden = config["hidden_size"]
        llama = LlamaConfig(
            vocab_size=config["vocab_size"], hidden_size=hidden, intermediate_size=config["intermediate_size"],
            num_hidden_layers=cutoff, num_attention_heads=config["num_attention_heads"],
            num_key_value_heads=config.get("num_key_value_heads") or config["num_attention_heads"],
            head_dim=hidden // config["num_attention_heads"], hidden_act=config.get("hidden_act", "silu"),
            rms_norm_eps=config.get("rms_norm_eps", 1e-6), rope_theta=config.get("rope_theta", 10000.0),
            max_position_embeddings=config.get("max_position_embeddings", 2048),
            attention_bias=config.get("attention_bias", False))
        llama._attn_implementation = "sdpa"
        self.embed_tokens = nn.Embedding(config["vocab_size"], hidden)
        self.layers = nn.ModuleList(LlamaDecoderLayer(llama, i) for i in range(cutoff))
        self.norm = LlamaRMSNorm(hidden, eps=llama.rms_norm_eps)
        with torch.device("cpu"):  # computed, not loaded: real even when the rest is built on the meta device
            self.rotary = LlamaRotaryEmbedding(llama)
        self.head = nn.Linear(hidden, 1, bias=False)
        self.embedding_scale = config.get("scale_emb", 1)
        self.branch_scale = config.get("scale_depth", 1) / math.sqrt(config["num_hidden_layers"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.embed_tokens(input_ids) * self.embedding_scale
        rope = self.rotary(h, torch.arange(h.shape[1], device=h.device)[None])
        attend = causal_mask(attention_mask, h.dtype)
        for layer in self.layers:
            attended, _ = layer.self_attn(layer.input_layernorm(h), position_embeddings=rope, attention_mask=attend)
            h = h + attended * self.branch_scale
            h = h + layer.mlp(layer.post_attention_layernorm(h)) * self.branch_scale
        return self.head(self.norm(last_real(h, attention_mask)))[:, 0]


class Gemma2Lightweight(nn.Module):
    """CostWiseGemmaForCausalLM's forward up to one cut-off layer, passage compression included, on
    transformers' Gemma 2 layers."""

    def __init__(self, config: dict[str, Any], cutoff: int, compress_layers: Sequence[int],
                 compress_ratio: int) -> None:
        from transformers import Gemma2Config
        from transformers.models.gemma2.modeling_gemma2 import (
            Gemma2DecoderLayer,
            Gemma2RMSNorm,
            Gemma2RotaryEmbedding,
        )

        super().__init__()
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                "head_dim", "hidden_activation", "rms_norm_eps", "rope_theta", "max_position_embeddings",
                "attention_bias", "query_pre_attn_scalar", "sliding_window", "final_logit_softcapping")
        gemma = Gemma2Config(num_hidden_layers=cutoff, attn_logit_softcapping=None,
                             **{key: config[key] for key in keys if key in config})
        gemma._attn_implementation = "sdpa"
        self.embed_tokens = nn.Embedding(gemma.vocab_size, gemma.hidden_size)
        self.layers = nn.ModuleList(Gemma2DecoderLayer(gemma, i) for i in range(cutoff))
        self.norm = Gemma2RMSNorm(gemma.hidden_size, eps=gemma.rms_norm_eps)
        with torch.device("cpu"):  # computed, not loaded: real even when the rest is built on the meta device
            self.rotary = Gemma2RotaryEmbedding(gemma)
        self.head = nn.Linear(gemma.hidden_size, 1, bias=False)
        self.normalizer = gemma.hidden_size ** 0.5
        self.softcap = gemma.final_logit_softcapping
        self.windows = {layer.self_attn.sliding_window for layer in self.layers}  # None: full attention
        self.compress_ratio = compress_ratio
        self.compress_before = {layer for layer in compress_layers if 0 < layer < cutoff and compress_ratio > 1}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, query_lengths: torch.Tensor,
                prompt_lengths: torch.Tensor) -> torch.Tensor:
        h = self.embed_tokens(input_ids)
        h = h * torch.tensor(self.normalizer, dtype=h.dtype)
        mask = attention_mask
        for index, layer in enumerate(self.layers):
            if index == 0 or index in self.compress_before:
                if index:
                    h, mask = compress_passages(h, mask, query_lengths, prompt_lengths, self.compress_ratio)
                rope = self.rotary(h, torch.arange(h.shape[1], device=h.device)[None])
                masks = {window: causal_mask(mask, h.dtype, window) for window in self.windows}
            h = layer(h, position_embeddings=rope, attention_mask=masks[layer.self_attn.sliding_window])
        score = self.head(self.norm(last_real(h, mask)))[:, 0]
        if self.softcap:
            score = torch.tanh(score / self.softcap) * self.softcap
        return score


def compress_passages(hidden: torch.Tensor, mask: torch.Tensor, query_lengths: torch.Tensor,
                      prompt_lengths: torch.Tensor, ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
    """token_compress: each row's passage (after its query, before its prompt) becomes the means of `ratio`
    consecutive positions (the last group: of what is left); the rows stay right-padded."""
    rows = []
    for row, length in enumerate(mask.sum(dim=1).tolist()):
        query, prompt = int(query_lengths[row]), int(prompt_lengths[row])
        passage = hidden[row, query:length - prompt]
        groups = -(-passage.shape[0] // ratio)
        padded = passage.new_zeros(groups * ratio, passage.shape[1])
        padded[:passage.shape[0]] = passage
        counts = (passage.shape[0] - torch.arange(groups, device=hidden.device) * ratio).clamp(max=ratio)
        weights = (1 / counts.to(hidden.dtype))[:, None, None]  # weighted, then summed: token_compress's order
        pooled = (padded.view(groups, ratio, -1) * weights).sum(dim=1)
        rows.append(torch.cat([hidden[row, :query], pooled, hidden[row, length - prompt:length]]))
    width = max(len(r) for r in rows)
    out = hidden.new_zeros(len(rows), width, hidden.shape[2])
    new_mask = torch.zeros(len(rows), width, dtype=mask.dtype, device=mask.device)
    for row, values in enumerate(rows):
        out[row, :len(values)] = values
        new_mask[row, :len(values)] = 1
    return out, new_mask


def load(settings: Settings, family: str) -> LoadedModel:
    """The checkpoint's embeddings, first `cutoff` layers, final norm and the cut-off layer's head: built on the
    meta device and given the checkpoint's tensors, so a multi-GB model is neither initialised nor held twice."""
    from transformers import AutoTokenizer, PretrainedConfig

    device = resolve_device(settings.device)
    dtype = torch.float16 if use_fp16(settings.fp16, device) else torch.float32
    with explain_load_failure(settings.model):
        folder = _local_folder(settings.model)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        # an empty config: transformers does not know these model types, and the tokenizer needs none
        tokenizer = AutoTokenizer.from_pretrained(folder, config=PretrainedConfig())
    try:
        cutoff, head = _cutoff_and_head(settings, family, config)
        with torch.device("meta"):
            if family == "llm-layerwise":
                stack: MiniCPMLayerwise | Gemma2Lightweight = MiniCPMLayerwise(config, cutoff)
            else:
                stack = Gemma2Lightweight(config, cutoff, settings.compress_layers, settings.compress_ratio)
        stack.load_state_dict(_read_weights(folder, lambda name: _stack_param_name(name, cutoff, head)), assign=True)
    except ModelLoadError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a field missing or null; tensors that do not fit
        raise ModelLoadError(f"{settings.model}: its checkpoint does not match a {family} model's config.json: "
                             f"{' '.join(line.strip() for line in str(exc).strip().splitlines()[:2])}") from exc
    place(stack, device, dtype)
    log.info("%s: %s, scored at layer %d of %d", settings.model, family, cutoff, config["num_hidden_layers"])
    return LoadedModel(LayerwiseBackend(stack, device), tokenizer, device, str(dtype).removeprefix("torch."),
                       family_for(family, tokenizer, settings))


def place(stack: MiniCPMLayerwise | Gemma2Lightweight, device: str, dtype: torch.dtype) -> None:
    """Moves the stack to its device and dtype. FlagEmbedding's MiniCPM computes its rotary tables in fp32 and
    only rounds the result to fp16; its Gemma 2 rounds the frequencies themselves, as casting everything does."""
    for name, part in stack.named_children():
        keep_fp32 = name == "rotary" and isinstance(stack, MiniCPMLayerwise)
        part.to(device, torch.float32 if keep_fp32 else dtype)
    stack.eval()


def _cutoff_and_head(settings: Settings, family: str, config: dict[str, Any]) -> tuple[int, str]:
    """The layer to score at (default: the last) and the checkpoint name of the head that scores it."""
    layers, start = config["num_hidden_layers"], config.get("start_layer", _DEFAULT_START_LAYER[family])
    if family == "llm-layerwise":
        if config.get("head_type", "simple") != "simple":
            raise ModelLoadError(f"{settings.model}: head_type {config['head_type']!r} has no one-score head; "
                                 "LayerWiseFlagLLMReranker scores the `simple` head type")
        if config.get("rope_scaling"):
            raise ModelLoadError(f"{settings.model}: rope_scaling {config['rope_scaling']} is not supported")
        usable = list(range(start, layers + 1))
    else:
        if not config.get("layer_wise"):
            raise ModelLoadError(f"{settings.model}: layer_wise is false, so it has no one-score heads")
        usable = list(range(start, layers + 1, config.get("layer_sep", _DEFAULT_LAYER_SEP)))
    if not usable:
        raise ModelLoadError(f"{settings.model}: no layer has a head (start_layer {start} > {layers} layers)")
    cutoff = settings.cutoff_layers[0] if settings.cutoff_layers else layers
    if cutoff not in usable:
        step = usable[1] - usable[0] if len(usable) > 1 else 1
        raise ModelLoadError(f"{settings.model}: cutoff_layers [{cutoff}] is not one of its scoring layers "
                             f"{usable[0]}..{usable[-1]}" + (f" (every {step})" if step > 1 else ""))
    if family == "llm-lightweight":
        return cutoff, "lm_head.0.linear_head.weight"
    if config.get("head_multi", True):
        return cutoff, f"lm_head.{cutoff - start}.linear_head.weight"
    return cutoff, "lm_head.linear_head.weight"


def _stack_param_name(name: str, cutoff: int, head: str) -> str | None:
    """The stack's parameter name for a checkpoint tensor, or None for one it does not use."""
    if name == head:
        return "head.weight"
    if name in ("model.embed_tokens.weight", "model.norm.weight"):
        return name.removeprefix("model.")
    if name.startswith("model.layers."):
        layer = int(name.split(".")[2])
        return name.removeprefix("model.") if layer < cutoff else None
    return None


def _read_weights(folder: Path, rename: Callable[[str], str | None]) -> dict[str, torch.Tensor]:
    """The tensors `rename` maps, read from the checkpoint's safetensors (else PyTorch .bin) files; only those."""
    from safetensors import SafetensorError, safe_open

    weights: dict[str, torch.Tensor] = {}
    shards = sorted(folder.glob(_SAFETENSORS)) or sorted(folder.glob(_PYTORCH_BIN))
    if not shards:
        raise ModelLoadError(f"{folder} has no weights ({_SAFETENSORS} or {_PYTORCH_BIN})")
    for shard in shards:
        try:
            if shard.suffix == ".safetensors":
                with safe_open(str(shard), framework="pt") as handle:
                    tensors = {name: handle.get_tensor(name) for name in handle.keys()  # noqa: SIM118 (no dict)
                               if rename(name) is not None}
            else:
                tensors = torch.load(shard, map_location="cpu", weights_only=True, mmap=True)
        except (OSError, SafetensorError, pickle.UnpicklingError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot read {shard} ({type(exc).__name__}: {exc}): download it again") from exc
        weights |= {ours: tensor for name, tensor in tensors.items() if (ours := rename(name)) is not None}
    return weights


def _local_folder(model: str) -> Path:
    """The model's folder: itself, or its Hub snapshot (from the cache when offline), with one weight format."""
    folder = model_folder(model, allow_patterns=[*_TOKENIZER_AND_CONFIG, _SAFETENSORS])
    if not any(folder.glob(_SAFETENSORS)):
        folder = model_folder(model, allow_patterns=[*_TOKENIZER_AND_CONFIG, _PYTORCH_BIN])
    return folder
