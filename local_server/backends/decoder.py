"""Decoder rerankers (FlagLLMReranker's models, Qwen3-Reranker): a causal LM scored at its last real token.

Batches come right-padded: a causal model's real tokens never attend to the padding after them and keep
positions 0..n-1, so a pair's score never depends on what shares its batch. Only the last real token's
hidden state goes through the output layer, and only for the score's vocabulary rows: the full
[batch, length, vocabulary] logits FlagLLMReranker computes would cost more than the rest of a small model.
"""

from __future__ import annotations

import numpy as np

from local_server.backends import LoadedModel, explain_load_failure
from local_server.backends.device import resolve_device, use_fp16
from local_server.settings import Settings


class DecoderBackend:
    """Raw score per pair: logit(a), or logit(a) - logit(b), of the given tokens at the last real position."""

    name = "torch"
    extra_inputs: frozenset[str] = frozenset()

    def __init__(self, model, device: str, score_tokens: tuple[int, ...]) -> None:
        import torch

        if len(score_tokens) not in (1, 2):
            raise ValueError(f"a decoder score reads one or two token logits, not {score_tokens}")
        self._torch = torch
        self._device = device
        self._body = model.get_decoder()
        head = model.get_output_embeddings()
        rows = torch.tensor(score_tokens, device=device)
        self._weight = head.weight.detach().index_select(0, rows)  # [k, hidden]
        self._bias = head.bias.detach().index_select(0, rows) if getattr(head, "bias", None) is not None else None
        self._softcap = getattr(model.config, "final_logit_softcapping", None)  # Gemma 2 caps its logits

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        ids = torch.from_numpy(batch["input_ids"]).to(self._device)
        mask = torch.from_numpy(batch["attention_mask"]).to(self._device)
        with torch.inference_mode():
            hidden = self._body(input_ids=ids, attention_mask=mask).last_hidden_state
            last = hidden[torch.arange(hidden.shape[0], device=self._device), mask.sum(dim=1) - 1]
            scores = last @ self._weight.T
            if self._bias is not None:
                scores = scores + self._bias
            if self._softcap:
                scores = torch.tanh(scores / self._softcap) * self._softcap
            scores = scores.float()
            raw = scores[:, 0] - scores[:, 1] if scores.shape[1] == 2 else scores[:, 0]
        return raw.cpu().numpy()


def load(settings: Settings, family_name: str) -> LoadedModel:
    """The causal LM and its tokenizer (remote code only when the model's spec allows it), on its device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from local_server.families import family_for

    device = resolve_device(settings.device)
    fp16 = use_fp16(settings.fp16, device)
    with explain_load_failure(settings.model):
        tokenizer = AutoTokenizer.from_pretrained(settings.model, trust_remote_code=settings.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(settings.model, trust_remote_code=settings.trust_remote_code,
                                                     dtype=torch.float16 if fp16 else torch.float32)
    model.to(device).eval()
    family = family_for(family_name, tokenizer, settings)
    return LoadedModel(DecoderBackend(model, device, family.score_tokens), tokenizer, device,
                       "float16" if fp16 else "float32", family)
