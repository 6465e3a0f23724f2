"""The RAGFlow class's calibration (ragflow_integration/rerank_model.py): another server's raw logits become sigmoids,
never min-max rescaled; scores already in [0, 1] are kept."""

from __future__ import annotations

import numpy as np

from ragflow_integration.rerank_model import calibrated


def test_raw_logits_from_another_server_are_calibrated_not_min_maxed() -> None:
    logits = np.array([-2.0, 0.0, 3.0])
    assert np.allclose(calibrated(logits), 1.0 / (1.0 + np.exp(-logits)))
    in_range = np.array([0.2, 0.9])
    assert calibrated(in_range) is in_range
