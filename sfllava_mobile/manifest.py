"""The bundle contract as typed, versioned models: ``manifest.json`` and ``golden.json``.

These models are the one definition of what Python writes and the Swift and Kotlin apps read.
The JSON Schemas under ``schema/`` are generated from them (``python -m sfllava_mobile.manifest
--write schema``) and committed; tests check the committed files match the models and validate
every exported bundle against them. Unknown keys are rejected, so a field added here without a
schema bump and a regenerated schema fails the suite.

Backend-specific parts live in one section per backend (``executorch`` / ``coreml``), including
how the vision encoder's input is laid out, so nothing shared assumes one backend's artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import __version__
from .errors import SfllavaError

SCHEMA_VERSION = 4
METHOD_NAMES = ("vision_encoder", "token_embedding", "text_decoder")
Backend = Literal["executorch", "coreml"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


# ---------------------------------------------------------------- shared sections

class ModelInfo(_Model):
    name: str
    family: Literal["v1", "1.5"]
    inferred_fields: list[str] = Field(description="config fields the loader inferred rather than read")
    config: dict[str, Any] = Field(description="the full ModelConfig (sfllava_mobile.config) as a dict")


class Normalization(_Model):
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)
    formula: str
    in_graph: bool = Field(description="true: the vision encoder normalizes; the app passes 0..255 values")


class Video(_Model):
    frames: int = Field(ge=1)
    frame_height: int = Field(ge=1)
    frame_width: int = Field(ge=1)
    sampling_rule: Literal["uniform", "segment_midpoint"]
    sampling_formula: str
    resize: str
    normalization: Normalization


class TokenCounts(_Model):
    slow_frames: int
    slow: int
    separator: int
    fast: int
    total: int


class SlowFast(_Model):
    config: dict[str, Any]
    token_counts: TokenCounts


class Prompt(_Model):
    template: str
    text_before_video: str
    text_after_video: str
    question_placeholder: str
    system: str | None
    answer_prefix: str
    bos_id: int | None
    eos_ids: list[int] = Field(min_length=1)
    eos_pieces: list[str] = Field(min_length=1, description="the text the runner's token callback receives for each "
                                                            "eos id, in the same order: how an app that sees only "
                                                            "pieces recognises the end of the answer")
    tokenize: str
    text_next_turn: str = Field(description="a follow-up question's text (question_placeholder substituted): closes "
                                            "the previous answer and opens the next user turn; the runner gets it as "
                                            "one text input at its current position, without reset")


class TensorSpec(_Model):
    name: str | None = Field(None, description="the input/output name where the backend names them (Core ML)")
    dtype: Literal["uint8", "int32", "int64", "float16", "float32"]
    shape: list[int | str] = Field(description="ints, or a symbolic dimension: 'S' or a range 'lo..hi'")
    layout: str | None = Field(None, description="e.g. 'tall_image': the T frames channel-planar, stacked along height")
    meaning: str | None = None


class Method(_Model):
    artifact: str = Field(description="the bundle file that holds this method")
    function: str | None = Field(None, description="Core ML: the function(s) of a multifunction package")
    inputs: list[TensorSpec]
    output: TensorSpec


class Context(_Model):
    max_seq_len: int = Field(ge=1, description="most rows one text_decoder call takes")
    max_context_len: int = Field(ge=1, description="KV-cache positions")
    text_allowance: int
    max_new_tokens: int
    turns: int = Field(ge=1, description="questions the default context was sized for (the first and its follow-ups, "
                                         "each with a full answer); max_context_len is what apps check")
    prefill_chunk: int | None = Field(None, description="Core ML: rows per prefill call; remainders go through decode")


class CoverageRow(_Model):
    component: Literal["vision", "projector", "decoder", "embedding"]
    name: str
    kind: str
    shape: list[int]
    scheme: str
    bits: int | None
    group: int | None = Field(description="weights per scale; 0 = per output channel")
    bits_per_weight: float
    note: str = ""


class QuantSummary(_Model):
    layers: int
    quantized: int
    float: int
    fallbacks: int
    weights: int
    bits_per_weight: float


class HeldOutQuality(_Model):
    text: str = Field(description="shipped held-out text the artifact was scored on")
    n_ctx: int
    chunks: int
    scored_tokens: int = Field(description="teacher-forced positions scored: the second half of each chunk")
    mean_kl: float = Field(description="mean KL(float || artifact) over scored positions")
    same_top1: float = Field(description="share of scored positions whose top-1 token equals the float model's")
    ppl: float = Field(description="the artifact's perplexity on the true next tokens")
    ppl_reference: float = Field(description="the float model's perplexity on the same positions")


class Calibration(_Model):
    method: str = Field(description="fold method: awq (searched alpha per layer group) or smoothquant-ALPHA")
    text: str
    text_sha256: str
    tokens: int
    groups_total: int
    groups_scaled: int
    layer_error_ratio: float = Field(description="quantized layer-group output error after / before the fold")
    seconds: float
    scales: str = Field(description="bundle file holding the folded scales (verify re-applies them)")
    quality: HeldOutQuality | None = None


class Quantization(_Model):
    recipe: str
    description: str
    summary: QuantSummary
    coverage: list[CoverageRow]
    calibration: Calibration | None = None


class Size(_Model):
    artifact_bytes: dict[str, int] = Field(description="bytes per artifact file or package")
    total_bytes: int
    weights: int = Field(description="parameters the recipe covers")
    floor_bytes: int = Field(description="the recipe's information floor: weights x bits per weight / 8")
    ratio_to_floor: float | None


class Export(_Model):
    options: dict[str, Any] = Field(description="the backend options the bundle was exported with")
    timings_s: dict[str, float]
    peak_rss_gb: dict[str, float]
    weights_dtype: dict[str, str]
    source: str | None
    overrides: dict[str, Any]
    vision_tower: str | None


# ---------------------------------------------------------------- backend sections

class Delegation(_Model):
    delegate_calls: int
    outside_delegate: dict[str, int]


class KernelLibraryUse(_Model):
    name: str
    provides: str
    cmake: str
    ios: str
    android: str
    python: str | None
    methods: list[str]
    operators: list[str]


class ExecuTorchSection(_Model):
    program: str = Field(description="the .pte file; every method is in it")
    data: str | None = Field(default=None, description="ExecuTorch external data file (.ptd) the program's "
                             "constants partly live in; the runner must be given it (its data path). Set when "
                             "a tied table is stored once (export --shared-table)")
    metadata_methods: dict[str, Any] = Field(description="constant methods the stock runner reads")
    delegation: dict[str, Delegation]
    kernel_libraries: list[KernelLibraryUse]


class CoreMLState(_Model):
    name: str = Field(description="the state's name in the package (the buffer name, dots as underscores)")
    dtype: Literal["float16"]
    shape: list[int]


class CoreMLSection(_Model):
    minimum_deployment_target: str
    compute_precision: Literal["float16", "float32"]
    packages: dict[str, str] = Field(description="method -> .mlpackage folder")
    functions: dict[str, list[str]] = Field(description="package -> its functions")
    states: list[CoreMLState]
    call_sequence: str
    mil_ops: dict[str, dict[str, int]] = Field(description="per package: MIL op type -> count")
    slowfast_pool_ops: int = Field(description="MIL ops carrying the slowfast_pool composite's name prefix")
    weight_bin_bytes: dict[str, int] = Field(description="per package: bytes of its weight.bin (the weights alone, "
                                                         "without the program text)")
    coremltools_version: str


# ---------------------------------------------------------------- parity and the manifest

class ParitySummary(_Model):
    passed: bool = Field(alias="pass")
    recipe: str
    backend: str
    engine: str = Field(description="what ran the artifact for this check")
    cases: int
    steps: int
    teacher_tokens: int
    reference_dtype: dict[str, str]
    summary: dict[str, dict[str, dict[str, float]]]
    runner_tokens_equal: bool | None = None


class Manifest(_Model):
    schema_version: Literal[4]
    toolkit_version: str
    backend: Backend
    created_utc: str
    model: ModelInfo
    video: Video
    slowfast: SlowFast
    visual_tokens: int = Field(ge=1)
    prompt: Prompt
    artifacts: dict[str, str] = Field(description="role -> file in the bundle (tokenizer, golden, and the backend's)")
    methods: dict[Literal["vision_encoder", "token_embedding", "text_decoder"], Method]
    context: Context
    quantization: Quantization
    size: Size
    export: Export
    executorch: ExecuTorchSection | None = None
    coreml: CoreMLSection | None = None
    parity: ParitySummary | None = None

    @model_validator(mode="after")
    def _backend_section(self) -> "Manifest":
        if getattr(self, self.backend) is None:
            raise ValueError(f"backend {self.backend!r} needs its '{self.backend}' section")
        other = "coreml" if self.backend == "executorch" else "executorch"
        if getattr(self, other) is not None:
            raise ValueError(f"a {self.backend} bundle has no '{other}' section")
        if set(self.methods) != set(METHOD_NAMES):
            raise ValueError(f"methods must be exactly {METHOD_NAMES}")
        return self


# ---------------------------------------------------------------- golden vectors

class FrameIndexCases(_Model):
    frames: int
    rule: Literal["uniform", "segment_midpoint"]
    cases: dict[str, list[int]] = Field(description="total frames -> sampled indices")


class PatternFrame(_Model):
    formula: str
    height: int
    width: int


class ResizeSmall(_Model):
    to: list[int]
    uint8_hwc: list[int]


class ResizeModel(_Model):
    to: list[int]
    sum: int
    first_row_uint8_hwc: list[int]


class Normalized(_Model):
    sum: float
    first_values_chw: list[float]


class RunnerInput(_Model):
    kind: Literal["tokens", "text", "image"]
    tokens: list[int] | None = None
    text: str | None = None


class GoldenPrompt(_Model):
    question: str
    ids_before_video: list[int]
    ids_after_video: list[int]
    text_before_video: str = Field(description="the manifest's text_before_video as the runner gets it")
    text_after_video: str = Field(description="text_after_video with the question substituted")
    runner_inputs: list[RunnerInput] = Field(description="the ordered inputs an app gives the stock runner "
                                                         "(the image is the packed clip)")


class PackedClip(_Model):
    formula: str = Field(description="uint8 value of frame t, row y, column x, channel c (before packing)")
    frames: int
    height: int
    width: int
    layout: str
    bytes: int
    sha256: str
    first_bytes: list[int] = Field(description="the first 64 packed bytes")


class GoldenGreedy(_Model):
    question: str
    clip: str
    clip_frames: int
    engine: str
    max_new_tokens: int
    tokens: list[int]
    image_sha256: str = Field(description="sha256 of the packed clip (tall image) the tokens were produced from")


class GoldenConversation(_Model):
    """Two questions about the golden clip in one conversation, run by the artifact as the app runs it."""

    questions: list[str] = Field(min_length=2, max_length=2)
    text_next_turn: str = Field(description="the second question's runner text (prompt.text_next_turn substituted)")
    ids_next_turn: list[int]
    max_new_tokens: int
    turn1_tokens: list[int] = Field(description="the first answer (the same as greedy.tokens)")
    turn1_fed: int = Field(description="how many of turn1_tokens the cache holds: all after an EOS, all but the "
                                       "last when the answer hit max_new_tokens (the runner does not feed it)")
    turn2_tokens: list[int]
    positions: dict[Literal["clip", "turn1", "turn2"], int] = Field(
        description="cache positions in use after the clip's prefill and after each turn")


class Golden(_Model):
    schema_version: Literal[4]
    frame_indices: FrameIndexCases
    frame_indices_segment_midpoint: FrameIndexCases
    pattern_frame: PatternFrame
    resize_small: ResizeSmall
    resize_model: ResizeModel
    normalized_model: Normalized
    packed_clip: PackedClip
    prompt: GoldenPrompt
    greedy: GoldenGreedy
    conversation: GoldenConversation


# ---------------------------------------------------------------- bench reports

class EngineRun(_Model):
    """One engine's stage timings on one clip (seconds, tokens/s, MB). Keys an engine cannot
    measure are left out (the phone runner times vision and prefill together, for example)."""

    decode_video_s: float | None = None
    preprocess_s: float | None = None
    load_s: float | None = None
    vision_encoder_s: float | None = None
    prompt_tokens: int | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    generated_tokens: int | None = None
    prefill_tokens_per_second: float | None = None
    decode_tokens_per_second: float | None = None
    time_to_first_token_s: float | None = None
    followup_prompt_tokens: int | None = Field(None, description="ids a follow-up question's turn prefilled")
    followup_time_to_first_token_s: float | None = Field(
        None, description="a follow-up question about the same clip, asked after the first answer: its turn's "
                          "prefill and first token (the clip is not encoded or prefilled again)")
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    peak_rss_after_mb: dict[str, float] | None = Field(
        None, description="the process's high-water RSS (MB) right after each stage, in stage order: "
                          "where a long clip's memory goes")
    note: str | None = None


class EngineResult(EngineRun):
    repeats: int | None = Field(None, description="runs behind these numbers (the medians) when more than one")
    runs: list[EngineRun] | None = Field(None, description="every run, in order, when repeats > 1")


class Device(_Model):
    name: str = Field(description="where the numbers were taken: host name or phone model")
    os: str
    abi: str | None = None
    memory_mb: int | None = None


class Bench(_Model):
    """``sfllava-mobile bench --json`` on a host and the apps' benchmark modes on a phone write this."""

    bench_version: Literal[1] = 1
    bundle: str
    backend: Backend
    video: str
    steps: int
    threads: int
    model: str
    recipe: str
    frames: int
    visual_tokens: int
    artifact_bytes: int
    device: Device | None = None
    engines: dict[str, EngineResult]
    engine_notes: dict[str, str]
    artifact_vs_eager: dict[str, float | None] | None = None
    plot: str | None = Field(None, description="the PNG the command line wrote beside the report (--plot)")


