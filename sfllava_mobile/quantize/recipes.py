"""Named quantization recipes and their validation.

A recipe says, per component (decoder linears, token embedding, vision tower + projector linears),
which scheme to use. Schemes are backend-neutral descriptions; each backend has its own named
recipes (``quantize/torchao.py`` applies them for ExecuTorch, ``quantize/coreml.py`` for Core ML). Bits-per-weight accounting (for size floors) lives here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfllava_mobile.errors import ConfigError


@dataclass(frozen=True)
class Scheme:
    """``weight_bits`` with one scale per ``group`` weights (``0`` = one per output channel);
    ``dynamic_act8``: int8 dynamic activations (8daXw), else weight-only."""

    weight_bits: int
    group: int = 32
    dynamic_act8: bool = True

    def __post_init__(self) -> None:
        if self.weight_bits not in (4, 8):
            raise ConfigError(f"weight_bits must be 4 or 8, got {self.weight_bits}")
        if self.group < 0 or (self.group and self.group & (self.group - 1)):
            raise ConfigError(f"group must be 0 (per channel) or a power of two, got {self.group}")

    @property
    def label(self) -> str:
        g = f"g{self.group}" if self.group else "per-channel"
        if self.dynamic_act8:
            return f"8da{self.weight_bits}w-{g}"
        return f"int{self.weight_bits}-weight-only-{g}"

    def bits_per_weight(self, in_features: int) -> float:
        """Weight bits plus one fp16 scale per group (per-channel: per ``in_features``)."""
        return self.weight_bits + 16 / (self.group or in_features)


FOLD_METHODS = ("awq", "smoothquant-0.5")
WEIGHT_ALGORITHMS = ("rtn", "hqq", "search")


@dataclass(frozen=True)
class Recipe:
    """Per component schemes. ``head`` is the decoder's output layer (``None``: as ``decoder_linear``);
    ``fold``: activation-aware scales folded into the norms before quantizing (``quantize/smooth.py``),
    calibrated on the shipped calibration text; ``weight_algorithm``: how 4-bit scales are chosen
    (``rtn``: group max / 7.5, torchao's default; ``hqq``: torchao's HQQ scale search; ``search``: the
    group max / k with the smallest group error, k in 6.5 .. 8, ``torchao.searched_scales``)."""

    name: str
    decoder_linear: Scheme | None
    embedding: Scheme | None
    vision_linear: Scheme | None
    description: str
    head: Scheme | None = None
    fold: str | None = None
    weight_algorithm: str = "rtn"

    def __post_init__(self) -> None:
        if self.fold is not None and self.fold not in FOLD_METHODS:
            raise ConfigError(f"fold must be one of {', '.join(FOLD_METHODS)}, got {self.fold!r}")
        if self.weight_algorithm not in WEIGHT_ALGORITHMS:
            raise ConfigError(f"weight_algorithm must be one of {', '.join(WEIGHT_ALGORITHMS)}, "
                              f"got {self.weight_algorithm!r}")
        if self.fold is not None and (self.decoder_linear is None or not self.decoder_linear.dynamic_act8):
            raise ConfigError("a fold recipe needs 8-bit dynamic activations on the decoder linears")

    @property
    def is_float(self) -> bool:
        return self.decoder_linear is None and self.embedding is None and self.vision_linear is None

    @property
    def head_scheme(self) -> Scheme | None:
        return self.head if self.head is not None else self.decoder_linear


EXECUTORCH_RECIPES: dict[str, Recipe] = {
    "none": Recipe("none", None, None, None, "float32 everywhere (the parity baseline)"),
    "8da4w": Recipe(
        "8da4w", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(4, 32),
        "int8 dynamic activations + int4 group-32 weights for every linear; 4-bit group-32 embedding"),
    "8da4w-v8": Recipe(
        "8da4w-v8", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(8, 0),
        "as 8da4w, but the vision tower and projector use int8 per-channel weights (8da8w)"),
    "8da4w-e8": Recipe(
        "8da4w-e8", Scheme(4, 32), Scheme(8, 0, dynamic_act8=False), Scheme(4, 32),
        "as 8da4w, with an 8-bit per-channel embedding"),
    "8da4w-awq": Recipe(
        "8da4w-awq", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(4, 32),
        "as 8da4w, plus activation-aware scales (AWQ search per layer group, calibrated on the shipped text) "
        "folded into the norms, and searched 4-bit group scales; same bytes as 8da4w",
        fold="awq", weight_algorithm="search"),
    "8da4w-awq-h8": Recipe(
        "8da4w-awq-h8", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(4, 32),
        "as 8da4w-awq, with an int8 per-channel output layer (8da8w), as llama.cpp's Q4_0 default keeps "
        "its output layer at 8 bits",
        head=Scheme(8, 0), fold="awq", weight_algorithm="search"),
    "8da4w-awq-v8": Recipe(
        "8da4w-awq-v8", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(8, 0),
        "as 8da4w-awq, with int8 per-channel vision tower and projector weights (8da8w): XNNPACK's int8 "
        "per-channel kernels run the compute-bound encoder faster than its 4-bit group kernels on x86 "
        "(README, video time to first token); the tower's weights take twice the bytes",
        fold="awq", weight_algorithm="search"),
    "8da4w-sq": Recipe(
        "8da4w-sq", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(4, 32),
        "as 8da4w, plus SmoothQuant scales (alpha 0.5, calibrated on the shipped text) folded into the norms",
        fold="smoothquant-0.5"),
    "8da4w-h8": Recipe(
        "8da4w-h8", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(4, 32),
        "as 8da4w, with an int8 per-channel output layer (8da8w)", head=Scheme(8, 0)),
    "8da4w-search": Recipe(
        "8da4w-search", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(4, 32),
        "as 8da4w, with each group's 4-bit scale searched (group max / k, k in 6.5..8, least squared error) "
        "instead of max / 7.5; same bytes", weight_algorithm="search"),
    "8da4w-hqq": Recipe(
        "8da4w-hqq", Scheme(4, 32), Scheme(4, 32, dynamic_act8=False), Scheme(4, 32),
        "as 8da4w, with 4-bit scales chosen by torchao's HQQ search instead of the group max",
        weight_algorithm="hqq"),
}
_INT4 = Scheme(4, 32, dynamic_act8=False)
COREML_RECIPES: dict[str, Recipe] = {
    "none": Recipe("none", None, None, None, "float16 weights (the compute precision's own)"),
    "int4": Recipe("int4", _INT4, _INT4, _INT4,
                   "int4 symmetric weights, one scale per block of 32 input channels, for every linear, the "
                   "embedding table and the patch convolution; widths not divisible by 32 take int8 per-channel"),
}
RECIPES: dict[str, dict[str, Recipe]] = {"executorch": EXECUTORCH_RECIPES, "coreml": COREML_RECIPES}


def get(name: str, backend: str = "executorch") -> Recipe:
    """The recipe ``name`` of ``backend``; unknown names list the known ones."""
    table = RECIPES.get(backend)
    if table is None:
        raise ConfigError(f"no recipes for backend {backend!r}; choose one of: {', '.join(RECIPES)}")
    if name not in table:
        raise ConfigError(f"unknown {backend} quantization recipe {name!r}; choose one of: {', '.join(table)}")
    return table[name]
