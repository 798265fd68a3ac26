#!/usr/bin/env bash
# Phone numbers beside host numbers: push an ExecuTorch bundle to a phone running the demo app, run
# its benchmark mode on the bundle's golden clip, pull the `bench` JSON, print one table.
#
#   benchmarks/android_device.sh BUNDLE [RUNS] [HOST_BENCH_JSON]
#
# Needs adb and the app installed (android_demo/, `./gradlew :app:installDebug`). ADB, SERIAL,
# TIMEOUT_S and OUT_DIR can be set in the environment. HOST_BENCH_JSON: `sfllava-mobile bench
# BUNDLE --video CLIP --json > host.json` from the same bundle, printed in the same table.
set -euo pipefail
ADB="${ADB:-adb}"
[ -n "${SERIAL:-}" ] && ADB="$ADB -s $SERIAL"
TIMEOUT_S="${TIMEOUT_S:-1800}"
PKG=dev.sfllava.demo
BUNDLE="${1:?usage: android_device.sh BUNDLE [RUNS] [HOST_BENCH_JSON]}"
RUNS="${2:-5}"
HOST_JSON="${3:-}"
PYTHON="${PYTHON:-python3}"

[ -f "$BUNDLE/manifest.json" ] || { echo "error: $BUNDLE is not a bundle (no manifest.json)" >&2; exit 2; }
"$PYTHON" -c "import json,sys; m=json.load(open(sys.argv[1])); sys.exit(0 if m.get('backend')=='executorch' else 1)" \
  "$BUNDLE/manifest.json" || { echo "error: $BUNDLE is not an ExecuTorch bundle; the Android app runs .pte bundles" >&2; exit 2; }
NAME="$(basename "$(cd "$BUNDLE" && pwd)")"
OUT_DIR="${OUT_DIR:-benchmarks/results}"
REMOTE="/sdcard/Android/data/$PKG/files"

$ADB get-state >/dev/null 2>&1 || { echo "error: no device: connect a phone with USB debugging on (adb devices)" >&2; exit 3; }
$ADB shell pm path "$PKG" >/dev/null 2>&1 || { echo "error: $PKG is not installed: build and install android_demo first" >&2; exit 3; }

echo "pushing $NAME ($(du -sh "$BUNDLE" | cut -f1))"
$ADB shell mkdir -p "$REMOTE/bundles" "$REMOTE/bench"
$ADB shell rm -rf "$REMOTE/bundles/$NAME" "$REMOTE/bench/$NAME.json" "$REMOTE/bench/$NAME.error"
$ADB push "$BUNDLE" "$REMOTE/bundles/$NAME" >/dev/null
$ADB shell am start -W -n "$PKG/.BenchmarkActivity" --es bundle "$NAME" --ei runs "$RUNS" >/dev/null

echo "running $RUNS runs on the phone (timeout ${TIMEOUT_S}s)"
waited=0
while :; do
  if $ADB shell ls "$REMOTE/bench/$NAME.json" >/dev/null 2>&1; then break; fi
  if $ADB shell ls "$REMOTE/bench/$NAME.error" >/dev/null 2>&1; then
    echo "error: the phone says: $($ADB shell cat "$REMOTE/bench/$NAME.error")" >&2; exit 4
  fi
  [ "$waited" -ge "$TIMEOUT_S" ] && { echo "error: no result after ${TIMEOUT_S}s (adb logcat -s SfllavaBench)" >&2; exit 4; }
  sleep 5; waited=$((waited + 5))
done
mkdir -p "$OUT_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$OUT_DIR/android-$NAME-$STAMP.json"
$ADB pull "$REMOTE/bench/$NAME.json" "$OUT" >/dev/null
echo "wrote $OUT"
"$PYTHON" -m sfllava_mobile.apps.bench_table "$OUT" ${HOST_JSON:+"$HOST_JSON"}
