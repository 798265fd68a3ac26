"""The seam every backend plugs into: what the shared pipeline hands a backend, what it gets back,
and how a backend module is found by name.

A backend is a module of ``sfllava_mobile.export`` with these functions:

- ``build(ctx: BuildContext) -> Built``: write the artifacts into ``ctx.folder``;
- ``driver(bundle: Path, manifest: Manifest) -> Driver``: run the artifacts through the call
  sequence an app makes (parity, golden tokens, bench);
- ``eager_twin(model, manifest: Manifest) -> Programs``: the eager programs with the artifact's
  recipe applied, consuming ``model`` (parity compares the artifact with them);
- ``bounds(manifest: Manifest) -> dict``: the named parity bounds for the bundle's precision;
- ``checks(bundle, manifest, config, tokenizer, case, steps, expected) -> dict``: backend-only
  checks after parity (the ExecuTorch C++ runner), each a metrics dict with ``text_equal``.

Everything else (lengths, tokenizer checks, the atomic bundle folder, golden vectors, manifest,
size floor, timings, parity drivers and report, bench loop) is shared.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sfllava_mobile.driver import Driver  # noqa: F401  (the protocol a backend's driver follows)
from sfllava_mobile.errors import ConfigError

from .config import BACKENDS, ResolvedExport


@dataclass
class BuildContext:
    model: Any  # the loaded VideoLLM
    folder: Path  # the bundle's temporary folder
    resolved: ResolvedExport
    recipe: Any  # quantize.recipes.Recipe
    options: Any  # the backend's options dataclass
    inplace: bool  # quantize the model's own modules (it is consumed)
    timings: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    fold_scales: dict | None = None  # a fold recipe's calibrated scales (quantize/smooth.py)


@dataclass
class Built:
    artifacts: dict[str, str]  # role -> file or package folder in the bundle
    methods: dict  # method name -> manifest.Method
    coverage: list  # quantize coverage rows
    section: Any  # the backend's manifest section (ExecuTorchSection / CoreMLSection)
    programs: Any = None  # the eager (quantized) twin, when the backend kept it
    context: dict = field(default_factory=dict)  # extra manifest.context fields (prefill_chunk)


def get(name: str) -> ModuleType:
    """The backend module ``name`` (imported on first use: each pulls in its own toolchain)."""
    if name not in BACKENDS:
        raise ConfigError(f"backend {name!r} is not available; choose one of {BACKENDS}")
    return importlib.import_module(f"sfllava_mobile.export.{name}")
