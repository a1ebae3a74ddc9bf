"""The training step makes no host sync on CUDA. On the CPU: no sync-capable call (item, tolist, cpu, nonzero,
bool(tensor), ...) is made on what would be a device tensor, by an AST scan of the step's code and by recording every
such call during real Trainer steps with the tiny SD model. On CUDA: Trainer steps under
torch.cuda.set_sync_debug_mode("error") after warm-up."""
from __future__ import annotations

import ast
import collections
import traceback
from pathlib import Path

import pytest
import torch

from fastdream.ops.capacity import SampleCapacity
from fastdream.training.trainer import Trainer

from tests.helpers.tiny_sd import make_tiny_sd
from tests.helpers.train_utils import tiny_config

ROOT = Path(__file__).resolve().parents[2] / "fastdream"
# (file, function or None for the whole module): the code one training step runs on device tensors.
STEP_CODE = [("training/step.py", None), ("training/losses.py", None), ("training/trainer.py", "train_step"),
             ("training/trainer.py", "_update_grid"), ("training/optim.py", "backward"),
             ("training/optim.py", "apply"), ("guidance/stable_diffusion.py", "encode_images"),
             ("guidance/stable_diffusion.py", "predict_noise"), ("guidance/stable_diffusion.py", "sds"),
             ("guidance/encoders.py", None), ("guidance/graphs.py", "__call__"), ("scene/occupancy.py", "update"),
             ("scene/occupancy.py", "_level_box"), ("scene/background.py", "forward"), ("ops/transfer.py", None),
             ("render/rays.py", "render_rays"), ("render/rays.py", "finish_render"), ("scene/field.py", "_evaluate"),
             ("scene/field.py", "forward_with_normals"), ("scene/field.py", "_normals_from"),
             ("scene/field.py", "normals")]
SYNC_METHODS = {"item", "tolist", "cpu", "numpy", "nonzero"}
SYNC_FUNCTIONS = {"nonzero", "unique", "masked_select", "argwhere"}
# Sync-capable calls a CPU step makes on host data that stays on the host on CUDA too, and why.
HOST_SITES = {
    ("schedules.py", "sample_shading"): "shading modes and ambient ratios drawn on the CPU generator",
    ("capacity.py", "observe"): "the sample demand: on CUDA a non-blocking copy into pinned memory, read later",
    ("capacity.py", "current"): "reads a pinned host copy once its event has completed (a query, not a wait)",
    ("optim.py", "apply"): "torch's foreach Adam reads its CPU step counter; fused Adam (CUDA default) keeps it "
                           "on the device",
}


def _functions(tree: ast.Module, name: str | None):
    if name is None:
        return [tree]
    found = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    assert found, f"no function {name}"
    return found


def test_step_code_calls_no_sync_capable_method():
    bad = []
    for rel, fn in STEP_CODE:
        for node in _functions(ast.parse((ROOT / rel).read_text()), fn):
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                f = call.func
                if isinstance(f, ast.Attribute) and f.attr in SYNC_METHODS:
                    bad.append(f"{rel}:{call.lineno} .{f.attr}()")
                elif (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "torch"
                      and f.attr in SYNC_FUNCTIONS | {"tensor"}
                      and (f.attr != "tensor" or any(k.arg == "device" for k in call.keywords))):
                    bad.append(f"{rel}:{call.lineno} torch.{f.attr}()")  # torch.tensor(..., device=) copies
    assert bad == []


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return make_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


def _sd_trainer(sd_dir, out, device="cpu", **over):
    cfg = tiny_config(**{"guidance.spec": "sd", "guidance.model": str(sd_dir), "train.device": device,
                         "render.grid_update_every": 2, "render.grid_warmup_steps": 2, "train.iters": 1000, **over})
    return Trainer(cfg, out, progress=False)


class _SiteRecorder:
    """Patches Tensor's sync-capable methods and torch.nonzero/unique/masked_select to record the calling
    (file, function) outside torch itself."""

    METHODS = ("item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__int__", "__float__", "__index__")

    def __init__(self, monkeypatch):
        self.sites: collections.Counter = collections.Counter()
        for name in self.METHODS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(getattr(torch.Tensor, name)))
        for name in ("nonzero", "unique", "masked_select"):
            monkeypatch.setattr(torch, name, self._wrap(getattr(torch, name)))

    def _wrap(self, orig):
        def recorded(*args, **kwargs):
            frames = [f for f in traceback.extract_stack()[:-1] if "/torch/" not in f.filename]
            self.sites[(Path(frames[-1].filename).name, frames[-1].name)] += 1
            return orig(*args, **kwargs)
        return recorded


@pytest.mark.parametrize("over", [{}, {"loss.normal_smoothness": 1.0}], ids=["default", "normal_smoothness"])
def test_cpu_steps_call_sync_capable_methods_only_on_host_data(tiny_sd_dir, tmp_path, monkeypatch, over):
    trainer = _sd_trainer(tiny_sd_dir, tmp_path / "run", **over)
    trainer.capacity = SampleCapacity(1 << 14, granularity=256, minimum=256)  # what a GPU run uses
    for _ in range(3):
        trainer.train_step()
    recorder = _SiteRecorder(monkeypatch)
    for _ in range(4):  # two grid updates (every 2 steps, past the grid's warm-up) among them
        trainer.train_step()
    unexpected = {site: n for site, n in recorder.sites.items() if site not in HOST_SITES}
    assert unexpected == {}
    assert ("schedules.py", "sample_shading") in recorder.sites  # the recorder does see calls


def test_profiled_step_marks_every_phase(tiny_sd_dir, tmp_path):
    from bench.common import PhaseClock

    trainer = _sd_trainer(tiny_sd_dir, tmp_path / "run")
    clock = PhaseClock(torch.device("cpu"))
    trainer.profile(clock)
    trainer.train_step()
    trainer.profile(None)
    assert trainer.guidance.phase_clock is None and trainer.phase_clock is None
    assert [name for name, _ in clock._marks] == ["", "render_fwd", "vae_encode", "unet", "vae_backward",
                                                   "render_backward", "optimizer", "grid_update"]


@pytest.mark.cuda
@pytest.mark.parametrize("over", [{}, {"train.cuda_graphs": True}, {"loss.normal_smoothness": 1.0}],
                         ids=["eager", "cuda_graphs", "normal_smoothness"])
def test_cuda_trainer_steps_make_no_host_sync(tiny_sd_dir, tmp_path, over):
    trainer = _sd_trainer(tiny_sd_dir, tmp_path / "run", device="cuda", **over)
    assert isinstance(trainer.capacity, SampleCapacity)
    for _ in range(6):  # warm-up: the sample budget adapts, a CUDA graph is captured, the grid leaves warm-up
        trainer.train_step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(6):  # three grid updates among them
            losses = trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(losses["loss"]).item()
    if over:
        assert trainer.guidance._unet_call.disabled_reason is None and trainer.guidance._unet_call._graphs
