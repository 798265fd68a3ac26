"""Same-run peer benchmark: our ExecuTorch bundle against llama.cpp on the same weights and tokens.

    python benchmarks/peer_llamacpp.py --model smollm2 --recipes 8da4w,8da4w-awq,8da4w-awq-h8
    python benchmarks/peer_llamacpp.py --model qwen2.5-0.5b --no-quality      # random weights: speed only

Steps (each cached under --work, so a second run only measures):
1. llama.cpp: the source the ``llama-cpp-python`` sdist on PyPI vendors (``pip download --no-binary``),
   built with cmake (``llama-bench``, ``llama-perplexity``, ``llama-quantize``; ~5 min on 2 cores).
2. The same decoder as a transformers folder -> ``convert_hf_to_gguf.py`` (its vendored gguf-py)
   at f32 -> ``llama-quantize`` Q4_0 (default: 8-bit output layer), Q4_0 ``--pure``, Q4_K_M.
3. Our bundles: ``sfllava-mobile export --quant RECIPE`` of the same checkpoint.
4. Quality: ``llama-perplexity`` on the f32 file writes the base logits and the token ids
   (``--kl-divergence-base``); each quantized GGUF is scored against it. Our side reads exactly those
   token ids and scores the same positions (second half of each chunk, teacher-forced, BOS as
   llama.cpp puts it) with our float32 PyTorch model as the reference and the ``.pte`` as the test.
5. Speed, interleaved (engine order rotates each round, so machine noise hits every engine):
   ``llama-bench -p 128 -n 0`` / ``-p 0 -n 128`` at the same thread count vs our ``.pte`` prefilling
   128 tokens in one call and decoding 128 tokens one call each from an empty cache; the read
   bandwidth is measured in the same run, giving each engine's decode floor (bytes read per token /
   bandwidth).

Output: one JSON line per run appended to ``benchmarks/results/peer_llamacpp.jsonl`` and a markdown
table (``benchmarks/results/peer_llamacpp.md``) with ratios against llama.cpp Q4_0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

LLAMA_CPP_PYTHON = "0.3.36"
TARGETS = ("llama-bench", "llama-perplexity", "llama-quantize")
GGUF_VARIANTS = {"q4_0": ("Q4_0",), "q4_0-pure": ("Q4_0", "--pure"), "q4_k_m": ("Q4_K_M",)}
EVAL_TEXT = HERE / "data" / "peer_eval.txt"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(map(str, cmd[:3]))} ... failed ({proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return proc


# ---- llama.cpp build ---------------------------------------------------------------------------

def build_llamacpp(cache: Path) -> Path:
    """The vendored llama.cpp source tree with its three tools built (cached)."""
    src = cache / f"llama_cpp_python-{LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"
    bins = src / "build" / "bin"
    if all((bins / t).is_file() for t in TARGETS):
        return src
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    if not sdist.is_file():
        log(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON} sdist from PyPI")
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
             f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", cache])
    if not src.is_dir():
        with tarfile.open(sdist) as t:
            t.extractall(cache, filter="data")
    t0 = time.perf_counter()
    log("building llama.cpp (cmake, Release, native; about 5 min on 2 cores)")
    run(["cmake", "-S", src, "-B", src / "build", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
         "-DGGML_NATIVE=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"])
    run(["cmake", "--build", src / "build", "-j", str(os.cpu_count() or 2), "--target", *TARGETS])
    log(f"llama.cpp built in {time.perf_counter() - t0:.0f} s")
    return src


# ---- checkpoints --------------------------------------------------------------------------------

def our_checkpoint(model: str, work: Path) -> Path:
    if model == "smollm2":
        from real_weights import make_smollm2_checkpoint

        return make_smollm2_checkpoint(work / "ckpt-smollm2")
    from executorch_llm import make_checkpoint

    return make_checkpoint(model, work / f"ckpt-{model}")


def hf_folder(model: str, ckpt: Path, work: Path) -> Path:
    """The decoder as a transformers folder (float32) with a tokenizer llama.cpp's converter knows:
    SmolLM2's own; for the random shapes SmolLM2's too (the converter pads the vocabulary)."""
    out = work / f"hf-{model}"
    if (out / "config.json").is_file():
        return out
    import sfllava_mobile as sfm
    from real_weights import smollm2_gguf
    from transformers import AutoTokenizer

    m = sfm.load(ckpt, dtype="float32")
    tmp = out.with_name(out.name + ".partial")
    m.language_model.save_pretrained(tmp)
    g = smollm2_gguf()
    AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name).save_pretrained(tmp)
    tmp.rename(out)
    return out


def gguf_files(src: Path, hf: Path, work: Path, model: str) -> dict[str, Path]:
    base = work / f"{model}-f32.gguf"
    if not base.is_file():
        log("convert_hf_to_gguf.py -> f32")
        run([sys.executable, src / "convert_hf_to_gguf.py", hf, "--outtype", "f32", "--outfile", base])
    files = {"f32": base}
    for name, args in GGUF_VARIANTS.items():
        path = work / f"{model}-{name}.gguf"
        if not path.is_file():
            log(f"llama-quantize {' '.join(args)}")
            extra = [a for a in args if a.startswith("--")]
            run([src / "build" / "bin" / "llama-quantize", *extra, base, path, args[0]])
        files[name] = path
    return files


def our_bundles(ckpt: Path, recipes: list[str], work: Path, model: str, ctx: int) -> dict[str, Path]:
    out = {}
    for spec in recipes:
        recipe, _, option = spec.partition("+")  # "8da4w-awq-h8+shared": export --shared-table
        if option not in ("", "shared"):
            raise SystemExit(f"error: {spec}: the only recipe option is +shared (export --shared-table)")
        b = work / f"{model}-{spec}"
        if not (b / "manifest.json").is_file():
            log(f"export {spec} (no verify; the quality below is the check)")
            t0 = time.perf_counter()
            run([sys.executable, "-m", "sfllava_mobile.cli", "-q", "export", "--checkpoint", ckpt, "--quant", recipe,
                 "--frames", "4", "--max-seq-len", "256", "--max-context-len", str(max(512, ctx)), "--no-verify",
                 "--out", b, "--overwrite", *(["--shared-table"] if option else [])])
            log(f"exported {spec} in {time.perf_counter() - t0:.0f} s")
        out[spec] = b
    return out


# ---- quality ------------------------------------------------------------------------------------

def read_kld_tokens(path: Path) -> tuple[int, int, list[list[int]]]:
    """n_ctx, n_vocab and the chunk token ids from a ``--kl-divergence-base`` file."""
    with open(path, "rb") as f:
        if f.read(8) != b"_logits_":
            raise SystemExit(f"error: {path} is not a llama-perplexity logits file")
        n_ctx, n_vocab, n_chunk = struct.unpack("<iii", f.read(12))
        ids = list(struct.unpack(f"<{n_ctx * n_chunk}i", f.read(4 * n_ctx * n_chunk)))
    return n_ctx, n_vocab, [ids[c * n_ctx:(c + 1) * n_ctx] for c in range(n_chunk)]


def parse_perplexity(text: str) -> dict:
    def grab(pattern):
        m = re.search(pattern, text)
        return float(m.group(1)) if m else None
    return {"ppl": grab(r"Mean PPL\(Q\)\s*:\s*([\d.]+)"), "ppl_reference": grab(r"Mean PPL\(base\)\s*:\s*([\d.]+)"),
            "mean_kl": grab(r"Mean\s+KLD:\s*([\d.]+)"), "same_top1": round((grab(r"Same top p:\s*([\d.]+)") or 0) / 100, 5)}


def llamacpp_quality(src: Path, files: dict[str, Path], work: Path, model: str, ctx: int, chunks: int,
                     threads: int) -> tuple[dict, Path]:
    bins = src / "build" / "bin"
    base = work / f"{model}-c{ctx}x{chunks}.kld"
    if not base.is_file():
        log("llama-perplexity: f32 base logits")
        run([bins / "llama-perplexity", "-m", files["f32"], "-f", EVAL_TEXT, "-c", ctx, "-b", ctx, "--chunks", chunks,
             "-t", threads, "--kl-divergence-base", base])
    out = {}
    for name in GGUF_VARIANTS:
        log(f"llama-perplexity --kl-divergence: {name}")
        p = run([bins / "llama-perplexity", "-m", files[name], "--kl-divergence-base", base, "--kl-divergence",
                 "-t", threads])
        out[name] = parse_perplexity(p.stdout + p.stderr)
    return out, base


def add_bos(gguf: Path) -> int | None:
    """llama.cpp's BOS id if the file says to add one, else None."""
    from gguf import GGUFReader

    r = GGUFReader(str(gguf))
    def field(name):
        f = r.fields.get(name)
        return None if f is None else f.parts[f.data[0]][0]
    return int(field("tokenizer.ggml.bos_token_id")) if field("tokenizer.ggml.add_bos_token") else None


