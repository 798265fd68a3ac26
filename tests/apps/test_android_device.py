"""``benchmarks/android_device.sh`` up to the adb calls: a fake ``adb`` (a shell script standing in
for the phone: push, am start, ls, cat, pull on a folder) checks the commands the script issues and
hands back a bench JSON written by the app's own Kotlin ``BenchReport``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "android_device.sh"

FAKE_ADB = r'''#!/usr/bin/env bash
# A phone in a folder: /sdcard/... maps to $FAKE_PHONE/sdcard/...
echo "$*" >> "$FAKE_PHONE/adb.log"
map() { echo "$FAKE_PHONE$1"; }
case "$1" in
  get-state) [ -n "$FAKE_NO_DEVICE" ] && exit 1; echo device ;;
  push) mkdir -p "$(dirname "$(map "$3")")"; cp -r "$2" "$(map "$3")" ;;
  pull) cp "$(map "$2")" "$3" ;;
  shell)
    shift
    case "$1" in
      pm) [ -n "$FAKE_NOT_INSTALLED" ] && exit 1; echo "package:/data/app/base.apk" ;;
      mkdir) shift; for d in "${@:2}"; do mkdir -p "$(map "$d")"; done; mkdir -p "$(map "$2")" ;;
      rm) for d in "${@:3}"; do rm -rf "$(map "$d")"; done ;;
      ls) [ -e "$(map "$2")" ] ;;
      cat) cat "$(map "$2")" ;;
      am)
        # BenchmarkActivity: read the bundle the script pushed, write the result where the app does.
        name=""; while [ $# -gt 0 ]; do [ "$1" = "--es" ] && [ "$2" = bundle ] && name="$3"; shift; done
        out="$FAKE_PHONE/sdcard/Android/data/dev.sfllava.demo/files/bench"
        [ -f "$FAKE_PHONE/sdcard/Android/data/dev.sfllava.demo/files/bundles/$name/manifest.json" ] || exit 1
        if [ -n "$FAKE_FAIL" ]; then echo "$FAKE_FAIL" > "$out/$name.error"; else cp "$FAKE_RESULT" "$out/$name.json"; fi ;;
    esac ;;
esac
'''


@pytest.fixture()
def phone(tmp_path, junit_run):
    _, bench = junit_run
    adb = tmp_path / "adb"
    adb.write_text(FAKE_ADB)
    adb.chmod(0o755)
    root = tmp_path / "phone"
    root.mkdir()
    env = {**os.environ, "ADB": str(adb), "FAKE_PHONE": str(root), "FAKE_RESULT": str(bench),
           "OUT_DIR": str(tmp_path / "results"), "PYTHON": str(Path(os.sys.executable)), "TIMEOUT_S": "10"}
    return root, env


def _run(args, env):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO)


def test_pushes_runs_pulls_and_prints_one_table(phone, app_bundles, tmp_path):
    root, env = phone
    bundle = tmp_path / "my-bundle"
    shutil.copytree(app_bundles[0], bundle)
    r = _run([bundle, 3], env)
    assert r.returncode == 0, r.stderr
    log = (root / "adb.log").read_text().splitlines()
    assert any(line.startswith("push ") and line.endswith("/files/bundles/my-bundle") for line in log)
    start = next(line for line in log if " am start " in f" {line} ")
    assert "-n dev.sfllava.demo/.BenchmarkActivity --es bundle my-bundle --ei runs 3" in start
    pulled = list((tmp_path / "results").glob("android-my-bundle-*.json"))
    assert len(pulled) == 1 and json.loads(pulled[0].read_text())["engines"]["android_llmmodule"]
    assert "android_llmmodule@Pixel 9 Pro" in r.stdout and "time_to_first_token_s" in r.stdout


def test_reports_the_phones_error_and_bad_inputs(phone, app_bundles, exported_bundle, tmp_path):
    root, env = phone
    r = _run([app_bundles[0]], {**env, "FAKE_FAIL": "out of memory"})
    assert r.returncode == 4 and "the phone says: out of memory" in r.stderr
    r = _run([tmp_path], env)
    assert r.returncode == 2 and "is not a bundle" in r.stderr
    r = _run([exported_bundle("ours", "int4", "coreml").bundle], env)
    assert r.returncode == 2 and "not an ExecuTorch bundle" in r.stderr
    assert _run([app_bundles[0]], {**env, "FAKE_NO_DEVICE": "1"}).returncode == 3
    r = _run([app_bundles[0]], {**env, "FAKE_NOT_INSTALLED": "1"})
    assert r.returncode == 3 and "is not installed" in r.stderr
