"""Exporters (one module per backend behind :mod:`.backend`), the shared pipeline, parity."""

from .pipeline import ExportResult, export

__all__ = ["ExportResult", "export"]
