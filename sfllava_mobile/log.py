"""Stage logging: every stage says what it did and how long it took."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Iterator

log = logging.getLogger("sfllava_mobile")


@contextlib.contextmanager
def stage(name: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Log ``name`` when it starts and ends, with its wall time; record it in ``timings[name + '_s']``."""
    log.info("%s ...", name)
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    if timings is not None:
        timings[f"{name}_s"] = dt
    log.info("%s done in %.3f s", name, dt)


def configure(verbosity: int) -> None:
    """CLI logging: INFO stage lines on stderr by default, WARNING with -q, DEBUG with -v."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    for name in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
