"""The physical limit: model FLOPs per (query, passage) pair and the machine's measured matmul peak."""

from __future__ import annotations

import time

from benchmarks.models import ModelShape


def flops_per_pair(shape: ModelShape, tokens: int) -> float:
    """Forward FLOPs of one unpadded pair of `tokens` tokens (multiply-add = 2 FLOPs).

    Per layer: Q, K, V and output projections 8*T*h^2, feed-forward 4*T*h*i, attention scores and the
    weighted sum 4*T^2*h; plus the pooler and the 1-logit head on the first token. Embedding lookups,
    softmax, LayerNorm and GELU are not matmuls and are left out (they are a few percent).
    A decoder (Qwen3): Q and output projections 4*T*h*a, K and V 4*T*h*kv (a, kv: the query and key-value
    heads' total width), the gated feed-forward 6*T*h*i, attention 4*T^2*a (causal: the kernels compute the
    full square), and the two score-token rows of the output layer at the last token.
    """
    t, h, i = tokens, shape.hidden, shape.intermediate
    if shape.decoder:
        head_dim = shape.head_dim or h // shape.heads
        a, kv = shape.heads * head_dim, (shape.kv_heads or shape.heads) * head_dim
        per_layer = 4 * t * h * a + 4 * t * h * kv + 6 * t * h * i + 4 * t * t * a
        return shape.layers * per_layer + 2 * 2 * h
    per_layer = 8 * t * h * h + 4 * t * h * i + 4 * t * t * h
    return shape.layers * per_layer + 2 * h * h + 2 * h


def matmul_peak_gflops(threads: int | None = None, seconds: float = 3.0) -> float:
    """Best fp32 matmul rate torch reaches here (GFLOP/s), over a square and a MiniLM-batch shape."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    shapes = [(2048, 2048, 2048), (32 * 180, 384, 1536), (32 * 180, 768, 3072)]
    best = 0.0
    deadline = time.perf_counter() + seconds
    with torch.inference_mode():
        while time.perf_counter() < deadline:
            for m, k, n in shapes:
                a, b = torch.randn(m, k), torch.randn(k, n)
                torch.mm(a, b)  # warm
                started = time.perf_counter()
                torch.mm(a, b)
                best = max(best, 2 * m * k * n / (time.perf_counter() - started) / 1e9)
    return best
