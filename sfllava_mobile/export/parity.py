"""Run an exported bundle against the PyTorch reference, with named thresholds; JSON report.

Backend-neutral: each driver goes through the sequence an app uses (prefill the text before the
video, the video rows, the text after, then one token per step) and its outputs are *recorded*
(a :class:`Trace`); comparisons run on the recordings. So only one model is in memory at a time:
the reference, then the eager twin, then the artifact.
- ``reference``: the float VideoLLM (transformers modules, transformers' KV cache);
- ``eager``: the export's own eager twin with the same recipe applied (quantized exports; the
  backend builds it: ``backend.eager_twin``);
- the artifact, through the backend's driver (``backend.driver``): the ``.pte`` through
  ``executorch.runtime``, or the Core ML packages' MIL programs evaluated on this host.
Then the backend's own checks run (``backend.checks``: the ExecuTorch C++ runner), and the bounds
come from the backend too (``backend.bounds``: per precision and component).

Decoder logits are compared teacher-forced along a fixed passage of real English prose
(``data/parity_text.txt``), so every driver scores the same positions and a few hundred of them
give stable top-1 / KL / perplexity numbers; free-running greedy tokens are compared too, and a
divergence is accepted only where the baseline itself was nearly tied (its log-probability gap
between the two tokens is small).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from sfllava_mobile.driver import ReferenceDriver, greedy, prefill  # noqa: F401  (ReferenceDriver: re-exported)
from sfllava_mobile.driver import fed_tokens
from sfllava_mobile.prompt import IMAGE_SENTINEL, build_input_ids, next_turn_ids
from sfllava_mobile.synthetic import synthetic_frames

from .metrics import greedy_stats, logit_stats, merge, tensor_stats
from .native_io import native_quiet
from .programs import tall_image

log = logging.getLogger("sfllava_mobile")

# A reference decoder up to this many parameters runs in float32; above it, in the checkpoint's
# 16-bit dtype (a 7B decoder is 27 GB in float32). Vision tower and projector are always float32.
REFERENCE_FP32_MAX_PARAMS = 2_000_000_000
FOLLOWUP_ROW_SLACK = 2.5  # a follow-up's one-row rel bound over the decoder's many-row bound
_QUESTIONS = ["What is moving in the video?", "Describe the colors and the motion.", "Where does the square go?",
              "How many objects appear, and what do they do?"]


def parity_text() -> str:
    return resources.files("sfllava_mobile").joinpath("data/parity_text.txt").read_text()


def teacher_ids(tokenizer, n: int) -> list[int]:
    """The first ``n`` tokens of the prose passage (repeated if the tokenizer needs fewer)."""
    ids: list[int] = []
    text = parity_text()
    while len(ids) < n:
        ids += tokenizer.encode(" " + text if not ids else "\n\n" + text)
    return ids[:n]


@dataclass
class Case:
    frames: torch.Tensor  # [T, H, W, 3] uint8 at model size
    question: str
    before: list[int]
    after: list[int]
    followup: list[int] = field(default_factory=list)  # a second question's turn ids (render_next_turn)
    history: list[int] | None = None  # the first answer the follow-up comes after (None: the driver's own)


def make_cases(config, tokenizer, frames: int, n: int, seed: int) -> list[Case]:
    """Fresh clips (noise, and moving shapes with random colours) and questions, seeded."""
    g = torch.Generator().manual_seed(seed)
    h, w = config.vision.image_size
    cases = []
    for i in range(n):
        if i % 2 == 0:
            clip = torch.randint(0, 256, (frames, h, w, 3), generator=g, dtype=torch.uint8)
        else:
            clip = torch.from_numpy(synthetic_frames(frames, h, w))
            clip = (clip.int() + torch.randint(0, 256, (3,), generator=g)).remainder(256).to(torch.uint8)
        j = int(torch.randint(0, len(_QUESTIONS), (1,), generator=g))
        q, q2 = _QUESTIONS[j], _QUESTIONS[(j + 1) % len(_QUESTIONS)]
        ids = build_input_ids(tokenizer, config.prompt, config.text, q)
        k = ids.index(IMAGE_SENTINEL)
        cases.append(Case(clip, q, ids[:k], ids[k + 1:], next_turn_ids(tokenizer, config.prompt, q2)))
    return cases


class EagerDriver:
    """The export's eager twin (Programs), quantized like the artifact."""

    name = "eager"
    engine = "the export's eager twin (PyTorch, the recipe applied)"

    def __init__(self, programs):
        self.p = programs

    def reset(self):
        self.p.text_decoder.reset()

    def rewind(self, pos: int):
        pass  # a static cache: rows past ``pos`` are overwritten before they are read

    def vision(self, image, frames):
        return self.p.vision_encoder(image)

    def embed(self, ids):
        return self.p.token_embedding(torch.tensor([ids]))

    def decode(self, embeds, pos):
        with native_quiet():  # the eager custom cache ops run ExecuTorch's C++ kernels, which log per call
            return self.p.text_decoder(embeds, torch.tensor([pos]))

    def decode_all(self, embeds, pos):
        dec = self.p.text_decoder
        dec.last_logits_only = False
        try:
            with native_quiet():
                return dec(embeds, torch.tensor([pos]))[0]
        finally:
            dec.last_logits_only = True


