import subprocess
import sys

import numpy as np
import pytest
import torch

from sfllava_mobile import VideoError, presets
from sfllava_mobile.cli import main
from sfllava_mobile.synthetic import synthetic_frames, write_clip
from sfllava_mobile.video import normalize, preprocess, read_clip, resize_frames, sample_frame_indices


def authors_get_seq_frames(total, desired):
    """SF-LLaVA v1's dataset.get_seq_frames, restated with numpy's rounding."""
    seg = float(total - 1) / desired
    return [(int(np.round(seg * i)) + int(np.round(seg * (i + 1)))) // 2 for i in range(desired)]


@pytest.mark.parametrize("total", [1, 2, 7, 20, 49, 50, 51, 100, 301, 1234, 18000])
def test_segment_midpoint_matches_sf_llava_v1(total):
    assert sample_frame_indices(total, 50, "segment_midpoint") == authors_get_seq_frames(total, min(total, 50))
    assert sample_frame_indices(100, 50, "segment_midpoint")[:4] == [1, 3, 5, 7]


def test_segment_midpoint_uses_round_half_to_even():
    # total=6, n=4: seg = 1.25 -> seg*2 = 2.5 rounds to 2 (even), seg*6... ; half-away rounding would give 3.
    idx = sample_frame_indices(6, 4, "segment_midpoint")
    seg = 5 / 4
    away = [(int(np.floor(seg * i + 0.5)) + int(np.floor(seg * (i + 1) + 0.5))) // 2 for i in range(4)]
    even = [(int(np.round(seg * i)) + int(np.round(seg * (i + 1)))) // 2 for i in range(4)]
    assert idx == even and idx != away


def test_uniform_rule_is_exact_integer_midpoints_and_repeats_short_clips():
    assert sample_frame_indices(128, 8, "uniform") == [8, 24, 40, 56, 72, 88, 104, 120]
    assert sample_frame_indices(3, 8, "uniform") == [0, 0, 0, 1, 1, 2, 2, 2]
    assert sample_frame_indices(1, 4, "uniform") == [0, 0, 0, 0]
    for total in (1, 5, 37, 1000):
        idx = sample_frame_indices(total, 16, "uniform")
        assert len(idx) == 16 and idx == sorted(idx) and 0 <= idx[0] and idx[-1] < total


def test_sampling_rejects_bad_arguments():
    with pytest.raises(VideoError, match="rule"):
        sample_frame_indices(10, 4, "random")
    with pytest.raises(VideoError, match="no frames"):
        sample_frame_indices(0, 4, "uniform")


@pytest.mark.parametrize("suffix,codec", [(".mp4", "mpeg4"), (".mkv", "libx264"), (".webm", "libvpx")])
def test_read_clip_returns_the_sampled_frames(tmp_path, suffix, codec):
    frames = synthetic_frames(30, 48, 64)
    path = write_clip(tmp_path / f"c{suffix}", frames=frames, codec=codec, gop=5)
    clip = read_clip(path, 6, "uniform")
    assert clip.total_frames == 30 and clip.indices == [2, 7, 12, 17, 22, 27]
    assert clip.frames.shape == (6, 48, 64, 3) and clip.frames.dtype == torch.uint8
    # Lossy codecs: compare with the source frames loosely, and check each sampled frame is the
    # right one (closer to its source than to the neighbouring frames).
    for k, i in enumerate(clip.indices):
        got = clip.frames[k].float().numpy()
        errs = [np.abs(got - frames[j].astype(np.float32)).mean() for j in (i - 1, i, i + 1) if 0 <= j < 30]
        assert np.abs(got - frames[i]).mean() < 12 and min(errs) == np.abs(got - frames[i].astype(np.float32)).mean()


def test_read_clip_seeking_equals_sequential_decode(tmp_path):
    import av

    path = write_clip(tmp_path / "long.mp4", num_frames=120, size=(32, 48), gop=10)
    with av.open(str(path)) as c:
        seq = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    clip = read_clip(path, 7, "uniform")
    for k, i in enumerate(clip.indices):
        assert np.array_equal(clip.frames[k].numpy(), seq[i])
    small = read_clip(path, 7, "uniform", resize_to=(16, 24))
    assert torch.equal(small.frames, resize_frames(clip.frames, (16, 24)))
    clip_v1 = read_clip(path, 50, "segment_midpoint")
    assert all(np.array_equal(clip_v1.frames[k].numpy(), seq[i]) for k, i in enumerate(clip_v1.indices))


@pytest.mark.parametrize("rotation,white_at", [(90, "bottom"), (-90, "top"), (180, "right")])
def test_rotation_metadata_is_applied(tmp_path, rotation, white_at):
    frames = np.zeros((3, 32, 64, 3), np.uint8)
    frames[:, :, :32] = 255  # left half white
    clip = read_clip(write_clip(tmp_path / "r.mp4", frames=frames, rotation=rotation), 2)
    img = clip.frames[0].float().mean(-1)
    h, w = img.shape
    assert (h, w) == ((64, 32) if rotation % 180 else (32, 64)) and clip.rotation % 360 == rotation % 360
    half = {"bottom": img[h // 2:], "top": img[: h // 2], "right": img[:, w // 2:]}[white_at]
    assert half.mean() > 200 and img.mean() < 160


def _text_file(d):
    p = d / "notes.mp4"
    p.write_text("this is text, not video\n" * 10)
    return p


def _audio_only(d):
    import av

    p = d / "tone.wav"
    with av.open(str(p), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in s.encode(frame):
            c.mux(packet)
    return p


def _no_frames(d):
    import av

    p = d / "empty.avi"  # AVI opens with its stream header even when no frame follows
    with av.open(str(p), "w") as c:
        s = c.add_stream("mpeg4", rate=24)
        s.width, s.height = 32, 32
        c.start_encoding()  # header and stream, no packets
    return p


def _y4m(w, h):
    def make(d):
        # A y4m header is all FFmpeg needs to report a stream of any size; nothing is decoded.
        p = d / "huge.y4m"
        p.write_bytes(b"YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg\nFRAME\n" % (w, h))
        return p
    return make


def _cut_mp4(d):
    full = write_clip(d / "full.mp4", num_frames=30, size=(32, 48))
    data = full.read_bytes()
    cut = d / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the moov index sits at the end: nothing is addressable
    return cut


BAD_VIDEOS = {
    "text": (_text_file, "is not a media file"),
    "audio-only": (_audio_only, "has no video stream"),
    "no-frames": (_no_frames, "has a video stream but no decodable frames"),
    "huge-area": (_y4m(12000, 12000), "absurd frame dimensions 12000x12000"),
    "huge-side": (_y4m(20000, 100), "absurd frame dimensions 20000x100"),
    "cut-mp4": (_cut_mp4, "is not a media file"),
    "missing": (lambda d: d / "nope.mp4", "no such video file"),
}


@pytest.mark.parametrize("case", sorted(BAD_VIDEOS))
def test_bad_videos_raise_and_exit_2_with_one_line(tiny15_dir, tmp_path, capsys, case):
    make, message = BAD_VIDEOS[case]
    path = make(tmp_path)
    with pytest.raises(VideoError, match=message):
        read_clip(path, 4)
    code = main(["-q", "generate", "--checkpoint", str(tiny15_dir), "--video", str(path), "--question", "q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_truncated_file_uses_the_decodable_prefix_with_a_warning(tiny15_dir, tmp_path, caplog, capsys):
    full = write_clip(tmp_path / "full.mkv", num_frames=60, size=(32, 48), codec="libx264", gop=10)
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    clip = read_clip(cut, 8)
    assert clip.truncated and 20 < clip.total_frames < 60
    assert "truncated" in caplog.text
    assert not read_clip(full, 8).truncated
    code = main(["generate", "--checkpoint", str(tiny15_dir), "--video", str(cut), "--question", "q",
                 "--max-new-tokens", "2"])
    assert code == 0 and "truncated" in caplog.text


def test_console_script_exit_code(tmp_path):
    p = tmp_path / "bad.mp4"
    p.write_text("hello")
    r = subprocess.run([sys.executable, "-m", "sfllava_mobile.cli", "-q", "generate", "--checkpoint", str(tmp_path),
                        "--video", str(p), "--question", "q"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_preprocess_resizes_and_normalizes():
    cfg = presets.get("tiny")
    frames = torch.from_numpy(synthetic_frames(2, 48, 96))
    pixels = preprocess(frames, cfg)
    assert pixels.shape == (2, 3, 64, 64) and pixels.dtype == torch.float32
    resized = resize_frames(frames, (64, 64))
    manual = (resized.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(pixels, manual)
    white = normalize(torch.full((1, 4, 4, 3), 255, dtype=torch.uint8), (0.5,) * 3, (0.25,) * 3)
    assert torch.allclose(white, torch.full_like(white, 2.0))
    same = resize_frames(frames, (48, 96))
    assert same is frames or torch.equal(same, frames)
    with pytest.raises(VideoError, match="uint8"):
        preprocess(frames.float(), cfg)


def test_resize_frames_matches_the_stated_rule():
    """Bit for bit against a plain-loop float32 twin written from the rule (tests.test_bundle): the
    apps' ports are held to exact equality, so the reference must be exact too."""
    from .test_bundle import bilinear_half_pixel

    frames = torch.from_numpy(synthetic_frames(2, 30, 50))
    for size in [(16, 24), (41, 77), (30, 20), (7, 3)]:
        got = resize_frames(frames, size).numpy()
        for t in range(2):
            np.testing.assert_array_equal(got[t], bilinear_half_pixel(frames[t].numpy(), *size))


def test_resize_frames_is_torch_bilinear_up_to_rounding_order():
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 57, 91, 3), dtype=torch.uint8, generator=g)
    ours = resize_frames(frames, (33, 140)).to(torch.int32)
    ref = F.interpolate(frames.permute(0, 3, 1, 2).float(), size=(33, 140), mode="bilinear", align_corners=False)
    ref = ref.round().clamp(0, 255).permute(0, 2, 3, 1).to(torch.int32)
    assert (ours - ref).abs().max() <= 1 and (ours == ref).float().mean() > 0.999


