"""Named phones (RAM, the app's usable memory, memory bandwidth, CPU compute, each with its source)
and the efficiency factors measured on this project's build machine.

Both tables are JSON files in ``sfllava_mobile/data``: ``devices.json`` (edited by hand, every figure
with a ``source``, a ``basis`` of quoted / derived / estimate and, unless quoted, its derivation) and
``host_efficiency.json`` (what fraction of its peak this machine reached in the benchmarks; a new
benchmark run can write a replacement file and pass it with ``plan --efficiency FILE``). Both are
validated when loaded; a bad file is a one-line :class:`SfllavaError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import SfllavaError

DATA = Path(__file__).parent / "data"
DEVICES_FILE = DATA / "devices.json"
EFFICIENCY_FILE = DATA / "host_efficiency.json"
BASES = ("quoted", "derived", "estimate")
INT8_OPS_PER_PIPE = 32  # one 128-bit SDOT: 16 int8 multiply-accumulates
FP32_FLOPS_PER_PIPE = 8  # one 128-bit FMA: 4 lanes x 2
EFFICIENCY_FACTORS = ("decode_bandwidth_fraction", "vision_int8_fraction", "prefill_int8_fraction")


@dataclass(frozen=True)
class Figure:
    """One number of the table and where it comes from."""

    value: float | None
    basis: str  # quoted | derived | estimate
    source: str
    derivation: str = ""
    verified: bool = False

    def to_dict(self) -> dict:
        return {"value": self.value, "basis": self.basis, "source": self.source, "derivation": self.derivation,
                "verified": self.verified, "estimate": self.basis != "quoted"}


@dataclass(frozen=True)
class CoreCluster:
    name: str
    count: int
    ghz: float
    simd_pipes: int  # 128-bit SIMD pipes that issue SDOT / FMA each cycle
    used_by_executorch: bool  # ExecuTorch's default thread count includes these cores

    @property
    def int8_gops(self) -> float:
        return self.count * self.ghz * self.simd_pipes * INT8_OPS_PER_PIPE

    @property
    def fp32_gflops(self) -> float:
        return self.count * self.ghz * self.simd_pipes * FP32_FLOPS_PER_PIPE


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    soc: str
    os: str
    year: int
    ram_gb: Figure
    app_usable_memory_gb: Figure
    memory_bandwidth_gbs: Figure
    cpu_int8_tops: Figure
    cpu_fp32_tflops: Figure
    npu_tops: Figure
    cpu_cores: tuple[CoreCluster, ...]
    dram: dict
    notes: tuple[str, ...] = ()

    FIGURES = ("ram_gb", "app_usable_memory_gb", "memory_bandwidth_gbs", "cpu_int8_tops", "cpu_fp32_tflops", "npu_tops")

    def figures(self) -> dict[str, Figure]:
        return {k: getattr(self, k) for k in self.FIGURES}

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "soc": self.soc, "os": self.os, "year": self.year,
                **{k: f.to_dict() for k, f in self.figures().items()},
                "dram": dict(self.dram), "cpu_cores": [c.__dict__ for c in self.cpu_cores], "notes": list(self.notes)}


@dataclass(frozen=True)
class Factor:
    value: float
    source: str
    derivation: str = ""


@dataclass(frozen=True)
class HostEfficiency:
    """Fractions of its peak this machine reached: ``decode`` of the DRAM read bandwidth, ``vision``
    and ``prefill`` of its int8 multiply peak (the same peak definition as the phones' figures)."""

    path: str
    measured_on: str
    date: str
    decode: Factor
    vision: Factor
    prefill: Factor

    def to_dict(self) -> dict:
        return {"file": self.path, "measured_on": self.measured_on, "date": self.date,
                "factors": {"decode_bandwidth_fraction": self.decode.__dict__,
                            "vision_int8_fraction": self.vision.__dict__,
                            "prefill_int8_fraction": self.prefill.__dict__}}


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SfllavaError(f"{what} file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SfllavaError(f"{what} file {path} is not readable JSON: {e}") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise SfllavaError(f"{what} file {path}: expected an object with \"version\": 1, "
                           f"got version {data.get('version') if isinstance(data, dict) else None!r}")
    return data


def _number(v, where: str, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (positive and not v > 0):
        raise SfllavaError(f"{where}: expected a {'positive ' if positive else ''}number, got {v!r}")
    return float(v)


def _figure(d: dict, key: str, where: str, allow_null: bool = False) -> Figure:
    f = d.get(key)
    w = f"{where}: {key}"
    if not isinstance(f, dict):
        raise SfllavaError(f"{w}: missing (expected {{\"value\", \"basis\", \"source\", ...}})")
    value = f.get("value")
    if value is None and not allow_null:
        raise SfllavaError(f"{w}: value is null")
    if value is not None:
        value = _number(value, f"{w}.value")
    basis, source = f.get("basis"), f.get("source")
    if basis not in BASES:
        raise SfllavaError(f"{w}: basis must be one of {', '.join(BASES)}, got {basis!r}")
    if not isinstance(source, str) or len(source.strip()) < 10:
        raise SfllavaError(f"{w}: every figure needs a source, got {source!r}")
    derivation = f.get("derivation", "")
    if basis != "quoted" and value is not None and not (isinstance(derivation, str) and derivation.strip()):
        raise SfllavaError(f"{w}: a {basis} figure needs its derivation")
    if not isinstance(f.get("verified", False), bool):
        raise SfllavaError(f"{w}: verified must be true or false")
    return Figure(value, basis, source, derivation, f.get("verified", False))


def _close(a: float, b: float, rel: float = 0.005) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _device(d: dict, i: int) -> Device:
    if not isinstance(d, dict):
        raise SfllavaError(f"devices.json: entry {i} is not an object")
    did = d.get("id")
    if not isinstance(did, str) or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", did):
        raise SfllavaError(f"devices.json: entry {i}: id must be a lowercase slug like 'iphone-16-pro', got {did!r}")
    where = f"devices.json: {did}"
    for key in ("name", "soc", "os"):
        if not isinstance(d.get(key), str) or not d[key]:
            raise SfllavaError(f"{where}: {key} missing")
    if d["os"] not in ("ios", "android"):
        raise SfllavaError(f"{where}: os must be ios or android, got {d['os']!r}")
    figs = {k: _figure(d, k, where, allow_null=(k == "npu_tops")) for k in Device.FIGURES}
    cores = []
    for j, c in enumerate(d.get("cpu_cores") or []):
        try:
            cores.append(CoreCluster(str(c["name"]), int(c["count"]), _number(c["ghz"], f"{where}: cpu_cores[{j}].ghz"),
                                     int(c["simd_pipes"]), bool(c["used_by_executorch"])))
        except (KeyError, TypeError, ValueError) as e:
            raise SfllavaError(f"{where}: cpu_cores[{j}] needs name, count, ghz, simd_pipes, "
                               f"used_by_executorch ({e})") from None
    used = [c for c in cores if c.used_by_executorch]
    if not used:
        raise SfllavaError(f"{where}: no cpu_cores marked used_by_executorch")
    # The table's arithmetic is checked, not trusted: a derived figure must equal its inputs.
    int8 = sum(c.int8_gops for c in used) / 1e3
    fp32 = sum(c.fp32_gflops for c in used) / 1e3
    if not _close(figs["cpu_int8_tops"].value, int8):
        raise SfllavaError(f"{where}: cpu_int8_tops {figs['cpu_int8_tops'].value} != {int8:.3f} from cpu_cores")
    if not _close(figs["cpu_fp32_tflops"].value, fp32):
        raise SfllavaError(f"{where}: cpu_fp32_tflops {figs['cpu_fp32_tflops'].value} != {fp32:.3f} from cpu_cores")
    dram = d.get("dram")
    if not isinstance(dram, dict) or not {"type", "mt_per_s", "bus_bits"} <= set(dram):
        raise SfllavaError(f"{where}: dram needs type, mt_per_s, bus_bits")
    mts = _number(dram["mt_per_s"], f"{where}: dram.mt_per_s")
    bw = mts * _number(dram["bus_bits"], f"{where}: dram.bus_bits") / 8 / 1e3
    if not _close(figs["memory_bandwidth_gbs"].value, bw, rel=0.002):
        raise SfllavaError(f"{where}: memory_bandwidth_gbs {figs['memory_bandwidth_gbs'].value} != {bw:.1f} "
                           f"from dram ({dram['mt_per_s']} MT/s x {dram['bus_bits']} bit)")
    if figs["app_usable_memory_gb"].value > figs["ram_gb"].value:
        raise SfllavaError(f"{where}: app_usable_memory_gb exceeds ram_gb")
    notes = d.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise SfllavaError(f"{where}: notes must be a list of strings")
    return Device(did, d["name"], d["soc"], d["os"], int(d.get("year") or 0), **figs, cpu_cores=tuple(cores),
                  dram=dict(dram), notes=tuple(notes))


def load_devices(path: str | Path | None = None) -> list[Device]:
    """The device table, validated (every figure sourced, derived figures equal to their inputs)."""
    data = _read_json(Path(path or DEVICES_FILE), "device table")
    entries = data.get("devices")
    if not isinstance(entries, list) or not entries:
        raise SfllavaError(f"device table {path or DEVICES_FILE}: \"devices\" must be a non-empty list")
    devices = [_device(d, i) for i, d in enumerate(entries)]
    ids = [d.id for d in devices]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SfllavaError(f"device table: duplicate ids {', '.join(dup)}")
    return devices


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def get_device(name: str, devices: list[Device] | None = None) -> Device:
    """A device by id or name (case and punctuation ignored: "iPhone 16 Pro" = "iphone-16-pro")."""
    devices = devices if devices is not None else load_devices()
    key = _slug(name)
    for d in devices:
        if key in (d.id, _slug(d.name)):
            return d
    raise SfllavaError(f"unknown device {name!r}; known: {', '.join(d.id for d in devices)} "
                       f"(`plan --device list` shows the table)")


def load_efficiency(path: str | Path | None = None) -> HostEfficiency:
    """The host's measured efficiency factors; ``path`` replaces the shipped file (e.g. after a new run)."""
    p = Path(path or EFFICIENCY_FILE)
    data = _read_json(p, "efficiency")
    for key in ("measured_on", "date"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise SfllavaError(f"efficiency file {p}: {key} missing")
    factors = data.get("factors")
    if not isinstance(factors, dict):
        raise SfllavaError(f"efficiency file {p}: \"factors\" missing")
    out = {}
    for key in EFFICIENCY_FACTORS:
        f = factors.get(key)
        if not isinstance(f, dict):
            raise SfllavaError(f"efficiency file {p}: factor {key} missing")
        v = _number(f.get("value"), f"efficiency file {p}: {key}.value")
        if v > 1:
            raise SfllavaError(f"efficiency file {p}: {key} = {v} is above 1 (a fraction of the peak)")
        if not isinstance(f.get("source"), str) or not f["source"].strip():
            raise SfllavaError(f"efficiency file {p}: {key} needs a source (the command or README line it came from)")
        out[key] = Factor(v, f["source"], str(f.get("derivation", "")))
    return HostEfficiency(str(p), data["measured_on"], data["date"], out["decode_bandwidth_fraction"],
                          out["vision_int8_fraction"], out["prefill_int8_fraction"])


def _fmt(f: Figure, digits: int) -> str:
    if f.value is None:
        return "-"
    return f"{f.value:.{digits}f}{'*' if f.basis != 'quoted' else ''}"


def format_devices(devices: list[Device]) -> str:
    """The table ``plan --device list`` prints; * marks a derived or estimated figure."""
    rows = [("id", "name", "SoC", "RAM GB", "usable GB", "DRAM GB/s", "CPU int8 TOPS", "NPU TOPS")]
    for d in devices:
        rows.append((d.id, d.name, d.soc, _fmt(d.ram_gb, 0), _fmt(d.app_usable_memory_gb, 1),
                     _fmt(d.memory_bandwidth_gbs, 1), _fmt(d.cpu_int8_tops, 2), _fmt(d.npu_tops, 0)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines += ["", "* derived or estimated (see sfllava_mobile/data/devices.json for every source and derivation).",
              "CPU int8: burst peak of the cores ExecuTorch uses by default; NPU: vendor figure, not used by the "
              "ExecuTorch CPU (XNNPACK) path.", "These are published or derived specs, not measurements on the phones."]
    return "\n".join(lines)
