"""The bundle's shared sections and golden vectors, pinned against independent computations
(what the Swift and Kotlin ports will be checked against must itself be right)."""

import numpy as np
import pytest
import torch

from sfllava_mobile import load
from sfllava_mobile.bundle import artifact_bytes, golden, pattern_frame, shared_sections


def bilinear_half_pixel(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Plain-loop bilinear resize (half-pixel centres, edge clamp, no antialias), float64, then
    round half to even and clamp: the rule the manifest states, written from the rule alone."""
    h, w, c = img.shape
    out = np.zeros((out_h, out_w, c))
    for oy in range(out_h):
        sy = min(max((oy + 0.5) * h / out_h - 0.5, 0.0), h - 1)
        y0 = int(np.floor(sy)); y1 = min(y0 + 1, h - 1); fy = sy - y0
        for ox in range(out_w):
            sx = min(max((ox + 0.5) * w / out_w - 0.5, 0.0), w - 1)
            x0 = int(np.floor(sx)); x1 = min(x0 + 1, w - 1); fx = sx - x0
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            out[oy, ox] = top * (1 - fy) + bottom * fy
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_pattern_frame_is_the_documented_formula():
    f = pattern_frame(12, 20)
    assert f.shape == (12, 20, 3) and f.dtype == torch.uint8
    assert int(f[2, 3, 1]) == (37 * 3 + 91 * 2 + 53 * 1) % 256 == 90
    assert int(f[11, 19, 2]) == (37 * 19 + 91 * 11 + 53 * 2) % 256


@pytest.fixture(scope="module")
def tiny(tiny15_dir):
    return load(tiny15_dir)


def test_golden_vectors_match_independent_computations(tiny):
    g = golden(tiny.config, tiny.tokenizer, 8, [5, 6], "test")
    src = pattern_frame(12, 20).numpy().astype(np.float64)
    small = np.array(g.resize_small.uint8_hwc, np.uint8).reshape(7, 9, 3)
    want = bilinear_half_pixel(src, 7, 9)
    # float32 (the graph) vs float64 (this twin) may land on opposite sides of a .5 tie: off by one at most.
    assert np.abs(small.astype(int) - want.astype(int)).max() <= 1 and (small == want).mean() > 0.95
    h, w = tiny.config.vision.image_size
    full = bilinear_half_pixel(src, h, w)
    assert abs(g.resize_model.sum - int(full.astype(np.int64).sum())) <= h * w * 3 // 100
    assert np.abs(np.array(g.resize_model.first_row_uint8_hwc) - full[0].flatten()[:48].astype(int)).max() <= 1
    for total, idx in g.frame_indices.cases.items():
        t = int(total)
        assert idx == [((2 * i + 1) * t) // (2 * 8) for i in range(8)]
    mean, std = np.array(tiny.config.vision.image_mean), np.array(tiny.config.vision.image_std)
    chw = ((full / 255.0 - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(g.normalized_model.first_values_chw, chw.flatten()[:16], atol=2 / 255 / min(std))
    text = tiny.tokenizer.decode(g.prompt.ids_after_video)
    assert "What is moving in the video?" in text and g.greedy.tokens == [5, 6]


def test_shared_sections_name_the_model_and_counts(tiny):
    s = shared_sections(tiny.config, 8)
    assert s["visual_tokens"] == 96 and s["video"].frames == 8
    assert (s["video"].frame_height, s["video"].frame_width) == tuple(tiny.config.vision.image_size)
    before, after = s["prompt"].text_before_video, s["prompt"].text_after_video
    assert "{question}" in after and "{question}" not in before


def test_artifact_bytes_counts_files_and_folders(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    pkg = tmp_path / "p.mlpackage" / "Data"
    pkg.mkdir(parents=True)
    (pkg / "w.bin").write_bytes(b"y" * 7)
    (pkg / "m.mil").write_bytes(b"z" * 5)
    assert artifact_bytes(tmp_path / "a.bin") == 10 and artifact_bytes(tmp_path / "p.mlpackage") == 12
