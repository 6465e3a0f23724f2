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


if __name__ == "__main__":  # `make soak` builds its model with this
    import sys

    print(build_tiny_cross_encoder(Path(sys.argv[1])))
