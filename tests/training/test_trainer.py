"""The SDS trainer: tiny SD pipeline, resume == uninterrupted, NaN guard, oracle reconstruction."""
import json
import math

import pytest
import torch

from fastdream.checkpoint import checkpoint_path, load_checkpoint
from fastdream.config import make_config
from fastdream.guidance.target import TargetGuidance
from fastdream.training.trainer import NonFiniteError, Trainer

from tests.helpers.tiny_sd import make_tiny_sd
from tests.helpers.train_utils import tiny_config


def _params(trainer):
    return {k: v.detach().clone() for k, v in trainer.field.state_dict().items()}


def test_tiny_sd_pipeline_trains_the_field(tmp_path):
    sd_dir = make_tiny_sd(tmp_path / "sd")
    cfg = tiny_config(**{"guidance.spec": "sd", "guidance.model": str(sd_dir), "train.iters": 4,
                         "guidance.view_dependent": True, "loss.sparsity": 0.1, "loss.entropy": 0.01,
                         "background.kind": "mlp", "train.checkpoint_every": 0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    assert trainer.cond.shape[0] == 4  # front/side/back/overhead embeddings, computed once
    before = _params(trainer)
    bg_before = [p.detach().clone() for p in trainer.background.parameters()]
    result = trainer.train()
    assert result.status == "done" and result.step == 4
    after = trainer.field.state_dict()
    changed = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert changed, "no field parameter changed"
    assert any(not torch.equal(a, b) for a, b in zip(bg_before, trainer.background.parameters()))
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if "loss" in x]
    assert [x["step"] for x in train_lines] == [1, 2, 3, 4]
    assert all(x["loss"] > 0 and x["step_time_s"] > 0 and "sparsity" in x and x["peak_rss_mb"] > 0
               for x in train_lines)
    assert (tmp_path / "run" / "config.yaml").is_file() and checkpoint_path(tmp_path / "run").is_file()


def test_resume_equals_uninterrupted(tmp_path):
    over = {"train.iters": 8, "train.checkpoint_every": 0, "shading.albedo_prob": 0.5,
            "shading.lambertian_prob": 0.5, "shading.textureless_prob": 0.0, "render.grid_update_every": 2,
            # after warm-up OccupancyGrid.update writes duplicate cell indices (random + occupied), whose
            # winner is unordered on CPU; keep every update in warm-up so the comparison can be exact
            "render.grid_warmup_steps": 100}
    full = Trainer(tiny_config(**over), tmp_path / "full", progress=False)
    full.train()

    half_cfg = tiny_config(**{**over, "train.iters": 4})
    Trainer(half_cfg, tmp_path / "half", progress=False).train()
    assert load_checkpoint(checkpoint_path(tmp_path / "half"))["step"] == 4
    resumed = Trainer(tiny_config(**over), tmp_path / "half", resume=True, progress=False)
    assert resumed.step == 4
    resumed.train()
    a, b = full.field.state_dict(), resumed.field.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for k, v in full.grid.state_dict().items():
        assert torch.equal(v, resumed.grid.state_dict()[k]), k
    assert torch.equal(full.cam_gen.get_state(), resumed.cam_gen.get_state())


class NaNAfter(TargetGuidance):
    """The oracle, but its loss turns NaN from the `bad`-th call on."""

    def __init__(self, bad):
        super().__init__("sphere")
        self.calls, self.bad = 0, bad

    def sds(self, *args, **kwargs):
        self.calls += 1
        out = super().sds(*args, **kwargs)
        if self.calls >= self.bad:
            out.loss = out.loss * float("nan")
        return out


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_config(**{"train.iters": 20, "train.checkpoint_every": 2})
    trainer = Trainer(cfg, tmp_path / "run", guidance=NaNAfter(bad=5), progress=False)
    with pytest.raises(NonFiniteError) as e:
        trainer.train()
    msg = str(e.value)
    assert "NaN/inf" in msg and "step 4" in msg and "last.pt" in msg
    state = load_checkpoint(checkpoint_path(tmp_path / "run"))
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["field"].values() if v.is_floating_point())
    events = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "nonfinite"


def test_nan_before_first_checkpoint_says_so(tmp_path):
    cfg = tiny_config(**{"train.iters": 20, "train.checkpoint_every": 10})
    with pytest.raises(NonFiniteError, match="no checkpoint had been written"):
        Trainer(cfg, tmp_path / "run", guidance=NaNAfter(bad=1), progress=False).train()
    assert not checkpoint_path(tmp_path / "run").exists()

# The oracle reconstruction (held-out PSNR >= 25 dB) runs through the CLI in test_generate.py.


def _record_sds_calls(trainer):
    """Wrap trainer.guidance.sds to record (channels, t_range, as_latent) of every call."""
    calls, sds = [], trainer.guidance.sds

    def recording(images, *args, **kwargs):
        calls.append((images.shape[1], kwargs["t_range"], kwargs.get("as_latent", False)))
        return sds(images, *args, **kwargs)

    trainer.guidance.sds = recording
    return calls


