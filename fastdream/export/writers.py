"""Asset writers: OBJ + MTL + PNG and binary glTF (GLB) with an embedded texture. Every file is written atomically
(fastdream.files.atomic_write: a full disk leaves the previous file and says so in one line).

Axes and units: fastdream's world is z-up, and a camera at azimuth 0 sits on +x looking at the origin, so +x is
the asset's front. glTF is y-up with the front facing +z, and OBJ viewers (Blender's importer, three.js, MeshLab)
assume the same, so both writers map world (x, y, z) -> file (y, z, x): a proper rotation (no mirroring, windings
stay outward) that keeps "up" up and the front view in front. Pass y_up=False to write raw world coordinates.
Units are world units (the field's aabb), unscaled; glTF reads them as metres.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from fastdream.files import atomic_write

# world (x, y, z) -> y-up file (x', y', z') = (y, z, x)
_WORLD_TO_YUP = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float64)


def world_to_yup(points: np.ndarray) -> np.ndarray:
    """World z-up coordinates [N, 3] -> y-up asset coordinates [N, 3] (front, world +x, becomes +z)."""
    return np.asarray(points, dtype=np.float64) @ _WORLD_TO_YUP.T


def yup_to_world(points: np.ndarray) -> np.ndarray:
    """Inverse of world_to_yup."""
    return np.asarray(points, dtype=np.float64) @ _WORLD_TO_YUP


def _png_bytes(texture: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_check_texture(texture)).save(buf, format="PNG")
    return buf.getvalue()


def _check_texture(texture) -> np.ndarray:
    t = np.asarray(texture)
    if t.ndim != 3 or t.shape[2] not in (3, 4) or t.dtype != np.uint8:
        raise ValueError(f"texture must be a [H, W, 3] uint8 image, got {list(t.shape)} {t.dtype}")
    return t


def _check_uv_mesh(vertices, faces, uvs, normals):
    from fastdream.export.uv import _check_mesh

    v, f = _check_mesh(vertices, faces)
    uv = np.asarray(uvs, dtype=np.float64)
    if uv.shape != (len(v), 2):
        raise ValueError(f"uvs must have shape [{len(v)}, 2] (one per vertex), got {list(uv.shape)}")
    n = None
    if normals is not None:
        n = np.asarray(normals, dtype=np.float64)
        if n.shape != v.shape:
            raise ValueError(f"normals must have shape {list(v.shape)}, got {list(n.shape)}")
    return v, f, uv, n


def _write_rows(buf: io.StringIO, row_fmt: str, array: np.ndarray, rows_per_block: int = 1 << 16) -> None:
    # one %-format per block of rows: several times faster than np.savetxt's per-row loop
    for i in range(0, len(array), rows_per_block):
        block = array[i:i + rows_per_block]
        buf.write((row_fmt * len(block)) % tuple(block.ravel().tolist()))


def _mesh_for_file(vertices, faces, uvs, normals, y_up: bool):
    """Checked (vertices, faces, uvs, normals), in the file's y-up frame when y_up."""
    v, f, uv, n = _check_uv_mesh(vertices, faces, uvs, normals)
    if y_up:
        v = world_to_yup(v)
        n = world_to_yup(n) if n is not None else None
    return v, f, uv, n


def write_obj(path, vertices, faces, uvs, texture, *, normals=None, y_up: bool = True) -> list[Path]:
    """Write path (.obj), its .mtl and `<stem>_albedo.png` beside it; returns the three paths.

    vertices [V, 3] world units (z-up; written y-up unless y_up=False), faces [F, 3], uvs [V, 2] in [0, 1]
    (v = 0 at the bottom of the image, OBJ's convention), texture [H, W, 3] uint8, normals [V, 3] optional.
    """
    path = Path(path)
    v, f, uv, n = _mesh_for_file(vertices, faces, uvs, normals, y_up)
    png = _png_bytes(texture)
    mtl_path = path.with_suffix(".mtl")
    png_path = path.with_name(f"{path.stem}_albedo.png")
    mtl = ("# fastdream\nnewmtl material0\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
           f"d 1.0\nillum 1\nmap_Kd {png_path.name}\n")
    buf = io.StringIO()
    buf.write(f"# fastdream mesh: {len(v)} vertices, {len(f)} faces; units = world units; "
              f"{'y-up (world z-up rotated)' if y_up else 'z-up (world)'}\n")
    buf.write(f"mtllib {mtl_path.name}\n")
    _write_rows(buf, "v %.6f %.6f %.6f\n", v)
    _write_rows(buf, "vt %.6f %.6f\n", uv)
    if n is not None:
        _write_rows(buf, "vn %.5f %.5f %.5f\n", n)
    buf.write("usemtl material0\n")
    i = f + 1
    if n is not None:
        _write_rows(buf, "f %d/%d/%d %d/%d/%d %d/%d/%d\n", np.repeat(i, 3, axis=1))
    else:
        _write_rows(buf, "f %d/%d %d/%d %d/%d\n", np.repeat(i, 2, axis=1))
    with atomic_write(png_path) as fh:
        fh.write(png)
    with atomic_write(mtl_path, "w") as fh:
        fh.write(mtl)
    with atomic_write(path, "w") as fh:
        fh.write(buf.getvalue())
    return [path, mtl_path, png_path]


def write_glb(path, vertices, faces, uvs, texture, *, normals=None, y_up: bool = True) -> Path:
    """Write a binary glTF with the texture embedded as PNG (PBR base colour, metallic 0, roughness 1).

    Same arguments as write_obj; glTF is y-up, so keep y_up=True unless the consumer knows better.
    """
    import trimesh
    from PIL import Image

    path = Path(path)
    v, f, uv, n = _mesh_for_file(vertices, faces, uvs, normals, y_up)
    tex = _check_texture(texture)
    material = trimesh.visual.material.PBRMaterial(
        name="material0", baseColorTexture=Image.fromarray(tex), metallicFactor=0.0, roughnessFactor=1.0)
    mesh = trimesh.Trimesh(vertices=v, faces=f, vertex_normals=n, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv, material=material))
    data = mesh.export(file_type="glb", include_normals=n is not None)
    with atomic_write(path) as fh:
        fh.write(data)
    return path
