"""Running an ExecuTorch bundle on this host: the ``.pte`` method by method through
``executorch.runtime`` (parity, golden tokens, bench), and the stock C++ ``MultimodalRunner`` the
phone apps embed, fed as an app feeds it."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from ..errors import SfllavaError
from .native_io import native_quiet, stdout_to_stderr
from .programs import tall_image


class PteDriver:
    """The ``.pte`` through ``executorch.runtime``: one Program, its methods kept loaded."""

    name = "pte"
    engine = "the exported program (executorch.runtime, XNNPACK on this host)"

    def __init__(self, pte: Path, data: Path | None = None):
        from .kernels import load_program

        self.program, self.methods = load_program(pte, ("vision_encoder", "token_embedding", "text_decoder"), data)
        self.max_seq_len = int(self.metadata("get_max_seq_len")[0])

    def _run(self, method: str, inputs: list):
        with native_quiet():
            return self.methods[method].execute(inputs)[0]

    def reset(self):
        pass  # positions decide what is read; stale cache rows past them are never attended

    def rewind(self, pos: int):
        pass

    def vision(self, image, frames):
        return self._run("vision_encoder", [image])

    def embed(self, ids):
        n = self.max_seq_len  # the method's dynamic dimension stops there: longer text goes in chunks
        return torch.cat([self._run("token_embedding", [torch.tensor([ids[i:i + n]])]) for i in range(0, len(ids), n)],
                         dim=1)

    def decode(self, embeds, pos):
        return self._run("text_decoder", [embeds.contiguous(), torch.tensor([pos])])

    def decode_all(self, embeds, pos):
        # text_decoder returns the last row only (the runner's contract): one call per row.
        return torch.cat([self.decode(embeds[:, i:i + 1], pos + i).reshape(1, -1) for i in range(embeds.shape[1])])

    def metadata(self, name: str):
        with native_quiet():
            return self.program.load_method(name).execute([])


def raw_piece_tokenizer(tokenizer_json: Path, folder: Path) -> Path:
    """A copy of ``tokenizer.json`` without its decoder: every token then decodes to its raw vocab
    string, always valid UTF-8. A random-weight model's byte tokens often are not valid UTF-8 as
    text, and the runner's Python binding cannot hand such text to Python at all."""
    data = json.loads(tokenizer_json.read_text())
    data["decoder"] = None
    out = folder / "tokenizer.json"
    out.write_text(json.dumps(data))
    return out


def until_eos(pieces: list[str], eos_pieces: set[str]) -> list[str]:
    """The runner's streamed pieces up to the first EOS piece (it passes the EOS piece on before it stops)."""
    out = []
    for p in pieces:
        if p in eos_pieces:
            break
        out.append(p)
    return out


def program_files(bundle: Path, manifest=None) -> tuple[Path, Path | None]:
    """The bundle's ``.pte`` and its external data file (``None``: the program holds every constant)."""
    from sfllava_mobile.manifest import read_manifest

    et = (manifest or read_manifest(bundle)).executorch
    if et is None:
        raise SfllavaError(f"{bundle} is not an ExecuTorch bundle")
    return Path(bundle) / et.program, (Path(bundle) / et.data if et.data else None)


def make_runner(bundle: Path, tokenizer: Path):
    """The stock C++ ``MultimodalRunner`` on the bundle's program (and its data file, if it has one)."""
    from executorch.extension.llm.runner import MultimodalRunner

    pte, data = program_files(bundle)
    return MultimodalRunner(str(pte), str(tokenizer), str(data) if data else None)


def runner_check(bundle: Path, config, tokenizer, case: Case, steps: int, expected: list[int]) -> dict:
    """The C++ MultimodalRunner on the bundle's program, fed text + tall image + text as an app does.

    The prompt goes in as text (so the runner's own tokenizer is exercised, BOS as a token input
    where the template has one); the answer is compared token by token through raw pieces.
    """
    from executorch.extension.llm.runner import GenerationConfig, make_image_input, make_text_input, make_token_input

    from .kernels import register_all

    register_all()  # the runner's binding links no LLM or quantized kernels of its own
    tok, text = tokenizer, config.text
    before = case.before[1:] if text.bos_id is not None else case.before
    inputs = ([make_token_input([text.bos_id])] if text.bos_id is not None else []) + [
        make_text_input(tok.decode(before, skip_special_tokens=False)),
        make_image_input(tall_image(case.frames)[0]),
        make_text_input(tok.decode(case.after, skip_special_tokens=False))]
    pieces, stats = [], []
    with tempfile.TemporaryDirectory() as d:
        raw = raw_piece_tokenizer(bundle / "tokenizer.json", Path(d))
        with native_quiet(), stdout_to_stderr():
            runner = make_runner(bundle, raw)
            t0 = time.perf_counter()
            runner.generate(inputs, GenerationConfig(max_new_tokens=steps, temperature=0.0, echo=False),
                            pieces.append, stats.append)
            wall = time.perf_counter() - t0
    got = until_eos(pieces, {tok.backend.id_to_token(e) for e in text.eos_ids})
    want = [tok.backend.id_to_token(i) for i in expected]
    res = {"text_equal": got == want, "runner_pieces": got, "expected_pieces": want,
           "expected_text": tok.decode(expected), "wall_s": round(wall, 4)}
    if stats:
        s = stats[0]
        res["stats"] = {"prompt_tokens": s.num_prompt_tokens, "generated_tokens": s.num_generated_tokens,
                        "prefill_ms": s.prompt_eval_end_ms - s.inference_start_ms,
                        "decode_ms": s.inference_end_ms - s.prompt_eval_end_ms}
    return res


