"""Build a tiny BERT cross-encoder on disk (config, random weights, a WordPiece tokenizer made here).

It loads through the real `FlagReranker` path like any hub model; nothing is downloaded.
"""

from __future__ import annotations

import string
from pathlib import Path

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD_TEXT = (
    "the a an of to in is it and or for on with as by at from that this be are was what which who how why "
    "when where weather sunny today rain cloud paris france capital city river rerank model query "
    "document passage score search retrieval vector keyword hybrid python server client token batch cat "
    "dog sat mat"
)
WORDS = _WORD_TEXT.split()

# A query and documents of several lengths in the tiny vocabulary (padding is exercised), for the backend tests.
SAMPLE_QUERY = "which city is the capital of france"
SAMPLE_DOCS = [
    "paris is the capital city of france",
    "rain and cloud over the river today",
    "dog",
    "the weather in paris is sunny and the cat sat on the mat by the river in the city",
    "a python server scores each query and document pair in a batch",
    "france",
    "what is the weather today",
]


def _vocab() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    return _SPECIAL + chars + [f"##{c}" for c in string.ascii_lowercase + string.digits] + WORDS


def build_tiny_cross_encoder(path: Path, *, seed: int = 0, max_positions: int = 512) -> Path:
    """Write a 2-layer, 32-wide BertForSequenceClassification (1 logit) and its tokenizer to `path`."""
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer_cls = getattr(transformers, "BertTokenizerFast", None) or transformers.BertTokenizer
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    # Loaded from the folder: transformers 5 silently ignores a `vocab_file=` argument (every word would
    # become [UNK]); from_pretrained reads vocab.txt on 4.x and 5.x alike.
    tokenizer = tokenizer_cls.from_pretrained(path, do_lower_case=True, model_max_length=max_positions)
    if tokenizer.convert_tokens_to_ids("paris") == tokenizer.unk_token_id:
        raise RuntimeError("the tiny tokenizer did not load its vocabulary")
    tokenizer.save_pretrained(path)
    config = BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        type_vocab_size=2,
        num_labels=1,
        initializer_range=0.3,  # wide enough that logits spread on both sides of 0
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(path)
    return path


if __name__ == "__main__":  # `make soak` builds its model with this (python tests/support/tiny_model.py DIR)
    import sys

    print(build_tiny_cross_encoder(Path(sys.argv[1])))


# max_length of the tiny models in the family and multi-model tests: small, so that truncation comes into
# play; the Qwen3 template alone is 88 tokens of the tiny tokenizer, so that family gets more.
MAX_LENGTH = 64
QWEN3_MAX_LENGTH = 128
# The lightweight model's compression in the multi-model tests: passages halved before layers 1 and 3.
LIGHTWEIGHT_OPTIONS = {"cutoff_layers": [4], "compress_ratio": 2, "compress_layers": [1, 3]}

# Text the tiny byte-level BPE is trained on: the templates' words ("Yes", "yes", "no", the markers) become
# whole tokens, as they are in the real vocabularies.
_DECODER_CORPUS = [
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
    "providing a prediction of either 'Yes' or 'No'.",
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    "Note that the answer can only be \"yes\" or \"no\".",
    "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: q\n"
    "<Document>: d", "A: B: \n\n", _WORD_TEXT, _WORD_TEXT.title(), "Yes yes no No " * 20,
]


def _byte_level_tokenizer(path: Path, *, special: list[str], added: list[str], **roles: str):
    """A byte-level BPE (GPT-2/Qwen style, no special tokens added around a text) saved to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_DECODER_CORPUS * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, padding_side="right", **roles)
    tokenizer.add_tokens(added)
    for word in ("Yes", "yes", "no"):
        if len(tokenizer(word, add_special_tokens=False)["input_ids"]) != 1:
            raise RuntimeError(f"the tiny tokenizer splits {word!r}")
    tokenizer.save_pretrained(path)
    return tokenizer


def build_tiny_llm_reranker(path: Path, *, seed: int = 0) -> Path:
    """A 2-layer GemmaForCausalLM (bge-reranker-v2-gemma's architecture) with a tiny tokenizer, for the `llm`
    family; FlagLLMReranker loads it as any hub model."""
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _byte_level_tokenizer(path, special=["<pad>", "<eos>", "<bos>", "<unk>"], added=[],
                                      pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")
    config = GemmaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, initializer_range=0.3)
    torch.manual_seed(seed)
    GemmaForCausalLM(config).eval().save_pretrained(path)
    return path


def build_tiny_qwen3_reranker(path: Path, *, seed: int = 0) -> Path:
    """A 2-layer Qwen3ForCausalLM (Qwen3-Reranker's architecture) with a tiny tokenizer holding the chat markers."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _byte_level_tokenizer(path, special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                      added=["<think>", "</think>"], pad_token="<|endoftext|>",
                                      eos_token="<|im_end|>")
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True, initializer_range=0.3)
    torch.manual_seed(seed)
    Qwen3ForCausalLM(config).eval().save_pretrained(path)
    return path
