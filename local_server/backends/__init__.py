"""Model backends: what runs the forward pass over one padded batch, and the one place that loads it.

The engine (tokenisation, padding) never knows which backend scores its batches, as TEI's router does
not know its backends: `load_backend` decides device, dtype and backend once, at start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from local_server.settings import Settings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from local_server.families import Family


log = logging.getLogger(__name__)

_LAYERWISE_FAMILIES = ("llm-layerwise", "llm-lightweight")  # local_server.backends.layerwise


class Backend(Protocol):
    name: str  # "torch" or "onnx": what /info and the start-up line report
    # Inputs beyond the padded ids, mask and token types that this backend reads (RerankEngine.EXTRA_INPUTS).
    extra_inputs: frozenset[str]

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """int64 [B, T] arrays (input_ids, attention_mask, token_type_ids?) -> float32 [B] raw logits."""
        ...


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """What the engine needs from a loaded model; `device` and `dtype` are what /info reports."""

    backend: Backend
    tokenizer: PreTrainedTokenizerBase
    device: str
    dtype: str
    family: Family  # its template (local_server.families), built once for this tokenizer and these settings
    note: str | None = None  # why it is served otherwise than asked (int8 refused on this CPU), for /info
    variant: str = ""  # what tells two loads of one dtype apart: int8's flavour for this CPU (full range, 7-bit)


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message is one line a user can act on."""


def stay_offline(settings: Settings) -> None:
    """RERANK_OFFLINE: never contact the Hub. Called before huggingface_hub is first imported: it reads these once."""
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"


def load_backend(settings: Settings) -> LoadedModel:
    """The model `settings.model` names (one model's settings: Settings.for_model), loaded once for its family
    and backend; ModelLoadError when it cannot be.

    A cross-encoder's `auto` backend takes the fastest exact path: on the CPU, ONNX Runtime fp32 when the model
    exports and its export gives torch's logits (checked once, cached), otherwise torch with one log line
    saying why; on a GPU, torch (fp16). `onnx` forces ONNX Runtime and fails when it cannot; `torch` forces torch.
    """
    stay_offline(settings)
    import torch

    from local_server.families import read_model_facts

    if settings.threads:
        torch.set_num_threads(settings.threads)  # the torch forward pass, or the one-time ONNX export
    facts = read_model_facts(settings.model)
    family = settings.family or facts.family
    if settings.backend == "onnx" and family != "cross-encoder":
        log.warning("the onnx backend serves cross-encoders; %s (%s) runs on torch", settings.model, family)
    if settings.cutoff_layers and family not in _LAYERWISE_FAMILIES:
        log.warning("%s (%s): cutoff_layers applies to llm-layerwise and llm-lightweight models; ignored",
                    settings.model, family)
    if settings.compress_ratio != 1 and family != "llm-lightweight":
        log.warning("%s (%s): compress_ratio applies to llm-lightweight models; ignored", settings.model, family)
    if family in _LAYERWISE_FAMILIES:  # their weights only: the models' bundled code never runs
        from local_server.backends import layerwise

        return layerwise.load(settings, family)
    if facts.remote_code and not settings.trust_remote_code:
        raise ModelLoadError(
            f"{settings.model} runs its own code (its config.json has auto_map); rerank-kit runs it only when "
            "allowed: set `trust_remote_code: true` for this model in the config file (or "
            "RERANK_TRUST_REMOTE_CODE=true) after reading that code")
    if family != "cross-encoder":
        from local_server.backends import decoder

        return decoder.load(settings, family)
    from local_server.backends import flag_reranker
    from local_server.backends.device import resolve_device

    if settings.trust_remote_code:  # the ONNX export cannot run a model's own code
        return flag_reranker.load(settings)
    if settings.backend == "onnx" or (settings.backend == "auto" and resolve_device(settings.device) == "cpu"):
        from local_server.backends import onnx_runtime

        try:
            return onnx_runtime.load(settings)
        except onnx_runtime.ExportRejectedError as exc:
            if settings.backend == "onnx":
                raise ModelLoadError(f"RERANK_BACKEND=onnx: {exc}") from exc
            log.warning("serving %s with torch: %s", settings.model, exc)
    return flag_reranker.load(settings)


def require_one_logit(model: str, config: Any) -> None:
    """Refuse a model whose head does not give one relevance logit per pair (a classifier, an LLM)."""
    if getattr(config, "num_labels", 1) != 1:
        raise ModelLoadError(
            f"{model} has {config.num_labels} output labels; rerank-kit serves "
            "cross-encoders with one relevance logit (e.g. BAAI/bge-reranker-*)."
        )


@contextmanager
def explain_load_failure(model: str) -> Iterator[None]:
    """What from_pretrained raises for a missing, partial or unreadable model becomes ModelLoadError's one
    line, saying what is missing and how to provide it (no traceback reaches the user)."""
    try:
        yield
    except (OSError, ValueError, ImportError) as exc:
        where = "is not a local folder with config.json" if not os.path.isdir(model) else "could not be loaded"
        raise ModelLoadError(
            f"cannot load model {model!r}: it {where} and could not be fetched from the Hugging Face Hub "
            f"({type(exc).__name__}). Point RERANK_MODEL at a local folder holding the model "
            f"(e.g. RERANK_MODEL=/models/bge-reranker-v2-m3, fetched once with "
            f"`rerank-kit download BAAI/bge-reranker-v2-m3 --to /models`)."
        ) from exc
