"""The kernel contract of an ExecuTorch program: which operator libraries it needs beyond the
core runtime, what an app must link for them and what a Python user must import.

Stock ExecuTorch registers kernels in static initializers, so a library that is not linked (or,
in Python, not imported) surfaces only at ``load_method`` as ``error 0x14`` (OperatorMissing).
:func:`load_program` registers what the project knows and, for anything still missing, raises one
line naming the operators and the library that provides them.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from sfllava_mobile.errors import SfllavaError


@dataclass(frozen=True)
class KernelLibrary:
    """One operator library, named as each platform's build names it (executorch 1.5.x)."""

    name: str
    provides: str  # operator namespace (``llama``) or delegate id (``XnnpackBackend``)
    cmake: str  # targets, linked whole-archive (their kernels self-register)
    ios: str  # ExecuTorch Swift package product (force-load it)
    android: str  # what the executorch-android AAR holds
    python: str | None  # module whose import registers the kernels with the pybindings runtime

    def to_dict(self) -> dict:
        return asdict(self)


LIBRARIES = (
    KernelLibrary("llm_custom_ops", "llama", "custom_ops", "kernels_llm",
                  "in libexecutorch.so of org.pytorch:executorch-android (built with EXECUTORCH_BUILD_KERNELS_LLM)",
                  "executorch.extension.llm.custom_ops.custom_ops"),
    KernelLibrary("quantized_ops", "quantized_decomposed", "quantized_ops_lib + quantized_kernels", "kernels_quantized",
                  "in libexecutorch.so of org.pytorch:executorch-android (EXECUTORCH_BUILD_KERNELS_QUANTIZED)",
                  "executorch.kernels.quantized"),
    KernelLibrary("aten_kernels", "aten", "optimized_native_cpu_ops_lib (or portable_ops_lib)", "kernels_optimized",
                  "in libexecutorch.so", None),
    KernelLibrary("prim_ops", "executorch_prim", "executorch (core runtime)", "executorch", "in libexecutorch.so", None),
    KernelLibrary("xnnpack", "XnnpackBackend", "xnnpack_backend", "backend_xnnpack", "in libexecutorch.so", None),
)
_BY_PROVIDES = {lib.provides: lib for lib in LIBRARIES}


def _program_flatbuffer(path: Path):
    """The program table of a ``.pte`` without reading its (multi-GB) constant segments."""
    from executorch.exir._serialize._program import _flatbuffer_to_program, _get_extended_header

    with open(path, "rb") as f:
        header = _get_extended_header(f.read(64))
        f.seek(0)
        data = f.read(header.program_size if header is not None and header.is_valid() else -1)
    return _flatbuffer_to_program(data)


def program_operators(program) -> dict[str, dict[str, list[str]]]:
    """Per method of a serialized program (``Program`` table, a path, or an ExecutorchProgramManager):
    ``{"operators": [...], "delegates": [...]}``, names as the runtime registry spells them."""
    if isinstance(program, (str, Path)):
        program = _program_flatbuffer(Path(program))
    elif hasattr(program, "executorch_program"):
        program = program.executorch_program
    out = {}
    for plan in program.execution_plan:
        ops = sorted({o.name + (f".{o.overload}" if o.overload else "") for o in plan.operators})
        out[plan.name] = {"operators": ops, "delegates": sorted({d.id for d in plan.delegates})}
    return out


def library_for(operator_or_delegate: str) -> KernelLibrary | None:
    key = operator_or_delegate.split("::", 1)[0] if "::" in operator_or_delegate else operator_or_delegate
    return _BY_PROVIDES.get(key)


def required_libraries(ops: dict[str, dict[str, list[str]]]) -> list[dict]:
    """The libraries a program needs, each with the methods and operators that need it.

    Unknown namespaces are listed as such (an app must find them itself) instead of dropped."""
    need: dict[str, dict] = {}
    for method, entry in ops.items():
        for name in entry["operators"] + entry["delegates"]:
            lib = library_for(name)
            key = lib.name if lib else f"unknown:{name.split('::', 1)[0]}"
            row = need.setdefault(key, {**(lib.to_dict() if lib else {"name": key, "provides": name.split("::", 1)[0],
                                                                      "cmake": None, "ios": None, "android": None,
                                                                      "python": None}),
                                        "methods": set(), "operators": set()})
            row["methods"].add(method)
            row["operators"].add(name)
    return [{**row, "methods": sorted(row["methods"]), "operators": sorted(row["operators"])}
            for _, row in sorted(need.items())]


def register_all() -> None:
    """Import every Python module that registers a library this project's programs may use."""
    for lib in LIBRARIES:
        if lib.python:
            importlib.import_module(lib.python)


def missing_operators(pte: str | Path) -> dict[str, list[str]]:
    """Operators the program needs that the Python runtime has not registered, per method."""
    from executorch.runtime import Runtime

    have = Runtime.get().operator_registry.operator_names
    out = {}
    for method, entry in program_operators(pte).items():
        missing = sorted(set(entry["operators"]) - set(have))
        if missing:
            out[method] = missing
    return out


def _describe(missing: list[str]) -> str:
    parts = []
    for op in missing:
        lib = library_for(op)
        where = (f"{lib.name}: Python `import {lib.python}`, iOS product {lib.ios}, CMake {lib.cmake}" if lib
                 else "no library this toolkit knows")
        parts.append(f"{op} ({where})")
    return "; ".join(parts)


def load_program(pte: str | Path, methods: tuple[str, ...] = (), data: str | Path | None = None):
    """``(Program, {method: Method})`` through ``executorch.runtime`` with every known kernel
    library registered; a missing operator raises :class:`SfllavaError` naming its library.
    ``data``: the program's external data file (``.ptd``), if its constants live partly there."""
    from executorch.runtime import Runtime

    from .native_io import native_quiet

    register_all()
    missing = missing_operators(pte)
    if missing:
        ops = sorted({op for m in missing.values() for op in m})
        raise SfllavaError(f"{pte} needs operators no loaded kernel library provides: {_describe(ops)}")
    with native_quiet():
        if data is not None and not Path(data).is_file():
            raise SfllavaError(f"{pte} keeps constants in {data}, which is missing")
        program = Runtime.get().load_program(str(pte), data_path=str(data) if data is not None else None)
    loaded = {}
    for name in methods:
        log = io.StringIO()
        try:
            with contextlib.redirect_stderr(log), native_quiet():
                loaded[name] = program.load_method(name)
        except RuntimeError as e:
            found = sorted(set(re.findall(r"Missing operator: \[\d+\] (\S+)", log.getvalue())))
            if found or "0x:14" in str(e) or "0x14" in str(e):
                raise SfllavaError(f"{pte}: method {name} needs operators the runtime lacks: "
                                   f"{_describe(found) if found else 'see the log with -v'}") from None
            raise SfllavaError(f"{pte}: cannot load method {name}: {e}") from None
    return program, loaded
