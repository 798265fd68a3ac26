"""One table from several ``bench`` JSON reports (host ``sfllava-mobile bench --json`` and the
phone apps' benchmark modes): every engine of every report is a column, labelled with its device.

``python -m sfllava_mobile.apps.bench_table REPORT.json [REPORT.json ...]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import SfllavaError
from ..manifest import Bench

ROWS = ["decode_video_s", "preprocess_s", "load_s", "vision_encoder_s", "prefill_s", "prefill_tokens_per_second",
        "decode_tokens_per_second", "time_to_first_token_s", "prompt_tokens", "generated_tokens", "peak_rss_mb"]


def load(path: str | Path) -> Bench:
    path = Path(path)
    try:
        return Bench.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise SfllavaError(f"no such report: {path}") from None
    except ValueError as e:
        raise SfllavaError(f"{path} is not a bench report: {str(e).splitlines()[0]}") from None


def table(reports: list[Bench]) -> str:
    cols = []
    for r in reports:
        where = r.device.name if r.device else "host"
        for name, e in r.engines.items():
            cols.append((f"{name}@{where}"[:32], e.model_dump()))
    first = reports[0]
    head = (f"{first.model} {first.recipe}, {first.frames} frames, {first.visual_tokens} visual tokens, "
            f"{first.artifact_bytes / 1e6:.1f} MB")
    lines = [head, f"{'stage':28s}" + "".join(f"{c:>34s}" for c, _ in cols)]
    for k in ROWS:
        if all(e.get(k) is None for _, e in cols):
            continue
        lines.append(f"{k:28s}" + "".join(f"{e[k]:34.3f}" if isinstance(e.get(k), (int, float)) else f"{'-':>34s}"
                                          for _, e in cols))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m sfllava_mobile.apps.bench_table REPORT.json [REPORT.json ...]", file=sys.stderr)
        return 2
    try:
        print(table([load(p) for p in argv]))
    except SfllavaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
