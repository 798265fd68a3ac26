import dataclasses
import json

import pytest

from sfllava_mobile import ConfigError, presets
from sfllava_mobile.cli import main
from sfllava_mobile.devices import EFFICIENCY_FILE, get_device, load_efficiency
from sfllava_mobile.plan import (device_estimate, export_weight_bytes, format_device_estimate, format_plan,
                                 max_frames_that_fit, model_summary, parameter_counts, plan)


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


# --- ExecuTorch memory and the per-device estimate (plan --device) ---


@pytest.fixture(scope="module")
def summaries():
    return {name: model_summary(presets.get(name)) for name in ("sf-llava-1.5-1b", "sf-llava-1.5-7b")}


def _plan(name, frames, summaries):
    return plan(presets.get(name), frames, summary=summaries[name])


def test_export_weight_bytes_match_measured_pte():
    # .pte sizes from benchmarks/results/export_memory.jsonl (8da4w, 4 frames): the rules in
    # EXECUTORCH_ASSUMPTIONS (untied head, SigLIP's int8 fallback, float tables) account for them.
    w1 = export_weight_bytes(presets.get("sf-llava-1.5-1b"), recipe="8da4w")
    assert abs(w1["total"] - 1386.8e6) < 0.03 * 1386.8e6
    assert w1["untied_lm_head"] > 0 and w1["int8_fallback"] > 0  # without them the estimate is 1.11 GB
    w7 = export_weight_bytes(presets.get("sf-llava-7b"), recipe="8da4w")
    assert abs(w7["total"] - 3982.0e6) < 0.03 * 3982.0e6
    assert w7["untied_lm_head"] == 0 and w7["int8_fallback"] == 0 and w7["int8_per_channel"] == 0


def test_export_weight_bytes_follow_the_recipe():
    # The default 8-bit encoder: video_ttft's 1B A/B measured +4.5 MB per SigLIP block (26 used + the
    # projector) over 8da4w; the decoder's bytes do not change.
    cfg = presets.get("sf-llava-1.5-1b")
    w4, w8 = export_weight_bytes(cfg, recipe="8da4w"), export_weight_bytes(cfg)
    assert w8["int8_per_channel"] > 0 and w8["untied_lm_head"] == w4["untied_lm_head"]
    assert 0.10e9 < w8["total"] - w4["total"] < 0.20e9
    assert export_weight_bytes(cfg, recipe="none")["total"] > 4 * w4["total"]


def test_decode_bytes_per_token_follow_the_readme_floor(summaries):
    # README: the Qwen2.5-1.5B shape (the 1B preset's decoder) reads 883 MB/token at ~256 positions,
    # of which 868 MB are 4-bit weights (tied: the head doubles as the table, which is not read).
    p = _plan("sf-llava-1.5-1b", 32, summaries)
    e = p["executorch"]
    weights = e["decode_bytes_per_token"] - e["kv_cache_bytes_per_position"] * (p["prompt_tokens"] + 64)
    assert abs(weights - 868.3e6) < 0.01 * 868.3e6
    assert e["kv_cache_bytes"] == 2 * p["kv_cache_bytes_fp16"] and e["kv_cache_dtype"] == "fp32"  # the default cache


