"""Conversation over the float reference: the cache after the clip and each turn is exactly the
sequence an uncached model would read, the budget is checked before a turn, and start_over keeps
the clip."""

import pytest
import torch

from sfllava_mobile import load
from sfllava_mobile.conversation import ContextFull, Conversation
from sfllava_mobile.errors import SfllavaError
from sfllava_mobile.prompt import IMAGE_SENTINEL, build_input_ids, next_turn_ids
from sfllava_mobile.synthetic import synthetic_frames
from sfllava_mobile.video import normalize, resize_frames


@pytest.fixture(scope="module", params=["1.5", "v1"])
def model(request, tiny15_dir, tinyv1_dir):
    return load(tiny15_dir if request.param == "1.5" else tinyv1_dir)


@pytest.fixture(scope="module")
def frames(model):
    return resize_frames(torch.from_numpy(synthetic_frames(4, 48, 64)), model.config.vision.image_size)


def _uncached_next(model, ids_and_rows: list) -> int:
    """Greedy next token of the whole sequence with no cache at all: token ids, visual rows spliced."""
    emb = model.embed_tokens()
    parts = [r if isinstance(r, torch.Tensor) else emb(torch.tensor(r)) for r in ids_and_rows if len(r)]
    logits = model.decoder_logits(torch.cat(parts).unsqueeze(0))[0, -1]
    return int(logits[:min(model.tokenizer.vocab_size, model.config.text.vocab_size)].argmax())


@torch.inference_mode()
def test_follow_up_answers_as_the_whole_uncached_conversation(model, frames):
    cfg, tok = model.config, model.tokenizer
    conv = Conversation.from_model(model, max_new_tokens=5)
    conv.load_clip(frames)
    t1 = conv.ask("What is moving?")
    t2 = conv.ask("What colour is it?")
    ids = build_input_ids(tok, cfg.prompt, cfg.text, "What is moving?")
    k = ids.index(IMAGE_SENTINEL)
    v = cfg.vision
    visual = model.embed_video(normalize(frames, v.image_mean, v.image_std))
    fed1 = t1.tokens[:-1] if len(t1.tokens) == 5 else t1.tokens  # what the runner's cache holds
    seq = [ids[:k], visual, ids[k + 1:], fed1, next_turn_ids(tok, cfg.prompt, "What colour is it?")]
    expected = []
    for _ in range(len(t2.tokens)):
        expected.append(_uncached_next(model, seq + [expected]))
    assert t2.tokens == expected and len(expected) > 0
    assert t1.position == conv.clip_end + len(ids) - k - 1 + len(fed1)
    assert t2.turn_tokens == len(seq[-1]) and t2.position == conv.position
    assert t2.timings["time_to_first_token_s"] > 0 and t1.stop in ("eos", "length")


@torch.inference_mode()
def test_start_over_keeps_the_clip_and_repeats_the_first_answer(model, frames):
    conv = Conversation.from_model(model, max_new_tokens=4)
    conv.load_clip(frames)
    first = conv.ask("What is moving?")
    conv.ask("And then?")
    conv.start_over()
    assert conv.position == conv.clip_end and conv.turns == []
    again = conv.ask("What is moving?")
    assert again.tokens == first.tokens and again.position == first.position


@torch.inference_mode()
def test_a_turn_that_would_overflow_the_context_is_refused_before_it_runs(model, frames):
    conv = Conversation.from_model(model, max_new_tokens=8)
    conv.load_clip(frames)
    conv.max_context_len = conv.position + 40  # room for about one short turn
    conv.ask("What is moving?")
    before = conv.position
    with pytest.raises(ContextFull) as e:
        conv.ask("And what happens after that, in as much detail as you can?")
    msg = str(e.value)
    assert "start over" in msg and "--max-context-len" in msg and "\n" not in msg
    assert conv.position == before and len(conv.turns) == 1  # nothing was prefilled
    conv.start_over()
    conv.ask("What is moving?")  # fits again


def test_bad_calls_are_one_line_errors(model, frames):
    conv = Conversation.from_model(model)
    with pytest.raises(SfllavaError, match="no clip loaded"):
        conv.ask("Why?")
    with pytest.raises(SfllavaError, match="uint8 frames"):
        conv.load_clip(frames.float())
    conv.load_clip(frames)
    with pytest.raises(SfllavaError, match="ask a question"):
        conv.ask("   ")
    with pytest.raises(SfllavaError, match="max_new_tokens"):
        Conversation.from_model(model, max_new_tokens=0).max_new_tokens  # noqa: B018
