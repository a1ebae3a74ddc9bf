"""Isosurface extraction: closed meshes, Chamfer distance to analytic surfaces, the opacity-matched threshold."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from tests.helpers.export_fields import (AABB, DIAG, SPHERE_C, SPHERE_R, TORUS_R, TORUS_r, density_of, sample_on_mesh,
                            sphere_sdf, torus_sdf)
from scipy.spatial import cKDTree

from fastdream.errors import UserError
from fastdream.export import (NoSurfaceError, depth_threshold, evaluate_grid, extract_mesh, rasterize_uv,
                              silhouette_threshold)


@pytest.fixture(scope="module")
def sphere_mesh():
    return extract_mesh(density_of(sphere_sdf), AABB, resolution=128)


@pytest.fixture(scope="module")
def torus_mesh():
    return extract_mesh(density_of(torus_sdf), AABB, resolution=128)


def _analytic_samples(kind: str, n: int, rng) -> np.ndarray:
    if kind == "sphere":
        d = rng.normal(size=(n, 3))
        return SPHERE_C.numpy() + SPHERE_R * d / np.linalg.norm(d, axis=1, keepdims=True)
    # torus: area-uniform by rejection on the tube angle (area element ~ R + r cos v)
    u = rng.uniform(0, 2 * np.pi, 4 * n)
    v = rng.uniform(0, 2 * np.pi, 4 * n)
    keep = rng.uniform(0, TORUS_R + TORUS_r, 4 * n) < TORUS_R + TORUS_r * np.cos(v)
    u, v = u[keep][:n], v[keep][:n]
    rho = TORUS_R + TORUS_r * np.cos(v)
    return np.stack([rho * np.cos(u), rho * np.sin(u), TORUS_r * np.sin(v)], 1)


@pytest.mark.parametrize("kind", ["sphere", "torus"])
def test_mesh_is_closed_and_close_to_the_analytic_surface(kind, sphere_mesh, torus_mesh):
    mesh = sphere_mesh if kind == "sphere" else torus_mesh
    sdf = sphere_sdf if kind == "sphere" else torus_sdf
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.euler_number == (2 if kind == "sphere" else 0)  # one closed sphere / one torus, nothing else
    exact_volume = (4 / 3 * math.pi * SPHERE_R ** 3 if kind == "sphere"
                    else 2 * math.pi ** 2 * TORUS_R * TORUS_r ** 2)
    # positive: normals point outwards; a little larger: the density's tail renders opaque just outside sdf = 0
    assert exact_volume < tm.volume < 1.1 * exact_volume

    rng = np.random.default_rng(0)
    on_mesh, _, _ = sample_on_mesh(mesh.vertices, mesh.faces, 20000, rng)
    mesh_to_surface = sdf(torch.from_numpy(on_mesh).float()).abs().numpy()
    dense, _, _ = sample_on_mesh(mesh.vertices, mesh.faces, 400000, rng)
    surface_to_mesh, _ = cKDTree(dense).query(_analytic_samples(kind, 20000, rng))
    chamfer = 0.5 * (mesh_to_surface.mean() + surface_to_mesh.mean())
    assert chamfer <= 0.01 * DIAG
    # and within a voxel (2/127), so the bound above is not loose by accident
    assert chamfer <= 0.75 * 2.0 / 127


def test_shape_touching_the_box_is_closed_at_the_box():
    big = density_of(lambda x: x.norm(dim=-1) - 1.3)  # cut by every face of the box
    mesh = extract_mesh(big, AABB, resolution=32)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight
    assert np.all(np.abs(mesh.vertices) <= 1.0 + 2.0 / 31 + 1e-6)


def test_small_floaters_are_dropped_unless_asked_to_keep():
    def two_blobs(x):
        main = (x - x.new_tensor([0.3, 0.0, 0.0])).norm(dim=-1) - 0.5  # x is on the GPU where there is one
        floater = (x - x.new_tensor([-0.75, 0.0, 0.0])).norm(dim=-1) - 0.05
        return torch.minimum(main, floater)

    grid = evaluate_grid(density_of(two_blobs), AABB, 64)
    cleaned = extract_mesh(None, AABB, grid=grid)
    kept = extract_mesh(None, AABB, grid=grid, min_component_ratio=0.0)
    assert trimesh.Trimesh(cleaned.vertices, cleaned.faces, process=False).body_count == 1
    assert trimesh.Trimesh(kept.vertices, kept.faces, process=False).body_count == 2
    assert cleaned.vertices[:, 0].min() > -0.3  # the floater at x = -0.75 is the one dropped


def test_decimation_meets_the_face_budget_and_stays_faithful(sphere_mesh):
    mesh = extract_mesh(None, AABB, grid=evaluate_grid(density_of(sphere_sdf), AABB, 64), max_faces=3000)
    assert 2000 <= len(mesh.faces) <= 3000
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight
    err = sphere_sdf(torch.from_numpy(mesh.vertices)).abs().max().item()
    assert err < 0.01 * DIAG


def _oblique_silhouette_ious(meshes, density, n=96, steps=800):
    """IoU of each mesh's silhouette with the volume-rendered opacity>0.5 mask, orthographic view along (1, 2, 3)."""
    d = np.array([1.0, 2.0, 3.0]) / math.sqrt(14.0)
    a = np.cross(d, [0.0, 0.0, 1.0])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    s = np.linspace(-0.95, 0.95, n)
    cols, rows = np.meshgrid(s, s, indexing="xy")
    origins = (cols[..., None] * a + rows[..., None] * b).reshape(-1, 3)
    t = np.linspace(-1.8, 1.8, steps)
    pts = torch.tensor(origins[:, None, :] + t[None, :, None] * d, dtype=torch.float32).reshape(-1, 3)
    tau = density(pts).reshape(len(origins), steps).double().sum(1) * (t[1] - t[0])
    rendered = (1.0 - torch.exp(-tau) > 0.5).numpy().reshape(n, n)
    ious = []
    for mesh in meshes:  # rasterize the silhouette with the UV rasterizer, texel centres = ray origins
        plane = np.stack([mesh.vertices @ a, mesh.vertices @ b], 1)
        uv = (plane + 0.95) / 1.9 * (n - 1) / n + 0.5 / n
        uv[:, 1] = 1.0 - uv[:, 1]
        r, c, _, _ = rasterize_uv(np.clip(uv, 0, 1), mesh.faces, n)
        covered = np.zeros((n, n), bool)
        covered[r, c] = True
        ious.append((rendered & covered).sum() / (rendered | covered).sum())
    return ious


