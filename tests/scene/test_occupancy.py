"""OccupancyGrid: Morton bit packing, the update rule, state handling."""
from __future__ import annotations

import math

import pytest
import torch

from fastdream import OccupancyGrid
from fastdream.scene.occupancy import morton3, pack_bits

AABB = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("res,levels", [(8, 1), (12, 2), (5, 3)])
def test_pack_bits_morton_order(res, levels):
    gen = torch.Generator().manual_seed(res)
    occ = torch.rand(levels, res, res, res, generator=gen) < 0.5
    bits = pack_bits(occ)
    p = 2
    while p < res:
        p *= 2
    assert bits.dtype == torch.uint8 and bits.numel() == levels * p ** 3 // 8
    idx = torch.randint(0, res, (500, 3), generator=gen)
    lv = torch.randint(0, levels, (500,), generator=gen)
    m = lv * p ** 3 + morton3(idx[:, 0], idx[:, 1], idx[:, 2])
    got = (bits[m >> 3].long() >> (m & 7)) & 1
    assert torch.equal(got.bool(), occ[lv, idx[:, 0], idx[:, 1], idx[:, 2]])
    assert sum(bin(int(b)).count("1") for b in bits) == int(occ.sum())


def cell_density(res, levels, table):
    """A density that is constant inside each finest-level cell of level 0 (so jitter does not matter)."""
    def fn(x):
        idx = ((x * 0.5 + 0.5) * res).floor().long().clamp(0, res - 1)
        inside = (x.abs() <= 1).all(-1)
        return torch.where(inside, table[idx[:, 0], idx[:, 1], idx[:, 2]], torch.zeros(x.shape[0]))[:, None]
    return fn


def test_update_rule_warmup_and_ema():
    res = 8
    gen = torch.Generator().manual_seed(0)
    table = torch.rand(res, res, res, generator=gen) ** 4
    grid = OccupancyGrid(AABB, resolution=res)
    assert grid.occupied.all()  # a fresh grid marches everything
    assert grid.update(0, cell_density(res, 1, table), occ_thre=0.05)
    occs = grid.occs.reshape(res, res, res)
    torch.testing.assert_close(occs, table)
    thre = min(0.05, float(table.mean()))
    assert torch.equal(grid.occupied[0], table > thre)
    assert torch.equal(grid.bitfield, pack_bits(grid.occupied))
    # Not a multiple of n: nothing happens.
    assert not grid.update(3, cell_density(res, 1, table * 0), n=2)
    torch.testing.assert_close(grid.occs.reshape(res, res, res), table)
    # Density drops to zero: occ decays by ema_decay.
    grid.update(2, cell_density(res, 1, table * 0), ema_decay=0.5, n=2, occ_thre=0.05)
    torch.testing.assert_close(grid.occs.reshape(res, res, res), table * 0.5)


def test_update_after_warmup_revisits_occupied_cells():
    res = 8
    table = torch.zeros(res, res, res)
    table[2:4, 2:4, 2:4] = 1.0
    grid = OccupancyGrid(AABB, resolution=res)
    grid.update(0, cell_density(res, 1, table), warmup_steps=1)
    assert int(grid.occupied.sum()) == 8
    grid.update(16, cell_density(res, 1, table * 0), warmup_steps=1, ema_decay=0.25)
    occ = grid.occs.reshape(res, res, res)
    # Every occupied cell was re-evaluated (decayed), whatever the random subset was.
    torch.testing.assert_close(occ[2:4, 2:4, 2:4], torch.full((2, 2, 2), 0.25))


def test_update_after_warmup_refreshes_a_random_share_of_empty_cells():
    res = 16
    grid = OccupancyGrid(AABB, resolution=res)
    grid.update(0, lambda x: torch.zeros(x.shape[0]), warmup_steps=1)  # every cell empty
    assert not grid.occupied.any()
    grid.update(16, lambda x: torch.ones(x.shape[0]), warmup_steps=1)
    refreshed = float((grid.occs > 0).float().mean())
    # each empty cell refreshes with probability 1 - e^(-1/4) (n/4 draws with replacement); 4096 cells: sd ~0.0065
    assert abs(refreshed - (1 - math.exp(-0.25))) < 0.03


def test_levels_cover_scaled_boxes_and_state_moves():
    grid = OccupancyGrid([0.0, 0.0, 0.0, 2.0, 4.0, 6.0], resolution=4, levels=3)
    assert grid.level_aabb(0) == [0.0, 0.0, 0.0, 2.0, 4.0, 6.0]
    assert grid.level_aabb(2) == [-3.0, -6.0, -9.0, 5.0, 10.0, 15.0]
    seen = []
    grid.update(0, lambda x: (seen.append(x) or torch.ones(x.shape[0])))
    pts = torch.cat(seen)
    assert pts.shape[0] == 3 * 64
    assert (pts[128:] >= torch.tensor([-3.0, -6.0, -9.0])).all() and (pts[128:] <= torch.tensor([5.0, 10, 15])).all()
    other = OccupancyGrid([0.0, 0.0, 0.0, 2.0, 4.0, 6.0], resolution=4, levels=3)
    occ = torch.rand(3, 4, 4, 4) < 0.5
    grid.set_occupied(occ)
    other.load_state_dict(grid.state_dict())
    assert torch.equal(other.occupied, occ) and torch.equal(other.bitfield, grid.bitfield)
    assert set(grid.state_dict()) >= {"aabb", "occs", "occupied", "bitfield"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="resolution"):
        OccupancyGrid(AABB, resolution=0)
    with pytest.raises(ValueError, match="levels"):
        OccupancyGrid(AABB, levels=0)
    grid = OccupancyGrid(AABB, resolution=4)
    with pytest.raises(ValueError, match="density_fn"):
        grid.update(0, lambda x: torch.ones(3))
    with pytest.raises(ValueError, match="occupied"):
        grid.set_occupied(torch.ones(4, 4, 4, dtype=torch.bool))
