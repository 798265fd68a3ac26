"""Run an exported bundle against the PyTorch reference, with named thresholds; JSON report.

Three drivers go through the same sequence the stock runner uses (prefill the text before the
video, the video rows, the text after, then one token per step):
- ``reference``: the float VideoLLM (transformers modules, transformers' KV cache);
- ``eager``: the export's own eager twin with the same recipe applied (quantized exports);
- ``pte``: the ``.pte`` through ``executorch.runtime``.
Then the ``.pte`` runs through the C++ ``MultimodalRunner`` (what the phone apps embed) with the
clip fed as an app feeds it: text, the tall uint8 image, text.

Float exports must reproduce the reference's greedy tokens exactly. Quantized exports are held
tightly to their eager twin and loosely (top-k agreement, KL) to the float reference.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DynamicCache

from sfllava_mobile.prompt import IMAGE_SENTINEL, build_input_ids
from sfllava_mobile.synthetic import synthetic_frames
from sfllava_mobile.video import normalize

from .metrics import logit_stats, merge, tensor_stats, token_stats
from .native_io import native_quiet, stdout_to_stderr
from .programs import tall_image

log = logging.getLogger("sfllava_mobile")

# Named bounds. "float": recipe none vs the float reference. "eager": a quantized export vs the
# same recipe in eager PyTorch (differences come only from kernels: XNNPACK's int8 dynamic
# activations vs torchao's reference math). "float_loose": a quantized export vs float; on
# random weights 4-bit error is large and says little, so these bounds catch breakage (a kernel
# off by 1/scale drives cosine towards 0), not quality. Per recipe, measured on the tiny model.
# Eager bounds measured on the tiny model and the 24-layer 0.5B shape (logits rel 0.016 / 0.045,
# cosine 0.99990 / 0.99899, KL 0.003 / 0.0004, top-1 1.0 both): activation-rounding differences
# grow with depth on near-flat random logits; KL and top-1 stay tight.
_EAGER = {"vision_encoder": {"rel": 0.02, "cosine": 0.9998}, "token_embedding": {"max_abs": 1e-6},
          "text_decoder": {"rel": 0.08, "cosine": 0.998, "top1": 0.9, "kl": 0.01}, "greedy": {"agreement": 0.5},
          "runner": {"text_equal": True}}
_LOOSE = {"vision_encoder": {"cosine": 0.95}, "token_embedding": {"cosine": 0.98},
          "text_decoder": {"cosine": 0.8, "kl": 5.0}}
THRESHOLDS = {
    "float": {"vision_encoder": {"rel": 1e-4, "cosine": 0.99999}, "token_embedding": {"max_abs": 0.0},
              "text_decoder": {"rel": 1e-4, "cosine": 0.99999, "top1": 1.0}, "greedy": {"exact": True},
              "runner": {"text_equal": True}},
    "eager": {"8da4w": _EAGER, "8da4w-v8": _EAGER, "8da4w-e8": _EAGER},
    "float_loose": {"8da4w": _LOOSE, "8da4w-v8": _LOOSE, "8da4w-e8": {**_LOOSE, "token_embedding": {"cosine": 0.999}}},
}
_QUESTIONS = ["What is moving in the video?", "Describe the colors and the motion.", "Where does the square go?",
              "How many objects appear, and what do they do?"]


@dataclass
class Case:
    frames: torch.Tensor  # [T, H, W, 3] uint8 at model size
    question: str
    before: list[int]
    after: list[int]


def make_cases(model, frames: int, n: int, seed: int) -> list[Case]:
    """Fresh clips (noise, and moving shapes with random colours) and questions, seeded."""
    g = torch.Generator().manual_seed(seed)
    h, w = model.config.vision.image_size
    cases = []
    for i in range(n):
        if i % 2 == 0:
            clip = torch.randint(0, 256, (frames, h, w, 3), generator=g, dtype=torch.uint8)
        else:
            clip = torch.from_numpy(synthetic_frames(frames, h, w))
            clip = (clip.int() + torch.randint(0, 256, (3,), generator=g)).remainder(256).to(torch.uint8)
        q = _QUESTIONS[int(torch.randint(0, len(_QUESTIONS), (1,), generator=g))]
        ids = build_input_ids(model.tokenizer, model.config.prompt, model.config.text, q)
        k = ids.index(IMAGE_SENTINEL)
        cases.append(Case(clip, q, ids[:k], ids[k + 1:]))
    return cases


class ReferenceDriver:
    """The float VideoLLM with transformers' own KV cache."""

    def __init__(self, model):
        self.model, self.cache = model, None

    def reset(self):
        self.cache = DynamicCache(config=self.model.language_model.config)

    def vision(self, image: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        v = self.model.config.vision
        return self.model.embed_video(normalize(frames, v.image_mean, v.image_std)).unsqueeze(0)

    def embed(self, ids: list[int]) -> torch.Tensor:
        return self.model.embed_tokens()(torch.tensor([ids]))

    def decode(self, embeds: torch.Tensor, pos: int) -> torch.Tensor:
        out = self.model.language_model(inputs_embeds=embeds, past_key_values=self.cache, use_cache=True,
                                        logits_to_keep=1)
        return out.logits[:, -1]


class EagerDriver:
    """The export's eager twin (Programs), quantized like the artifact."""

    def __init__(self, programs):
        self.p = programs

    def reset(self):
        self.p.text_decoder.reset()

    def vision(self, image, frames):
        return self.p.vision_encoder(image)

    def embed(self, ids):
        return self.p.token_embedding(torch.tensor([ids]))

    def decode(self, embeds, pos):
        with native_quiet():  # the eager custom cache ops run ExecuTorch's C++ kernels, which log per call
            return self.p.text_decoder(embeds, torch.tensor([pos]))


class PteDriver:
    """The ``.pte`` through ``executorch.runtime``: one Program, its methods kept loaded."""

    def __init__(self, pte: Path):
        from executorch.runtime import Runtime

        from .executorch_attention import register_ops

        register_ops()
        with native_quiet():
            self.program = Runtime.get().load_program(str(pte))
            self.methods = {m: self.program.load_method(m) for m in ("vision_encoder", "token_embedding", "text_decoder")}

    def _run(self, method: str, inputs: list):
        with native_quiet():
            return self.methods[method].execute(inputs)[0]

    def reset(self):
        pass  # positions decide what is read; stale cache rows past them are never attended

    def vision(self, image, frames):
        return self._run("vision_encoder", [image])

    def embed(self, ids):
        return self._run("token_embedding", [torch.tensor([ids])])

    def decode(self, embeds, pos):
        return self._run("text_decoder", [embeds.contiguous(), torch.tensor([pos])])

    def metadata(self, name: str):
        with native_quiet():
            return self.program.load_method(name).execute([])


@torch.inference_mode()
def drive(driver, case: Case, steps: int, eos: tuple[int, ...], teacher: list[int] | None = None,
          vocab_limit: int | None = None):
    """(vision rows, embedding of ``before``, logits rows [K, V], tokens) for one case.

    Greedy picks among the first ``vocab_limit`` logits, as the runner does (its sampler covers
    the tokenizer's vocabulary; rows past it are padding).
    """
    driver.reset()
    image = tall_image(case.frames)
    vis = driver.vision(image, case.frames)
    emb = driver.embed(case.before)
    pos, logits = 0, None
    for chunk in (emb, vis, driver.embed(case.after)):
        logits = driver.decode(chunk, pos)
        pos += chunk.shape[1]
    rows, tokens = [logits.reshape(1, -1)], []
    for i in range(steps if teacher is None else len(teacher)):
        tok = teacher[i] if teacher is not None else int(logits.reshape(-1)[:vocab_limit].argmax())
        if teacher is None and tok in eos:
            break
        tokens.append(tok)
        if teacher is None and len(tokens) == steps:
            break
        logits = driver.decode(driver.embed([tok]), pos)
        pos += 1
        rows.append(logits.reshape(1, -1))
    return vis, emb, torch.cat(rows), tokens


def _check(metrics: dict, bounds: dict) -> dict:
    failures = []
    for key, bound in bounds.items():
        value = metrics[key]
        ok = value == bound if isinstance(bound, bool) else (
            value <= bound if key in ("rel", "max_abs", "kl") else value >= bound)
        if not ok:
            failures.append(f"{key}={value:.6g} vs bound {bound}" if not isinstance(value, bool) else f"{key}={value}")
    return {**metrics, "bounds": bounds, "pass": not failures, "failures": failures}


def compare_drivers(test, ref, cases: list[Case], steps: int, eos, bounds: dict, vocab_limit: int | None = None) -> dict:
    """Per method and end to end: test driver vs reference driver on every case (worst case kept)."""
    vis_rows, emb_rows, dec_rows, tok_rows = [], [], [], []
    for case in cases:
        rvis, remb, _, rtok = drive(ref, case, steps, eos, vocab_limit=vocab_limit)
        _, _, rlog, _ = drive(ref, case, steps, eos, teacher=rtok)
        tvis, temb, tlog, _ = drive(test, case, steps, eos, teacher=rtok)
        _, _, _, ttok = drive(test, case, steps, eos, vocab_limit=vocab_limit)
        vis_rows.append(tensor_stats(tvis, rvis))
        emb_rows.append(tensor_stats(temb, remb))
        dec_rows.append(logit_stats(tlog, rlog))
        tok_rows.append(token_stats(ttok, rtok))
    out = {"vision_encoder": merge(vis_rows), "token_embedding": merge(emb_rows),
           "text_decoder": merge(dec_rows), "greedy": merge(tok_rows)}
    return {k: _check(v, bounds.get(k, {})) for k, v in out.items()}


def _raw_piece_tokenizer(tokenizer_json: Path, folder: Path) -> Path:
    """A copy of ``tokenizer.json`` without its decoder: every token then decodes to its raw vocab
    string, always valid UTF-8. A random-weight model's byte tokens often are not valid UTF-8 as
    text, and the runner's Python binding cannot hand such text to Python at all."""
    data = json.loads(tokenizer_json.read_text())
    data["decoder"] = None
    out = folder / "tokenizer.json"
    out.write_text(json.dumps(data))
    return out


def runner_check(bundle: Path, model, case: Case, steps: int, expected: list[int]) -> dict:
    """The C++ MultimodalRunner on the bundle's program, fed text + tall image + text as an app does.

    The prompt goes in as text (so the runner's own tokenizer is exercised, BOS as a token input
    where the template has one); the answer is compared token by token through raw pieces.
    """
    from executorch.extension.llm.runner import (GenerationConfig, MultimodalRunner, make_image_input,
                                                 make_text_input, make_token_input)

    tok, text = model.tokenizer, model.config.text
    before = case.before[1:] if text.bos_id is not None else case.before
    inputs = ([make_token_input([text.bos_id])] if text.bos_id is not None else []) + [
        make_text_input(tok.decode(before, skip_special_tokens=False)),
        make_image_input(tall_image(case.frames)[0]),
        make_text_input(tok.decode(case.after, skip_special_tokens=False))]
    pieces, stats = [], []
    with tempfile.TemporaryDirectory() as d:
        tokenizer = _raw_piece_tokenizer(bundle / "tokenizer.json", Path(d))
        with native_quiet(), stdout_to_stderr():
            runner = MultimodalRunner(str(bundle / "model.pte"), str(tokenizer))
            t0 = time.perf_counter()
            runner.generate(inputs, GenerationConfig(max_new_tokens=steps, temperature=0.0, echo=False),
                            pieces.append, stats.append)
            wall = time.perf_counter() - t0
    eos_pieces = {tok.backend.id_to_token(e) for e in text.eos_ids}
    got = []
    for p in pieces:  # the runner passes the EOS piece on before it stops
        if p in eos_pieces:
            break
        got.append(p)
    want = [tok.backend.id_to_token(i) for i in expected]
    res = {"text_equal": got == want, "runner_pieces": got, "expected_pieces": want,
           "expected_text": tok.decode(expected), "wall_s": round(wall, 4)}
    if stats:
        s = stats[0]
        res["stats"] = {"prompt_tokens": s.num_prompt_tokens, "generated_tokens": s.num_generated_tokens,
                        "prefill_ms": s.prompt_eval_end_ms - s.inference_start_ms,
                        "decode_ms": s.inference_end_ms - s.prompt_eval_end_ms}
    return res


def verify(bundle: Path, model, manifest: dict, eager_programs=None, cases: int = 2, steps: int = 8,
           seed: int = 1234) -> dict:
    """The parity report of ``bundle`` (see module docstring); ``pass`` is the conjunction of every check."""
    t0 = time.perf_counter()
    recipe = manifest["quantization"]["recipe"]
    frames = manifest["video"]["frames"]
    eos = tuple(model.config.text.eos_ids)
    cs = make_cases(model, frames, cases, seed)
    pte = PteDriver(bundle / manifest["artifacts"]["program"])
    ref = ReferenceDriver(model)
    limit = min(model.tokenizer.vocab_size, model.config.text.vocab_size)
    report = {"bundle": str(bundle), "recipe": recipe, "cases": cases, "steps": steps, "seed": seed,
              "greedy_vocab_limit": limit}
    if recipe == "none":
        report["vs_float"] = compare_drivers(pte, ref, cs, steps, eos, THRESHOLDS["float"], limit)
        expected_driver, runner_bounds = ref, THRESHOLDS["float"]["runner"]
    else:
        if eager_programs is None:
            raise ValueError("quantized bundles need their eager twin (rebuilt by verify_bundle)")
        eager = EagerDriver(eager_programs)
        report["vs_eager_recipe"] = compare_drivers(pte, eager, cs, steps, eos, THRESHOLDS["eager"][recipe], limit)
        report["vs_float"] = compare_drivers(pte, ref, cs, steps, eos, THRESHOLDS["float_loose"][recipe], limit)
        expected_driver, runner_bounds = pte, THRESHOLDS["eager"][recipe]["runner"]
    # The runner must produce what the same program produces when driven step by step.
    expected = drive(expected_driver, cs[0], steps, eos, vocab_limit=limit)[3]
    report["runner"] = _check(runner_check(bundle, model, cs[0], steps, expected), runner_bounds)
    report["pass"] = all(v["pass"] for section in ("vs_float", "vs_eager_recipe") if section in report
                         for v in report[section].values()) and report["runner"]["pass"]
    report["wall_s"] = round(time.perf_counter() - t0, 2)
    return report


def format_report(rep: dict) -> str:
    lines = [f"parity of {rep['bundle']} (recipe {rep['recipe']}, {rep['cases']} cases, {rep['steps']} steps): "
             f"{'PASS' if rep['pass'] else 'FAIL'}"]
    for section in ("vs_eager_recipe", "vs_float"):
        if section not in rep:
            continue
        lines.append(f"  {section}:")
        for name, m in rep[section].items():
            keys = [k for k in ("max_abs", "rel", "cosine", "top1", "top5_overlap", "kl", "agreement", "exact")
                    if k in m]
            vals = ", ".join(f"{k} {m[k]:.4g}" if not isinstance(m[k], bool) else f"{k} {m[k]}" for k in keys)
            lines.append(f"    {name:16s} {'ok  ' if m['pass'] else 'FAIL'} {vals}"
                         + (f"  [{'; '.join(m['failures'])}]" if m["failures"] else ""))
    r = rep["runner"]
    lines.append(f"  runner (C++ MultimodalRunner): {'ok' if r['pass'] else 'FAIL'} tokens equal {r['text_equal']}"
                 f" ({len(r['runner_pieces'])} vs {len(r['expected_pieces'])} tokens; answer {r['expected_text']!r})")
    return "\n".join(lines)


def verify_bundle(bundle: str | Path, checkpoint: str | Path | None = None, cases: int = 2, steps: int = 8,
                  seed: int = 1234, model=None, eager_programs=None) -> dict:
    """Verify a bundle folder: rebuild the reference (and the eager twin for quantized recipes) from
    the checkpoint the manifest names (or ``checkpoint``), run :func:`verify`, write ``parity.json``
    and the manifest's ``parity`` summary (atomically)."""
    from sfllava_mobile import bundle as bundle_mod
    from sfllava_mobile.checkpoint import load
    from sfllava_mobile.errors import SfllavaError
    from sfllava_mobile.fsutil import atomic_file

    from ..quantize import recipes
    from .executorch import prepare_programs, quantize_programs

    bundle = Path(bundle)
    manifest = bundle_mod.read_manifest(bundle)
    exp = manifest.get("export", {})
    if model is None:
        source = checkpoint or exp.get("source")
        if not source:
            raise SfllavaError(f"{bundle}/manifest.json names no source checkpoint: pass --checkpoint DIR")
        model = load(source, **exp.get("overrides", {}))
        if json.loads(json.dumps(model.config.to_dict())) != manifest["model"]["config"]:
            raise SfllavaError(f"the checkpoint {source} with the recorded overrides does not give the bundle's config")
    recipe = recipes.get(manifest["quantization"]["recipe"])
    if eager_programs is None and not recipe.is_float:
        ctx = manifest["context"]["max_context_len"]
        eager_programs = prepare_programs(model, manifest["video"]["frames"], ctx, exp.get("attention", "custom"),
                                          exp.get("rewrites", True))
        quantize_programs(eager_programs, recipe)
    report = verify(bundle, model, manifest, eager_programs, cases=cases, steps=steps, seed=seed)
    with atomic_file(bundle / "parity.json") as tmp:
        bundle_mod.write_json(tmp, report)
    manifest["parity"] = {"pass": report["pass"], "recipe": report["recipe"], "cases": cases, "steps": steps,
                          "summary": {sec: {k: {m: v[m] for m in ("max_abs", "rel", "cosine", "top1", "kl", "agreement")
                                                if m in v} for k, v in report[sec].items()}
                                      for sec in ("vs_float", "vs_eager_recipe") if sec in report},
                          "runner_tokens_equal": report["runner"]["text_equal"]}
    with atomic_file(bundle / "manifest.json") as tmp:
        bundle_mod.write_json(tmp, manifest)
    return report
