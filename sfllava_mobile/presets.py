"""Named model configs. SF-LLaVA v1 presets are exact; SF-LLaVA-1.5 presets are reconstructions.

Every value that is inferred rather than read in the authors' code or paper is listed in the
preset's ``inferred`` tuple (dotted field paths) and can be overridden, e.g.
``get("sf-llava-1.5-1b", **{"slowfast.separator": True})``.
"""

from __future__ import annotations

from typing import Any, Callable

from .config import (CLIP_MEAN, CLIP_STD, ModelConfig, ProjectorConfig, PromptConfig, SlowFastConfig,
                     TextConfig, VisionConfig, apply_overrides)
from .errors import ConfigError

V1_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
             "The assistant gives helpful, detailed, and polite answers to the human's questions.")
V1_SLOWFAST = "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4"
QWEN_ENDOFTEXT, QWEN_IM_START, QWEN_IM_END = 151643, 151644, 151645


def _clip_l14_336() -> VisionConfig:
    return VisionConfig(kind="clip", image_size=336, patch_size=14, hidden_size=1024, num_layers=24,
                        num_heads=16, intermediate_size=4096, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                        select_layer=-2, drop_cls=True, position_grid=24, image_mean=CLIP_MEAN, image_std=CLIP_STD)


def _sf_llava_v1(name: str, text: TextConfig, prompt: PromptConfig, inferred: tuple[str, ...] = ()) -> ModelConfig:
    """LLaVA-NeXT + CLIP-L/14-336, 50 frames, the authors' v1 pathways."""
    return ModelConfig(
        name=name, family="v1", vision=_clip_l14_336(), slowfast=SlowFastConfig.from_string(V1_SLOWFAST),
        projector=ProjectorConfig(1024, text.hidden_size), text=text, prompt=prompt,
        num_frames=50, frame_rule="segment_midpoint", max_new_tokens=128, context_length=4096, inferred=inferred)


def _sf_llava_7b() -> ModelConfig:
    return _sf_llava_v1(
        "sf-llava-7b",
        TextConfig(family="llama", vocab_size=32000, hidden_size=4096, num_layers=32, num_heads=32,
                   num_kv_heads=32, intermediate_size=11008, rms_norm_eps=1e-5, rope_theta=10000.0,
                   tie_word_embeddings=False, max_position_embeddings=4096,
                   rope_scaling={"rope_type": "dynamic", "factor": 2.0}, bos_id=1, eos_ids=(2,)),
        PromptConfig("vicuna_v1", system=V1_SYSTEM, answer_prefix="In the video,"))


def _sf_llava_34b() -> ModelConfig:
    # Yi-34B fields beyond SPEC's (heads, FFN width, rope theta, eps, special ids) come from its
    # public config, not from the SF-LLaVA code: listed as inferred.
    return _sf_llava_v1(
        "sf-llava-34b",
        TextConfig(family="llama", vocab_size=64000, hidden_size=7168, num_layers=60, num_heads=56,
                   num_kv_heads=8, intermediate_size=20480, rms_norm_eps=1e-5, rope_theta=5e6,
                   tie_word_embeddings=False, max_position_embeddings=4096,
                   rope_scaling={"rope_type": "dynamic", "factor": 2.0}, bos_id=1, eos_ids=(7, 2)),
        PromptConfig("chatml", system="Answer the questions.", answer_prefix="In the video,"),
        inferred=("text.num_heads", "text.intermediate_size", "text.rope_theta", "text.rms_norm_eps",
                  "text.eos_ids", "prompt.system"))


_V15_INFERRED = (
    "vision.image_size", "frame_rule", "num_frames", "slowfast.slow_rule", "slowfast.slow_stride", "slowfast.slow_pool",
    "slowfast.slow_kernel", "slowfast.fast_grid", "slowfast.separator", "slowfast.pool_position",
    "projector.act", "prompt.template", "prompt.system", "text.family", "text.vocab_size",
    "text.hidden_size", "text.num_layers", "text.num_heads", "text.num_kv_heads", "text.intermediate_size",
    "text.tie_word_embeddings", "text.rope_theta", "text.max_position_embeddings", "text.eos_ids",
    "context_length", "vision.position_interpolation",
)


def _oryx_vit() -> VisionConfig:
    return VisionConfig(kind="siglip", image_size=384, patch_size=16, hidden_size=1152, num_layers=27,
                        num_heads=16, intermediate_size=4304, hidden_act="gelu", layer_norm_eps=1e-6,
                        select_layer=-1, drop_cls=False, position_grid=128, position_interpolation="bilinear",
                        image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5))


