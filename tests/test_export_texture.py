"""UV unwrapping and texture baking against analytic colours."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tests._export_fields import (AABB, density_of, position_albedo, sample_on_mesh, sample_texture, sphere_sdf,
                            torus_sdf)

from fastdream.export import bake_texture, extract_mesh, fill_gutters, rasterize_uv, unwrap


@pytest.fixture(scope="module", params=["sphere", "torus"])
def baked(request):
    sdf = sphere_sdf if request.param == "sphere" else torus_sdf
    mesh = extract_mesh(density_of(sdf), AABB, resolution=64, max_faces=8000)
    uvm = unwrap(mesh.vertices, mesh.faces, texture_size=1024)
    texture, mask = bake_texture(uvm.vertices, uvm.faces, uvm.uvs, position_albedo, 1024, return_mask=True)
    return mesh, uvm, texture, mask


def test_unwrap_gives_uvs_in_unit_square_for_the_same_mesh(baked):
    mesh, uvm, _, _ = baked
    assert uvm.uvs.dtype == np.float32 and uvm.uvs.shape == (len(uvm.vertices), 2)
    assert uvm.uvs.min() >= 0.0 and uvm.uvs.max() <= 1.0
    assert len(uvm.faces) == len(mesh.faces)
    np.testing.assert_array_equal(uvm.vertices, mesh.vertices[uvm.vmapping])
    # the same triangles, re-indexed: every output face maps back to the input face in the same slot
    np.testing.assert_array_equal(uvm.vmapping[uvm.faces], mesh.faces)
    # charts do not overlap: no two triangles claim the same texel centre more than rarely (shared edges)
    r, c, _, _ = rasterize_uv(uvm.uvs, uvm.faces, 1024)
    flat = r * 1024 + c
    assert len(np.unique(flat)) > 0.995 * len(flat)


def test_baked_texture_matches_the_analytic_colour(baked):
    _, uvm, texture, mask = baked
    rng = np.random.default_rng(1)
    points, face, bary = sample_on_mesh(uvm.vertices, uvm.faces, 50000, rng)
    uv = np.einsum("nj,njd->nd", bary, uvm.uvs[uvm.faces[face]].astype(np.float64))
    got = sample_texture(texture, uv)
    want = position_albedo(torch.from_numpy(points).float()).numpy()
    err = np.abs(got - want)
    assert err.mean() <= 2.0 / 255.0
    assert np.quantile(err, 0.999) <= 0.02  # seams too: no background bleeding anywhere
    assert 0.3 < mask.mean() < 0.95  # the atlas covers the texture sensibly


def test_gutters_hold_their_nearest_surface_colour(baked):
    _, _, texture, mask = baked
    # away from the charts the fill equals the colour of the nearest covered texel
    rows, cols = np.nonzero(~mask)
    i = np.random.default_rng(0).choice(len(rows), 50, replace=False)
    cov_r, cov_c = np.nonzero(mask)
    for r, c in zip(rows[i], cols[i]):
        d2 = (cov_r - r) ** 2 + (cov_c - c) ** 2
        nearest = d2 == d2.min()
        assert any(np.array_equal(texture[r, c], texture[rr, cc])
                   for rr, cc in zip(cov_r[nearest], cov_c[nearest]))


def test_rasterizer_matches_brute_force_point_in_triangle():
    rng = np.random.default_rng(0)
    size = 64
    uvs = rng.random((30, 2)).astype(np.float32)
    faces = rng.integers(0, 30, size=(12, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    rows, cols, face, bary = rasterize_uv(uvs, faces, size, max_candidates=500)  # several chunks
    centres = np.stack(np.meshgrid((np.arange(size) + 0.5) / size, 1 - (np.arange(size) + 0.5) / size,
                                   indexing="xy"), -1)  # [row, col, (u, v)]
    want = set()
    for fi, (a, b, c) in enumerate(uvs[faces].astype(np.float64)):
        def edge(p, q, x):
            return (q[0] - p[0]) * (x[..., 1] - p[1]) - (q[1] - p[1]) * (x[..., 0] - p[0])

        e = np.stack([edge(a, b, centres), edge(b, c, centres), edge(c, a, centres)])
        inside = np.all(e >= -1e-9, 0) | np.all(e <= 1e-9, 0)
        want |= {(fi, r, cc) for r, cc in zip(*np.nonzero(inside))}
    got = set(zip(face.tolist(), rows.tolist(), cols.tolist()))
    assert got == want
    # barycentrics reproduce each texel centre
    p = np.einsum("kj,kjd->kd", bary, uvs[faces[face]].astype(np.float64))
    np.testing.assert_allclose(p[:, 0], (cols + 0.5) / size, atol=1e-6)
    np.testing.assert_allclose(p[:, 1], 1 - (rows + 0.5) / size, atol=1e-6)


def test_fill_gutters_copies_the_nearest_covered_texel():
    tex = np.zeros((5, 5, 3), np.float32)
    mask = np.zeros((5, 5), bool)
    tex[0, 0], mask[0, 0] = (1, 0, 0), True
    tex[4, 4], mask[4, 4] = (0, 1, 0), True
    out = fill_gutters(tex, mask)
    np.testing.assert_array_equal(out[1, 0], (1, 0, 0))
    np.testing.assert_array_equal(out[3, 4], (0, 1, 0))


def test_bake_and_unwrap_reject_bad_input():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    f = np.array([[0, 1, 2]])
    uv = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
    with pytest.raises(ValueError, match="faces"):
        unwrap(v, np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="vertices"):
        unwrap(np.zeros((3, 2)), f)
    with pytest.raises(ValueError, match="uvs"):
        bake_texture(v, f, uv * 2, position_albedo, 16)
    with pytest.raises(ValueError, match="uvs"):
        bake_texture(v, f, uv[:2], position_albedo, 16)
    with pytest.raises(ValueError, match="size"):
        bake_texture(v, f, uv, position_albedo, 4)
    with pytest.raises(ValueError, match="albedo_fn"):
        bake_texture(v, f, uv, lambda x: x[:, :2], 16)
