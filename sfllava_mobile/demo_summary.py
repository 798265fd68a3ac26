"""Prints what ``make demo`` produced: bundle, size, parity verdict, speed vs eager."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> int:
    d = Path(folder)
    manifest = json.loads((d / "bundle-8da4w" / "manifest.json").read_text())
    bench = json.loads((d / "bench.json").read_text())
    par = manifest.get("parity", {})
    pte, eager = bench["engines"]["pte"], bench["engines"]["eager"]
    print("\n=== sfllava-mobile demo summary ===")
    print(f"checkpoint      {d / 'tiny-ckpt'} (tiny random SF-LLaVA-1.5-shaped model)")
    print(f"bundle          {d / 'bundle-8da4w'}: model.pte {manifest['size']['pte_bytes'] / 1e3:.0f} kB "
          f"({manifest['size']['ratio_to_floor']}x the 4-bit floor), {manifest['visual_tokens']} visual tokens "
          f"from {manifest['video']['frames']} frames")
    print(f"quantization    {manifest['quantization']['recipe']}: {manifest['quantization']['summary']['quantized']} of "
          f"{manifest['quantization']['summary']['layers']} layers quantized, "
          f"{manifest['quantization']['summary']['bits_per_weight']:.2f} bits/weight over all covered layers "
          f"(the float patch convolution and position table dominate at this size)")
    print(f"parity          {'PASS' if par.get('pass') else 'FAIL'} (runtime vs eager recipe and float; C++ runner tokens "
          f"equal: {par.get('runner_tokens_equal')}); details in {d / 'verify.txt'}")
    print(f"speed (.pte)    prefill {pte['prefill_tokens_per_second']:.0f} tok/s, decode {pte['decode_tokens_per_second']:.0f} "
          f"tok/s, TTFT {pte['time_to_first_token_s'] * 1000:.1f} ms")
    print(f"speed (eager)   prefill {eager['prefill_tokens_per_second']:.0f} tok/s, decode "
          f"{eager['decode_tokens_per_second']:.0f} tok/s, TTFT {eager['time_to_first_token_s'] * 1000:.1f} ms")
    print(f"chart           {d / 'bench.png'}")
    return 0 if par.get("pass") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "demo_out"))
