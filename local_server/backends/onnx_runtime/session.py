"""The forward pass on the ONNX path: an onnxruntime session over a cached export."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxBackend:
    """Scores padded batches with an onnxruntime InferenceSession; feeds only the inputs the graph has."""

    name = "onnx"
    extra_inputs: frozenset[str] = frozenset()

    def __init__(self, model_path: Path, *, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per physical core
        options.inter_op_num_threads = 1
        self.model_path = model_path
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._input_names = [i.name for i in self._session.get_inputs()]

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: np.ascontiguousarray(batch[name], dtype=np.int64) for name in self._input_names}
        (out,) = self._session.run(["logits"], feed)
        return out.reshape(-1).astype(np.float32, copy=False)
