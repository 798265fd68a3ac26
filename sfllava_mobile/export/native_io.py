"""The ExecuTorch runtime and runner are C++: they print to file descriptors 1 and 2 directly.

``native_quiet`` sends their fd-2 chatter (a line per kernel call, e.g. "No temp allocator
provided") to /dev/null unless debug logging is on; ``stdout_to_stderr`` keeps the runner's
printf of every token and its stats line off stdout, which carries our JSON.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def _redirect(fd: int, target_fd: int) -> Iterator[None]:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    os.dup2(target_fd, fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def native_quiet() -> Iterator[None]:
    if logging.getLogger("sfllava_mobile").isEnabledFor(logging.DEBUG):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with _redirect(2, devnull):
            yield
    finally:
        os.close(devnull)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """fd 1 -> wherever fd 2 points now (inside ``native_quiet``: /dev/null too)."""
    with _redirect(1, 2):
        yield
