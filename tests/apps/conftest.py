"""The Kotlin toolchain and the compiled ``core`` for the app tests. Outside CI a machine without
the toolchain skips these tests; ``make test`` installs it and sets ``SFLLAVA_REQUIRE_KOTLIN=1``,
which turns a missing toolchain into a failure."""

from __future__ import annotations

import os

import pytest

from sfllava_mobile.errors import SfllavaError


@pytest.fixture(scope="session")
def kotlin_toolchain():
    from sfllava_mobile.apps import kotlin

    try:
        return kotlin.toolchain(install=os.environ.get("SFLLAVA_REQUIRE_KOTLIN") == "1")
    except SfllavaError as e:
        if os.environ.get("SFLLAVA_REQUIRE_KOTLIN") == "1":
            raise
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def core_build(kotlin_toolchain):
    from sfllava_mobile.apps import kotlin

    return kotlin.build_core(kotlin_toolchain)


@pytest.fixture(scope="session")
def app_bundles(exported_bundle):
    """A template without BOS (ChatML, ``ours``) and one with BOS (Vicuna, the LLaVA-repo layout):
    the same bundles the export tests share."""
    return [exported_bundle("ours", "8da4w").bundle, exported_bundle("llava_repo", "8da4w").bundle]


@pytest.fixture(scope="session")
def junit_run(core_build, app_bundles, tmp_path_factory):
    """``core``'s JUnit suite, run once: (completed process, the bench JSON its BenchReport test wrote)."""
    from sfllava_mobile.apps import kotlin

    bench = tmp_path_factory.mktemp("junit") / "phone-bench.json"
    return kotlin.run_junit(core_build, app_bundles, bench_out=bench), bench
