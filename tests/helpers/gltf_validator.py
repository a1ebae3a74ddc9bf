"""The Khronos glTF validator (npm package gltf-validator) for tests: found in, or installed into, a cache folder.

CI installs it first (.ci/run); elsewhere the first test that needs it runs `npm install` once. A machine where
neither node nor the package can be had fails the test with the reason: validity is not skipped into a pass.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = "gltf-validator@2.0.0-dev.3.10"
CACHE = Path(os.environ.get("FASTDREAM_TEST_CACHE", Path.home() / ".cache" / "fastdream-test"))

_SCRIPT = r"""
const fs = require("fs");
const [pkg, file] = process.argv.slice(-2);
require(pkg).validateBytes(new Uint8Array(fs.readFileSync(file)), {maxIssues: 0})
  .then((report) => process.stdout.write(JSON.stringify(report)),
        (error) => { process.stderr.write(String(error)); process.exit(2); });
"""


def _package_dir() -> Path:
    pkg = CACHE / "node_modules" / "gltf-validator"
    if (pkg / "package.json").exists():
        return pkg
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"the glTF validator is not in {pkg} and npm is not installed to fetch it; install node and npm "
                    f"(or run `npm install --prefix {CACHE} {PACKAGE}`)")
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", PACKAGE],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not (pkg / "package.json").exists():
        pytest.fail(f"`npm install --prefix {CACHE} {PACKAGE}` failed (exit {done.returncode}); the GLB cannot be "
                    f"validated without it:\n{done.stderr[-2000:]}")
    return pkg


def validate(path: Path) -> dict:
    """The validator's JSON report for a .glb/.gltf file: report['issues'] has numErrors, numWarnings, messages."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed, so the Khronos glTF validator cannot run; install node (v18+)")
    pkg = _package_dir()
    done = subprocess.run([node, "-e", _SCRIPT, str(pkg), str(path)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"the glTF validator could not read {path} (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def summary(report: dict) -> str:
    """'N errors, N warnings' and each distinct (severity, code) with its count, for assertion messages."""
    issues = report["issues"]
    codes: dict[tuple[int, str], int] = {}
    for m in issues["messages"]:
        codes[(m["severity"], m["code"])] = codes.get((m["severity"], m["code"]), 0) + 1
    names = {0: "error", 1: "warning", 2: "info", 3: "hint"}
    listed = ", ".join(f"{names.get(s, s)} {c} x{n}" for (s, c), n in sorted(codes.items()))
    return f"{issues['numErrors']} errors, {issues['numWarnings']} warnings ({listed or 'no messages'})"