def test_fit_verdicts(summaries):
    eff = load_efficiency()
    big = device_estimate(_plan("sf-llava-1.5-7b", 128, summaries), get_device("iphone-15-pro"), eff)
    assert get_device("iphone-15-pro").ram_gb.value == 8
    assert not big["memory"]["fits"] and big["memory"]["margin_bytes"]["value"] < 0
    small = device_estimate(_plan("sf-llava-1.5-1b", 32, summaries), get_device("galaxy-s24-ultra"), eff)
    assert get_device("galaxy-s24-ultra").ram_gb.value == 12
    assert small["memory"]["fits"] and small["memory"]["margin_bytes"]["value"] > 1e9
    parts = small["memory"]["breakdown_bytes"]
    assert sum(v["value"] for v in parts.values()) == small["memory"]["needed_bytes"]["value"]
    # At 128 frames the export attends 12 frames at a time (scores under 256 MB), so the ViT MLP over
    # all frames is the vision call's peak; the 1B preset still needs more than the Pixel gives an app.
    p128 = _plan("sf-llava-1.5-1b", 128, summaries)
    w = p128["executorch"]["working_bytes"]
    assert p128["executorch"]["vision_attention_frames"] == 12
    assert w["vision_call"] == w["vision_mlp"] > w["vision_attention"] >= 2 * 12 * 16 * 576 * 576 * 4
    assert device_estimate(p128, get_device("pixel-9-pro"), eff)["memory"]["fits"]  # 8 GB usable
    assert not device_estimate(_plan("sf-llava-1.5-1b", 160, summaries), get_device("iphone-16-pro"), eff)["memory"]["fits"]


def test_max_frames_is_the_edge(summaries):
    cfg, eff = presets.get("sf-llava-1.5-1b"), load_efficiency()
    phone = get_device("iphone-16-pro")
    n = max_frames_that_fit(cfg, phone, summaries["sf-llava-1.5-1b"])
    assert 64 <= n < 160
    assert device_estimate(_plan("sf-llava-1.5-1b", n, summaries), phone, eff)["memory"]["fits"]
    assert not device_estimate(_plan("sf-llava-1.5-1b", n + 1, summaries), phone, eff)["memory"]["fits"]
    assert max_frames_that_fit(cfg, get_device("pixel-9-pro"), summaries["sf-llava-1.5-1b"]) > n  # 8 GB > 6 GB usable


def _scaled(device, field, factor):
    f = getattr(device, field)
    return dataclasses.replace(device, **{field: dataclasses.replace(f, value=f.value * factor)})


def test_estimate_scales_with_the_figures(summaries):
    p, eff = _plan("sf-llava-1.5-1b", 32, summaries), load_efficiency()
    phone = get_device("pixel-9-pro")
    base = device_estimate(p, phone, eff)
    fast_mem = device_estimate(p, _scaled(phone, "memory_bandwidth_gbs", 2), eff)
    assert fast_mem["decode_tokens_per_second"]["value"] == pytest.approx(2 * base["decode_tokens_per_second"]["value"])
    assert fast_mem["time_to_first_token_s"]["value"] == pytest.approx(base["time_to_first_token_s"]["value"])
    fast_cpu = device_estimate(p, _scaled(_scaled(phone, "cpu_int8_tops", 2), "cpu_fp32_tflops", 2), eff)
    assert fast_cpu["time_to_first_token_s"]["value"] == pytest.approx(base["time_to_first_token_s"]["value"] / 2)
    assert fast_cpu["decode_tokens_per_second"]["value"] == pytest.approx(base["decode_tokens_per_second"]["value"])
    half_vision = dataclasses.replace(eff, vision=dataclasses.replace(eff.vision, value=eff.vision.value / 2))
    assert device_estimate(p, phone, half_vision)["vision_s"]["value"] == pytest.approx(2 * base["vision_s"]["value"])
    # Longer clips cost more: more frames -> more vision time, a longer prefill, a slower decode.
    longer = device_estimate(_plan("sf-llava-1.5-1b", 64, summaries), phone, eff)
    assert longer["vision_s"]["value"] == pytest.approx(2 * base["vision_s"]["value"])
    assert longer["prefill_s"]["value"] > 2 * base["prefill_s"]["value"]  # attention is quadratic
    assert longer["decode_tokens_per_second"]["value"] < base["decode_tokens_per_second"]["value"]


def test_every_number_is_labelled_an_estimate(summaries):
    p = _plan("sf-llava-1.5-1b", 32, summaries)
    est = device_estimate(p, get_device("iphone-16"), load_efficiency())
    assert est["estimate"] is True and "not measured" in est["label"]
    for key in ("vision_s", "prefill_s", "time_to_first_token_s", "decode_tokens_per_second"):
        assert est[key]["estimate"] is True and est[key]["value"] > 0
    for key in ("needed_bytes", "usable_bytes", "margin_bytes"):
        assert est["memory"][key]["estimate"] is True
    assert all(v["estimate"] is True for v in est["memory"]["breakdown_bytes"].values())
    text = format_device_estimate(est, p)
    assert text.startswith("ESTIMATE for iPhone 16") and "NOT measured" in text
    assert "host_efficiency.json" in text and "measured on" in text