@pytest.mark.parametrize("beta", [0.02, 0.005])
def test_default_threshold_matches_rendered_silhouette(beta):
    density = density_of(sphere_sdf, 200.0, beta)
    grid = evaluate_grid(density, AABB, 128)
    auto, fixed = (extract_mesh(None, AABB, grid=grid, threshold=t) for t in (None, 10.0))
    iou_auto, iou_fixed = _oblique_silhouette_ious([auto, fixed], density)
    assert iou_auto >= 0.99
    if beta == 0.02:  # a soft field: the fixed level peers use is visibly off
        assert iou_fixed < iou_auto - 0.05


def test_depth_threshold_matches_head_on_median_termination():
    beta, scale = 0.02, 200.0
    grid = evaluate_grid(density_of(sphere_sdf, scale, beta), AABB, 128)
    mesh = extract_mesh(None, AABB, grid=grid, threshold="depth")
    # head-on ray: optical depth from radius r outwards = scale*beta*log(1 + exp(-(r - R)/beta)) = ln 2
    r_half = SPHERE_R - beta * math.log(math.expm1(math.log(2.0) / (scale * beta)))
    radius = np.linalg.norm(mesh.vertices - SPHERE_C.numpy(), axis=1).mean()
    assert abs(radius - r_half) < 2.0 / 127  # within a voxel
    assert depth_threshold(grid, [2 / 127] * 3) == pytest.approx(mesh.threshold)


