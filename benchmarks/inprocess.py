"""The in-process measurements, each run in its own child process (so its threads and memory are its own):

- floor:  FlagReranker.compute_score(pairs, normalize=True) once per request (the library floor);
- direct: the same model called with no server: tokenised once, length-sorted, batches of 32 under
          torch.inference_mode (throughput over the pooled pairs, also unsorted and in 2048-token
          batches; latency one request at a time);
- card:   a Qwen3-Reranker as its model card runs it with plain transformers (format_instruction,
          process_inputs, compute_logits), one request's pairs per batch, one request at a time;
- peak:   the machine's fp32 matmul peak;
- quality: the serving paths' ranking quality on the trained model (benchmarks.quality).

`python -m benchmarks.inprocess MODE job.json result.json`; the job holds the model, the requests and
the bounds.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

_BATCH = 32


def _load(model: str):
    from FlagEmbedding import FlagReranker

    return FlagReranker(model, use_fp16=False, devices=["cpu"])


def _bounded(requests: list[dict], max_requests: int, max_seconds: float):
    started = time.perf_counter()
    for i, request in enumerate(requests):
        if i >= max_requests or (i and time.perf_counter() - started > max_seconds):
            return
        yield request


def floor(job: dict) -> dict:
    reranker = _load(job["model"])
    reranker.compute_score([["warm", "up"]] * 2, normalize=True)
    latencies, pairs = [], 0
    for request in _bounded(job["requests"], job["max_requests"], job["max_seconds"]):
        started = time.perf_counter()
        reranker.compute_score([[request["query"], d] for d in request["documents"]], normalize=True)
        latencies.append(time.perf_counter() - started)
        pairs += len(request["documents"])
    return {"latencies": latencies, "pairs": pairs, "seconds": sum(latencies)}


class _Direct:
    """The model and its tokenizer, called the way a server with no overhead would."""

    def __init__(self, model: str) -> None:
        import torch

        reranker = _load(model)
        self.torch, self.model, self.tokenizer = torch, reranker.model.eval(), reranker.tokenizer

    def encode(self, request: dict) -> list[dict]:
        enc = self.tokenizer([request["query"]] * len(request["documents"]), request["documents"],
                             truncation="only_second", max_length=512)
        return [{k: enc[k][i] for k in enc} for i in range(len(request["documents"]))]

    def score(self, items: list[dict], batching: str = "direct") -> None:
        for indices in _batches([len(item["input_ids"]) for item in items], batching):
            batch = self.tokenizer.pad([items[i] for i in indices], return_tensors="pt")
            with self.torch.inference_mode():
                self.model(**batch).logits  # noqa: B018


def _batches(lengths: list[int], batching: str) -> list[list[int]]:
    """direct: longest first, 32 at a time; direct-unsorted: arrival order, 32 at a time;
    direct-2k-tokens: longest first, cut at 2048 padded tokens (rerank-kit's CPU planner)."""
    if batching == "direct-2k-tokens":
        from local_server.batcher import plan_batches

        return plan_batches(lengths, 2048, _BATCH)
    order = list(range(len(lengths)))
    if batching == "direct":
        order.sort(key=lengths.__getitem__, reverse=True)
    return [order[i:i + _BATCH] for i in range(0, len(order), _BATCH)]


def direct(job: dict) -> dict:
    engine = _Direct(job["model"])
    engine.score(engine.encode(job["requests"][0]))  # warm
    latencies = []
    for request in _bounded(job["requests"], job["max_requests"], job["max_seconds"] / 2):
        started = time.perf_counter()
        engine.score(engine.encode(request))
        latencies.append(time.perf_counter() - started)
    seconds = {}
    for batching in job["batchings"]:  # what length sorting and batch size buy, everything else equal
        started = time.perf_counter()
        engine.score([item for r in job["pool"] for item in engine.encode(r)], batching)
        seconds[batching] = time.perf_counter() - started
    return {"latencies": latencies, "pairs": sum(len(r["documents"]) for r in job["pool"]), "seconds": seconds}


class _Card:
    """Qwen3-Reranker's model-card loop (huggingface.co/Qwen/Qwen3-Reranker-0.6B, "Transformers Usage")."""

    def __init__(self, model: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from local_server.families import Qwen3

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(model).eval()
        self.yes, self.no = (self.tokenizer.convert_tokens_to_ids(word) for word in ("yes", "no"))
        self.prefix = self.tokenizer.encode(Qwen3.PREFIX, add_special_tokens=False)
        self.suffix = self.tokenizer.encode(Qwen3.SUFFIX, add_special_tokens=False)
        self.instruction = Qwen3.DEFAULT_INSTRUCTION
        self.max_length = 8192

    def score(self, request: dict) -> list[float]:
        torch = self.torch
        pairs = [f"<Instruct>: {self.instruction}\n<Query>: {request['query']}\n<Document>: {doc}"
                 for doc in request["documents"]]
        inputs = self.tokenizer(pairs, padding=False, truncation="longest_first", return_attention_mask=False,
                                max_length=self.max_length - len(self.prefix) - len(self.suffix))
        for i, ids in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix + ids + self.suffix
        inputs = self.tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=self.max_length)
        with torch.no_grad():
            logits = self.model(**inputs).logits[:, -1, :]
            pair = torch.stack([logits[:, self.no], logits[:, self.yes]], dim=1)
            return torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp().tolist()


def card(job: dict) -> dict:
    engine = _Card(job["model"])
    engine.score(job["requests"][0])  # warm
    latencies, pairs = [], 0
    for request in _bounded(job["requests"], job["max_requests"], job["max_seconds"]):
        started = time.perf_counter()
        engine.score(request)
        latencies.append(time.perf_counter() - started)
        pairs += len(request["documents"])
    return {"latencies": latencies, "pairs": pairs, "seconds": sum(latencies)}


def peak(job: dict) -> dict:
    from benchmarks.flops import matmul_peak_gflops

    return {"gflops": matmul_peak_gflops(job.get("threads"), job.get("max_seconds", 3.0))}


def quality(job: dict) -> dict:
    from benchmarks.quality import evaluate

    return evaluate(Path(job["model"]), Path(job["cache_dir"]))


MODES = {"floor": floor, "direct": direct, "card": card, "peak": peak, "quality": quality}


def main(argv: list[str]) -> int:
    mode, job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    result = MODES[mode](job)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
