"""The Android app's ``core`` and ``replay`` modules compiled and run with plain ``kotlinc`` and
``java`` (no Gradle or Android SDK: neither can be installed here).

The toolchain comes from ``tools/android_toolchain.sh`` (kotlinc and ktlint from npm, JUnit 4 and
Gson from Debian). Builds are cached under the toolchain folder by a hash of the sources, so a
second test session compiles nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import SfllavaError

REPO = Path(__file__).resolve().parents[2]
ANDROID = REPO / "android_demo"
TOOLCHAIN = Path(os.environ.get("SFLLAVA_TOOLCHAIN", REPO / ".toolchain"))
SYSTEM_JARS = ("/usr/share/java/gson.jar", "/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar")


@dataclass(frozen=True)
class Toolchain:
    kotlinc: Path
    kotlin_lib: Path
    ktlint: Path

    @property
    def gson(self) -> str:
        return SYSTEM_JARS[0]

    def test_classpath(self) -> list[str]:
        return [*SYSTEM_JARS, str(self.kotlin_lib / "kotlin-test.jar"), str(self.kotlin_lib / "kotlin-test-junit.jar")]

    def runtime_classpath(self) -> list[str]:
        return [self.gson, str(self.kotlin_lib / "kotlin-stdlib.jar")]


def toolchain(install: bool = False) -> Toolchain:
    """The installed toolchain; ``install`` runs ``tools/android_toolchain.sh`` first."""
    if install:
        r = subprocess.run(["bash", str(REPO / "tools" / "android_toolchain.sh"), str(TOOLCHAIN)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SfllavaError((r.stderr.strip().splitlines() or ["android_toolchain.sh failed"])[-1])
    mods = TOOLCHAIN / "node_modules"
    tc = Toolchain(kotlinc=mods / "kotlin-compiler" / "bin" / "kotlinc", kotlin_lib=mods / "kotlin-compiler" / "lib",
                   ktlint=mods / "@naturalcycles" / "ktlint" / "resources" / "ktlint")
    missing = [str(p) for p in (tc.kotlinc, tc.ktlint, *SYSTEM_JARS) if not Path(p).exists()]
    if missing or not shutil.which("java"):
        raise SfllavaError(f"Kotlin toolchain incomplete ({', '.join(missing) or 'no java'}): "
                           f"run tools/android_toolchain.sh {TOOLCHAIN}")
    return tc


def _sources(*roots: Path) -> list[Path]:
    return sorted(p for r in roots for p in r.rglob("*.kt"))


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(REPO)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _kotlinc(tc: Toolchain, sources: list[Path], classpath: list[str], out: Path) -> Path:
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.jar")
    cmd = [str(tc.kotlinc), "-jvm-target", "17", "-Werror", "-cp", os.pathsep.join(classpath), "-d", str(tmp),
           *map(str, sources)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SfllavaError(f"kotlinc failed on {sources[0].parent}:\n{r.stderr.strip()}")
    tmp.rename(out)
    return out


@dataclass(frozen=True)
class CoreBuild:
    core_jar: Path  # core + replay (main sources)
    tests_jar: Path
    toolchain: Toolchain

    def classpath(self, tests: bool = False) -> str:
        jars = [str(self.core_jar), *self.toolchain.runtime_classpath()]
        if tests:
            jars += [str(self.tests_jar), *self.toolchain.test_classpath()]
        return os.pathsep.join(jars)


def build_core(tc: Toolchain) -> CoreBuild:
    """Compile ``core`` (with ``replay``) and ``core``'s unit tests, warnings as errors; cached."""
    main = _sources(ANDROID / "core" / "src" / "main", ANDROID / "replay" / "src" / "main")
    tests = _sources(ANDROID / "core" / "src" / "test")
    cache = TOOLCHAIN / "build"
    core_jar = _kotlinc(tc, main, [tc.gson], cache / f"core-{_digest(main)}.jar")
    tests_jar = _kotlinc(tc, tests, [str(core_jar), *tc.test_classpath()], cache / f"core-tests-{_digest(main + tests)}.jar")
    return CoreBuild(core_jar, tests_jar, tc)


def test_classes(build: CoreBuild) -> list[str]:
    """JUnit classes in the tests jar (``*Test`` files)."""
    root = ANDROID / "core" / "src" / "test" / "kotlin"
    return sorted(str(p.relative_to(root).with_suffix("")).replace(os.sep, ".")
                  for p in root.rglob("*Test.kt"))


def run_junit(build: CoreBuild, bundles: list[Path], bench_out: Path | None = None) -> subprocess.CompletedProcess:
    props = [f"-Dsfllava.bundles={os.pathsep.join(map(str, bundles))}"]
    if bench_out is not None:
        props.append(f"-Dsfllava.bench_out={bench_out}")
    return subprocess.run(["java", *props, "-cp", build.classpath(tests=True), "org.junit.runner.JUnitCore",
                           *test_classes(build)], capture_output=True, text=True)


def run_replay(build: CoreBuild, bundle: Path, out: Path, question: str | None = None) -> subprocess.CompletedProcess:
    args = [str(bundle), str(out)] + ([question] if question is not None else [])
    return subprocess.run(["java", "-cp", build.classpath(), "dev.sfllava.replay.ReplayKt", *args],
                          capture_output=True, text=True)
