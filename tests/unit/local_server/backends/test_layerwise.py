"""The `llm-layerwise` and `llm-lightweight` families score as FlagEmbedding's LayerWiseFlagLLMReranker and
LightWeightFlagLLMReranker do on the transformers their code runs on (4.44, in the reference venv:
tests/support/flag_reference.py): at every cut-off layer, with the default prompt or an instruction, with passage
compression at several ratios and layers, on pairs longer than the lightweight model's sliding window.
A pair's score does not depend on its batch-mates (compression included); a layer without a head is refused
naming the usable ones; the models' bundled code is never run, so it needs no trust_remote_code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from local_server.backends import ModelLoadError, layerwise
from local_server.families import read_model_facts
from local_server.settings import Settings
from tests.support.families import DOCS, QUERY, TOLERANCE, engine_for, raw_scores
from tests.support.flag_reference import build_tiny, reference_scores
from tests.support.tiny_model import MAX_LENGTH

PROMPT = "Is passage B relevant to query A? Answer Yes or No."
LAYERWISE_CASES: list[dict[str, Any]] = [{}, {"cutoff_layers": [2]}, {"cutoff_layers": [3]}, {"prompt": PROMPT}]
LIGHTWEIGHT_CASES: list[dict[str, Any]] = [
    {}, {"cutoff_layers": [3]}, {"compress_ratio": 2, "compress_layers": [1, 3]},
    {"compress_ratio": 4, "compress_layers": [2]}, {"compress_ratio": 8, "compress_layers": [1], "cutoff_layers": [3]},
    {"compress_ratio": 2, "compress_layers": [2], "prompt": PROMPT},
]
CASES = {"llm-layerwise": LAYERWISE_CASES, "llm-lightweight": LIGHTWEIGHT_CASES}


@pytest.fixture(scope="module")
def model_dirs(tiny_layerwise_dir: Path, tiny_lightweight_dir: Path) -> dict[str, Path]:
    return {"llm-layerwise": tiny_layerwise_dir, "llm-lightweight": tiny_lightweight_dir}


@pytest.fixture(scope="module")
def expected(model_dirs: dict[str, Path]) -> dict[str, list[list[float]]]:
    """Every case's reference scores, one reference process per family."""
    calls = {family: [{"pairs": [[QUERY, d] for d in DOCS], "options": case} for case in cases]
             for family, cases in CASES.items()}
    return {family: reference_scores(family, model_dirs[family], calls[family], MAX_LENGTH) for family in CASES}


def ours(model_dir: Path, case: dict[str, Any]) -> np.ndarray:
    """Our raw scores for a reference case: its layer settings load the model, its prompt is the instruction."""
    settings = {key: value for key, value in case.items() if key != "prompt"}
    engine = engine_for(model_dir, **settings)
    return raw_scores(engine, DOCS, instruction=case.get("prompt"))


@pytest.mark.parametrize(("family", "case"),
                         [(family, i) for family, cases in CASES.items() for i in range(len(cases))])
def test_scores_equal_flagembeddings_reference(family: str, case: int, model_dirs: dict[str, Path],
                                               expected: dict[str, list[list[float]]]) -> None:
    scores = ours(model_dirs[family], CASES[family][case])
    assert np.abs(scores - np.array(expected[family][case])).max() < TOLERANCE, CASES[family][case]


def test_the_settings_change_the_scores(model_dirs: dict[str, Path], expected: dict[str, list[list[float]]]) -> None:
    """Each case is a different computation (so each equality above pins one)."""
    for family in CASES:
        rows = np.array(expected[family])
        distances = [np.abs(rows[i] - rows[j]).max() for i in range(len(rows)) for j in range(i)]
        assert min(distances) > 1e-3, family


@pytest.mark.parametrize("family", list(CASES))
def test_a_score_never_depends_on_its_batch_mates(family: str, model_dirs: dict[str, Path]) -> None:
    engine = engine_for(model_dirs[family], **({"compress_ratio": 2, "compress_layers": [1, 3]}
                                             if family == "llm-lightweight" else {"cutoff_layers": [3]}))
    pairs = engine.encode(QUERY, DOCS)
    assert len({len(p) for p in pairs}) > 2  # a mixed-length batch: the short pairs are padded
    together = engine.logits(pairs)
    alone = np.array([engine.logits([pair])[0] for pair in pairs])
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(engine.logits(pairs[::-1])[::-1] - alone).max() < 1e-5


def test_the_family_is_detected_from_the_saved_models(model_dirs: dict[str, Path]) -> None:
    for family, folder in model_dirs.items():
        assert read_model_facts(str(folder)).family == family
        assert engine_for(folder).family.name == family


@pytest.mark.parametrize(("family", "layer", "usable"), [("llm-layerwise", 1, "2..4"), ("llm-layerwise", 5, "2..4"),
                                                       ("llm-lightweight", 0, "2..4")])
def test_a_layer_without_a_head_is_refused_naming_the_usable_ones(family: str, layer: int, usable: str,
                                                                  model_dirs: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match=f"cutoff_layers \\[{layer}\\] is not one of its scoring layers {usable}"):
        engine_for(model_dirs[family], cutoff_layers=[layer])


