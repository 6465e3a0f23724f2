"""Which device a torch backend runs on, and whether in fp16: one rule for every torch-based backend."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def resolve_device(requested: str) -> str:
    """auto -> cuda, else mps, else cpu (FlagReranker's order, restricted to one device)."""
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda:0"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def use_fp16(requested: bool | None, device: str) -> bool:
    """fp16 by default on CUDA only; never on a CPU, where LayerNorm has no Half kernel."""
    fp16 = requested if requested is not None else device.startswith("cuda")
    if fp16 and device == "cpu":
        log.warning("fp16 is not supported on CPU (LayerNorm has no Half kernel); using fp32")
        return False
    return fp16
