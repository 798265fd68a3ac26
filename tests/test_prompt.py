import pytest

from sfllava_mobile import ConfigError, load, presets
from sfllava_mobile.prompt import IMAGE_SENTINEL, build_input_ids, next_turn_ids, render, render_next_turn, splice


def test_vicuna_template_with_forced_prefix():
    p = presets.get("sf-llava-7b").prompt
    text = render(p, "  What is the man doing? ")
    assert text.endswith("USER: <image>\nWhat is the man doing? ASSISTANT: In the video,")
    assert text.startswith("A chat between a curious human")


def test_chatml_template():
    text = render(presets.get("sf-llava-1.5-1b").prompt, "Why?")
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nWhy?"
                    "<|im_end|>\n<|im_start|>assistant\n")


def test_question_with_placeholder_is_refused():
    with pytest.raises(ConfigError, match="must not contain"):
        render(presets.get("tiny").prompt, "look at <image>")


def test_ids_have_one_sentinel_and_bos_only_for_llama(tiny15_dir, tinyv1_dir):
    m15, m1 = load(tiny15_dir), load(tinyv1_dir)
    ids15 = build_input_ids(m15.tokenizer, m15.config.prompt, m15.config.text, "Why?")
    ids1 = build_input_ids(m1.tokenizer, m1.config.prompt, m1.config.text, "Why?")
    assert ids15.count(IMAGE_SENTINEL) == 1 and ids15[0] == m15.tokenizer.token_to_id("<|im_start|>")
    assert ids1.count(IMAGE_SENTINEL) == 1 and ids1[0] == 1 and ids1.count(1) == 1
    assert m15.tokenizer.token_to_id("<|im_end|>") in ids15  # special tokens are matched, not spelled out


def test_splice_places_visual_rows_at_the_sentinel(tiny15_dir):
    import torch

    m = load(tiny15_dir)
    ids = [5, 6, IMAGE_SENTINEL, 7]
    visual = torch.randn(3, m.config.text.hidden_size)
    out = splice(ids, visual, m.embed_tokens())
    emb = m.embed_tokens().weight
    assert out.shape == (1, 6, m.config.text.hidden_size)
    assert torch.equal(out[0, 2:5], visual) and torch.equal(out[0, 0], emb[5]) and torch.equal(out[0, 5], emb[7])
    with pytest.raises(ConfigError, match="exactly one"):
        splice([1, 2], visual, m.embed_tokens())


def test_next_turn_closes_the_answer_and_opens_a_user_turn():
    """The templates' multi-turn forms: LLaVA's conv_vicuna_v1 (``ASSISTANT: answer</s>USER: ...``)
    and ChatML; the forced answer prefix opens every assistant turn."""
    v = presets.get("sf-llava-7b").prompt
    assert render_next_turn(v, " And then? ") == "</s>USER: And then? ASSISTANT: In the video,"
    c = presets.get("sf-llava-1.5-1b").prompt
    assert render_next_turn(c, "And then?") == "<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n"
    for bad, match in (("  ", "ask a question"), ("see <image>", "must not contain")):
        with pytest.raises(ConfigError, match=match):
            render_next_turn(c, bad)
        with pytest.raises(ConfigError, match=match):
            render(c, bad)


def test_next_turn_ids_start_with_the_closing_special_token(tiny15_dir, tinyv1_dir):
    for d, close in ((tiny15_dir, "<|im_end|>"), (tinyv1_dir, "</s>")):
        m = load(d)
        ids = next_turn_ids(m.tokenizer, m.config.prompt, "And then?")
        assert ids[0] == m.tokenizer.token_to_id(close) and IMAGE_SENTINEL not in ids
        assert "And then?" in m.tokenizer.decode(ids)
