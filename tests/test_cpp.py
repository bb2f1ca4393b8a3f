"""The C++ unit tests of the core (tests/cpp/test_core.cpp: neighbour lists, rotation sets,
option parsing), built in the package's CMake build tree and run without Python."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILDS = sorted(ROOT.glob("build/*/CMakeCache.txt"))


@pytest.mark.skipif(not BUILDS, reason="no CMake build tree in build/ (the package was not built "
                                       "from this checkout with setup.sh)")
def test_core_unit_tests():
    build = BUILDS[0].parent
    cache = BUILDS[0].read_text()
    cmake = next(line.split("=", 1)[1] for line in cache.splitlines()
                 if line.startswith("CMAKE_COMMAND:"))
    made = subprocess.run([cmake, "--build", str(build), "--target", "symprobe_tests"],
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    run = subprocess.run([str(build / "symprobe_tests")], capture_output=True, text=True,
                         timeout=300)
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    checks, failed = run.stdout.strip().splitlines()[-1].split(" checks, ")
    assert int(checks) > 100 and failed == "0 failed"
