"""bench/gpu_priors.sh, the prepared GPU job that retrains the embedded priors: its CPU dry run must train every
model through the real training scripts and send back model folders that load, so a typo cannot waste a GPU lease
(a session gets one short run)."""
from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from fastdream.guidance import stable_diffusion

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_dry_run_returns_three_loadable_model_folders_within_the_device_limits(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "GPU_PRIORS_DEVICE": "cpu", "GPU_PRIORS_TRAIN_S": "3",
           "GPU_PRIORS_SMALL": "1", "GPU_PRIORS_WORK": str(tmp_path / "work"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_priors.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = sorted(p.name for p in out.iterdir())
    # the device sends back at most 8 files of at most 16 MiB, flat names
    assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())
    tars = {name: out / f"{name}.tar" for name in ("shapes-o25", "shapes-sd-long", "shapes-sd-64")}
    assert all(t.is_file() for t in tars.values()), files
    unpacked = tmp_path / "unpacked"
    for name, tar in tars.items():
        with tarfile.open(tar) as t:
            assert not any("/.train" in m.name for m in t.getmembers())  # no optimiser state or data bank
            t.extractall(unpacked, filter="data")
    recipe = json.loads((unpacked / "shapes-o25" / "fastdream.json").read_text())["recipe"]
    assert recipe["guidance.overhead_elevation"] == 25.0
    assert (unpacked / "shapes-o25" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert stable_diffusion.native_image_size(str(unpacked / "shapes-sd-long")) == 32
    assert stable_diffusion.native_image_size(str(unpacked / "shapes-sd-64")) == 64
    assert "gpu_priors done" in (out / "gpu_priors.log").read_text()
