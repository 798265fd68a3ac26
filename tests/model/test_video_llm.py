import pytest
import torch

from sfllava_mobile import load, presets
from sfllava_mobile.generate import StreamDecoder
from sfllava_mobile.model import VideoLLM
from sfllava_mobile.ops import slowfast_pool
from sfllava_mobile.prompt import build_input_ids, splice
from sfllava_mobile.synthetic import synthetic_frames
from sfllava_mobile.video import preprocess


def _frames(n, h=48, w=64):
    return torch.from_numpy(synthetic_frames(n, h, w))


def _model(ckpt, position, separator):
    if not separator:
        return load(ckpt, **{"slowfast.pool_position": position})
    # A separator is a learned row; the tiny checkpoint has none, so build the model from a config.
    torch.manual_seed(0)
    model = VideoLLM(presets.get("tiny", **{"slowfast.pool_position": position, "slowfast.separator": True})).eval()
    torch.nn.init.normal_(model.separator)
    return model


@pytest.mark.parametrize("position", ["after_projector", "before_projector"])
@pytest.mark.parametrize("separator", [False, True])
def test_embed_video_order_and_separator(tiny15_dir, position, separator):
    model = _model(tiny15_dir, position, separator)
    cfg = model.config
    pixels = preprocess(_frames(cfg.num_frames), cfg)
    with torch.no_grad():
        out = model.embed_video(pixels)
        feats = model.vision_tower(pixels)
        if position == "before_projector":
            expect = model.projector(slowfast_pool(feats, cfg.slowfast, cfg.vision.grid, model.separator))
        else:
            expect = slowfast_pool(model.projector(feats), cfg.slowfast, cfg.vision.grid, model.separator)
    assert out.shape == (model.visual_token_count(), cfg.text.hidden_size)
    torch.testing.assert_close(out, expect)
    if separator:
        sep_row = model.separator if position == "after_projector" else model.projector(model.separator)
        torch.testing.assert_close(out[model.visual_token_count() - cfg.num_frames * 4 - 1], sep_row.detach())


def test_native_resolution_resizes_position_table(tiny15_dir):
    model = load(tiny15_dir, **{"vision.image_size": "48x80"})  # 6x10 grid from a 16x16 table
    pixels = preprocess(_frames(2), model.config)
    assert pixels.shape[-2:] == (48, 80)
    with torch.no_grad():
        assert model.vision_tower(pixels).shape == (2, 60, 64)
    table = model.vision_tower.embeddings.position_embedding.weight
    model_native = load(tiny15_dir, **{"vision.image_size": 128})  # 16x16: the table as is
    assert torch.equal(model_native.vision_tower.embeddings.position_embedding.weight, table)


def test_generate_with_cache_equals_greedy_without_cache(tiny15_dir):
    model = load(tiny15_dir)
    frames = _frames(model.config.num_frames)
    result = model.generate(frames, "What moves?", max_new_tokens=12)
    ids = build_input_ids(model.tokenizer, model.config.prompt, model.config.text, "What moves?")
    with torch.no_grad():
        embeds = splice(ids, model.embed_video(preprocess(frames, model.config)), model.embed_tokens())
        out = []
        for _ in range(12):
            tok = int(model.decoder_logits(embeds)[0, -1].argmax())
            if tok in model.config.text.eos_ids:
                break
            out.append(tok)
            embeds = torch.cat([embeds, model.embed_tokens()(torch.tensor([[tok]]))], dim=1)
    assert result.token_ids == out and len(out) > 0
    assert result.visual_tokens == model.visual_token_count() and result.prompt_tokens == embeds.shape[1] - len(out)
    assert set(result.timings) >= {"preprocess_s", "vision_s", "prefill_s", "decode_s", "time_to_first_token_s"}


def test_generate_v1_family(tinyv1_dir):
    model = load(tinyv1_dir, num_frames=12)
    result = model.generate(_frames(12), "Describe it.", max_new_tokens=5)
    assert 1 <= len(result.token_ids) <= 5 and result.visual_tokens == model.visual_token_count(12)


def test_streaming_pieces_join_to_the_text(tiny15_dir):
    model = load(tiny15_dir)
    pieces = []
    result = model.generate(_frames(8), "What moves?", max_new_tokens=10, stream=pieces.append)
    assert "".join(pieces) == result.text


def test_stream_decoder_holds_back_incomplete_utf8(tiny15_dir):
    model = load(tiny15_dir)
    tok = model.tokenizer
    ids = tok.encode("é")  # byte-level BPE: may be one token or two byte pieces
    byte_ids = [tok.token_to_id(c) for c in ("Ã", "©")]  # the GPT-2 byte alphabet spelling of é
    pieces = []
    dec = StreamDecoder(tok, pieces.append)
    for i in byte_ids:
        dec.push(i)
    dec.flush()
    assert "".join(pieces) == "é" and "\ufffd" not in "".join(pieces) and ids


def test_embed_video_rejects_wrong_shapes(tiny15_dir):
    from sfllava_mobile import ConfigError

    model = load(tiny15_dir)
    with pytest.raises(ConfigError, match=r"\[T, 3, H, W\]"):
        model.embed_video(torch.zeros(8, 64, 64, 3))


@pytest.mark.parametrize("family", ["1.5", "v1"])
def test_frame_passes_give_the_same_rows(family, tiny15_dir, tinyv1_dir):
    """The tower in passes of 3 frames (3, 3, 2), pooling before (1.5) or after (v1) the projector:
    the same rows as every frame in one pass (frames never attend to each other)."""
    from sfllava_mobile import load
    from sfllava_mobile.model.video_llm import visual_rows

    m = load(tiny15_dir if family == "1.5" else tinyv1_dir)
    h, w = m.config.vision.image_size
    x = torch.randn(8, 3, h, w)
    args = (m.vision_tower, m.projector, m.separator, m.config)
    with torch.no_grad():
        whole, passes = visual_rows(x, *args), visual_rows(x, *args, frames_per_pass=3)
        scaled = visual_rows(x, *args, frames_per_pass=3, prepare=lambda t: 2 * t)
    assert torch.allclose(whole, passes, atol=1e-5) and not torch.allclose(whole, scaled, atol=1e-3)