def test_one_cutoff_layer_per_model() -> None:
    assert Settings(cutoff_layers=28).cutoff_layers == [28]
    with pytest.raises(ValidationError, match="give one layer"):
        Settings(cutoff_layers=[24, 28])
    with pytest.raises(ValidationError, match="compress_ratio"):
        Settings(compress_ratio=3)


def test_the_bundled_model_code_is_never_run(tiny_layerwise_dir: Path, tmp_path: Path) -> None:
    """Published layerwise models map their classes to their own code (auto_map); rerank-kit reads only their
    weights, so they load without trust_remote_code and that code (here: one that fails on import) never runs."""
    folder = tmp_path / "with-code"
    shutil.copytree(tiny_layerwise_dir, folder)
    (folder / "modeling_minicpm_reranker.py").write_text("raise RuntimeError('the bundled code ran')\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    assert read_model_facts(str(folder)).remote_code
    scores = raw_scores(engine_for(folder), DOCS)
    assert np.abs(scores - raw_scores(engine_for(tiny_layerwise_dir), DOCS)).max() < 1e-6


@pytest.mark.parametrize(("change", "says"), [({"hidden_size": 48}, "size mismatch"),
                                              ({"num_hidden_layers": None}, "'num_hidden_layers'")])
def test_a_checkpoint_that_does_not_fit_its_config_is_one_clear_error(change: dict[str, Any], says: str,
                                                                      tiny_lightweight_dir: Path,
                                                                      tmp_path: Path) -> None:
    folder = tmp_path / "changed"
    shutil.copytree(tiny_lightweight_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(change)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    with pytest.raises(ModelLoadError, match=f"does not match a llm-lightweight model's config.json: .*{says}"):
        engine_for(folder, family="llm-lightweight")


def test_a_compress_layer_at_or_after_the_cutoff_changes_nothing(tiny_lightweight_dir: Path) -> None:
    """FlagEmbedding stops at the cut-off layer before compressing there (and never compresses before layer 0)."""
    plain = raw_scores(engine_for(tiny_lightweight_dir, cutoff_layers=[3]), DOCS)
    for layers in ([3], [0, 3, 4]):
        compressed = engine_for(tiny_lightweight_dir, cutoff_layers=[3], compress_ratio=2, compress_layers=layers)
        assert np.array_equal(raw_scores(compressed, DOCS), plain), layers


def test_pytorch_bin_weights_load_and_other_bin_files_are_left_alone(tiny_layerwise_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "bin"
    shutil.copytree(tiny_layerwise_dir, folder)
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    (folder / "training_args.bin").write_bytes(b"not a checkpoint")  # what a fine-tuning run leaves beside it
    same = raw_scores(engine_for(folder), DOCS) - raw_scores(engine_for(tiny_layerwise_dir), DOCS)
    assert np.abs(same).max() < 1e-6  # the same weights (read through another file's memory layout)


@pytest.mark.parametrize(("damage", "says"), [("truncate", "cannot read .*model.safetensors"),
                                              ("remove", "has no weights")])
def test_missing_or_damaged_weights_are_one_clear_error(damage: str, says: str, tiny_layerwise_dir: Path,
                                                        tmp_path: Path) -> None:
    folder = tmp_path / damage
    shutil.copytree(tiny_layerwise_dir, folder)
    weights = folder / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        weights.unlink()
    with pytest.raises(ModelLoadError, match=says):
        engine_for(folder)


def test_minicpm_keeps_its_rotary_tables_in_fp32_under_fp16(tiny_layerwise_dir: Path,
                                                            tiny_lightweight_dir: Path) -> None:
    """On a GPU the stack runs in fp16; MiniCPM's rotary frequencies stay fp32 (its reference rounds only the
    cos/sin tables), Gemma 2's are rounded with the rest (as its reference's .half() rounds them)."""
    import torch

    for folder, rotary_dtype in ((tiny_layerwise_dir, torch.float32), (tiny_lightweight_dir, torch.float16)):
        stack = engine_for(folder).backend._stack
        layerwise.place(stack, "cpu", torch.float16)
        assert stack.head.weight.dtype == torch.float16 and stack.layers[0].mlp.up_proj.weight.dtype == torch.float16
        assert stack.rotary.inv_freq.dtype == rotary_dtype, folder.name


def test_settings_for_another_family_are_ignored_with_a_warning(tiny_llm_dir: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        engine_for(tiny_llm_dir, cutoff_layers=[2], compress_ratio=2)
    assert "cutoff_layers applies to llm-layerwise and llm-lightweight models; ignored" in caplog.text
    assert "compress_ratio applies to llm-lightweight models; ignored" in caplog.text


def test_a_layerwise_model_with_one_shared_head_equals_flagembeddings_reference(tmp_path: Path) -> None:
    """head_multi false: LayerWiseMiniCPMForCausalLM's other layout, one head that scores every layer."""
    folder = build_tiny("llm-layerwise-one-head", tmp_path / "one-head")
    cases: list[dict[str, Any]] = [{}, {"cutoff_layers": [3]}]
    expected = reference_scores("llm-layerwise", folder, [{"pairs": [[QUERY, d] for d in DOCS], "options": case}
                                                          for case in cases], MAX_LENGTH)
    for case, reference in zip(cases, expected, strict=True):
        assert np.abs(ours(folder, case) - np.array(reference)).max() < TOLERANCE, case
