"""losses.normal_smoothness against a direct reference on fresh random draws, its gradient in float64, and the
trainer path that turns it on."""
from __future__ import annotations

import json
import types

import pytest
import torch

from fastdream.errors import UserError
from fastdream.scene.field import Field
from fastdream.training import losses
from fastdream.training.trainer import Trainer

from tests.helpers.train_utils import tiny_config


class _SphereNormals(torch.nn.Module):
    """A field whose only use here is its normals: x/|x| (a sphere about the origin), zero inside `flat_radius`."""

    def __init__(self, flat_radius: float = 0.0):
        super().__init__()
        self.flat_radius = flat_radius

    def normals(self, x):
        r = x.norm(dim=-1, keepdim=True)
        return torch.where(r > self.flat_radius, x / r.clamp_min(1e-12), torch.zeros_like(x))


def _batch(field, n_views=2, n_samples=50, n_probe=300, pad=10, seed=0):
    """A RenderedBatch stand-in: per view, samples with weights, positions and ray indices (the last `pad` are
    padding, index -1, with garbage weights), plus the probe draws."""
    g = torch.Generator().manual_seed(seed)
    outs = []
    for _ in range(n_views):
        ri = torch.randint(0, 64, (n_samples,), generator=g)
        ri[-pad:] = -1
        outs.append({"ray_indices": ri, "weights": torch.rand(n_samples, generator=g),
                     "positions": torch.randn(n_samples, 3, generator=g) * 0.5})
    probe = (torch.rand(n_probe, generator=g), torch.randn(n_probe, 3, generator=g))
    return types.SimpleNamespace(outs=outs, field=field, probe=probe)


def _reference(batch):
    """The same estimate, written point by point: inverse-CDF draw over the non-padding samples' weights."""
    pos = torch.cat([o["positions"] for o in batch.outs]).double()
    w = torch.cat([torch.where(o["ray_indices"] >= 0, o["weights"], 0.0) for o in batch.outs]).double()
    cdf = torch.cumsum(w, 0)
    total, count = 0.0, 0
    for u, g in zip(*batch.probe):
        i = next(k for k in range(len(cdf)) if cdf[k] > u.double() * cdf[-1])
        p = pos[i]
        q = p + losses.SMOOTHNESS_RADIUS * g.double()
        n1, n2 = batch.field.normals(p[None])[0], batch.field.normals(q[None])[0]
        if n1.norm() > 0.5 and n2.norm() > 0.5:
            total += float(((n1 - n2).pow(2).sum() + 1e-6).sqrt())
            count += 1
    return total / max(count, 1), count


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_smoothness_matches_a_point_by_point_reference(seed):
    batch = _batch(_SphereNormals(flat_radius=0.3), seed=seed)
    expected, count = _reference(batch)
    assert 0 < count < 300  # some draws land in the flat core and are left out
    assert float(losses.normal_smoothness(batch)) == pytest.approx(expected, rel=1e-5)


def test_padding_samples_are_never_drawn():
    batch = _batch(_SphereNormals(), seed=3)
    for o in batch.outs:  # padding that a draw would turn into NaN
        o["positions"][o["ray_indices"] < 0] = float("nan")
        o["weights"][o["ray_indices"] < 0] = 100.0
    assert torch.isfinite(losses.normal_smoothness(batch))


def test_a_flat_surface_costs_nothing_and_a_curved_one_does():
    class Plane(torch.nn.Module):
        def normals(self, x):
            return torch.tensor([0.0, 0.0, 1.0]).expand_as(x)

    assert float(losses.normal_smoothness(_batch(Plane()))) < 2e-3  # only the sqrt's 1e-6 floor
    small, large = _SphereNormals(), _SphereNormals()
    tight = _batch(small)
    for o in tight.outs:
        o["positions"] *= 0.2  # a sphere of radius ~0.1 turns further over the same offset
    assert float(losses.normal_smoothness(tight)) > 2 * float(losses.normal_smoothness(_batch(large)))


def test_nothing_visible_gives_zero_not_nan():
    batch = _batch(_SphereNormals())
    for o in batch.outs:
        o["weights"].zero_()
    assert float(losses.normal_smoothness(batch)) == 0.0


def test_without_probe_draws_or_samples_it_is_off():
    batch = _batch(_SphereNormals())
    assert losses.normal_smoothness(types.SimpleNamespace(outs=batch.outs, field=batch.field, probe=None)) is None
    del batch.outs[0]["positions"]
    assert losses.normal_smoothness(batch) is None


def test_gradient_through_a_real_field_in_float64():
    torch.manual_seed(0)
    field = Field(n_levels=2, log2_hashmap_size=8, finest_resolution=16, hidden_dim=8, n_hidden_layers=1,
                  blob_shape="cone").double()
    batch = _batch(field, n_probe=8)
    last = field.mlp[-1]
    weight = last.weight.detach().clone().requires_grad_(True)

    del last.weight  # a plain tensor in its place, so gradcheck can vary it

    def f(w):
        last.weight = w
        return losses.normal_smoothness(batch)

    assert torch.autograd.gradcheck(f, (weight,), eps=1e-6, atol=1e-5)


def test_trainer_logs_it_and_is_deterministic(tmp_path):
    over = {"loss.normal_smoothness": 5.0, "train.iters": 4, "train.checkpoint_every": 0}
    runs = []
    for name in ("a", "b"):
        trainer = Trainer(tiny_config(**over), tmp_path / name, progress=False)
        trainer.train()
        runs.append(trainer.field.state_dict())
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        values = [r["normal_smoothness"] for r in rows if "loss" in r]
        assert len(values) == 4 and all(0 <= v < 2.0 for v in values)
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_a_bad_weight_is_refused_in_one_line(bad):
    with pytest.raises(UserError, match="loss.normal_smoothness"):
        tiny_config(**{"loss.normal_smoothness": bad})


def test_it_starts_at_the_scheduled_fraction_of_the_run(tmp_path):
    over = {"loss.normal_smoothness": 5.0, "loss.normal_smoothness_start": 0.6, "train.iters": 5,
            "train.checkpoint_every": 0}
    Trainer(tiny_config(**over), tmp_path / "run", progress=False).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "normal_smoothness" in r] == [4, 5]  # steps 3 and 4 of 0..4: 3 >= 0.6 * 5


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_start_outside_the_run_is_refused(bad):
    with pytest.raises(UserError, match="loss.normal_smoothness_start"):
        tiny_config(**{"loss.normal_smoothness_start": bad})
