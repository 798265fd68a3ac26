"""Feeding the Android app's ``LlmModule`` calls (written by the Kotlin ``replay`` program from the
app's own ``core`` code) to ExecuTorch's C++ ``MultimodalRunner``, the engine inside ``LlmModule``.

``LlmModule`` makes the calls one by one (``prefillPrompt``, ``prefillImages``, ``generate``); the
runner prefills them in order at the running position and adds the constructor's ``numBos`` BOS
tokens to the first text only. The Python binding's ``generate(inputs, config)`` runs the same
prefills in the same order with ``config.num_bos`` on the first text, so the tokens it produces are
the tokens the phone's runner produces for those inputs. A conversation is one call list per turn,
replayed on the same runner without reset, as the app asks a follow-up.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import SfllavaError
from ..export.executorch_runtime import make_runner, raw_piece_tokenizer
from ..export.native_io import native_quiet, stdout_to_stderr


def load_calls(folder: Path) -> dict:
    calls = json.loads((folder / "calls.json").read_text())
    for i, turn in enumerate(calls["turns"]):
        kinds = [c["call"] for c in turn["calls"]]
        if kinds[-1:] != ["generate"] or kinds.count("generate") != 1:
            raise SfllavaError(f"turn {i + 1}'s calls must end with one generate(), got {kinds}")
    return calls


def _inputs(folder: Path, turn: dict) -> list:
    from executorch.extension.llm.runner import make_image_input, make_text_input

    inputs = []
    for c in turn["calls"]:
        if c["call"] == "prefillImages":
            raw = np.frombuffer((folder / c["file"]).read_bytes(), dtype=np.uint8)
            if raw.size != c["channels"] * c["height"] * c["width"]:
                raise SfllavaError(f"{c['file']} has {raw.size} bytes, not {c['channels']}x{c['height']}x{c['width']}")
            inputs.append(make_image_input(torch.from_numpy(raw.copy()).reshape(c["channels"], c["height"], c["width"])))
        else:
            inputs.append(make_text_input(c["text"]))
    return inputs


def replay(bundle: Path, folder: Path, max_new_tokens: int) -> list[list[str]]:
    """Per turn, the raw pieces (the tokenizer's vocab strings, no decoder) the runner streams for the
    calls; one runner for the whole conversation."""
    from executorch.extension.llm.runner import GenerationConfig

    from ..export.kernels import register_all

    calls = load_calls(folder)
    register_all()
    out: list[list[str]] = []
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, echo=False, num_bos=calls["num_bos"])
    with tempfile.TemporaryDirectory() as d, native_quiet(), stdout_to_stderr():
        # Raw pieces: a random-weight answer is often not valid UTF-8 text (raw_piece_tokenizer).
        runner = make_runner(bundle, raw_piece_tokenizer(bundle / "tokenizer.json", Path(d)))
        for turn in calls["turns"]:
            pieces: list[str] = []
            runner.generate(_inputs(folder, turn), config, pieces.append, lambda stats: None)
            out.append(pieces)
    return out
