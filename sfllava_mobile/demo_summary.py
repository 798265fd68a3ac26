"""Prints what ``make demo`` produced: bundle, size, parity verdict, speed vs eager."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> int:
    d = Path(folder)
    from .manifest import read_manifest

    m = read_manifest(d / "bundle-8da4w")
    bench = json.loads((d / "bench.json").read_text())
    par = m.parity
    pte, eager = bench["engines"]["pte"], bench["engines"]["eager"]
    print("\n=== sfllava-mobile demo summary ===")
    print(f"checkpoint      {d / 'tiny-ckpt'} (tiny random SF-LLaVA-1.5-shaped model)")
    q = m.quantization
    print(f"bundle          {d / 'bundle-8da4w'}: model.pte {m.size.total_bytes / 1e3:.0f} kB "
          f"({m.size.ratio_to_floor}x the 4-bit floor), {m.visual_tokens} visual tokens from {m.video.frames} frames")
    print(f"quantization    {q.recipe}: {q.summary.quantized} of {q.summary.layers} layers quantized, "
          f"{q.summary.bits_per_weight:.2f} bits/weight over all covered layers "
          f"(the float patch convolution and position table dominate at this size)")
    ok = bool(par and par.passed)
    print(f"parity          {'PASS' if ok else 'FAIL'} (runtime vs eager recipe and float; C++ runner tokens "
          f"equal: {par.runner_tokens_equal if par else None}); details in {d / 'verify.txt'}")
    print(f"speed (.pte)    prefill {pte['prefill_tokens_per_second']:.0f} tok/s, decode {pte['decode_tokens_per_second']:.0f} "
          f"tok/s, TTFT {pte['time_to_first_token_s'] * 1000:.1f} ms")
    print(f"speed (eager)   prefill {eager['prefill_tokens_per_second']:.0f} tok/s, decode "
          f"{eager['decode_tokens_per_second']:.0f} tok/s, TTFT {eager['time_to_first_token_s'] * 1000:.1f} ms")
    print(f"chart           {d / 'bench.png'}")
    if (d / "chat.json").is_file():
        chat = json.loads((d / "chat.json").read_text())
        t1, t2 = chat["turns"][:2]
        clip_ms = 1000 * (chat["clip"]["vision_s"] + chat["clip"]["clip_prefill_s"])
        print(f"conversation    2 questions about one clip: the clip encoded and prefilled once "
              f"({chat['clip']['clip_positions']} positions, {clip_ms:.1f} ms); first answer's TTFT "
              f"{clip_ms + 1000 * t1['timings']['time_to_first_token_s']:.1f} ms, the follow-up's "
              f"{1000 * t2['timings']['time_to_first_token_s']:.1f} ms ({t2['turn_tokens']} turn tokens); "
              f"{chat['position']} of {chat['max_context_len']} positions used; details in {d / 'chat.json'}")
    cm_ok = True
    if (d / "bundle-coreml-int4").is_dir():
        c = read_manifest(d / "bundle-coreml-int4")
        cm_ok = bool(c.parity and c.parity.passed)
        wb = sum(c.coreml.weight_bin_bytes.values())
        print(f"Core ML bundle  {d / 'bundle-coreml-int4'}: 3 packages (iOS18+), weight.bin {wb / 1e3:.0f} kB "
              f"({wb / c.size.floor_bytes:.2f}x the 4-bit floor), {len(c.coreml.states)} fp16 KV states, "
              f"{c.coreml.slowfast_pool_ops} MIL ops in the slowfast_pool composite")
        print(f"Core ML parity  {'PASS' if cm_ok else 'FAIL'} (MIL programs evaluated with numpy on this host: "
              f"semantics, not Apple's kernels); details in {d / 'verify-coreml.txt'}")
    return 0 if ok and cm_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "demo_out"))