def test_t_max_anneals_linearly_over_training(tmp_path):
    cfg = tiny_config(**{"train.iters": 4, "guidance.t_min": 0.1, "guidance.t_max": 0.9, "guidance.t_max_end": 0.5,
                         "train.checkpoint_every": 0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    calls = _record_sds_calls(trainer)
    assert trainer.train().status == "done"
    t_max = [c[1][1] for c in calls]
    assert [c[1][0] for c in calls] == [0.1] * 4
    assert t_max == pytest.approx([0.9, 0.8, 0.7, 0.6])  # step s of 4 uses 0.9 - 0.4 * s / 4


def test_latent_warmup_feeds_rgb_and_opacity_as_latents_then_switches_to_the_vae(tmp_path):
    sd_dir = make_tiny_sd(tmp_path / "sd")
    cfg = tiny_config(**{"guidance.spec": "sd", "guidance.model": str(sd_dir), "train.iters": 4,
                         "guidance.latent_warmup": 0.5, "train.checkpoint_every": 0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    assert trainer.guidance.supports_latent
    calls = _record_sds_calls(trainer)
    before = _params(trainer)
    assert trainer.train().status == "done"
    assert [(c[0], c[2]) for c in calls] == [(4, True), (4, True), (3, False), (3, False)]
    after = trainer.field.state_dict()
    assert any(before[k].is_floating_point() and not torch.equal(before[k], after[k]) for k in before)


def test_a_sample_capacity_budget_reports_itself_in_the_metrics(tmp_path):
    from fastdream.ops.capacity import SampleCapacity

    cfg = tiny_config(**{"train.iters": 3, "train.checkpoint_every": 0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    capacity = SampleCapacity(1 << 16, granularity=256, minimum=256)
    trainer.capacity = capacity  # what a GPU run gets by default
    assert trainer.train().status == "done"
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [x for x in lines if "loss" in x][-1]
    assert last["sample_demand"] == capacity.last_demand > 0
    assert last["sample_capacity"] == capacity.current() < 1 << 16
    assert last["truncated_renders"] == 0


def test_a_signal_during_the_final_evaluation_stops_the_run_and_keeps_its_checkpoint(tmp_path, monkeypatch):
    """Ctrl-C while the last held-out evaluation runs: the checkpoint is saved, the run reports "interrupted" (so
    generate exits 130 and does not go on to export)."""
    import os
    import signal

    from fastdream.training import hooks

    evaluate = hooks.HeldoutEvalHook._evaluate

    def interrupted_evaluation(self, final):
        if final:
            os.kill(os.getpid(), signal.SIGINT)
        evaluate(self, final)

    monkeypatch.setattr(hooks.HeldoutEvalHook, "_evaluate", interrupted_evaluation)
    cfg = tiny_config(**{"train.iters": 2, "train.eval_every": 100, "train.checkpoint_every": 0,
                         "train.preview_every": 100})
    result = Trainer(cfg, tmp_path / "run", progress=False).train()
    assert result.status == "interrupted" and result.step == 2
    assert load_checkpoint(checkpoint_path(tmp_path / "run"))["step"] == 2
    assert not list((tmp_path / "run" / "previews").iterdir())  # the rest of the final work was skipped
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last == {"step": 2, "event": "interrupted", "signal": "SIGINT"}


@pytest.mark.parametrize("init,fogged", [({}, False),
                                         ({"field.options.density_activation": "trunc_exp",
                                           "field.options.blob_shape": "gaussian"}, True)])
def test_default_sd_recipe_starts_with_background_in_view(tmp_path, init, fogged):
    """metrics.jsonl's first row carries opacity_mean, the mean rendered opacity of step 1's training views: with the
    default SD recipe (threestudio's softplus + cone init) it is <= 0.5; the paper's exp-gaussian fills the frame."""
    sd_dir = make_tiny_sd(tmp_path / "sd")
    cfg = make_config("default", prompt="a hamburger", overrides=[f"{k}={v}" for k, v in init.items()], **{
        "guidance.model": str(sd_dir), "train.device": "cpu", "train.iters": 1, "train.export": False,
        "train.eval_every": 0, "train.preview_every": 0, "field.options.log2_hashmap_size": 14})
    assert cfg.loss.sparsity == 1.0  # threestudio's dreamfusion-sd lambda_sparsity
    Trainer(cfg, tmp_path / "run", progress=False).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in rows if "opacity_mean" in r)
    assert first["step"] == 1
    assert (first["opacity_mean"] > 0.9) if fogged else (first["opacity_mean"] <= 0.5), first["opacity_mean"]


def test_lr_falls_by_cosine_to_lr_final_and_resume_keeps_the_schedule(tmp_path):
    over = {"train.iters": 5, "optim.lr_final": 0.1, "optim.lr_encoding": 0.02, "optim.lr_mlp": 0.004,
            "train.checkpoint_every": 0, "render.grid_warmup_steps": 100}
    seen = []
    full = Trainer(tiny_config(**over), tmp_path / "full", progress=False)
    apply = full.optim.apply
    full.optim.apply = lambda: (seen.append([g["lr"] for g in full.optim.adam.param_groups]), apply())[1]
    full.train()
    # step s of 5 uses 0.1 + 0.9 * (1 + cos(pi * s / 4)) / 2 of each group's own lr: 1 at the first step, 0.1 at the last
    scale = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(5)]
    assert [lrs[0] for lrs in seen] == pytest.approx([0.02 * f for f in scale])
    assert [lrs[1] for lrs in seen] == pytest.approx([0.004 * f for f in scale])

    # a run of the same length stopped after 3 steps (as an interrupt leaves it), then resumed
    half = Trainer(tiny_config(**over), tmp_path / "half", progress=False)
    for _ in range(3):
        half.train_step()
    half.save()
    resumed = Trainer(tiny_config(**over), tmp_path / "half", resume=True, progress=False)
    assert resumed.step == 3
    resumed.train()
    assert resumed.optim.adam.param_groups[0]["lr"] == pytest.approx(0.02 * 0.1)
    for k, v in full.field.state_dict().items():
        assert torch.equal(v, resumed.field.state_dict()[k]), k


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_lr_final_outside_0_1_is_refused(bad):
    from fastdream.errors import UserError
    with pytest.raises(UserError, match="optim.lr_final"):
        tiny_config(**{"optim.lr_final": bad})
