"""Model families: how a (query, document) pair becomes token ids, and which logits make its raw score.

A family is what a reranker's reference code fixes: the template around the query and the document, how
each is truncated, and which output is the score (FlagReranker: the one logit; FlagLLMReranker: the
"Yes" logit at the last token; Qwen3-Reranker: logit(yes) - logit(no) at the last token, whose sigmoid
is the model card's P(yes)). Everything else (document windows, batching, calibration) is shared, so a
family only says what goes before and after each document window.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from local_server.model_files import model_folder
from local_server.settings import FamilyName, Settings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# text, max tokens (None: all of them) -> token ids without special tokens, on the calling thread's tokenizer
Tokenize = Callable[[str, int | None], list[int]]


@dataclass(frozen=True, slots=True)
class Frame:
    """What surrounds every document window of one request, and how many document tokens fit."""

    before: list[int]
    after: list[int]
    room: int
    fixed: int  # tokens of the pair that are not the document's (for the too-long message)


class Family:
    """One family's template; built once per model from its tokenizer and settings."""

    name: ClassVar[FamilyName]
    decoder: ClassVar[bool] = True  # a causal LM scored at its last real token (no token types)
    takes_instruction: ClassVar[bool] = False

    def __init__(self, tokenizer: PreTrainedTokenizerBase, settings: Settings) -> None:
        self.max_length = settings.max_length
        self.query_max_length = settings.effective_query_max_length
        self.instruction = settings.instruction

    @property
    def score_tokens(self) -> tuple[int, ...]:
        """Vocabulary ids whose last-token logits make the score: (a,) -> a; (a, b) -> a - b."""
        return ()

    def frame(self, tokenize: Tokenize, query: str, instruction: str | None) -> Frame:
        raise NotImplementedError

    def document_text(self, document: str) -> str:
        return document

    def join_all(self, tokenizer: PreTrainedTokenizerBase, frame: Frame,
                 windows: list[list[int]]) -> list[tuple[list[int], list[int] | None]]:
        """input_ids (and token_type_ids, for the families that have them) of each (query, window) pair."""
        return [(frame.before + window + frame.after, None) for window in windows]


class CrossEncoder(Family):
    """FlagReranker.compute_score: [CLS] query [SEP] document [SEP], the query cut to query_max_length."""

    name = "cross-encoder"
    decoder = False

    def __init__(self, tokenizer: PreTrainedTokenizerBase, settings: Settings) -> None:
        super().__init__(tokenizer, settings)
        self._special_tokens = tokenizer.num_special_tokens_to_add(pair=True)
        self.token_types = "token_type_ids" in tokenizer.model_input_names

    def frame(self, tokenize: Tokenize, query: str, instruction: str | None) -> Frame:
        query_ids = tokenize(query, self.query_max_length)
        fixed = len(query_ids) + self._special_tokens
        return Frame(query_ids, [], self.max_length - fixed, fixed)

    def join_all(self, tokenizer: PreTrainedTokenizerBase, frame: Frame,
                 windows: list[list[int]]) -> list[tuple[list[int], list[int] | None]]:
        """FlagEmbedding's prepare_for_model_compat for every pair, in one tokenizer call.

        Under transformers 5 (no `prepare_for_model`) the reference decodes the query's and the window's ids
        and tokenises the two texts as a pair; decoding all windows and tokenising all pairs in one batched
        call is that same computation, in Rust and at about half the cost (docs/BENCHMARKS.md). A tokenizer
        that still has `prepare_for_model` (transformers 4), and an empty document (which the reference's
        single call tokenises as no second text at all), take the reference call pair by pair.
        """
        from FlagEmbedding.utils.tokenizer_compat import prepare_for_model_compat

        def reference(window: list[int]):
            return prepare_for_model_compat(tokenizer, frame.before, window, truncation="only_second",
                                            max_length=self.max_length, padding=False)

        if callable(getattr(tokenizer, "prepare_for_model", None)):
            return [self._ids_and_types(reference(window)) for window in windows]
        texts = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
        query = tokenizer.decode(frame.before, **texts)
        documents = tokenizer.batch_decode(windows, **texts) if windows else []
        batched = [i for i, text in enumerate(documents) if text]
        batch = tokenizer([query] * len(batched), [documents[i] for i in batched], truncation="only_second",
                          max_length=self.max_length, padding=False) if batched else {}
        joined = {i: self._ids_and_types({key: values[row] for key, values in batch.items()})
                  for row, i in enumerate(batched)}
        return [joined[i] if i in joined else self._ids_and_types(reference(window))
                for i, window in enumerate(windows)]

    def _ids_and_types(self, item) -> tuple[list[int], list[int] | None]:
        types = item.get("token_type_ids") if self.token_types else None
        return list(item["input_ids"]), list(types) if types else None


