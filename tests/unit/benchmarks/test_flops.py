"""FLOPs per pair (benchmarks/flops.py), by hand for an encoder and a decoder shape."""

from __future__ import annotations

import pytest

from benchmarks.flops import flops_per_pair
from benchmarks.models import ModelShape

MINILM_L6 = ModelShape(layers=6, hidden=384, intermediate=1536, heads=12)
XLMR_BASE = ModelShape(layers=12, hidden=768, intermediate=3072, heads=12)


def test_flops_per_pair_by_hand() -> None:
    # per layer at T=256: 8*T*h^2 + 4*T*h*i + 4*T^2*h; then pooler 2*h^2 and head 2*h
    per_layer = 8 * 256 * 384**2 + 4 * 256 * 384 * 1536 + 4 * 256**2 * 384
    assert flops_per_pair(MINILM_L6, 256) == 6 * per_layer + 2 * 384**2 + 2 * 384
    assert flops_per_pair(MINILM_L6, 256) == pytest.approx(6.04e9, rel=0.01)  # ~6 GFLOP, the known figure
    assert flops_per_pair(XLMR_BASE, 256) == pytest.approx(45.9e9, rel=0.01)  # bge-reranker-base: ~46


def test_decoder_flops_per_pair_by_hand() -> None:
    """Qwen3-Reranker-0.6B's shape: GQA (16 query, 8 key-value heads of 128) and a gated feed-forward."""
    qwen3 = ModelShape(layers=28, hidden=1024, intermediate=3072, heads=16, kv_heads=8, head_dim=128, decoder=True)
    t, a, kv = 256, 16 * 128, 8 * 128
    per_layer = 4 * t * 1024 * a + 4 * t * 1024 * kv + 6 * t * 1024 * 3072 + 4 * t * t * a
    assert flops_per_pair(qwen3, t) == 28 * per_layer + 4 * 1024
    assert flops_per_pair(qwen3, t) == pytest.approx(2 * 0.44e9 * t, rel=0.15)  # ~2 x non-embedding params x T
