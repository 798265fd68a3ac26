"""Replay: the Kotlin ``replay`` program builds the app's ``LlmModule`` calls with ``core`` for the
golden conversation (the clip, the golden question, its follow-up); ExecuTorch's C++ runner, fed
exactly those inputs turn by turn without reset, must answer the bundle's golden tokens for both."""

from __future__ import annotations

import hashlib
import json

import pytest

from sfllava_mobile.apps import kotlin
from sfllava_mobile.export.executorch_runtime import until_eos
from sfllava_mobile.manifest import read_golden, read_manifest
from sfllava_mobile.tokenizer import Tokenizer

from .conftest import APP_LAYOUTS

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("which", range(len(APP_LAYOUTS)), ids=APP_LAYOUTS)
def test_runner_fed_the_apps_two_turns_answers_the_golden_conversation(core_build, app_bundles, tmp_path, which):
    from sfllava_mobile.apps.replay import replay
    from sfllava_mobile.bundle import golden_clip
    from sfllava_mobile.config import ModelConfig
    from sfllava_mobile.video import tall_image

    bundle = app_bundles[which]
    r = kotlin.run_replay(core_build, bundle, tmp_path)
    assert r.returncode == 0, r.stderr
    calls = json.loads((tmp_path / "calls.json").read_text())
    golden, manifest = read_golden(bundle), read_manifest(bundle)
    image = (tmp_path / "image.bin").read_bytes()
    # The app's clip is byte-identical to the one the golden tokens were produced from.
    cfg = ModelConfig.from_dict(manifest.model.config)
    assert image == tall_image(golden_clip(cfg, golden.greedy.clip_frames)).numpy().tobytes()
    assert hashlib.sha256(image).hexdigest() == golden.greedy.image_sha256 == calls["image_sha256"]
    assert calls["num_bos"] == (0 if manifest.prompt.bos_id is None else 1)

    # The runner's own tokenizer turns the app's texts into the reference's ids (BOS through numBos).
    from pytorch_tokenizers.pytorch_tokenizers_cpp import HFTokenizer

    cpp = HFTokenizer()
    cpp.load(str(bundle / "tokenizer.json"))
    first, second = calls["turns"]
    texts = [c["text"] for c in first["calls"] if c["call"] != "prefillImages"]
    assert cpp.encode(texts[0], calls["num_bos"], 0) == golden.prompt.ids_before_video
    assert cpp.encode(texts[1], 0, 0) == golden.prompt.ids_after_video
    conv = golden.conversation
    assert [c["call"] for c in second["calls"]] == ["generate"]  # the follow-up re-sends neither clip nor prompt
    assert second["calls"][0]["text"] == conv.text_next_turn and cpp.encode(conv.text_next_turn, 0, 0) == conv.ids_next_turn

    turns = replay(bundle, tmp_path, conv.max_new_tokens)
    tok = Tokenizer.from_folder(bundle)
    eos = {tok.backend.id_to_token(e) for e in manifest.prompt.eos_ids}
    got = [until_eos(pieces, eos) for pieces in turns]
    want = [[tok.backend.id_to_token(i) for i in t] for t in (conv.turn1_tokens, conv.turn2_tokens)]
    assert got == want and conv.turn1_tokens == golden.greedy.tokens


def test_replay_refuses_a_non_bundle_in_one_line(core_build, tmp_path):
    r = kotlin.run_replay(core_build, tmp_path, tmp_path / "out")
    assert r.returncode == 1 and r.stderr.strip() == f"error: {tmp_path} is not a bundle: no manifest.json"


def test_bundle_tokenizer_config_serves_app_tokenizers(app_bundles):
    """tokenizer_config.json: swift-transformers needs its tokenizer_class; ExecuTorch's C++ tokenizer,
    given the folder, reads BOS/EOS from it; transformers loads the folder to the same ids."""
    from pytorch_tokenizers.pytorch_tokenizers_cpp import HFTokenizer
    from transformers import AutoTokenizer

    for bundle in app_bundles:
        manifest, golden = read_manifest(bundle), read_golden(bundle)
        cfg = json.loads((bundle / manifest.artifacts["tokenizer_config"]).read_text())
        assert cfg["tokenizer_class"] and cfg["add_bos_token"] is False
        cpp = HFTokenizer()
        cpp.load(str(bundle))
        assert cpp.eos_tok() == manifest.prompt.eos_ids[0]
        if manifest.prompt.bos_id is not None:
            assert cpp.bos_tok() == manifest.prompt.bos_id
        hf = AutoTokenizer.from_pretrained(str(bundle))
        assert hf.encode(golden.prompt.text_after_video, add_special_tokens=False) == golden.prompt.ids_after_video