@dataclass
class Trace:
    """What one driver produced on one case."""

    vision: torch.Tensor  # [1, N_visual, hidden]
    embed: torch.Tensor  # embedding of the text before the video
    forced: torch.Tensor  # [K, V]: row i predicts teacher[i] (row 0 is the prompt's last row)
    tokens: list[int]  # free-running greedy answer (EOS not included)
    free_rows: torch.Tensor  # [len(tokens) + 1, V]: row j is the distribution that chose token j
    seconds: float
    history: list[int] = field(default_factory=list)  # the first answer as the follow-up saw it
    followup_tokens: list[int] = field(default_factory=list)  # the follow-up's greedy answer
    followup_rows: torch.Tensor | None = None  # [len(followup_tokens) + 1, V], as free_rows


@torch.inference_mode()
def record(driver, case: Case, teacher: list[int], steps: int, eos: tuple[int, ...],
           vocab_limit: int | None = None) -> Trace:
    """Prefill the case, score ``teacher`` teacher-forced, rewind, then run greedy for ``steps``;
    then, when the case has a follow-up, prefill the first answer (``case.history``, or this
    driver's own) and the follow-up turn after the prompt and run greedy for ``steps`` again.

    Greedy picks among the first ``vocab_limit`` logits, as the runner does (its sampler covers
    the tokenizer's vocabulary; rows past it are padding).
    """
    t0 = time.perf_counter()
    driver.reset()
    vis = driver.vision(tall_image(case.frames), case.frames)
    emb = driver.embed(case.before)
    prompt_end, first = prefill(driver, case.before, vis, case.after)
    rows = [first]
    if len(teacher) > 1:
        rows.append(driver.decode_all(driver.embed(teacher[:-1]), prompt_end).reshape(len(teacher) - 1, -1).float())
    forced = torch.cat(rows)[:max(len(teacher), 1)]
    driver.rewind(prompt_end)
    tokens, free = greedy(driver, first, prompt_end, steps, eos, vocab_limit)
    trace = Trace(vis.float(), emb.float(), forced, tokens, torch.cat([first, *free]), 0.0)
    if case.followup:
        # The same history for every driver (the reference's answer), so their follow-ups are comparable.
        trace.history = fed_tokens(tokens, steps) if case.history is None else case.history
        ids = trace.history + case.followup
        start = driver.decode(driver.embed(ids), prompt_end).reshape(1, -1).float()
        trace.followup_tokens, rows = greedy(driver, start, prompt_end + len(ids), steps, eos, vocab_limit)
        trace.followup_rows = torch.cat([start, *rows])
    trace.seconds = time.perf_counter() - t0
    return trace


