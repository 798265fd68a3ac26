"""``ios_demo/`` checked as far as a Linux machine can (no Swift toolchain here): every ``.swift``
file and ``Package.swift`` parses (tree-sitter's Swift grammar), the ast-grep rules hold (no
``try!``, no force unwraps, engine calls only on the engine queue), the XcodeGen spec and plists
parse, and the Swift types read exactly the keys the Python suite writes."""

from __future__ import annotations

import json
import plistlib
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from .conftest import tree_sitter_errors
import yaml

REPO = Path(__file__).resolve().parents[2]
IOS = REPO / "ios_demo"
SWIFT = sorted(IOS.rglob("*.swift"))
KIT = IOS / "Sources" / "SFLLaVAKit"


@pytest.fixture(scope="module")
def swift_parser():
    import tree_sitter
    import tree_sitter_swift

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))




def test_every_swift_file_parses(swift_parser):
    assert len(SWIFT) >= 20 and IOS / "Package.swift" in SWIFT
    bad = {str(f.relative_to(REPO)): errs[:3] for f in SWIFT
           if (errs := tree_sitter_errors(swift_parser.parse(f.read_bytes()).root_node))}
    assert not bad


def test_the_parser_catches_a_syntax_error(swift_parser):
    broken = (KIT / "FrameResizer.swift").read_text().replace("for oy in 0..<outHeight {", "for oy in 0..<outHeight", 1)
    assert tree_sitter_errors(swift_parser.parse(broken.encode()).root_node)


def _ast_grep() -> str:
    exe = shutil.which("ast-grep") or str(Path(__import__("sys").executable).parent / "ast-grep")
    assert Path(exe).exists(), "ast-grep-cli is a dev dependency"
    return exe


def test_ast_grep_rules_hold():
    r = subprocess.run([_ast_grep(), "scan"], cwd=IOS, capture_output=True, text=True)
    assert r.returncode == 0 and "error[" not in r.stdout, r.stdout[-3000:] + r.stderr[-1000:]


def test_ast_grep_rules_catch_violations(tmp_path):
    """The rules are not vacuous: a copy of the app with each violation fails the scan, naming the rule."""
    copy = tmp_path / "ios"
    shutil.copytree(IOS, copy)
    (copy / "App" / "Bad.swift").write_text(
        "func bad(engine: VideoQAEngine) throws {\n"
        "    let a = optional!\n"
        "    let b = try! load()\n"
        "    let c = try engine.answer(plan: p, frames: [], start: 0, framesDecoded: 0) { _ in }\n"
        "}\n")
    r = subprocess.run([_ast_grep(), "scan"], cwd=copy, capture_output=True, text=True)
    assert r.returncode != 0
    for rule in ("no-force-unwrap", "no-try-bang", "engine-off-main-actor"):
        assert f"error[{rule}]" in r.stdout, rule


def test_xcodegen_spec_plists_and_entitlement():
    spec = yaml.safe_load((IOS / "project.yml").read_text())
    target = spec["targets"]["SFLLaVADemo"]
    assert spec["options"]["deploymentTarget"]["iOS"] == "18.0" and target["platform"] == "iOS"
    for src in target["sources"]:
        assert (IOS / src["path"]).is_dir()
    assert {d["product"] for d in target["dependencies"]} == {"SFLLaVAKit", "SFLLaVAEngines"}
    assert spec["packages"]["SFLLaVAKit"]["path"] == "."
    info = plistlib.loads((IOS / target["info"]["path"]).read_bytes())
    assert info["UIFileSharingEnabled"] is True and info["LSSupportsOpeningDocumentsInPlace"] is True
    ent = plistlib.loads((IOS / target["entitlements"]["path"]).read_bytes())
    assert ent == {"com.apple.developer.kernel.increased-memory-limit": True}


def test_package_pins_the_exporters_runtime_and_keeps_the_kit_portable():
    pkg = (IOS / "Package.swift").read_text()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pin = next(d for d in pyproject["project"]["optional-dependencies"]["executorch"] if d.startswith("executorch=="))
    assert f'branch: "swiftpm-{pin.split("==")[1]}"' in pkg
    assert re.search(r"#if !os\(Linux\).*executorch.*#endif", pkg, re.S)  # Linux resolves only the portable kit
    for f in sorted(KIT.glob("*.swift")):
        imports = set(re.findall(r"^import (\w+)", f.read_text(), re.M))
        assert imports <= {"Foundation"}, f"{f.name} imports {imports - {'Foundation'}}"