class FlagLLM(Family):
    """FlagLLMReranker.compute_score: [bos] "A: query" \\n "B: document" \\n prompt, scored by the "Yes"
    logit; the passage is cut to max_length and the pair to max_length + the separator and the prompt."""

    name = "llm"
    takes_instruction = True
    DEFAULT_PROMPT = ("Given a query A and a passage B, determine whether the passage contains an answer to the "
                      "query by providing a prediction of either 'Yes' or 'No'.")

    def __init__(self, tokenizer: PreTrainedTokenizerBase, settings: Settings) -> None:
        super().__init__(tokenizer, settings)
        bos = tokenizer.bos_token_id
        self._bos = [bos] if bos is not None and bos != tokenizer.pad_token_id else []
        self._sep = tokenizer("\n", add_special_tokens=False)["input_ids"]
        self._yes = tokenizer("Yes", add_special_tokens=False)["input_ids"][0]

    @property
    def score_tokens(self) -> tuple[int, ...]:
        return (self._yes,)

    def frame(self, tokenize: Tokenize, query: str, instruction: str | None) -> Frame:
        prompt = tokenize(instruction or self.instruction or self.DEFAULT_PROMPT, None)
        head = self._bos + tokenize("A: " + query, self.query_max_length)
        # prepare_for_model(head, sep + passage, only_second, max_length + len(sep) + len(prompt))
        room = min(self.max_length, self.max_length + len(prompt) - len(head))
        before, after = head + self._sep, self._sep + prompt
        return Frame(before, after, room, len(before) + len(after))

    def document_text(self, document: str) -> str:
        return "B: " + document


class Qwen3(Family):
    """Qwen3-Reranker as its model card scores it (format_instruction, process_inputs, compute_logits):
    prefix + "<Instruct>: i\\n<Query>: q\\n<Document>: d" (cut to max_length - prefix - suffix) + suffix,
    P(yes) = softmax(logit(no), logit(yes))[1] = sigmoid(logit(yes) - logit(no)) at the last token.

    The card tokenises the formatted text as one string; the head (up to "<Document>:") and " document" are
    tokenised apart here, which gives the same ids with a byte-level BPE (":" always ends a pre-token).
    """

    name = "qwen3"
    takes_instruction = True
    PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
              "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n")
    SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, settings: Settings) -> None:
        super().__init__(tokenizer, settings)
        self._prefix = tokenizer(self.PREFIX, add_special_tokens=False)["input_ids"]
        self._suffix = tokenizer(self.SUFFIX, add_special_tokens=False)["input_ids"]
        self._yes, self._no = (tokenizer.convert_tokens_to_ids(word) for word in ("yes", "no"))

    @property
    def score_tokens(self) -> tuple[int, ...]:
        return (self._yes, self._no)

    def frame(self, tokenize: Tokenize, query: str, instruction: str | None) -> Frame:
        text = (f"<Instruct>: {instruction or self.instruction or self.DEFAULT_INSTRUCTION}\n"
                f"<Query>: {query}\n<Document>:")
        # the card cuts the whole text from its end; a query longer than query_max_length is cut here instead,
        # so that the document always keeps some room
        head = tokenize(text, self.query_max_length)
        before = self._prefix + head
        fixed = len(before) + len(self._suffix)
        return Frame(before, self._suffix, self.max_length - fixed, fixed)

    def document_text(self, document: str) -> str:
        return " " + document


class LayerwiseLLM(FlagLLM):
    """LayerWiseFlagLLMReranker.compute_score (bge-reranker-v2-minicpm-layerwise): FlagLLMReranker's template and
    prompt, scored by the cut-off layer's one-output head (local_server.backends.layerwise)."""

    name = "llm-layerwise"


class LightweightLLM(LayerwiseLLM):
    """LightWeightFlagLLMReranker.compute_score (bge-reranker-v2.5-gemma2-lightweight): the same template with
    its own prompt; the backend compresses the passage, so each pair carries its query and prompt lengths."""

    name = "llm-lightweight"
    DEFAULT_PROMPT = "Predict whether passage B contains an answer to query A."


FAMILIES: dict[str, type[Family]] = {family.name: family
                                     for family in (CrossEncoder, FlagLLM, LayerwiseLLM, LightweightLLM, Qwen3)}


def family_for(name: str, tokenizer: PreTrainedTokenizerBase, settings: Settings) -> Family:
    """The family `name`'s template for one model: built once, when the model loads (LoadedModel.family)."""
    return FAMILIES[name](tokenizer, settings)


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the model's config.json says before anything is loaded."""

    family: FamilyName
    remote_code: bool  # the config maps its classes to the model's own code (auto_map)


def read_model_facts(model: str) -> ModelFacts:
    """The family, detected from the architectures, model_type and name in the model's config.json."""
    config = _config_dict(model)
    architectures = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type", "")).lower()
    name = model.lower()
    family: FamilyName
    if any("LayerWise" in a for a in architectures) or "layerwise" in name:
        family = "llm-layerwise"
    elif any("CostWise" in a for a in architectures) or "lightweight" in name:
        family = "llm-lightweight"
    elif any(a.endswith("ForCausalLM") for a in architectures):
        family = "qwen3" if model_type == "qwen3" or "qwen3-reranker" in name else "llm"
    else:
        family = "cross-encoder"
    return ModelFacts(family, "auto_map" in config)


def _config_dict(model: str) -> dict[str, Any]:
    """config.json of a local folder, or of a hub id (from the cache when offline); {} when unreadable,
    so that the loader's own error message (explain_load_failure) is the one the user sees."""
    try:
        return json.loads((model_folder(model, allow_patterns=["config.json"]) / "config.json").read_text(
            encoding="utf-8"))
    except (OSError, ValueError, ImportError):  # huggingface_hub's not-found and offline errors are OSErrors
        return {}