def _check(metrics: dict, bounds: dict) -> dict:
    failures = []
    for key, bound in bounds.items():
        value = metrics[key]
        ok = value == bound if isinstance(bound, bool) else (
            value <= bound if key in ("rel", "max_abs", "kl", "kl_max", "ppl_ratio", "divergence_margin")
            else value >= bound)
        if not ok:
            failures.append(f"{key}={value:.6g} vs bound {bound}" if not isinstance(value, bool) else f"{key}={value}")
    return {**metrics, "bounds": bounds, "pass": not failures, "failures": failures}


def compare(test: list[Trace], base: list[Trace], teacher: list[int], bounds: dict,
            vocab_limit: int | None = None) -> dict:
    """Per method and end to end, test traces vs baseline traces (worst case over cases)."""
    vis = merge([tensor_stats(t.vision, b.vision) for t, b in zip(test, base, strict=True)])
    emb = merge([tensor_stats(t.embed, b.embed) for t, b in zip(test, base, strict=True)])
    dec = merge([logit_stats(t.forced, b.forced, teacher) for t, b in zip(test, base, strict=True)])
    gre = merge([greedy_stats(t.tokens, t.free_rows, b.tokens, b.free_rows, vocab_limit)
                 for t, b in zip(test, base, strict=True)])
    out = {"vision_encoder": vis, "token_embedding": emb, "text_decoder": dec, "greedy": gre}
    if all(t.followup_rows is not None for t in test + base):
        # The second question of a conversation, after the same first answer: its greedy tokens and
        # the logits that chose its first token, bounded like greedy and the decoder's cosine and rel
        # (rel widened: one row varies more than hundreds; no KL on one position) unless the backend
        # names its own. Real weights (SmolLM2, int8 cache): one-row rel 0.115 vs the decoder's 0.051.
        out["followup"] = merge([{**greedy_stats(t.followup_tokens, t.followup_rows, b.followup_tokens,
                                                 b.followup_rows, vocab_limit),
                                  **tensor_stats(t.followup_rows[:1], b.followup_rows[:1])}
                                 for t, b in zip(test, base, strict=True)])
        dec = bounds.get("text_decoder", {})
        row = {**({"cosine": dec["cosine"]} if "cosine" in dec else {}),
               **({"rel": FOLLOWUP_ROW_SLACK * dec["rel"]} if "rel" in dec else {})}
        bounds = {**bounds, "followup": bounds.get("followup", {**bounds.get("greedy", {}), **row})}
    return {k: _check(v, bounds.get(k, {})) for k, v in out.items()}


def _free() -> None:
    from sfllava_mobile.memory import release

    release()  # so the next stage's peak is its own


def reference_dtypes(config, recipe_is_float: bool, choice: str = "auto") -> dict[str, str]:
    """Dtypes the reference is loaded in: vision side float32; the decoder float32 when it is at
    most ``REFERENCE_FP32_MAX_PARAMS`` (or the recipe is ``none``, which needs the exact twin),
    else bfloat16. ``choice`` (``float32``, ``bfloat16``, ``stored``) forces the decoder's."""
    from sfllava_mobile.errors import ConfigError
    from sfllava_mobile.plan import parameter_counts

    if choice == "auto":
        small = parameter_counts(config)["text"] <= REFERENCE_FP32_MAX_PARAMS
        choice = "float32" if recipe_is_float or small else "bfloat16"
    elif choice not in ("float32", "bfloat16", "stored"):
        raise ConfigError(f"reference dtype {choice!r}: choose auto, float32, bfloat16 or stored")
    return {"text": choice, "vision": "float32"}


