"""Exporters, one module per target runtime (installed as ``sfllava_mobile.export``)."""
