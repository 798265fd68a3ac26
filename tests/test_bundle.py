"""The bundle's shared sections and golden vectors, pinned against independent computations
(what the Swift and Kotlin ports will be checked against must itself be right)."""

import hashlib

import numpy as np
import pytest
import torch

from sfllava_mobile import load
from sfllava_mobile.bundle import artifact_bytes, golden, golden_conversation, pattern_frame, shared_sections
from sfllava_mobile.driver import ReferenceDriver


def bilinear_half_pixel(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Plain-loop bilinear resize written from the rule alone (half-pixel centres, edge clamp, no
    antialias), every step a float32 scalar operation in the stated order, then round half to even
    and clamp: what the Kotlin and Swift ports compute, pixel by pixel."""
    f = np.float32
    h, w, c = img.shape

    def axis(n_in, n_out, d):
        s = max(f(f(n_in) / f(n_out)) * f(f(d) + f(0.5)) - f(0.5), f(0))
        i0 = int(np.floor(s))
        w1 = f(s - f(i0))
        return i0, min(i0 + 1, n_in - 1), f(f(1) - w1), w1

    out = np.zeros((out_h, out_w, c), np.uint8)
    x = img.astype(f)
    for oy in range(out_h):
        y0, y1, wy0, wy1 = axis(h, out_h, oy)
        for ox in range(out_w):
            x0, x1, wx0, wx1 = axis(w, out_w, ox)
            for ch in range(c):
                top = f(f(x[y0, x0, ch] * wx0) + f(x[y0, x1, ch] * wx1))
                bottom = f(f(x[y1, x0, ch] * wx0) + f(x[y1, x1, ch] * wx1))
                v = f(f(top * wy0) + f(bottom * wy1))
                out[oy, ox, ch] = min(max(np.rint(v), 0), 255)
    return out


def test_pattern_frame_is_the_documented_formula():
    f = pattern_frame(12, 20)
    assert f.shape == (12, 20, 3) and f.dtype == torch.uint8
    assert int(f[2, 3, 1]) == (37 * 3 + 91 * 2 + 53 * 1) % 256 == 90
    assert int(f[11, 19, 2]) == (37 * 19 + 91 * 11 + 53 * 2) % 256


@pytest.fixture(scope="module")
def tiny(tiny15_dir):
    return load(tiny15_dir)


@pytest.fixture(scope="module")
def conversations(tiny):
    """The golden conversation through the float reference, for 8 and 3 frames."""
    return {n: golden_conversation(ReferenceDriver(tiny), tiny.config, tiny.tokenizer, n, 2048) for n in (8, 3)}


def test_golden_vectors_match_independent_computations(tiny, conversations):
    g = golden(tiny.config, tiny.tokenizer, 8, conversations[8], "test")
    src = pattern_frame(12, 20).numpy()
    small = np.array(g.resize_small.uint8_hwc, np.uint8).reshape(7, 9, 3)
    np.testing.assert_array_equal(small, bilinear_half_pixel(src, 7, 9))
    h, w = tiny.config.vision.image_size
    full = bilinear_half_pixel(src, h, w)
    assert g.resize_model.sum == int(full.astype(np.int64).sum())
    assert g.resize_model.first_row_uint8_hwc == full[0].flatten()[:48].tolist()
    for total, idx in g.frame_indices.cases.items():
        t = int(total)
        assert idx == [((2 * i + 1) * t) // (2 * 8) for i in range(8)]
    mean, std = np.array(tiny.config.vision.image_mean), np.array(tiny.config.vision.image_std)
    chw = ((full / 255.0 - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(g.normalized_model.first_values_chw, chw.flatten()[:16], atol=1e-5)
    text = tiny.tokenizer.decode(g.prompt.ids_after_video)
    assert "What is moving in the video?" in text and g.greedy.tokens == conversations[8].turns[0].tokens


def test_packed_clip_is_planar_and_stacked_along_height(tiny, conversations):
    """Index arithmetic written out: byte (c, t, y, x) sits at ((c*T + t)*H + y)*W + x."""
    g = golden(tiny.config, tiny.tokenizer, 3, conversations[3], "test")
    p = g.packed_clip
    T, H, W = p.frames, p.height, p.width
    packed = bytearray(3 * T * H * W)
    for c in range(3):
        for t in range(T):
            for y in range(H):
                for x in range(W):
                    packed[((c * T + t) * H + y) * W + x] = (37 * x + 91 * y + 53 * c + 17 * t) % 256
    assert p.bytes == len(packed) and p.first_bytes == list(packed[:64])
    assert p.sha256 == hashlib.sha256(bytes(packed)).hexdigest()


def test_golden_prompt_is_what_the_runner_is_fed(tiny, conversations):
    g = golden(tiny.config, tiny.tokenizer, 8, conversations[8], "test")
    pr, tok = g.prompt, tiny.tokenizer
    bos = [] if tiny.config.text.bos_id is None else [tiny.config.text.bos_id]
    assert pr.ids_before_video == bos + tok.encode(pr.text_before_video)
    assert pr.ids_after_video == tok.encode(pr.text_after_video)
    kinds = [i.kind for i in pr.runner_inputs]
    assert kinds == (["tokens"] if bos else []) + ["text", "image", "text"]
    texts = [i.text for i in pr.runner_inputs if i.kind == "text"]
    assert texts == [pr.text_before_video, pr.text_after_video] and pr.question in pr.text_after_video


def test_golden_conversation_positions_add_up(tiny, conversations):
    """Clip, then the first turn (text after the video + the answer the cache holds), then the
    follow-up (its own ids + its answer): each position is the previous one plus what was fed."""
    g = golden(tiny.config, tiny.tokenizer, 8, conversations[8], "test")
    c, p = g.conversation, g.prompt
    assert c.positions["clip"] == len(p.ids_before_video) + 96
    assert c.turn1_tokens == g.greedy.tokens and len(c.turn1_tokens) <= c.max_new_tokens
    assert c.turn1_fed == (len(c.turn1_tokens) - 1 if len(c.turn1_tokens) == c.max_new_tokens else len(c.turn1_tokens))
    assert c.positions["turn1"] == c.positions["clip"] + len(p.ids_after_video) + c.turn1_fed
    fed2 = len(c.turn2_tokens) - (len(c.turn2_tokens) == c.max_new_tokens)
    assert c.positions["turn2"] == c.positions["turn1"] + len(c.ids_next_turn) + fed2
    assert c.ids_next_turn == tiny.tokenizer.encode(c.text_next_turn)
    assert c.text_next_turn.startswith("<|im_end|>") and c.questions[1] in c.text_next_turn


def test_shared_sections_name_the_model_and_counts(tiny):
    s = shared_sections(tiny.config, 8, tiny.tokenizer)
    assert s["visual_tokens"] == 96 and s["video"].frames == 8
    assert (s["video"].frame_height, s["video"].frame_width) == tuple(tiny.config.vision.image_size)
    before, after = s["prompt"].text_before_video, s["prompt"].text_after_video
    assert "{question}" in after and "{question}" not in before
    p = s["prompt"]
    assert len(p.eos_pieces) == len(p.eos_ids) and all(p.eos_pieces)
    assert [tiny.tokenizer.token_to_id(piece) for piece in p.eos_pieces] == p.eos_ids


def test_artifact_bytes_counts_files_and_folders(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    pkg = tmp_path / "p.mlpackage" / "Data"
    pkg.mkdir(parents=True)
    (pkg / "w.bin").write_bytes(b"y" * 7)
    (pkg / "m.mil").write_bytes(b"z" * 5)
    assert artifact_bytes(tmp_path / "a.bin") == 10 and artifact_bytes(tmp_path / "p.mlpackage") == 12
