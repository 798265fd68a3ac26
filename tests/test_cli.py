import json

import pytest

from sfllava_mobile.cli import main
from sfllava_mobile.video import read_clip


def test_init_tiny_is_deterministic_and_refuses_to_overwrite(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["init-tiny", str(a)]) == 0 and main(["init-tiny", str(b)]) == 0
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert main(["init-tiny", str(a)]) == 2 and "already exists" in capsys.readouterr().err
    assert main(["init-tiny", str(a), "--seed", "1", "--overwrite"]) == 0
    assert (a / "model.safetensors").read_bytes() != (b / "model.safetensors").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_init_tiny_v1_layout(tmp_path):
    assert main(["init-tiny", str(tmp_path / "v1"), "--family", "v1"]) == 0
    cfg = json.loads((tmp_path / "v1" / "config.json").read_text())
    assert cfg["mm_vision_tower"] == "vision_tower" and cfg["mm_projector_type"] == "mlp2x_gelu"
    assert (tmp_path / "v1" / "vision_tower" / "model.safetensors").is_file()


def test_generate_json(tiny15_dir, clip_path, capsys):
    assert main(["-q", "generate", "--checkpoint", str(tiny15_dir), "--video", str(clip_path), "--question",
                 "What moves?", "--max-new-tokens", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frame_indices"] == [2, 7, 12, 17, 22, 27, 32, 37] and out["visual_tokens"] == 96
    assert 1 <= len(out["token_ids"]) <= 6 and isinstance(out["answer"], str)
    assert {"import_s", "load_s", "decode_video_s", "vision_s", "prefill_s", "decode_s"} <= set(out["timings"])


def test_generate_streams_text(tiny15_dir, clip_path, capsys):
    """The streamed pieces make up exactly the answer the JSON mode reports, then one newline."""
    args = ["-q", "generate", "--checkpoint", str(tiny15_dir), "--video", str(clip_path), "--question",
            "What moves?", "--max-new-tokens", "4", "--frames", "4"]
    assert main(args) == 0
    streamed = capsys.readouterr().out
    assert main(args + ["--json"]) == 0
    answer = json.loads(capsys.readouterr().out)["answer"]
    assert answer and streamed == answer + "\n"


def test_plan_cli(capsys):
    assert main(["plan", "--preset", "sf-llava-1.5-1b", "--frames", "32", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["visual_tokens"]["total"] == 8 * 144 + 32 * 36
    assert main(["plan", "--preset", "sf-llava-7b", "--frames", "80"]) == 0
    assert "WARNING" in capsys.readouterr().out
    assert main(["plan", "--preset", "nope"]) == 2
    assert main(["plan", "--preset", "tiny", "--set", "slowfast.fast_grid"]) == 2
    assert main(["plan"]) == 2


def test_presets_and_synth_clip(tmp_path, capsys):
    assert main(["presets"]) == 0
    assert "sf-llava-1.5-1b" in capsys.readouterr().out
    assert main(["synth-clip", str(tmp_path / "c.mp4"), "--frames", "5", "--size", "32x48"]) == 0
    clip = read_clip(tmp_path / "c.mp4", 5)
    assert clip.total_frames == 5 and tuple(clip.frames.shape) == (5, 32, 48, 3)
    f = clip.frames.float()
    assert f.std() > 20 and (f[1:] - f[:-1]).abs().mean() > 1  # a pattern that moves, not a blank clip
    assert main(["synth-clip", str(tmp_path / "d.mp4"), "--size", "big"]) == 2


def test_argparse_errors_exit_2():
    with pytest.raises(SystemExit) as e:
        main(["generate"])
    assert e.value.code == 2