def test_plan_device_cli_json_and_efficiency_file(tmp_path, capsys):
    args = ["-q", "plan", "--preset", "sf-llava-1.5-1b", "--frames", "32", "--device", "galaxy-s24-ultra", "--json"]
    assert main(args) == 0
    est = json.loads(capsys.readouterr().out)["device_estimate"]
    assert est["memory"]["fits"] is True and est["estimate"] is True and est["max_frames"]["value"] >= 32
    data = json.loads(EFFICIENCY_FILE.read_text())
    data["factors"]["decode_bandwidth_fraction"]["value"] /= 2
    (tmp_path / "eff.json").write_text(json.dumps(data))
    assert main(args + ["--efficiency", str(tmp_path / "eff.json")]) == 0
    est2 = json.loads(capsys.readouterr().out)["device_estimate"]
    assert est2["decode_tokens_per_second"]["value"] == pytest.approx(est["decode_tokens_per_second"]["value"] / 2)
    assert est2["efficiency"]["file"] == str(tmp_path / "eff.json")
    assert main(["-q", "plan", "--preset", "sf-llava-1.5-1b", "--frames", "32", "--device", "iphone-16-pro"]) == 0
    out = capsys.readouterr().out
    assert "ESTIMATE for iPhone 16 Pro" in out and "fits" in out and "tokens/s" in out


def test_int8_kv_cache_counts_a_byte_per_value_plus_scales(summaries):
    # 1B preset (28 layers, 2 KV heads of 128): fp32 4 x 128 bytes per head and position; int8 128 + 4 + 1.
    cfg = presets.get("sf-llava-1.5-1b")
    f, q = (plan(cfg, 128, summary=summaries["sf-llava-1.5-1b"], kv_cache=k)["executorch"] for k in ("fp32", "int8"))
    assert f["kv_cache_bytes_per_position"] == 2 * 28 * 2 * 512 and q["kv_cache_bytes_per_position"] == 2 * 28 * 2 * 133
    assert f["total_bytes"] - q["total_bytes"] == f["kv_cache_bytes"] - q["kv_cache_bytes"] > 0
    h = plan(cfg, 128, summary=summaries["sf-llava-1.5-1b"], kv_cache="fp16")["executorch"]
    assert 2 * h["kv_cache_bytes"] == f["kv_cache_bytes"]
    with pytest.raises(ConfigError, match="kv_cache"):
        plan(cfg, 8, kv_cache="bf16")


def test_vision_frames_per_pass_shrink_the_encoders_activations(summaries):
    # 1B at 128 frames: all frames in one pass make the vision call the largest; in passes of 16 only a
    # pass's activations plus every frame's projected features (the preset pools after the projector:
    # 128 x 576 x 1536 fp32) remain, and the prefill leads.
    cfg, s = presets.get("sf-llava-1.5-1b"), summaries["sf-llava-1.5-1b"]
    one, passes = (plan(cfg, 128, summary=s, vision_frames=f)["executorch"] for f in (0, 16))
    assert one["vision_frames_per_pass"] == 128 and passes["vision_frames_per_pass"] == 16
    assert cfg.slowfast.pool_position == "after_projector" and cfg.projector.output_size == 1536
    assert passes["working_bytes"]["vision_features_kept"] == 128 * 576 * 1536 * 4
    assert passes["working_bytes"]["vision_mlp"] * 8 == one["working_bytes"]["vision_mlp"]
    assert passes["working_bytes"]["peak"] < one["working_bytes"]["peak"] / 2
    assert passes["working_bytes"]["vision_call"] < passes["working_bytes"]["prefill_call"]
