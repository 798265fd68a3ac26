"""Everything in ``android_demo/`` that needs the Android SDK to build is checked as far as this
machine can: each Kotlin and Gradle file parses (tree-sitter's Kotlin grammar) and passes ktlint,
the version catalog, wrapper and XML files parse, and the references between them resolve."""

from __future__ import annotations

import re
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import tree_sitter_errors

REPO = Path(__file__).resolve().parents[2]
ANDROID = REPO / "android_demo"
KOTLIN = sorted(ANDROID.rglob("*.kt"))
GRADLE = sorted(ANDROID.rglob("*.kts"))
APP = ANDROID / "app" / "src" / "main"
APP_KOTLIN = sorted((APP / "kotlin").rglob("*.kt"))
ANDROID_NS = "{http://schemas.android.com/apk/res/android}"




@pytest.fixture(scope="module")
def kotlin_parser():
    import tree_sitter
    import tree_sitter_kotlin

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_kotlin.language()))


def test_every_kotlin_and_gradle_file_parses(kotlin_parser):
    assert len(KOTLIN) >= 25 and len(GRADLE) == 5
    bad = {}
    for f in KOTLIN + GRADLE:
        errs = tree_sitter_errors(kotlin_parser.parse(f.read_bytes()).root_node)
        if errs:
            bad[str(f.relative_to(REPO))] = errs[:3]
    assert not bad


def test_the_parser_catches_a_syntax_error(kotlin_parser):
    broken = (APP_KOTLIN[0].read_text().replace("fun ", "fun (", 1)).encode()
    assert tree_sitter_errors(kotlin_parser.parse(broken).root_node)


def test_ktlint_is_clean(kotlin_toolchain):
    r = subprocess.run([str(kotlin_toolchain.ktlint), "--relative", "**/*.kt", "**/*.kts"], cwd=ANDROID,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]


def _catalog():
    return tomllib.loads((ANDROID / "gradle" / "libs.versions.toml").read_text())


def test_catalog_resolves_every_alias_the_build_files_use():
    cat = _catalog()
    libs = {k.replace("-", ".") for k in cat["libraries"]}
    plugins = {k.replace("-", ".") for k in cat["plugins"]}
    for entry in list(cat["libraries"].values()) + list(cat["plugins"].values()):
        ref = entry.get("version", {}).get("ref") if isinstance(entry.get("version"), dict) else None
        assert ref is None or ref in cat["versions"], entry
    for f in GRADLE:
        text = f.read_text()
        for alias in re.findall(r"libs\.plugins\.([a-z0-9.]+)", text):
            assert alias in plugins, f"{f.name}: libs.plugins.{alias}"
        for alias in re.findall(r"libs\.(?!plugins\.)([a-z0-9.]+?)(?=[)\s,])", text):
            assert alias in libs, f"{f.name}: libs.{alias}"
    settings = (ANDROID / "settings.gradle.kts").read_text()
    for module in re.findall(r'":(\w+)"', settings):
        assert (ANDROID / module / "build.gradle.kts").is_file(), module


def test_executorch_android_matches_the_exporter():
    """The runtime must be at least the version that wrote the programs (no forward compatibility)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pin = next(d for d in pyproject["project"]["optional-dependencies"]["executorch"] if d.startswith("executorch=="))
    assert _catalog()["versions"]["executorch"] == pin.split("==")[1]
    props = (ANDROID / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    assert re.search(r"^distributionUrl=https\\://services\.gradle\.org/distributions/gradle-[\d.]+-bin\.zip$", props, re.M)


def test_manifest_and_resources():
    root = ET.parse(APP / "AndroidManifest.xml").getroot()
    app = root.find("application")
    assert app.get(f"{ANDROID_NS}largeHeap") == "true"
    activities = {a.get(f"{ANDROID_NS}name"): a for a in app.findall("activity")}
    assert set(activities) == {".MainActivity", ".BenchmarkActivity"}
    for name in activities:
        assert (APP / "kotlin" / "dev" / "sfllava" / "demo" / f"{name[1:]}.kt").is_file()
    launcher = activities[".MainActivity"].find("intent-filter/category")
    assert launcher.get(f"{ANDROID_NS}name") == "android.intent.category.LAUNCHER"
    assert activities[".BenchmarkActivity"].get(f"{ANDROID_NS}exported") == "true"  # adb am start reaches it
    strings = {s.get("name") for s in ET.parse(APP / "res" / "values" / "strings.xml").getroot()}
    used = {m for f in APP_KOTLIN for m in re.findall(r"R\.string\.(\w+)", f.read_text())}
    assert used and used <= strings, used - strings
    assert f"@string/{'app_name'}" == app.get(f"{ANDROID_NS}label") and "app_name" in strings


def test_core_has_no_android_imports_and_app_code_keeps_the_rules():
    for f in sorted((ANDROID / "core").rglob("*.kt")) + sorted((ANDROID / "replay").rglob("*.kt")):
        assert not re.search(r"^import android", f.read_text(), re.M), f"{f.name} imports android.*"
    runner_calls = re.compile(r"\bmodule\.(prefillPrompt|prefillImages|generate|load|resetContext)\(")
    for f in APP_KOTLIN:
        text = f.read_text()
        assert "!!" not in text, f"{f.name}: force unwrap"
        assert "runBlocking" not in text and "Thread.sleep" not in text, f.name
        if runner_calls.search(text):
            # LlmModule is driven only by LlmEngine, and LlmEngine only from the worker executor.
            assert f.name == "LlmEngine.kt", f"{f.name} calls LlmModule directly"
    vm = (APP / "kotlin" / "dev" / "sfllava" / "demo" / "DemoViewModel.kt").read_text()
    # Every engine call in the view model sits inside a run { } block (the single worker thread).
    for call in re.finditer(r"\b(e|engine\?*)\.(load|answer)\(", vm):
        before = vm[:call.start()]
        assert before.rfind("run(") > before.rfind("\n    fun "), f"engine.{call.group(2)} outside run()"
