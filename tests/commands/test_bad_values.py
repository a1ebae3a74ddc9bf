"""Issue #17's table: every bad value through the real entry point is one line on stderr and a non-zero exit, with
nothing written or changed; a few through `python -m fastdream` prove that no traceback reaches stderr."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastdream.cli import main

from tests.helpers.reliability import ROOT, make_tiny_run, snapshot

NO_GPU_DEVICE = "cuda" if not torch.cuda.is_available() else "cuda:99"
GEN = ["--guidance", "target:sphere", "--device", "cpu", "--no-export", "--iters", "1"]

# (argv with RUN for the run folder and TMP for a scratch folder, what the one-line message must mention)
CASES = [
    (["export", "RUN", "--resolution", "1"], "--resolution"),
    (["export", "RUN", "--texture-size", "1"], "--texture-size"),
    (["export", "RUN", "--texture-size", "3"], "--texture-size"),
    (["export", "RUN", "--faces", "1"], "--faces"),
    (["export", "RUN", "--threshold", "nan"], "--threshold"),
    (["export", "RUN", "--threshold", "-1"], "--threshold"),
    (["export", "RUN", "--device", NO_GPU_DEVICE], "cuda"),
    (["export", "RUN", "--out", "RUN/config.yaml"], "is a file"),
    (["render", "RUN", "--size", "1"], "--size"),
    (["render", "RUN", "--size", "7"], "--size"),
    (["render", "RUN", "--size", "100000"], "--size"),
    (["render", "RUN", "--frames", "100000"], "--frames"),
    (["render", "RUN", "--radius", "nan"], "--radius"),
    (["render", "RUN", "--fovy", "inf"], "--fovy"),
    (["render", "RUN", "--device", NO_GPU_DEVICE], "cuda"),
    (["render", "RUN", "--device", "meta"], "meta"),
    (["render", "RUN", "--out", "TMP/x.avi"], ".avi"),
    (["render", "RUN", "--out", "TMP"], "is a folder"),
    (["generate", "a ball", *GEN, "--out", "TMP/g", "--device", "meta"], "train.device"),
    (["generate", "a ball", *GEN, "--out", "TMP/g", "field.options.n_levels=-1"], "field.options.n_levels"),
    (["generate", "a ball", *GEN, "--out", "TMP/g", "field.options.log2_hashmap_size=0"], "log2_hashmap_size"),
    (["generate", "a ball", *GEN, "--out", "TMP/g", "--config", "TMP/bad.yaml"], "field.options.n_levels"),
    (["generate", "", *GEN, "--out", "TMP/g"], "prompt is empty"),
    (["generate", "a ball", *GEN[2:], "--out", "TMP/g", "--guidance", "bogus"], "guidance.spec"),
    (["generate", "a ball", *GEN, "--out", "RUN/config.yaml"], "is a file"),
    (["generate", "a ball", *GEN, "--out", "TMP"], "--overwrite"),
    (["generate", "a ball", *GEN, "--out", "TMP/g", "--resume", "--overwrite"], "--resume"),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real one-step run folder (no export)."""
    return make_tiny_run(tmp_path_factory.mktemp("bad_values") / "run")


def _argv(argv: list[str], run: Path, tmp: Path) -> list[str]:
    return [a.replace("RUN", str(run)).replace("TMP", str(tmp)) for a in argv]


def _scratch(tmp_path: Path) -> Path:
    (tmp_path / "bad.yaml").write_text("field:\n  options:\n    n_levels: abc\n")
    return tmp_path


@pytest.mark.parametrize("argv,mentions", CASES, ids=[" ".join(a[:1] + a[2:]).replace("RUN", "")[:60]
                                                      for a, _ in CASES])
def test_bad_value_is_one_line_and_a_nonzero_exit(run_dir, tmp_path, capsys, argv, mentions):
    tmp = _scratch(tmp_path)
    before_run, before_tmp = snapshot(run_dir), snapshot(tmp)
    try:
        code = main(_argv(argv, run_dir, tmp))
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code not in (0, None), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert mentions in err, err
    assert snapshot(run_dir) == before_run and snapshot(tmp) == before_tmp  # nothing written, nothing changed
    assert not (tmp / "g").exists()


@pytest.mark.parametrize("argv,mentions", [
    (["render", "RUN", "--size", "100000"], "--size"),
    (["export", "RUN", "--threshold", "nan"], "--threshold"),
    (["generate", "a ball", *GEN, "--out", "TMP/g", "--device", "meta"], "train.device"),
])
def test_bad_value_through_python_m_fastdream_has_no_traceback(run_dir, tmp_path, argv, mentions):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "fastdream", *_argv(argv, run_dir, tmp_path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and mentions in err, err