def _sf_llava_15(size: str, hidden: int, layers: int, heads: int, kv: int, ffn: int, vocab: int,
                 tied: bool) -> ModelConfig:
    return ModelConfig(
        name=f"sf-llava-1.5-{size}", family="1.5", vision=_oryx_vit(),
        # Every 4th frame: 32 slow frames at 128 (the paper's budget), and the same ratio at any T.
        slowfast=SlowFastConfig(slow_frames=32, slow_rule="stride", slow_stride=4, slow_pool="2d_avg",
                                slow_kernel=(2, 2), fast_grid=(6, 6), separator=False, pool_position="after_projector"),
        projector=ProjectorConfig(1152, hidden, act="gelu"),
        text=TextConfig(family="qwen2", vocab_size=vocab, hidden_size=hidden, num_layers=layers, num_heads=heads,
                        num_kv_heads=kv, intermediate_size=ffn, rms_norm_eps=1e-6, rope_theta=1e6,
                        tie_word_embeddings=tied, max_position_embeddings=32768, bos_id=None,
                        eos_ids=(QWEN_IM_END, QWEN_ENDOFTEXT)),
        prompt=PromptConfig("chatml", system="You are a helpful assistant."),
        num_frames=128, frame_rule="uniform", max_new_tokens=128, context_length=32768,
        inferred=_V15_INFERRED,
    )


def _tiny() -> ModelConfig:
    """SF-LLaVA-1.5-shaped, seconds on a laptop: SigLIP-style ViT whose 16x16 position table is
    resized to its 8x8 grid (exercises native resolution), Qwen2 decoder with tied embeddings."""
    return ModelConfig(
        name="tiny", family="1.5",
        vision=VisionConfig(kind="siglip", image_size=64, patch_size=8, hidden_size=64, num_layers=2, num_heads=4,
                            intermediate_size=136, hidden_act="gelu", layer_norm_eps=1e-6, select_layer=-1,
                            drop_cls=False, position_grid=16, position_interpolation="bilinear",
                            image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5)),
        slowfast=SlowFastConfig(slow_frames=4, slow_rule="linspace", slow_pool="2d_avg", slow_kernel=(2, 2),
                                fast_grid=(2, 2), separator=False, pool_position="after_projector"),
        projector=ProjectorConfig(64, 64),
        text=TextConfig(family="qwen2", vocab_size=512, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                        intermediate_size=128, rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=True,
                        max_position_embeddings=1024, bos_id=None, eos_ids=(511, 509)),
        prompt=PromptConfig("chatml", system="You are a helpful assistant."),
        num_frames=8, frame_rule="uniform", max_new_tokens=16, context_length=1024,
    )


def _tiny_v1() -> ModelConfig:
    """SF-LLaVA-v1-shaped: CLIP tower (select -2, CLS dropped), 1-D max slow pool, LLaMA decoder."""
    return ModelConfig(
        name="tiny-v1", family="v1",
        vision=VisionConfig(kind="clip", image_size=56, patch_size=7, hidden_size=64, num_layers=3, num_heads=4,
                            intermediate_size=128, hidden_act="quick_gelu", layer_norm_eps=1e-5, select_layer=-2,
                            drop_cls=True, position_grid=8),
        slowfast=SlowFastConfig.from_string("slowfast-slow_4frms_spatial_1d_max_pool-fast_2x2"),
        projector=ProjectorConfig(64, 64),
        text=TextConfig(family="llama", vocab_size=512, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=4,
                        intermediate_size=128, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                        max_position_embeddings=1024, bos_id=1, eos_ids=(2,)),
        prompt=PromptConfig("vicuna_v1", system=V1_SYSTEM, answer_prefix="In the video,"),
        num_frames=12, frame_rule="segment_midpoint", max_new_tokens=16, context_length=1024,
    )


_PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "tiny": _tiny,
    "tiny-v1": _tiny_v1,
    "sf-llava-7b": _sf_llava_7b,
    "sf-llava-34b": _sf_llava_34b,
    "sf-llava-1.5-1b": lambda: _sf_llava_15("1b", 1536, 28, 12, 2, 8960, 151936, True),
    "sf-llava-1.5-3b": lambda: _sf_llava_15("3b", 2048, 36, 16, 2, 11008, 151936, True),
    "sf-llava-1.5-7b": lambda: _sf_llava_15("7b", 3584, 28, 28, 4, 18944, 152064, False),
}


def names() -> list[str]:
    """All preset names."""
    return list(_PRESETS)


def get(name: str, **overrides: Any) -> ModelConfig:
    """The preset ``name``, with dotted or ``__``-separated field overrides applied and validated."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(_PRESETS)}")
    return apply_overrides(_PRESETS[name](), overrides)
