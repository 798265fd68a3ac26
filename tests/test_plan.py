from sfllava_mobile import presets
from sfllava_mobile.plan import format_plan, parameter_counts, plan


def test_1b_plan_numbers():
    p = plan(presets.get("sf-llava-1.5-1b"), 128)
    assert p["visual_tokens"] == {"slow_frames": 32, "slow": 4608, "separator": 0, "fast": 4608, "total": 9216}
    assert p["kv_cache_bytes_per_position_fp16"] == 2 * 28 * 2 * 128 * 2
    assert p["kv_cache_bytes_fp16"] == p["kv_cache_bytes_per_position_fp16"] * (9216 + 64 + 128)
    assert 0.26e9 < p["kv_cache_bytes_fp16"] < 0.28e9  # SPEC: ~0.27 GB at ~9.3K positions
    assert p["weights_bytes_4bit"] == int(p["parameters"]["total"] * 4.5 / 8)
    assert not p["warnings"]


def test_parameter_counts_match_known_models():
    text = parameter_counts(presets.get("sf-llava-1.5-1b"))["text"]
    assert 1.50e9 < text < 1.56e9  # Qwen2.5-1.5B: 1.54 B
    v7 = parameter_counts(presets.get("sf-llava-7b"))
    assert 6.7e9 < v7["text"] < 6.8e9  # LLaMA-2 7B: 6.74 B
    assert 2.8e8 < v7["vision"] < 3.1e8  # CLIP ViT-L/14 without its last block


def test_context_overflow_warns():
    p = plan(presets.get("sf-llava-7b"), 80)
    assert p["positions"] > 4096 and "exceed the context of 4096" in p["warnings"][0]
    assert "WARNING" in format_plan(p)
    assert plan(presets.get("sf-llava-1.5-1b"), 32, context=2048)["warnings"]
