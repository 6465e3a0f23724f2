"""int8 that is checked where it runs: quantisation settings that suit this CPU, and a comparison with fp32
on the model itself before int8 is served.

Dynamic int8 multiplies uint8 activations by int8 weights. On x86-64 CPUs without VNNI, ONNX Runtime does
that with VPMADDUBSW, which adds two products into 16 bits and saturates (ONNX Runtime's quantisation
guide: use `reduce_range` or U8U8 there). Which kernel a CPU gets is not assumed from its name: one
MatMulInteger whose exact answer overflows 16 bits is run, and where it comes back saturated the weights
are quantised to 7 bits (`reduce_range`), which cannot saturate. Even then int8 is only served when, on
fixed check pairs, its scores stay within RERANK_INT8_MAX_SCORE_DIFF of fp32's and it orders at least
RERANK_INT8_MIN_RANK_AGREEMENT of the document pairs as fp32 does; otherwise fp32 is served, with the
reason in one log line and in /info.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rerank_kit.scores import sigmoids

# The variants, as they name cache entries: full-range int8 weights, or 7-bit ones for saturating CPUs.
FULL_RANGE, REDUCED_RANGE = "int8", "int8-reduce-range"

# Six queries with five documents each, from plainly relevant to unrelated, some long enough to truncate.
CHECK_SETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("what is the capital of france", (
        "Paris is the capital and largest city of France.",
        "France is a country in Western Europe with several overseas regions.",
        "The Eiffel Tower was built for the 1889 World's Fair in Paris.",
        "Berlin is the capital of Germany.",
        "Bananas are rich in potassium.")),
    ("how do I reset my password", (
        "To reset your password, open Settings, choose Security and click Reset password. " * 3,
        "Passwords should be long and unique for every account.",
        "Contact support if you cannot sign in after resetting.",
        "Our office is closed on public holidays.",
        "The river rose above the old stone bridge after the storm.")),
    ("symptoms of dehydration", (
        "Thirst, dark urine, tiredness and dizziness are common signs of dehydration.",
        "Drink water regularly, especially in hot weather or during exercise.",
        "Electrolytes help the body keep its fluid balance.",
        "The marathon starts at nine in the morning.",
        "A database index speeds up lookups on a column.")),
    ("python sort a list of dictionaries by key", (
        "Use sorted(items, key=lambda d: d['name']) to sort a list of dicts by the 'name' key.",
        "list.sort() sorts a list in place and returns None.",
        "Dictionaries keep insertion order since Python 3.7.",
        "Java's Collections.sort works on lists of comparable objects.",
        "The recipe needs two cups of flour and one egg.")),
    ("when was the first moon landing", (
        "Apollo 11 landed on the Moon on 20 July 1969; Neil Armstrong stepped out first.",
        "The Moon orbits the Earth about once every 27 days.",
        "NASA was founded in 1958.",
        "Mars has two small moons, Phobos and Deimos.",
        "Invoices are due thirty days after delivery.")),
    ("best way to store fresh herbs", (
        "Keep soft herbs like basil in a glass of water on the counter; wrap hardy herbs in a damp towel. " * 4,
        "Dried herbs lose their flavour after about a year.",
        "Basil grows well in warm, sunny spots.",
        "Freezers should be kept at minus eighteen degrees Celsius.",
        "The train to the airport leaves every fifteen minutes.")),
)


@dataclass(frozen=True)
class Int8Check:
    """int8 against fp32 on the check pairs: the largest score (sigmoid) difference and the share of
    document pairs, within each query, that both order the same way."""

    max_score_diff: float
    rank_agreement: float
    max_score_diff_allowed: float
    rank_agreement_required: float

    @property
    def passed(self) -> bool:
        return (self.max_score_diff <= self.max_score_diff_allowed  # NaN fails both
                and self.rank_agreement >= self.rank_agreement_required)

    def describe(self) -> str:
        return (f"int8 scores differ from fp32's by up to {self.max_score_diff:.3f} (allowed "
                f"{self.max_score_diff_allowed:g}) and order {self.rank_agreement:.0%} of document pairs as fp32 "
                f"does (required {self.rank_agreement_required:.0%}) on the check pairs, on this CPU")


def compare(fp32_logits: Sequence[np.ndarray], int8_logits: Sequence[np.ndarray], *, max_score_diff: float,
            min_rank_agreement: float) -> Int8Check:
    """The check's figures from each query's logits under both precisions."""
    differences, agreeing, pairs = [0.0], 0, 0
    for reference, candidate in zip(fp32_logits, int8_logits, strict=True):
        differences.append(float(np.abs(np.array(sigmoids(candidate)) - np.array(sigmoids(reference))).max()))
        for i in range(len(reference)):
            for j in range(i + 1, len(reference)):
                pairs += 1
                agreeing += bool(np.sign(reference[i] - reference[j]) == np.sign(candidate[i] - candidate[j]))
    return Int8Check(float(np.max(differences)), agreeing / pairs if pairs else 1.0, max_score_diff, min_rank_agreement)


@functools.cache
def saturates() -> bool:
    """Whether this CPU's int8 kernel saturates: one uint8 x int8 product (255 x 127, summed over 64) whose
    exact value overflows 16 bits, run through ONNX Runtime's MatMulInteger."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    depth, width = 64, 16
    weights = numpy_helper.from_array(np.full((depth, width), 127, dtype=np.int8), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "saturation-probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, depth])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, width])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (product,) = session.run(None, {"a": np.full((4, depth), 255, dtype=np.uint8)})
    return bool((product != depth * 255 * 127).any())


def variant_for_this_cpu() -> str:
    return REDUCED_RANGE if saturates() else FULL_RANGE


def quantize(source: Path, target: Path, *, variant: str = FULL_RANGE, keep_fp32: Sequence[str] = ()) -> None:
    """Dynamic int8 quantisation, weights per output channel (7-bit for REDUCED_RANGE), the named nodes in fp32.

    The server keeps no node in fp32: the sensitivity sweep of `python -m benchmarks.quality` on the trained
    MiniLM-L6 found no part whose fp32 buys back much (docs/BENCHMARKS.md, "Quality"); the error is spread
    over every layer, so int8 is all or nothing.
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if variant not in (FULL_RANGE, REDUCED_RANGE):
        raise ValueError(f"unknown int8 variant {variant!r}")
    # the fused graph's com.microsoft ops defeat shape inference: their outputs are float32
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=variant == REDUCED_RANGE, nodes_to_exclude=list(keep_fp32),
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