def our_quality(ckpt: Path, bundles: dict[str, Path], kld: Path, bos: int | None) -> dict:
    import sfllava_mobile as sfm
    from sfllava_mobile.quantize import calibration, quality

    n_ctx, _, chunk_ids = read_kld_tokens(kld)
    if bos is not None:
        chunk_ids = [[bos, *c[1:]] for c in chunk_ids]
    chunks = quality.Chunks(chunk_ids, n_ctx)
    model = sfm.load(ckpt, dtype="float32")
    lm = model.language_model.eval()
    t0 = time.perf_counter()
    ref = quality.scored_logits(quality.causal_lm_logits(lm), chunks)
    log(f"float32 reference over {chunks.scored} positions in {time.perf_counter() - t0:.0f} s")
    out = {"float32 (PyTorch)": quality.compare(ref, ref, chunks)}
    model = lm = None  # free the float model before the bundles load
    for recipe, b in bundles.items():
        t0 = time.perf_counter()
        test = calibration.artifact_logits(our_driver(b), chunks)
        out[recipe] = quality.compare(ref, test, chunks)
        log(f"{recipe}: KL {out[recipe]['mean_kl']:.4f}, top-1 {out[recipe]['same_top1']:.3f} "
            f"({time.perf_counter() - t0:.0f} s)")
    return out


