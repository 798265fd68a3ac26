"""The Kotlin toolchain and the compiled ``core`` for the app tests. The toolchain is installed
(``tools/android_toolchain.sh``) when missing, and a machine that cannot install it fails these
tests unless ``SFLLAVA_SKIP_KOTLIN=1`` says, explicitly, to skip them."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def kotlin_toolchain():
    from sfllava_mobile.apps import kotlin

    if os.environ.get("SFLLAVA_SKIP_KOTLIN") == "1":
        pytest.skip("SFLLAVA_SKIP_KOTLIN=1: the Kotlin checks were switched off")
    return kotlin.toolchain(install=True)


@pytest.fixture(scope="session")
def core_build(kotlin_toolchain):
    from sfllava_mobile.apps import kotlin

    return kotlin.build_core(kotlin_toolchain)


APP_LAYOUTS = ("ours", "llava_repo", "llava", "llava_next", "llava_onevision")


@pytest.fixture(scope="session")
def app_bundles(exported_bundle):
    """One 8da4w bundle per checkpoint layout (ChatML without BOS, Vicuna and LLaMA templates with
    BOS): the same bundles the export matrix shares, so this exports nothing new."""
    return [exported_bundle(layout, "8da4w").bundle for layout in APP_LAYOUTS]


def tree_sitter_errors(node, out=None) -> list[str]:
    """``line:col type`` of every ERROR or MISSING node under ``node`` (a parse that failed somewhere)."""
    out = [] if out is None else out
    if node.type == "ERROR" or node.is_missing:
        out.append(f"{node.start_point[0] + 1}:{node.start_point[1] + 1} {node.type}")
    for child in node.children:
        tree_sitter_errors(child, out)
    return out


@pytest.fixture(scope="session")
def junit_run(core_build, app_bundles, tmp_path_factory):
    """``core``'s JUnit suite, run once: (completed process, the bench JSON its BenchReport test wrote)."""
    from sfllava_mobile.apps import kotlin

    bench = tmp_path_factory.mktemp("junit") / "phone-bench.json"
    return kotlin.run_junit(core_build, app_bundles, bench_out=bench), bench
