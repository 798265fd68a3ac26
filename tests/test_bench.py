import json

import pytest

from sfllava_mobile.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")


def assert_valid_bench(report: dict) -> None:
    """Against the committed schema the phone apps' benchmark modes write to as well."""
    from jsonschema import Draft202012Validator

    from .conftest import SCHEMA_DIR

    errors = list(Draft202012Validator(json.loads((SCHEMA_DIR / "bench.schema.json").read_text())).iter_errors(report))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:3]]


def test_bench_all_engines_json_and_plot(exported_bundle, clip_path, tmp_path, capsys):
    bundle = exported_bundle("ours", "8da4w").bundle  # shared with the export tests
    png = tmp_path / "bench.png"
    assert main(["-q", "bench", str(bundle), "--video", str(clip_path), "--steps", "4", "--json",
                 "--plot", str(png)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["engines"]) == {"pte", "runner", "eager"} and r["backend"] == "executorch"
    for name in ("pte", "eager"):
        e = r["engines"][name]
        assert e["decode_tokens_per_second"] > 0 and e["prefill_tokens_per_second"] > 0 and e["peak_rss_mb"] > 50
        assert e["prompt_tokens"] == r["engines"]["pte"]["prompt_tokens"] > r["visual_tokens"]
    assert r["artifact_vs_eager"]["decode_tokens_per_second"] > 0
    # Memory per stage, in stage order; a high-water mark never falls and ends at the engine's peak.
    after = r["engines"]["pte"]["peak_rss_after_mb"]
    assert list(after) == ["decode_video", "load", "preprocess", "vision_encoder", "prefill", "decode", "followup"]
    assert list(after.values()) == sorted(after.values())
    assert after["followup"] == pytest.approx(r["engines"]["pte"]["peak_rss_mb"], abs=0.1)  # stages kept to 0.1 MB
    for name in ("pte", "runner", "eager"):  # a follow-up prefills only its own turn
        e = r["engines"][name]
        assert 0 < e["followup_prompt_tokens"] < 64 and e["followup_time_to_first_token_s"] < e["time_to_first_token_s"]
    assert_valid_bench(r)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["-q", "bench", str(bundle), "--video", str(tmp_path / "none.mp4")]) == 2


def test_bench_coreml_says_what_its_seconds_mean(exported_bundle, clip_path, capsys):
    e = exported_bundle("ours", "int4", "coreml")
    assert main(["-q", "bench", str(e.bundle), "--video", str(clip_path), "--steps", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["engines"]) == {"coreml", "eager"} and r["backend"] == "coreml"
    assert "not Core ML latency" in r["engine_notes"]["coreml"]
    assert_valid_bench(r)
    c = r["engines"]["coreml"]
    assert c["prompt_tokens"] == r["engines"]["eager"]["prompt_tokens"] and c["decode_tokens_per_second"] > 0
    assert r["artifact_bytes"] == json.loads((e.bundle / "manifest.json").read_text())["size"]["total_bytes"] > 0
    assert main(["-q", "bench", str(e.bundle), "--video", str(clip_path), "--engines", "runner"]) == 2
