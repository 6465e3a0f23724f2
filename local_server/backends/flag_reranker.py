"""Cross-encoders on PyTorch under inference_mode, on the chosen device, fp16 on CUDA (GPUs, and the CPU
where the ONNX export cannot be used).

The model is loaded through FlagEmbedding's FlagReranker, so every model it loads works the same; the
engine tokenises exactly as its compute_score does, and the tests pin the scores to compute_score's.
"""

from __future__ import annotations

import numpy as np

from local_server.backends import LoadedModel, explain_load_failure, require_one_logit
from local_server.backends.device import resolve_device, use_fp16
from local_server.settings import Settings


class TorchBackend:
    """Plain PyTorch forward under inference_mode."""

    name = "torch"
    extra_inputs: frozenset[str] = frozenset()

    def __init__(self, model, device: str) -> None:
        import torch

        self._torch = torch
        self._model = model
        self._device = device

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        inputs = {name: torch.from_numpy(array).to(self._device) for name, array in batch.items()}
        with torch.inference_mode():
            out = self._model(**inputs, return_dict=True).logits
        return out.view(-1).float().cpu().numpy()


def load(settings: Settings) -> LoadedModel:
    """FlagReranker's model and tokenizer, the model moved to its device (in fp16 there when asked) once."""
    from FlagEmbedding import FlagReranker

    from local_server.families import family_for

    device = resolve_device(settings.device)
    fp16 = use_fp16(settings.fp16, device)
    with explain_load_failure(settings.model):
        reranker = FlagReranker(
            settings.model, use_fp16=fp16, devices=[device], max_length=settings.max_length,
            query_max_length=settings.effective_query_max_length, trust_remote_code=settings.trust_remote_code,
        )
    require_one_logit(settings.model, reranker.model.config)
    model = reranker.model.half() if fp16 else reranker.model
    model.to(device).eval()
    return LoadedModel(TorchBackend(model, device), reranker.tokenizer, device, "float16" if fp16 else "float32",
                       family_for("cross-encoder", reranker.tokenizer, settings))