# ---- speed --------------------------------------------------------------------------------------

def llama_bench(src: Path, gguf: Path, threads: int, n_prompt: int, n_gen: int) -> dict:
    p = run([src / "build" / "bin" / "llama-bench", "-m", gguf, "-t", threads, "-p", n_prompt, "-n", "0", "-r", "1",
             "-o", "json"])
    pp = json.loads(p.stdout)[0]["avg_ts"]
    g = run([src / "build" / "bin" / "llama-bench", "-m", gguf, "-t", threads, "-p", "0", "-n", n_gen, "-r", "1",
             "-o", "json"])
    tg = json.loads(g.stdout)[0]["avg_ts"]
    return {"prefill_tok_s": pp, "decode_tok_s": tg}


class OurSpeed:
    """The .pte loaded once; each call times one prefill of ``n_prompt`` tokens and ``n_gen`` decode
    calls from an empty cache (as llama-bench's pp / tg tests)."""

    def __init__(self, bundle: Path):
        self.driver = our_driver(bundle)
        self.emb = self.driver.embed(list(range(1, 257)))
        self.driver.decode(self.emb[:, :8], 0)  # warm-up (XNNPACK packs weights on first use)

    def __call__(self, n_prompt: int, n_gen: int) -> dict:
        d = self.driver
        t0 = time.perf_counter()
        d.decode(self.emb[:, :n_prompt], 0)
        pp = n_prompt / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n_gen):
            d.decode(self.emb[:, i:i + 1], i)
        tg = n_gen / (time.perf_counter() - t0)
        return {"prefill_tok_s": pp, "decode_tok_s": tg}


def gguf_read_bytes(path: Path) -> int:
    """Weight bytes a decode step reads: every tensor but the token table, unless it is the head too."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    names = {t.name for t in r.tensors}
    tied = "output.weight" not in names
    return sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight" or tied)


def our_driver(bundle: Path):
    """The bundle's program (and data file, if it has one) through executorch.runtime."""
    from sfllava_mobile.export.executorch import driver
    from sfllava_mobile.manifest import read_manifest

    return driver(bundle, read_manifest(bundle))


def bundle_file_bytes(bundle: Path) -> int:
    """What an app ships of the program: ``model.pte`` plus its data file, if any."""
    m = json.loads((bundle / "manifest.json").read_text())["executorch"]
    return sum((bundle / f).stat().st_size for f in (m["program"], m.get("data")) if f)


def bundle_read_bytes(bundle: Path) -> int:
    """Our decode step's weight bytes: the decoder's linears and head by their coverage rows."""
    m = json.loads((bundle / "manifest.json").read_text())
    total = 0.0
    for r in m["quantization"]["coverage"]:
        if r["component"] == "decoder":
            n = 1
            for s in r["shape"]:
                n *= s
            total += n * r["bits_per_weight"] / 8
    return int(total)


