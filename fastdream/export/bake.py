"""Texture baking: rasterize the mesh in UV space, query the albedo at the 3D points, fill the gutters."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from fastdream.export.uv import _check_mesh

AlbedoFn = Callable[[torch.Tensor], torch.Tensor]


def rasterize_uv(uvs: np.ndarray, faces: np.ndarray, size: int, *, max_candidates: int = 1 << 22):
    """Texels whose centres lie in a UV triangle: (rows [K], cols [K], face [K], barycentrics [K, 3] float64).

    Texel (row, col) has its centre at u = (col + 0.5) / size, v = 1 - (row + 0.5) / size (v = 0 is the bottom row,
    the OBJ/trimesh convention). Vectorised over each triangle's bounding box, in chunks of faces so that at most
    about max_candidates texels are tested at once. Where triangles share an edge the later one wins.
    """
    px = uvs[:, 0].astype(np.float64) * size - 0.5
    py = (1.0 - uvs[:, 1].astype(np.float64)) * size - 0.5
    tx, ty = px[faces], py[faces]  # [F, 3]
    x0 = np.clip(np.ceil(tx.min(1) - 1e-9), 0, size - 1).astype(np.int64)
    x1 = np.clip(np.floor(tx.max(1) + 1e-9), 0, size - 1).astype(np.int64)
    y0 = np.clip(np.ceil(ty.min(1) - 1e-9), 0, size - 1).astype(np.int64)
    y1 = np.clip(np.floor(ty.max(1) + 1e-9), 0, size - 1).astype(np.int64)
    w = np.maximum(x1 - x0 + 1, 0)
    h = np.maximum(y1 - y0 + 1, 0)
    counts = w * h
    ends = np.cumsum(counts)
    out_r, out_c, out_f, out_b = [], [], [], []
    start = 0
    while start < len(faces):
        stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + max_candidates, side="right"))
        stop = max(stop, start + 1)
        fi = np.arange(start, stop)
        cnt = counts[fi]
        total = int(cnt.sum())
        start = stop
        if total == 0:
            continue
        face = np.repeat(fi, cnt)
        local = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        col = x0[face] + local % w[face]
        row = y0[face] + local // w[face]
        ax, ay = tx[face, 0], ty[face, 0]
        bx, by = tx[face, 1], ty[face, 1]
        cx, cy = tx[face, 2], ty[face, 2]
        denom = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        ok = np.abs(denom) > 1e-18
        denom = np.where(ok, denom, 1.0)
        l0 = ((by - cy) * (col - cx) + (cx - bx) * (row - cy)) / denom
        l1 = ((cy - ay) * (col - cx) + (ax - cx) * (row - cy)) / denom
        l2 = 1.0 - l0 - l1
        eps = -1e-7
        inside = ok & (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
        out_r.append(row[inside])
        out_c.append(col[inside])
        out_f.append(face[inside])
        out_b.append(np.stack([l0[inside], l1[inside], l2[inside]], 1))
    if not out_r:
        return (np.zeros(0, np.int64),) * 3 + (np.zeros((0, 3)),)
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_f), np.concatenate(out_b)


def fill_gutters(texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give every texel outside `mask` the colour of its nearest texel inside, so filtering never sees background."""
    from scipy.ndimage import distance_transform_edt

    if mask.all() or not mask.any():
        return texture
    _, (ri, ci) = distance_transform_edt(~mask, return_indices=True)
    return texture[ri, ci]


@torch.no_grad()
def bake_texture(vertices, faces, uvs, albedo_fn: AlbedoFn, size: int = 1024, *, chunk: int = 1 << 18,
                 device: torch.device | str | None = None, progress: bool = False,
                 return_mask: bool = False):
    """Albedo texture [size, size, 3] uint8 for a UV-mapped mesh (UVs in [0, 1], v = 0 at the bottom row).

    Each texel whose centre falls in a UV triangle gets albedo_fn (x [N, 3] float32 world -> [N, 3] in [0, 1]) at the
    barycentric 3D point; every other texel takes its nearest covered texel's colour (seam dilation), so bilinear
    sampling and mipmaps never bleed background into the surface. With return_mask, also the [size, size] bool
    coverage mask.
    """
    from fastdream.export.isosurface import _infer_device

    v, f = _check_mesh(vertices, faces)
    uv = np.asarray(uvs, dtype=np.float32)
    if uv.shape != (len(v), 2):
        raise ValueError(f"uvs must have shape [{len(v)}, 2] (one per vertex), got {list(uv.shape)}")
    if not np.all(np.isfinite(uv)) or uv.min() < 0.0 or uv.max() > 1.0:
        raise ValueError("uvs must lie in [0, 1]")
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size}")
    size = int(size)
    device = torch.device(device) if device is not None else _infer_device(albedo_fn)
    rows, cols, face, bary = rasterize_uv(uv, f, size)
    if len(rows) == 0:
        raise ValueError("the UV layout covers no texel centre; use a larger texture size")
    tri = v[f[face]].astype(np.float64)  # [K, 3, 3]
    points = np.einsum("kj,kjd->kd", bary, tri).astype(np.float32)
    colors = np.empty((len(points), 3), dtype=np.float32)
    from tqdm.auto import tqdm

    for i in tqdm(range(0, len(points), chunk), desc="bake texture", unit="chunk", disable=not progress,
                  leave=False):
        x = torch.from_numpy(points[i:i + chunk]).to(device)
        c = albedo_fn(x)
        c = c if isinstance(c, torch.Tensor) else torch.as_tensor(np.asarray(c))
        if c.shape != (x.shape[0], 3):
            raise ValueError(f"albedo_fn must return [N, 3], got {list(c.shape)} for N = {x.shape[0]}")
        colors[i:i + chunk] = c.float().cpu().numpy()
    colors = np.nan_to_num(colors, nan=0.0)
    texture = np.zeros((size, size, 3), dtype=np.float32)
    mask = np.zeros((size, size), dtype=bool)
    texture[rows, cols] = colors
    mask[rows, cols] = True
    texture = fill_gutters(texture, mask)
    texture = (np.clip(texture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return (texture, mask) if return_mask else texture