def _coding_keys(path: Path) -> set[str]:
    """Every JSON key a Swift file's CodingKeys enums name (raw values, or the case names)."""
    keys = set()
    for body in re.findall(r"enum CodingKeys: String, CodingKey \{([^{}]*?)\n\s*\}", path.read_text()):
        for line in body.split("\n"):
            line = line.strip()
            if m := re.match(r'case (\w+) = "([^"]+)"', line):
                keys.add(m.group(2))
            elif line.startswith("case "):
                keys.update(k.strip() for k in line[5:].split(","))
    for m in re.finditer(r"enum CodingKeys: String, CodingKey \{ (case [^}]*)\}", path.read_text()):
        keys.update(_coding_keys_inline(m.group(1)))
    return keys


def _coding_keys_inline(cases: str) -> set[str]:
    out = set()
    for part in cases.split("case ")[1:]:
        for item in part.split(","):
            item = item.strip().rstrip(";")
            m = re.match(r'(\w+)(?: = "([^"]+)")?', item)
            if m:
                out.add(m.group(2) or m.group(1))
    return out


def _all_keys(obj, out=None) -> set[str]:
    out = set() if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(k)
            _all_keys(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _all_keys(v, out)
    return out


def test_swift_types_read_the_keys_python_writes(app_bundles, exported_bundle):
    """The Swift tests decode golden.json and manifest.json of Python-exported bundles: every key
    the Swift Codable types name must be in those files (a typo would fail only on a Mac)."""
    golden_keys = _all_keys(json.loads((app_bundles[0] / "golden.json").read_text()))
    manifest_keys = set()
    for b in [*app_bundles, exported_bundle("ours", "int4", "coreml").bundle]:
        manifest_keys |= _all_keys(json.loads((b / "manifest.json").read_text()))
    swift_golden, swift_manifest = _coding_keys(KIT / "Golden.swift"), _coding_keys(KIT / "Manifest.swift")
    assert {"packed_clip", "runner_inputs", "image_sha256", "first_row_uint8_hwc"} <= swift_golden
    assert not (swift_golden - golden_keys - {"kind", "tokens", "text"}), swift_golden - golden_keys
    assert {"eos_pieces", "prefill_chunk", "kernel_libraries", "call_sequence"} <= swift_manifest
    assert not (swift_manifest - manifest_keys), swift_manifest - manifest_keys
    bench = json.loads((REPO / "schema" / "bench.schema.json").read_text())
    bench_keys = _all_keys({k: v.get("properties", {}) for k, v in bench["$defs"].items()}) | set(bench["properties"])
    swift_bench = _coding_keys(KIT / "Bench.swift")
    assert {"time_to_first_token_s", "bench_version", "engine_notes"} <= swift_bench
    assert not (swift_bench - bench_keys), swift_bench - bench_keys


def test_swift_constants_match_python():
    from sfllava_mobile.config import FRAME_RULES
    from sfllava_mobile.manifest import METHOD_NAMES, SCHEMA_VERSION

    manifest = (KIT / "Manifest.swift").read_text()
    assert f"public let schemaVersion = {SCHEMA_VERSION}" in manifest
    names = re.search(r"public let methodNames = \[(.*?)\]", manifest).group(1)
    assert tuple(re.findall(r'"(\w+)"', names)) == METHOD_NAMES
    rules = re.findall(r'case (?:uniform|segmentMidpoint = "(\w+)")', (KIT / "FrameSampler.swift").read_text())
    assert {"uniform", *filter(None, rules)} == set(FRAME_RULES)
    # The golden checks the Swift tests make are the ones the Kotlin tests make on the same vectors.
    swift_tests = (IOS / "Tests" / "SFLLaVAKitTests" / "GoldenVectorTests.swift").read_text()
    for field in ("resizeSmall.uint8Hwc", "resizeModel.sum", "pc.sha256", "greedy.imageSha256", "prompt.runnerInputs"):
        assert field in swift_tests, field