def verify_bundle(bundle: str | Path, checkpoint: str | Path | None = None, cases: int = 2, steps: int = 8,
                  seed: int = 1234, model=None, eager_programs=None, teacher_tokens: int = 64,
                  reference_dtype: str = "auto") -> dict:
    """The parity report of a bundle folder of any backend; ``pass`` is the conjunction of every check.

    The reference (and, for quantized recipes, the eager twin) is rebuilt from the checkpoint the
    manifest names (or ``checkpoint``) unless ``model`` / ``eager_programs`` are given. Stages run
    one after another and each frees its model before the next loads (see module docstring).
    Writes ``parity.json`` and the manifest's ``parity`` summary, atomically.
    """
    from sfllava_mobile import bundle as bundle_mod
    from sfllava_mobile.checkpoint import load, read_config
    from sfllava_mobile.errors import SfllavaError
    from sfllava_mobile.fsutil import atomic_file
    from sfllava_mobile.log import stage
    from sfllava_mobile.manifest import ParitySummary, write

    from ..quantize import recipes
    from . import backend as backends

    t_all = time.perf_counter()
    bundle = Path(bundle)
    manifest = bundle_mod.read_manifest(bundle)
    be = backends.get(manifest.backend)
    exp = manifest.export
    overrides = {**exp.overrides, "vision_tower_path": exp.vision_tower}
    recipe = recipes.get(manifest.quantization.recipe, manifest.backend)
    bounds = be.bounds(manifest)
    frames = manifest.video.frames
    source = checkpoint or exp.source
    timings: dict[str, float] = {}
    peaks: dict[str, float] = {}
    own_model = model is None
    if own_model:
        if not source:
            raise SfllavaError(f"{bundle}/manifest.json names no source checkpoint: pass --checkpoint DIR")
        dtypes = reference_dtypes(read_config(source, exp.vision_tower, **exp.overrides)[0], recipe.is_float,
                                  reference_dtype)
        with stage("load_reference", timings, peaks):
            model = load(source, dtype=dtypes, **overrides)
        if json.loads(json.dumps(model.config.to_dict())) != manifest.model.config:
            raise SfllavaError(f"the checkpoint {source} with the recorded overrides does not give the bundle's config")
    config, tokenizer = model.config, model.tokenizer
    eos = tuple(config.text.eos_ids)
    limit = min(tokenizer.vocab_size, config.text.vocab_size)
    cs = make_cases(config, tokenizer, frames, cases, seed)
    # Teacher-forced text and greedy steps must fit the program's KV cache after the prompt.
    room = manifest.context.max_context_len - manifest.visual_tokens - max(len(c.before) + len(c.after) for c in cs)
    if teacher_tokens > room or steps > room:
        log.warning("parity: %d positions left after the prompt (max_context_len %d): teacher tokens %d -> %d, "
                    "steps %d -> %d", room, manifest.context.max_context_len, teacher_tokens,
                    min(teacher_tokens, room), steps, min(steps, room))
        teacher_tokens, steps = min(teacher_tokens, room), min(steps, room)
    if room < 2 * steps + max(len(c.followup) for c in cs):
        log.warning("parity: no room for a follow-up question after %d answer tokens (%d positions left): "
                    "the follow-up is not checked", steps, room)
        for c in cs:
            c.followup = []
    teacher = teacher_ids(tokenizer, teacher_tokens)
    report = {"bundle": str(bundle), "backend": manifest.backend, "recipe": recipe.name, "cases": cases,
              "steps": steps, "seed": seed, "teacher_tokens": len(teacher), "greedy_vocab_limit": limit,
              "reference_dtype": {"text": str(model.text_dtype).replace("torch.", ""),
                                  "vision": str(model.dtype).replace("torch.", "")}}
    with stage("reference", timings, peaks):
        ref = [record(ReferenceDriver(model), c, teacher, steps, eos, limit) for c in cs]
    for c, r in zip(cs, ref):
        c.history = r.history
    if own_model:
        del model
        _free()
    eager = None
    if "vs_eager" in bounds:
        programs = eager_programs
        if programs is None:
            if not source:
                raise SfllavaError("quantized bundles need their eager twin: pass --checkpoint DIR")
            with stage("build_eager_twin", timings, peaks):
                programs = be.eager_twin(load(source, dtype="stored", **overrides), manifest, bundle)
        with stage("eager_twin", timings, peaks):
            eager = [record(EagerDriver(programs), c, teacher, steps, eos, limit) for c in cs]
        del programs
        _free()
    with stage("artifact", timings, peaks):
        driver = be.driver(bundle, manifest)
        report["engine"] = driver.engine
        art = [record(driver, c, teacher, steps, eos, limit) for c in cs]
        del driver
        _free()
    report["vs_float"] = compare(art, ref, teacher, bounds["vs_float"], limit)
    if eager is not None:
        report["vs_eager_recipe"] = compare(art, eager, teacher, bounds["vs_eager"], limit)
        report["eager_vs_float"] = compare(eager, ref, teacher, {}, limit)  # the recipe's own loss, reported
    # Backend checks (the runner) must produce what the artifact produces when driven step by step.
    extra = be.checks(bundle, manifest, config, tokenizer, cs[0], steps, art[0].tokens)
    report["checks"] = {name: _check(res, bounds["checks"].get(name, {})) for name, res in extra.items()}
    report["pass"] = (all(v["pass"] for section in ("vs_float", "vs_eager_recipe") if section in report
                          for v in report[section].values()) and all(c["pass"] for c in report["checks"].values()))
    report["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    report["peak_rss_gb"] = peaks
    report["wall_s"] = round(time.perf_counter() - t_all, 2)
    with atomic_file(bundle / "parity.json") as tmp:
        bundle_mod.write_json(tmp, report)
    keys = ("max_abs", "rel", "cosine", "top1", "top1_confident", "kl", "ppl_ratio", "agreement", "divergence_margin")
    manifest.parity = ParitySummary.model_validate({
        "pass": report["pass"], "recipe": report["recipe"], "backend": manifest.backend, "engine": report["engine"],
        "cases": cases, "steps": steps, "teacher_tokens": len(teacher), "reference_dtype": report["reference_dtype"],
        "summary": {sec: {k: {m: float(v[m]) for m in keys if m in v} for k, v in report[sec].items()}
                    for sec in ("vs_float", "vs_eager_recipe") if sec in report},
        "runner_tokens_equal": all(r["text_equal"] for r in report["checks"].values()) if report["checks"] else None})
    with atomic_file(bundle / "manifest.json") as tmp:
        write(tmp, manifest)
    return report


def format_report(rep: dict) -> str:
    lines = [f"parity of {rep['bundle']} ({rep['backend']}, recipe {rep['recipe']}, {rep['cases']} cases, {rep['steps']} steps): "
             f"{'PASS' if rep['pass'] else 'FAIL'}"]
    lines.append(f"  artifact run by {rep['engine']}")
    lines[0] += (f" teacher-forced over {rep.get('teacher_tokens')} tokens of prose; reference decoder in "
                 f"{rep.get('reference_dtype', {}).get('text')}")
    for section in ("vs_eager_recipe", "vs_float", "eager_vs_float"):
        if section not in rep:
            continue
        lines.append(f"  {section}:" + ("  (the recipe's own loss, reported only)" if section == "eager_vs_float" else ""))
        for name, m in rep[section].items():
            keys = [k for k in ("max_abs", "rel", "cosine", "top1", "top1_confident", "kl", "kl_max", "ppl",
                                "ppl_reference", "ppl_ratio", "agreement", "divergence_margin", "exact") if k in m]
            vals = ", ".join(f"{k} {m[k]:.4g}" if not isinstance(m[k], bool) else f"{k} {m[k]}" for k in keys)
            lines.append(f"    {name:16s} {'ok  ' if m['pass'] else 'FAIL'} {vals}"
                         + (f"  [{'; '.join(m['failures'])}]" if m["failures"] else ""))
    for name, r in rep.get("checks", {}).items():
        lines.append(f"  {name}: {'ok' if r['pass'] else 'FAIL'} tokens equal {r['text_equal']}"
                     f" ({len(r['runner_pieces'])} vs {len(r['expected_pieces'])} tokens; answer {r['expected_text']!r})")
    return "\n".join(lines)
