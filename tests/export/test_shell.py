"""One closed outer shell: a leaky, spongy field exports as its outer surface only, where the density level puts it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from fastdream.export.cleanup import topology
from fastdream.export.isosurface import evaluate_grid, extract_mesh
from fastdream.export.shell import outside_space
from tests.helpers.export_fields import AABB, density_of
from tests.helpers.shell_fields import CENTRE, HOLE_R, R_IN, R_OUT, leaky_sdf, outer_distance

RES = 96
VOXEL = 2.0 / (RES - 1)


@pytest.fixture(scope="module")
def leaky_grid():
    return evaluate_grid(density_of(leaky_sdf), AABB, RES)


def _closed_single_shell(mesh) -> trimesh.Trimesh:
    topo = topology(mesh.faces)
    assert topo.closed_manifold and topo.components == 1, topo
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight and tm.is_winding_consistent and tm.body_count == 1
    assert tm.volume > 0  # outward normals
    return tm


def test_leaky_spongy_field_gives_one_closed_outer_shell(leaky_grid):
    mesh = extract_mesh(None, AABB, grid=leaky_grid)
    tm = _closed_single_shell(mesh)
    assert tm.euler_number == 2  # a sphere: the pinholes are sealed, not tunnels
    d = outer_distance(torch.from_numpy(mesh.vertices)).numpy()
    # no internal surface: every vertex within a voxel of the true outer sphere (inner wall at R_IN, foam < 0.4)
    assert np.abs(d).max() < VOXEL, (d.min(), d.max())
    # the surface sits where the level puts it: within half a voxel on average (marching cubes' own limit on a
    # field this sharp); the sealed pinholes are a few small patches
    assert np.abs(d).mean() < 0.5 * VOXEL
    # the volume is the full ball's, not a shell's (R_OUT^3 - R_IN^3 is 42 % of it)
    assert tm.volume > 0.95 * 4 / 3 * np.pi * R_OUT ** 3


def test_without_the_ball_the_outside_leaks_in(leaky_grid):
    """The same field with a plain flood fill (seal 0): the pinholes let the outside in. The test above can fail."""
    mesh = extract_mesh(None, AABB, grid=leaky_grid, seal=0.0)
    d = outer_distance(torch.from_numpy(mesh.vertices)).numpy()
    assert (d < -(R_OUT - R_IN) / 2).mean() > 0.2  # the shell's inner wall is there
    every = extract_mesh(None, AABB, grid=leaky_grid, shell=False)  # the old behaviour: foam too
    radii = np.linalg.norm(every.vertices - CENTRE.numpy(), axis=1)
    assert (radii < 0.42).mean() > 0.2


def test_openings_wider_than_the_ball_stay_open():
    """A cup (a shell with a mouth much wider than the ball): its inside is outer surface and must survive."""
    def cup(x):
        p = x - CENTRE.to(x)
        r = p.norm(dim=-1)
        return torch.maximum(torch.maximum(r - R_OUT, R_IN - r), 0.3 - p[:, 2])  # cut off above z = 0.3

    mesh = extract_mesh(density_of(cup), AABB, resolution=RES)
    tm = _closed_single_shell(mesh)
    assert tm.euler_number == 2
    radii = np.linalg.norm(mesh.vertices - CENTRE.numpy(), axis=1)
    assert (np.abs(radii - R_IN) < VOXEL).mean() > 0.3  # the inner wall
    assert tm.volume < 0.6 * 4 / 3 * np.pi * R_OUT ** 3  # not filled


def _hollow_box(opening: int) -> np.ndarray:
    """A 20^3 box with 3-voxel walls and a square opening `opening` voxels wide through its top wall."""
    solid = np.zeros((40, 40, 40), bool)
    solid[10:30, 10:30, 10:30] = True
    solid[13:27, 13:27, 13:27] = False
    lo = 20 - opening // 2
    solid[lo:lo + opening, lo:lo + opening, 27:30] = False
    return solid


def test_the_outside_is_what_the_ball_can_reach():
    pinhole, door = _hollow_box(2), _hollow_box(6)
    assert outside_space(pinhole, 0.0)[20, 20, 20]  # a flood fill leaks through a 2-voxel pinhole
    assert not outside_space(pinhole, 1.0)[20, 20, 20]  # a radius-1 ball (3 wide) does not pass it
    assert outside_space(door, 2.0)[20, 20, 20]  # a radius-2 ball (5 wide) passes a 6-wide opening
    assert not outside_space(door, 3.0)[20, 20, 20]  # a radius-3 ball (7 wide) does not
    ball = outside_space(door, 2.0)
    assert not (ball & door).any() and ball[0, 0, 0] and ball[39, 39, 39]
    assert outside_space(np.zeros((4, 4, 4), bool), 2.0).all()
    with pytest.raises(ValueError, match="radius"):
        outside_space(door, -1.0)


def test_hole_radius_is_what_the_default_seal_is_sized_for():
    from fastdream.export.shell import DEFAULT_SEAL

    ball_diameter = DEFAULT_SEAL * 2.0  # box side 2
    assert 2 * HOLE_R < ball_diameter and 2 * HOLE_R > 2 * VOXEL  # sealed by default, open to a flood fill
