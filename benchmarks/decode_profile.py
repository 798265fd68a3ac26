"""Where a decode step's time goes in a bundle's ``text_decoder`` (issue 10, item 3). Not in the default suite.

Runs the ``.pte`` through the pybindings with ETDump on: a 16-row prompt, then ``--steps`` one-row
decode calls, and splits their time into XNNPACK's own
operators (GEMMs and the rest, as its profiler names them), the delegate-call overhead around
them (``DELEGATE_CALL`` minus what runs inside), and every operator left outside the delegate:

    python benchmarks/decode_profile.py BUNDLE [--steps 64] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROMPT = 16  # rows of the first call, which the breakdown leaves out


def profile(bundle: Path, steps: int = 64) -> dict:
    """Per decode step (one row each, after a ``PROMPT``-row prompt that is not counted): wall time, and Method::execute split into XNNPACK GEMMs, XNNPACK's other operators, the
    delegate-call overhead, operators outside the delegate, and the rest of the method."""
    import torch
    from executorch.devtools import Inspector
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    from sfllava_mobile.export.kernels import register_all
    from sfllava_mobile.manifest import read_manifest

    m = read_manifest(bundle)
    if m.backend != "executorch":
        raise SystemExit(f"error: {bundle} is a {m.backend} bundle; this profiles ExecuTorch programs")
    if m.executorch.data:
        raise SystemExit("error: the ETDump pybindings loader takes no data file; profile a single-file bundle")
    hidden = m.methods["text_decoder"].inputs[0].shape[-1]
    register_all()
    module = _load_for_executorch(str(bundle / m.executorch.program), enable_etdump=True, debug_buffer_size=0)
    torch.manual_seed(0)
    module.run_method("text_decoder", (torch.randn(1, PROMPT, hidden) * 0.02, torch.tensor([0])))
    wall = []
    for i in range(steps):
        t0 = time.perf_counter()
        module.run_method("text_decoder", (torch.randn(1, 1, hidden) * 0.02, torch.tensor([PROMPT + i])))
        wall.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "decode.etdump"
        module.write_etdump_result_to_file(str(path))
        inspector = Inspector(etdump_path=str(path))
    total: dict[tuple[str, bool], float] = collections.defaultdict(float)
    count: dict[tuple[str, bool], int] = collections.defaultdict(int)
    execs: list[float] = []
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for e in block.events:
            if e.perf_data is None:
                continue
            raw = list(e.perf_data.raw)
            skip = len(raw) // (steps + 1)  # the prompt call's occurrences come first: not a decode step
            if e.name == "Method::execute":
                execs += raw[skip:]
                continue
            key = (e.name, bool(e.is_delegated_op))
            total[key] += sum(raw[skip:])
            count[key] += len(raw) - skip
    if len(execs) != steps:
        raise SystemExit(f"error: {len(execs)} decode executions recorded for {steps} calls")
    delegate_call = total.pop(("DELEGATE_CALL", False), 0.0)
    calls = count.pop(("DELEGATE_CALL", False), 0)
    operator_call = total.pop(("OPERATOR_CALL", False), 0.0)
    inside = {k[0]: v for k, v in total.items() if k[1]}
    outside = {k[0]: v for k, v in total.items() if not k[1]}
    gemm = sum(v for k, v in inside.items() if "GEMM" in k)
    ms = {"xnnpack_gemm": gemm, "xnnpack_other_ops": sum(inside.values()) - gemm,
          "delegate_call_overhead": delegate_call - sum(inside.values()),
          "outside_delegate_ops": operator_call, "method_rest": sum(execs) - delegate_call - operator_call}
    return {"bundle": str(bundle), "recipe": m.quantization.recipe, "steps": steps,
            "wall_ms_per_step_median": round(statistics.median(wall) * 1e3, 3),
            "execute_ms_per_step_mean": round(sum(execs) / steps, 3),
            "delegate_calls_per_step": calls // steps,
            "ms_per_step": {k: round(v / steps, 3) for k, v in ms.items()},
            "outside_ops_ms_per_step": {k: round(v / steps, 4) for k, v in sorted(outside.items(), key=lambda kv: -kv[1])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = profile(a.bundle, a.steps)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    print(f"{r['bundle']} ({r['recipe']}): {r['steps']} decode steps, {r['execute_ms_per_step_mean']} ms per "
          f"Method::execute ({r['wall_ms_per_step_median']} ms wall, median), "
          f"{r['delegate_calls_per_step']} delegate calls per step")
    for k, v in r["ms_per_step"].items():
        print(f"  {k:24s} {v:8.3f} ms/step  {100 * v / r['execute_ms_per_step_mean']:5.1f} %")
    print("  outside the delegate: " + ", ".join(f"{k} {v:.3f}" for k, v in r["outside_ops_ms_per_step"].items()))


if __name__ == "__main__":
    sys.exit(main())