def test_empty_field_raises_no_surface():
    zero = lambda x: torch.zeros(x.shape[0])  # noqa: E731
    with pytest.raises(NoSurfaceError, match="no surface"):
        extract_mesh(zero, AABB, resolution=16)
    with pytest.raises(NoSurfaceError, match="never exceeds"):
        extract_mesh(density_of(sphere_sdf), AABB, resolution=16, threshold=1e6)
    assert issubclass(NoSurfaceError, UserError)
    # barely-there fog that never renders opaque has no surface either
    fog = lambda x: torch.full((x.shape[0],), 0.01)  # noqa: E731
    with pytest.raises(NoSurfaceError, match="opacity 0.5"):
        silhouette_threshold(evaluate_grid(fog, AABB, 16), [2 / 15] * 3)


def test_bad_arguments_name_themselves():
    dens = density_of(sphere_sdf)
    with pytest.raises(ValueError, match="aabb"):
        extract_mesh(dens, (1, 1, 1, -1, -1, -1), resolution=16)
    with pytest.raises(ValueError, match="aabb"):
        extract_mesh(dens, (0, 0, 1), resolution=16)
    with pytest.raises(ValueError, match="resolution"):
        extract_mesh(dens, AABB, resolution=1)
    with pytest.raises(ValueError, match="threshold"):
        extract_mesh(dens, AABB, resolution=16, threshold="median")
    with pytest.raises(ValueError, match="one value per point"):
        extract_mesh(lambda x: torch.zeros(3), AABB, resolution=16)


def test_non_finite_density_is_tolerated():
    def bad(x):
        s = density_of(sphere_sdf)(x)
        s[::97] = float("nan")
        return s

    mesh = extract_mesh(bad, AABB, resolution=48, min_component_ratio=0.5)
    assert np.all(np.isfinite(mesh.vertices))


def test_occupancy_skips_empty_space_without_changing_the_grid():
    calls = []
    dens = density_of(sphere_sdf)

    def counting(x):
        calls.append(x.shape[0])
        return dens(x)

    full = evaluate_grid(dens, AABB, 40)
    # occupancy at 16^3 as an OccupancyGrid would mark it: inside, plus a margin wider than the density tail
    c = (torch.arange(16) + 0.5) / 16 * 2 - 1
    centres = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    occupied = (sphere_sdf(centres) < 0.15).reshape(16, 16, 16)
    sparse = evaluate_grid(counting, AABB, 40, occupied=occupied)
    assert sum(calls) < 0.6 * 40 ** 3
    np.testing.assert_allclose(sparse, full, atol=1e-3)
    with pytest.raises(ValueError, match="occupied"):
        evaluate_grid(dens, AABB, 8, occupied=torch.ones(4, 4, 5, dtype=torch.bool))


@pytest.mark.cuda
def test_grid_on_the_gpu_matches_the_cpu(cuda_device):
    dens = density_of(sphere_sdf)
    cpu = evaluate_grid(dens, AABB, 64, device="cpu")
    gpu = evaluate_grid(dens, AABB, 64, device=cuda_device)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-3)
    a = extract_mesh(None, AABB, grid=cpu)
    b = extract_mesh(dens, AABB, resolution=64, device=cuda_device)
    assert abs(len(a.faces) - len(b.faces)) <= 0.01 * len(a.faces)


def test_hollow_field_gives_only_the_outer_surface():
    """A shell of density (as SDS leaves behind) exports as one outward surface, not an extra inner shell."""
    shell = density_of(lambda x: ((x - SPHERE_C.to(x)).norm(dim=-1) - 0.5).abs() - 0.1, 200.0, 0.005)
    mesh = extract_mesh(shell, AABB, resolution=64, threshold=100.0)
    radii = np.linalg.norm(mesh.vertices - SPHERE_C.numpy(), axis=1)
    assert abs(radii.min() - 0.6) < 0.03 and abs(radii.max() - 0.6) < 0.03, (radii.min(), radii.max())
    kept = extract_mesh(shell, AABB, resolution=64, threshold=100.0, shell=False, fill_cavities=False)
    inner = np.linalg.norm(kept.vertices - SPHERE_C.numpy(), axis=1) < 0.45
    assert inner.mean() > 0.2  # without the fill the inner shell (radius 0.4) is there: the test can fail
