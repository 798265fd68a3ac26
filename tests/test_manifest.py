"""The bundle contract: committed schemas match the models; reading a bad manifest is one clear line."""

import json

import pytest

from sfllava_mobile.errors import SfllavaError
from sfllava_mobile.manifest import SCHEMAS, json_schema, read_golden, read_manifest

from .conftest import SCHEMA_DIR


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_is_the_models_schema(name):
    committed = json.loads((SCHEMA_DIR / name).read_text())
    assert committed == json_schema(SCHEMAS[name]), (
        f"schema/{name} is stale: run `python -m sfllava_mobile.manifest --write schema` (and bump SCHEMA_VERSION "
        "if an app could misread the change)")


def test_schemas_reject_unknown_keys_everywhere():
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, node.get("title")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for name in SCHEMAS:
        walk(json.loads((SCHEMA_DIR / name).read_text()))


def _bundle_manifest(exported_bundle):
    e = exported_bundle("ours", "8da4w")
    return e.bundle, json.loads((e.bundle / "manifest.json").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(schema_version=1), "has schema_version 1; this toolkit"),
    (lambda m: m["video"].update(fps=30), "video.fps: Extra inputs are not permitted"),
    (lambda m: m.pop("executorch"), "backend 'executorch' needs its 'executorch' section"),
    (lambda m: m["context"].update(max_seq_len="long"), "context.max_seq_len: Input should be a valid integer"),
    (lambda m: m["methods"].pop("token_embedding"), "methods must be exactly"),
])
def test_a_bad_manifest_is_one_line(exported_bundle, tmp_path, edit, message):
    src, m = _bundle_manifest(exported_bundle)
    edit(m)
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SfllavaError, match=message) as e:
        read_manifest(tmp_path)
    assert "\n" not in str(e.value)


def test_missing_or_garbled_files(tmp_path):
    with pytest.raises(SfllavaError, match="is not a bundle: no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "golden.json").write_text("{not json")
    with pytest.raises(SfllavaError, match="cannot parse"):
        read_golden(tmp_path)
