"""train.average_from: the run ends on the running mean of the field's weights, resumes keep that mean."""
import pytest
import torch

from fastdream.checkpoint import checkpoint_path, load_checkpoint
from fastdream.errors import UserError
from fastdream.scene.occupancy import OccupancyGrid
from fastdream.training.averaging import WeightAverage, rebuild_occupancy
from fastdream.training.trainer import Trainer

from tests.helpers.train_utils import tiny_config


def _snapshot(module):
    return [p.detach().clone().double() for p in module.parameters()]


def test_the_running_mean_is_the_mean_of_the_steps_after_the_start():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)).double()
    avg = WeightAverage(net, start_step=3)
    assert not avg.apply()  # nothing averaged yet: the module stays as it is
    seen = []
    for step in range(1, 9):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        avg.after_step(step)
        if step > 3:
            seen.append(_snapshot(net))
    assert avg.count == 5
    expected = [torch.stack(ps).mean(0) for ps in zip(*seen)]
    assert avg.apply()
    for p, e in zip(net.parameters(), expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-12)


def test_state_round_trips_and_a_mismatched_state_is_refused():
    net = torch.nn.Linear(4, 3)
    avg = WeightAverage(net, start_step=0)
    for step in (1, 2):
        with torch.no_grad():
            net.weight.add_(1.0)
        avg.after_step(step)
    other = WeightAverage(torch.nn.Linear(4, 3), start_step=0)
    other.load_state_dict(avg.state_dict())
    assert other.count == 2 and all(torch.equal(a, b) for a, b in zip(other.mean, avg.mean))
    with pytest.raises(ValueError, match="does not match"):
        WeightAverage(torch.nn.Linear(5, 3), start_step=0).load_state_dict(avg.state_dict())


def test_rebuilt_occupancy_forgets_the_old_field():
    grid = OccupancyGrid([-1, -1, -1, 1, 1, 1], resolution=16)
    ball = lambda x: (x.norm(dim=-1) < 0.5).float() * 10.0  # noqa: E731
    grid.update(0, lambda x: torch.ones(x.shape[0]) * 10.0, warmup_steps=10, n=1)  # an old field: all occupied
    assert bool(grid.occupied.all())
    rebuild_occupancy(grid, ball, occ_thre=0.01)
    idx = torch.arange(16)
    centres = (torch.stack(torch.meshgrid(idx, idx, idx, indexing="ij"), -1).float() + 0.5) / 16 * 2 - 1
    dist = centres.norm(dim=-1)
    occupied = grid.occupied[0]
    assert bool(occupied[dist < 0.5 - 0.11].all())  # cells wholly inside the ball (half-diagonal 0.108)
    assert not bool(occupied[dist > 0.5 + 0.11].any())  # and wholly outside it


def test_a_run_ends_on_the_mean_of_its_last_steps_and_resume_keeps_it(tmp_path):
    over = {"train.iters": 6, "train.average_from": 0.5, "train.checkpoint_every": 0,
            "render.grid_warmup_steps": 100}
    full = Trainer(tiny_config(**over), tmp_path / "full", progress=False)
    seen = []
    for _ in range(6):
        full.train_step()
        if full.step > 3:
            seen.append(_snapshot(full.field))
    last = _snapshot(full.field)
    full.train()  # at train.iters already: only the end of the run
    expected = [torch.stack(ps).mean(0).float() for ps in zip(*seen)]
    for p, e, x in zip(full.field.parameters(), expected, last):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(p.detach().double(), x) for p, x in zip(full.field.parameters(), last))
    saved = load_checkpoint(checkpoint_path(tmp_path / "full"))
    assert saved["field_average"]["count"] == 3

    half = Trainer(tiny_config(**over), tmp_path / "half", progress=False)
    for _ in range(5):
        half.train_step()
    half.save()  # as an interrupt leaves it: the raw weights and the mean so far
    resumed = Trainer(tiny_config(**over), tmp_path / "half", resume=True, progress=False)
    assert resumed.average.count == 2
    resumed.train()
    for k, v in full.field.state_dict().items():
        torch.testing.assert_close(resumed.field.state_dict()[k], v, rtol=1e-6, atol=1e-7)


def test_off_by_default_and_refused_outside_0_1(tmp_path):
    assert Trainer(tiny_config(), tmp_path / "run", progress=False).average is None
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(UserError, match="train.average_from"):
            tiny_config(**{"train.average_from": bad})
