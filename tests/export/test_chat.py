"""Conversations over exported bundles: the golden two-turn conversation, its parity check, the
C++ runner asked a follow-up without reset, and ``sfllava-mobile chat``."""

import json
import shutil

import pytest
import torch

from sfllava_mobile import load
from sfllava_mobile.bundle import GOLDEN_FOLLOWUP, GOLDEN_QUESTION, golden_clip
from sfllava_mobile.cli import main
from sfllava_mobile.config import ModelConfig
from sfllava_mobile.driver import ReferenceDriver
from sfllava_mobile.export.chat import open_bundle
from sfllava_mobile.export.parity import compare, make_cases, record
from sfllava_mobile.manifest import read_golden, read_manifest
from sfllava_mobile.tokenizer import Tokenizer

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def et(exported_bundle):
    return exported_bundle("ours", "8da4w")


def test_bundle_conversation_gives_the_golden_turns(et):
    g = read_golden(et.bundle).conversation
    m = read_manifest(et.bundle)
    conv = open_bundle(et.bundle, g.max_new_tokens)
    conv.load_clip(golden_clip(ModelConfig.from_dict(m.model.config), m.video.frames))
    t1, t2 = conv.ask(GOLDEN_QUESTION), conv.ask(GOLDEN_FOLLOWUP)
    assert (t1.tokens, t2.tokens) == (g.turn1_tokens, g.turn2_tokens)
    assert [conv.clip_end, t1.position, t2.position] == [g.positions[k] for k in ("clip", "turn1", "turn2")]
    assert m.context.turns == 4 and m.context.max_context_len >= t2.position + 3 * m.context.max_new_tokens


def test_parity_checks_the_follow_up_and_the_runner_conversation(et):
    rep = et.report
    assert rep["vs_eager_recipe"]["followup"]["pass"] and "followup" in rep["vs_float"]
    conv = rep["checks"]["runner_conversation"]
    assert conv["pass"] and conv["turn1_equal"] and conv["runner_pieces"]


def test_runner_conversation_fails_on_other_tokens(et, tmp_path):
    """A golden follow-up the runner does not produce must fail the check (it compares, not records)."""
    from sfllava_mobile.export.executorch_runtime import runner_conversation_check

    bundle = tmp_path / "b"
    shutil.copytree(et.bundle, bundle)
    data = json.loads((bundle / "golden.json").read_text())
    data["conversation"]["turn2_tokens"] = [t + 1 for t in data["conversation"]["turn2_tokens"]] or [5]
    (bundle / "golden.json").write_text(json.dumps(data))
    res = runner_conversation_check(bundle, read_manifest(bundle), Tokenizer.from_folder(bundle))
    assert res["turn1_equal"] and not res["text_equal"]


class NoRewindDriver(ReferenceDriver):
    """A cache that is not rewound before the follow-up: the turn lands after stale rows."""

    def rewind(self, pos):
        pass

    def decode(self, embeds, pos):
        out = self.model.language_model(inputs_embeds=embeds.to(self.model.text_dtype), past_key_values=self.cache,
                                        use_cache=True, logits_to_keep=1)
        return out.logits[:, -1].float()


@torch.inference_mode()
def test_followup_check_fails_on_a_broken_cache(tiny15_dir):
    model = load(tiny15_dir)
    cfg, tok = model.config, model.tokenizer
    cases = make_cases(cfg, tok, 8, 2, seed=3)
    eos, limit = tuple(cfg.text.eos_ids), min(tok.vocab_size, cfg.text.vocab_size)
    ref = [record(ReferenceDriver(model), c, [], 6, eos, limit) for c in cases]
    for c, r in zip(cases, ref):
        c.history = r.history
    bad = [record(NoRewindDriver(model), c, [], 6, eos, limit) for c in cases]
    bounds = {"greedy": {"exact": True}, "text_decoder": {"rel": 1e-4, "cosine": 0.99999}}
    same, broken = compare(ref, ref, [], bounds), compare(bad, ref, [], bounds)
    assert same["followup"]["pass"] and broken["greedy"]["pass"]  # the first answer is right...
    assert not broken["followup"]["pass"] and broken["followup"]["rel"] > 1e-3  # ...the follow-up is not


def test_chat_cli_scripted_json_and_streamed(et, clip_path, capsys):
    assert main(["-q", "chat", "--bundle", str(et.bundle), "--video", str(clip_path), "--question", "What moves?",
                 "--question", "And then?", "--max-new-tokens", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    t1, t2 = out["turns"]
    assert t2["position"] == t1["position"] + t2["turn_tokens"] + len(t2["tokens"]) - (len(t2["tokens"]) == 6)
    assert out["clip"]["clip_positions"] < t1["position"] < t2["position"] == out["position"]
    assert main(["-q", "chat", "--checkpoint", str(et.checkpoint), "--video", str(clip_path), "--question", "Why?",
                 "--question", "How?", "--max-new-tokens", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("> Why?\n") and "\n> How?\n" in text


def test_chat_cli_refuses_an_answer_that_cannot_fit_in_one_line(et, clip_path, capsys):
    assert main(["-q", "chat", "--bundle", str(et.bundle), "--video", str(clip_path), "--question", "Why?",
                 "--max-new-tokens", "100000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: this question needs") and "start over" in err and "\n" not in err


def test_chat_cli_bad_inputs(et, clip_path, tmp_path, capsys):
    assert main(["-q", "chat", "--bundle", str(tmp_path), "--video", str(clip_path), "--question", "Why?"]) != 0
    assert "manifest.json" in capsys.readouterr().err
    assert main(["-q", "chat", "--bundle", str(et.bundle), "--video", str(tmp_path / "none.mp4"),
                 "--question", "Why?"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_chat_cli_interactive_restart(et, clip_path, monkeypatch, capsys):
    lines = iter(["What moves?", "/restart", "What moves?", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["-q", "chat", "--bundle", str(et.bundle), "--video", str(clip_path), "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ask about the clip") and "started over with the same clip" in out
    answers = [line for line in out[1:] if line and not line.startswith("started")]
    assert len(answers) == 2 and answers[0] == answers[1]
