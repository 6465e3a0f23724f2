"""Every model family scores as its own reference does, on tiny random-weight models of the real architectures:
cross-encoder = FlagReranker.compute_score, llm = FlagLLMReranker.compute_score (Gemma), qwen3 = the
Qwen3-Reranker model card's formula on each pair alone (Qwen3ForCausalLM); llm-layerwise and llm-lightweight
are in backends/test_layerwise.py. A decoder pair's score does not depend on its batch-mates; the family is
detected from the config; remote code needs the user's consent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from local_server.backends import ModelLoadError, load_backend
from local_server.families import read_model_facts
from local_server.settings import Settings
from tests.support.families import DOCS, QUERY, TOLERANCE, engine_for, flag_llm_reference, qwen3_model_card, raw_scores
from tests.support.tiny_model import MAX_LENGTH, QWEN3_MAX_LENGTH

# -- equality with the references ------------------------------------------------------------------------

def test_cross_encoder_equals_flag_reranker(tiny_model_dir: Path) -> None:
    from FlagEmbedding import FlagReranker

    engine = engine_for(tiny_model_dir, backend="torch")
    reference = FlagReranker(str(tiny_model_dir), use_fp16=False, devices=["cpu"], max_length=MAX_LENGTH)
    expected = np.array(reference.compute_score([[QUERY, d] for d in DOCS], max_length=MAX_LENGTH))
    assert engine.family.name == "cross-encoder"
    assert np.abs(raw_scores(engine, DOCS) - expected).max() < TOLERANCE


def test_llm_equals_flag_llm_reranker_with_its_prompt_or_an_instruction(tiny_llm_dir: Path) -> None:
    engine = engine_for(tiny_llm_dir)
    assert engine.family.name == "llm"
    assert np.abs(raw_scores(engine, DOCS) - flag_llm_reference(tiny_llm_dir, DOCS)).max() < TOLERANCE
    prompt = "Is passage B relevant to query A? Answer Yes or No."
    instructed = raw_scores(engine, DOCS, instruction=prompt)
    assert np.abs(instructed - flag_llm_reference(tiny_llm_dir, DOCS, prompt=prompt)).max() < TOLERANCE
    assert np.abs(instructed - raw_scores(engine, DOCS)).max() > 1e-3  # the instruction reached the model


def test_llm_default_instruction_from_the_model_spec(tiny_llm_dir: Path) -> None:
    prompt = "Does B answer A? Yes or No."
    engine = engine_for(tiny_llm_dir, instruction=prompt)
    assert np.abs(raw_scores(engine, DOCS) - flag_llm_reference(tiny_llm_dir, DOCS, prompt=prompt)).max() < TOLERANCE


def test_qwen3_equals_the_model_card(tiny_qwen3_dir: Path) -> None:
    engine = engine_for(tiny_qwen3_dir, max_length=QWEN3_MAX_LENGTH)
    assert engine.family.name == "qwen3"
    probabilities = 1 / (1 + np.exp(-raw_scores(engine, DOCS)))
    assert np.abs(probabilities - qwen3_model_card(tiny_qwen3_dir, QUERY, DOCS)).max() < TOLERANCE
    instruction = "Find the passage naming the capital"
    instructed = 1 / (1 + np.exp(-raw_scores(engine, DOCS, instruction=instruction)))
    expected = qwen3_model_card(tiny_qwen3_dir, QUERY, DOCS, instruction=instruction)
    assert np.abs(instructed - expected).max() < TOLERANCE


@pytest.mark.parametrize("fixture", ["tiny_llm_dir", "tiny_qwen3_dir"])
def test_a_decoder_score_never_depends_on_its_batch_mates(fixture: str, request: pytest.FixtureRequest) -> None:
    engine = engine_for(request.getfixturevalue(fixture), max_length=QWEN3_MAX_LENGTH)
    pairs = engine.encode(QUERY, DOCS)
    assert len({len(p) for p in pairs}) > 2  # a mixed-length batch: the short pairs are padded
    together = engine.logits(pairs)
    alone = np.array([engine.logits([pair])[0] for pair in pairs])
    reversed_order = engine.logits(pairs[::-1])[::-1]
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(reversed_order - alone).max() < 1e-5


def test_too_long_without_truncation_is_refused_for_decoders(tiny_qwen3_dir: Path) -> None:
    from local_server.engine import InputTooLongError

    with pytest.raises(InputTooLongError, match="the maximum is 128"):
        engine_for(tiny_qwen3_dir, max_length=QWEN3_MAX_LENGTH).encode(QUERY, DOCS, truncate=False)


# -- the family, and remote code ----------------------------------------------------------------------------

def test_the_family_is_detected_from_the_config(tiny_model_dir: Path, tiny_llm_dir: Path, tiny_qwen3_dir: Path,
                                               tmp_path: Path) -> None:
    assert read_model_facts(str(tiny_model_dir)).family == "cross-encoder"
    assert read_model_facts(str(tiny_llm_dir)).family == "llm"
    assert read_model_facts(str(tiny_qwen3_dir)).family == "qwen3"
    for architecture, family in (("LayerWiseMiniCPMForCausalLM", "llm-layerwise"),
                               ("CostWiseGemmaForCausalLM", "llm-lightweight"),
                               ("XLMRobertaForSequenceClassification", "cross-encoder")):
        folder = tmp_path / architecture
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"architectures": [architecture]}))
        assert read_model_facts(str(folder)).family == family


def test_an_explicit_family_wins_over_detection(tiny_qwen3_dir: Path) -> None:
    """A Qwen3 causal LM served with the generic `llm` template (FlagLLMReranker's prompt, the "Yes" logit)."""
    assert engine_for(tiny_qwen3_dir, family="llm").family.name == "llm"


CUSTOM_MODELING = """from transformers import BertConfig, BertForSequenceClassification


class CustomConfig(BertConfig):
    model_type = "custom-bert"


class CustomModel(BertForSequenceClassification):
    config_class = CustomConfig
"""


def test_remote_code_runs_only_when_allowed(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A cross-encoder shipping its own modeling code (as jina-reranker-v2 does): refused unless allowed;
    allowed, its own class runs (on torch) and scores as the same weights do without it."""
    import shutil

    folder = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "modeling_custom.py").write_text(CUSTOM_MODELING)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "custom-bert"
    config["auto_map"] = {"AutoConfig": "modeling_custom.CustomConfig",
                          "AutoModelForSequenceClassification": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="trust_remote_code: true"):
        load_backend(Settings(model=str(folder), offline=True))
    allowed = engine_for(folder, trust_remote_code=True)
    assert type(allowed.backend).__name__ == "TorchBackend"
    assert type(allowed.backend._model).__name__ == "CustomModel"
    plain = engine_for(tiny_model_dir, backend="torch")
    assert np.abs(raw_scores(allowed, DOCS) - raw_scores(plain, DOCS)).max() < 1e-6


# -- the config file and the registry --------------------------------------------------------------------
