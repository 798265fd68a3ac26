"""One row per weight-bearing layer of an export: what scheme it got and why; shared by every backend.

No layer is skipped silently: a layer that falls back (a width the block does not divide) or
stays float carries a note saying why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class CoverageRow:
    component: str  # vision | projector | decoder | embedding
    name: str
    kind: str  # linear | embedding | conv
    shape: tuple[int, ...]
    scheme: str  # label, or "float"
    bits: int | None
    group: int | None  # weights per scale; 0 = per output channel
    bits_per_weight: float
    note: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def summary(rows: list[CoverageRow]) -> dict:
    """Counts and weighted bits per weight over all covered layers."""
    total = sum(_numel(r.shape) for r in rows)
    bits = sum(_numel(r.shape) * r.bits_per_weight for r in rows)
    # float = not quantized, whatever the storage ("float" in ExecuTorch, "fp16" in Core ML)
    return {"layers": len(rows), "quantized": sum(r.bits is not None for r in rows),
            "float": sum(r.bits is None for r in rows),
            "fallbacks": sum(bool(r.note) and r.bits is not None for r in rows),
            "weights": total, "bits_per_weight": bits / total if total else 0.0}


def format_rows(rows: list[CoverageRow]) -> str:
    lines = [f"{'component':10s} {'layer':48s} {'shape':>14s}  scheme"]
    for r in rows:
        lines.append(f"{r.component:10s} {r.name[-48:]:48s} {'x'.join(map(str, r.shape)):>14s}  {r.scheme}"
                     + (f"  ({r.note})" if r.note else ""))
    return "\n".join(lines)