# ---------------------------------------------------------------- reading, writing, schemas

def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def _read(path: Path, cls):
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SfllavaError(f"{path.parent} is not a bundle: no {path.name}") from None
    except ValueError as e:
        raise SfllavaError(f"cannot parse {path}: {e}") from None
    if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
        raise SfllavaError(f"{path} has schema_version {data.get('schema_version')!r}; this toolkit "
                           f"(sfllava-mobile {__version__}) reads {SCHEMA_VERSION}: re-export the bundle")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise SfllavaError(f"{path} does not match the bundle schema: {_first_error(e)}") from None


def read_manifest(bundle: str | Path) -> Manifest:
    return _read(Path(bundle) / "manifest.json", Manifest)


def read_golden(bundle: str | Path, name: str = "golden.json") -> Golden:
    return _read(Path(bundle) / name, Golden)


def write(path: Path, model: _Model) -> None:
    path.write_text(json.dumps(model.to_json(), indent=2) + "\n")


SCHEMAS = {"manifest.schema.json": Manifest, "golden.schema.json": Golden, "bench.schema.json": Bench}


def json_schema(cls) -> dict:
    schema = cls.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    version = f"bench-v1" if cls is Bench else f"v{SCHEMA_VERSION}"
    schema["$id"] = f"https://sfllava-mobile/schema/{version}/{cls.__name__.lower()}.schema.json"
    return schema


def write_schemas(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, cls in SCHEMAS.items():
        p = folder / name
        p.write_text(json.dumps(json_schema(cls), indent=2, sort_keys=True) + "\n")
        out.append(p)
    return out


if __name__ == "__main__":  # python -m sfllava_mobile.manifest --write schema
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "--write":
        sys.exit("usage: python -m sfllava_mobile.manifest --write FOLDER")
    for p in write_schemas(sys.argv[2]):
        print(p)
