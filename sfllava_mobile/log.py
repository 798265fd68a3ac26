"""Stage logging: every stage says what it did, how long it took and its peak memory."""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger("sfllava_mobile")

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_open_peaks: list[float] = []  # per open stage: the highest peak seen before a child reset the counter


def _status_gb(key: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def rss_gb() -> float:
    """Resident set size of this process now, GB (GiB)."""
    return _status_gb("VmRSS") or 0.0


def peak_rss_gb() -> float:
    """Peak resident set size since the last :func:`reset_peak` (or process start), GiB."""
    hwm = _status_gb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak() -> bool:
    """Restart the kernel's peak-RSS counter (Linux ``clear_refs`` 5); False where not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def stage(name: str, timings: dict[str, float] | None = None, peaks: dict[str, float] | None = None) -> Iterator[None]:
    """Log ``name`` when it starts and ends with its wall time and peak RSS; record them in
    ``timings[name + '_s']`` and ``peaks[name + '_peak_rss_gb']``. Nested stages keep their
    parents' peaks right (a child's reset of the counter is folded back into the parent)."""
    log.info("%s ...", name)
    if _open_peaks:
        _open_peaks[-1] = max(_open_peaks[-1], peak_rss_gb())
    _open_peaks.append(rss_gb() if reset_peak() else peak_rss_gb())
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        peak = max(_open_peaks.pop(), peak_rss_gb())
        if _open_peaks:
            _open_peaks[-1] = max(_open_peaks[-1], peak)
        if timings is not None:
            timings[f"{name}_s"] = dt
        if peaks is not None:
            peaks[f"{name}_peak_rss_gb"] = round(peak, 3)
        log.info("%s done in %.3f s (peak RSS %.2f GB)", name, dt, peak)


def configure(verbosity: int) -> None:
    """CLI logging: INFO stage lines on stderr by default, WARNING with -q, DEBUG with -v."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    for name in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # coremltools warns per constant ("Saving value type of float64 ...") and per materialized state.
    logging.getLogger("coremltools").setLevel(logging.DEBUG if verbosity > 0 else logging.ERROR)
