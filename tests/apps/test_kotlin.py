"""The Android ``core`` module compiled with kotlinc and its JUnit tests run against bundles the
Python suite exported: frame indices, resized pixels, packed bytes, prompt text and runner calls
must equal the golden vectors bit for bit."""

from __future__ import annotations

import json
import re

import pytest

from sfllava_mobile.apps import kotlin

pytestmark = pytest.mark.filterwarnings("ignore")


def test_core_unit_tests_pass_on_exported_bundles(junit_run):
    r, bench = junit_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    ran = int(re.search(r"OK \((\d+) tests?\)", r.stdout).group(1))
    assert ran >= 20 and ran == r.stdout.split("\n", 2)[1].count(".")
    # The phone's bench JSON must be the host's bench schema.
    from ..test_bench import assert_valid_bench

    report = json.loads(bench.read_text())
    assert_valid_bench(report)
    assert report["engines"]["android_llmmodule"]["repeats"] == 3


def test_core_tests_fail_on_a_wrong_golden_vector(core_build, app_bundles, tmp_path):
    """The JUnit suite is not vacuous: one pixel off in resize_small fails it, naming the test."""
    import shutil

    bad = tmp_path / "bundle"
    shutil.copytree(app_bundles[0], bad)
    g = json.loads((bad / "golden.json").read_text())
    g["resize_small"]["uint8_hwc"][7] ^= 1
    (bad / "golden.json").write_text(json.dumps(g))
    r = kotlin.run_junit(core_build, [bad])
    assert r.returncode != 0 and "smallResizeIsBitExact" in r.stdout and "Failures: 1" in r.stdout


def test_every_core_test_class_is_run(core_build):
    classes = kotlin.test_classes(core_build)
    assert {"dev.sfllava.core.FrameResizerTest", "dev.sfllava.core.TallImageTest", "dev.sfllava.core.PromptPlanTest",
            "dev.sfllava.core.TokenStreamTest", "dev.sfllava.core.ManifestTest"} <= set(classes)