def speed(src: Path, files: dict[str, Path], bundles: dict[str, Path], rounds: int, threads: int,
          n_prompt: int, n_gen: int) -> dict:
    from executorch_llm import read_bandwidth_gbs

    ours = {r: OurSpeed(b) for r, b in bundles.items()}
    engines = [("llama.cpp " + n, n) for n in GGUF_VARIANTS] + [("ours " + r, r) for r in bundles]
    runs: dict[str, list[dict]] = {e: [] for e, _ in engines}
    bandwidth = []
    for k in range(rounds):
        order = engines[k % len(engines):] + engines[:k % len(engines)]
        bandwidth.append(read_bandwidth_gbs(1.0, 5))
        for label, key in order:
            r = llama_bench(src, files[key], threads, n_prompt, n_gen) if label.startswith("llama") else \
                ours[key](n_prompt, n_gen)
            runs[label].append(r)
            log(f"round {k + 1}/{rounds} {label}: prefill {r['prefill_tok_s']:.0f} tok/s, "
                f"decode {r['decode_tok_s']:.1f} tok/s")
    bw = statistics.median(bandwidth)
    out = {"read_bandwidth_gbs": round(bw, 1), "read_bandwidth_runs": [round(b, 1) for b in bandwidth], "engines": {}}
    for label, key in engines:
        rs = runs[label]
        read = gguf_read_bytes(files[key]) if label.startswith("llama") else bundle_read_bytes(bundles[key])
        size = files[key].stat().st_size if label.startswith("llama") else bundle_file_bytes(bundles[key])
        dec = statistics.median(r["decode_tok_s"] for r in rs)
        floor = bw * 1e9 / read
        out["engines"][label] = {
            "file_bytes": size, "read_bytes_per_token": read,
            "prefill_tok_s": round(statistics.median(r["prefill_tok_s"] for r in rs), 1),
            "prefill_range": [round(min(r["prefill_tok_s"] for r in rs), 1), round(max(r["prefill_tok_s"] for r in rs), 1)],
            "decode_tok_s": round(dec, 1),
            "decode_range": [round(min(r["decode_tok_s"] for r in rs), 1), round(max(r["decode_tok_s"] for r in rs), 1)],
            "decode_floor_tok_s": round(floor, 1), "decode_fraction_of_floor": round(dec / floor, 3)}
    return out


# ---- report -------------------------------------------------------------------------------------

def table(result: dict) -> str:
    q = result.get("quality", {})
    s = result["speed"]["engines"]
    ref = s.get("llama.cpp q4_0", {})
    lines = [f"{result['model']}, {result['date']}, {result['machine']}, {result['threads']} threads, "
             f"read bandwidth {result['speed']['read_bandwidth_gbs']} GB/s; quality: {result.get('scored_tokens', '-')} "
             f"scored tokens, contexts of {result['ctx']}",
             "", "| engine | file MB | decode tok/s (range) | x Q4_0 | of floor | prefill tok/s (range) | x Q4_0 | PPL | mean KL | same top-1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, e in s.items():
        key = label.split(" ", 1)[1]
        qq = q.get(key, {})
        dr = e["decode_tok_s"] / ref["decode_tok_s"] if ref else float("nan")
        pr = e["prefill_tok_s"] / ref["prefill_tok_s"] if ref else float("nan")
        lines.append(f"| {label} | {e['file_bytes'] / 1e6:.1f} | {e['decode_tok_s']} ({e['decode_range'][0]}-{e['decode_range'][1]}) "
                     f"| {dr:.2f} | {e['decode_fraction_of_floor']:.2f} | {e['prefill_tok_s']} ({e['prefill_range'][0]}-"
                     f"{e['prefill_range'][1]}) | {pr:.2f} | {qq.get('ppl', '-')} | {qq.get('mean_kl', '-')} | "
                     f"{qq.get('same_top1', '-')} |")
    if q:
        fl = q.get("float32 (PyTorch)", {})
        lines.append(f"\nFloat references: ours (PyTorch fp32) PPL {fl.get('ppl')}, llama.cpp f32 PPL "
                     f"{q.get('q4_0', {}).get('ppl_reference')}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2", choices=["smollm2", "qwen2.5-0.5b", "qwen2.5-1.5b"])
    ap.add_argument("--recipes", default="8da4w,8da4w-awq,8da4w-awq-h8")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "sfllava-mobile" / "peer"))
    ap.add_argument("--ctx", type=int, default=384)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--n-prompt", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=128)
    ap.add_argument("--no-quality", action="store_true", help="speed only (random weights have no meaningful quality)")
    ap.add_argument("--out", default=str(HERE / "results" / "peer_llamacpp.jsonl"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    src = build_llamacpp(work / "llamacpp")
    ckpt = our_checkpoint(a.model, work)
    hf = hf_folder(a.model, ckpt, work)
    files = gguf_files(src, hf, work, a.model)
    bundles = our_bundles(ckpt, a.recipes.split(","), work, a.model, a.ctx)
    result = {"model": a.model, "date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
              "threads": a.threads, "ctx": a.ctx, "llama_cpp": f"vendored in llama-cpp-python {LLAMA_CPP_PYTHON}",
              "command": " ".join(sys.argv)}
    if not a.no_quality:
        lq, kld = llamacpp_quality(src, files, work, a.model, a.ctx, a.chunks, a.threads)
        oq = our_quality(ckpt, bundles, kld, add_bos(files["f32"]))
        result["quality"] = {**lq, **oq}
        result["scored_tokens"] = next(iter(oq.values()))["scored_tokens"]
    result["speed"] = speed(src, files, bundles, a.rounds, a.threads, a.n_prompt, a.n_gen)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(result) + "\n")
    md = table(result)
    Path(a.out).with_suffix(".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