def runner_conversation_check(bundle: Path, manifest, tokenizer) -> dict:
    """Two questions about the golden clip on one C++ runner, without reset between them, as the apps
    ask a follow-up: both answers must be ``golden.json``'s conversation tokens (the program's own,
    driven step by step). The second question goes in as one text input at the runner's position."""
    from executorch.extension.llm.runner import GenerationConfig, make_image_input, make_text_input, make_token_input

    from sfllava_mobile.bundle import golden_clip
    from sfllava_mobile.config import ModelConfig
    from sfllava_mobile.manifest import read_golden

    from .kernels import register_all

    register_all()
    golden = read_golden(bundle)
    g, conv, bos = golden.prompt, golden.conversation, manifest.prompt.bos_id
    clip = golden_clip(ModelConfig.from_dict(manifest.model.config), manifest.video.frames)
    first = ([make_token_input([bos])] if bos is not None else []) + [
        make_text_input(g.text_before_video), make_image_input(tall_image(clip)[0]), make_text_input(g.text_after_video)]
    config = GenerationConfig(max_new_tokens=conv.max_new_tokens, temperature=0.0, echo=False)
    eos = {tokenizer.backend.id_to_token(e) for e in manifest.prompt.eos_ids}
    got = []
    with tempfile.TemporaryDirectory() as d:
        raw = raw_piece_tokenizer(Path(bundle) / "tokenizer.json", Path(d))
        with native_quiet(), stdout_to_stderr():
            runner = make_runner(Path(bundle), raw)
            for inputs in (first, [make_text_input(conv.text_next_turn)]):
                pieces = []
                runner.generate(inputs, config, pieces.append, lambda stats: None)
                got.append(until_eos(pieces, eos))
    want = [[tokenizer.backend.id_to_token(i) for i in t] for t in (conv.turn1_tokens, conv.turn2_tokens)]
    return {"text_equal": got == want, "runner_pieces": got[1], "expected_pieces": want[1],
            "turn1_equal": got[0] == want[0], "expected_text": tokenizer.decode(conv.turn2_tokens)}


def runner_timings(bundle: Path, manifest, before: list[int], image: torch.Tensor, after: list[int],
                   steps: int, followup: str | None = None) -> dict:
    """Prefill and decode timings of the C++ MultimodalRunner on the bundle, from its own stats;
    with ``followup``, a second question as one text input on the same runner (no reset)."""
    from executorch.extension.llm.runner import (GenerationConfig, make_image_input, make_text_input,
                                                 make_token_input)

    from .kernels import register_all

    register_all()
    stats = []
    # Raw-piece tokenizer: random-weight answers are often invalid UTF-8 (see raw_piece_tokenizer).
    with native_quiet(), stdout_to_stderr(), tempfile.TemporaryDirectory() as tmpdir:
        tokenizer = raw_piece_tokenizer(Path(bundle) / "tokenizer.json", Path(tmpdir))
        runner = make_runner(Path(bundle), tokenizer)
        inputs = [make_token_input(before), make_image_input(image), make_token_input(after)]
        t0 = time.perf_counter()
        config = GenerationConfig(max_new_tokens=steps + 1, temperature=0.0, echo=False)
        runner.generate(inputs, config, lambda piece: None, stats.append)
        wall = time.perf_counter() - t0
        if followup is not None:
            runner.generate([make_text_input(followup)], GenerationConfig(max_new_tokens=1, temperature=0.0, echo=False),
                            lambda piece: None, stats.append)
    s = stats[0]
    prefill = (s.prompt_eval_end_ms - s.inference_start_ms) / 1000
    decode = (s.inference_end_ms - s.prompt_eval_end_ms) / 1000
    extra = {}
    if followup is not None:
        f = stats[1]  # num_prompt_tokens counts from position 0: the turn is the difference
        extra = {"followup_prompt_tokens": f.num_prompt_tokens - s.num_prompt_tokens - s.num_generated_tokens,
                 "followup_time_to_first_token_s": (f.first_token_ms - f.inference_start_ms) / 1000}
    return {**extra, "prompt_tokens": s.num_prompt_tokens, "prefill_s": prefill, "decode_s": decode,
            "generated_tokens": s.num_generated_tokens, "wall_s": wall,
            "prefill_tokens_per_second": s.num_prompt_tokens / prefill if prefill else 0.0,
            "decode_tokens_per_second": s.num_generated_tokens / decode if decode else 0.0,
            "note": "prefill_s includes vision_encoder (the runner times them together); decode stops at EOS"}
