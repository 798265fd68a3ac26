"""Export tests share the session bundles of ``tests/conftest.py`` (``exported_bundle``)."""
