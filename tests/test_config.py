import pytest

from sfllava_mobile import ConfigError, SlowFastConfig, presets
from sfllava_mobile.config import ModelConfig, apply_overrides


@pytest.mark.parametrize("s", [
    "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4",
    "slowfast-slow_10frms_spatial_1d_avg_pool-fast_4x4",
    "slowfast-slow_8frms_spatial_2d_max_pool-fast_6x6",
    "slowfast-slow_32frms_spatial_2d_avg_pool-fast_3x5",
])
def test_authors_string_round_trip(s):
    cfg = SlowFastConfig.from_string(s)
    assert cfg.to_string() == s and cfg.slow_rule == "linspace"


def test_string_parse_fields():
    cfg = SlowFastConfig.from_string("slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4")
    assert (cfg.slow_frames, cfg.slow_pool, cfg.fast_grid) == (10, "1d_max", (4, 4))


@pytest.mark.parametrize("bad", ["slowfast-slow_10frms_spatial_3d_max_pool-fast_4x4", "slow_10", "",
                                 "slowfast-slow_xfrms_spatial_1d_max_pool-fast_4x4"])
def test_bad_strings_name_the_grammar(bad):
    with pytest.raises(ConfigError, match=r"slowfast-slow_\{N\}frms"):
        SlowFastConfig.from_string(bad)


def test_configs_without_a_string_form_say_why():
    with pytest.raises(ConfigError, match="no string form"):
        SlowFastConfig(slow_rule="stride").to_string()


@pytest.mark.parametrize("field,value,message", [
    ("slowfast.slow_pool", "3d_max", "slowfast.slow_pool must be one of"),
    ("slowfast.fast_grid", "30x30", "fast_grid 30x30 is larger than the 24x24 patch grid"),
    ("slowfast.slow_kernel", "25x2", "slow_kernel 25x2 is larger"),
    ("vision.image_size", 390, "not a multiple of patch_size 16"),
    ("vision.select_layer", 40, "select_layer 40 is outside"),
    ("text.num_kv_heads", 5, "not a multiple of num_kv_heads 5"),
    ("text.eos_ids", "999999", "outside the vocabulary"),
    ("projector.output_size", 100, "must equal text.hidden_size"),
    ("frame_rule", "random", "frame_rule must be one of"),
    ("num_frames", 0, "num_frames must be >= 1"),
    ("prompt.template", "alpaca", "prompt.template must be one of"),
    ("vision.nope", 1, "unknown config field 'vision.nope'"),
    ("nope", 1, "unknown config field 'nope'"),
    ("slowfast.separator", "maybe", "expected true/false"),
])
def test_validation_names_value_and_fix(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        presets.get("sf-llava-1.5-1b", **{field: value})


def test_clip_runs_only_at_trained_size():
    with pytest.raises(ConfigError, match="CLIP tower runs only at its trained size: image_size must be 336"):
        presets.get("sf-llava-7b", **{"vision.image_size": 448})


def test_overrides_parse_cli_strings_and_keep_other_fields():
    base = presets.get("sf-llava-1.5-1b")
    cfg = apply_overrides(base, {"slowfast.fast_grid": "4x4", "slowfast__separator": "true", "num_frames": "64",
                                 "vision.image_mean": "0.4,0.4,0.4"})
    assert cfg.slowfast.fast_grid == (4, 4) and cfg.slowfast.separator and cfg.num_frames == 64
    assert cfg.vision.image_mean == (0.4, 0.4, 0.4) and cfg.text == base.text
    cfg = apply_overrides(base, {"slowfast": "slowfast-slow_8frms_spatial_1d_avg_pool-fast_4x4"})
    assert cfg.slowfast.slow_frames == 8 and cfg.slowfast.pool_position == base.slowfast.pool_position


def test_dict_round_trip_and_malformed():
    cfg = presets.get("sf-llava-34b")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="malformed"):
        ModelConfig.from_dict({"name": "x"})
