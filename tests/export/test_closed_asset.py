"""The written asset of a leaky, spongy field: GLB valid by the Khronos validator, OBJ and GLB the same mesh, and
that mesh one closed, outward, manifold shell once the UV seams are welded."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from fastdream.export import export_asset, write_glb, yup_to_world
from fastdream.export.cleanup import face_areas, remove_duplicate_faces, topology, weld
from tests.helpers.export_fields import AABB, density_of, position_albedo
from tests.helpers import gltf_validator
from tests.helpers.shell_fields import CENTRE, leaky_sdf, outer_distance

RES = 96
VOXEL = 2.0 / (RES - 1)


@pytest.fixture(scope="module")
def asset(tmp_path_factory):
    out = tmp_path_factory.mktemp("closed") / "mesh"
    export_asset(density_of(leaky_sdf), position_albedo, AABB, out, formats="glb,obj", resolution=RES,
                 texture_size=128, max_faces=3000, progress=False)
    return out


def read_glb(path) -> dict[str, np.ndarray]:
    """POSITION, NORMAL, TEXCOORD_0 and the triangle indices of a one-primitive GLB, straight from its buffers."""
    data = path.read_bytes()
    n_json = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + n_json])
    binary = data[20 + n_json + 8:]
    sizes = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}
    dtypes = {5126: np.float32, 5125: np.uint32, 5123: np.uint16}

    def accessor(i: int) -> np.ndarray:
        acc = gltf["accessors"][i]
        view = gltf["bufferViews"][acc["bufferView"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        n = acc["count"] * sizes[acc["type"]]
        return np.frombuffer(binary, dtypes[acc["componentType"]], n, start).reshape(acc["count"], -1)

    (mesh,) = gltf["meshes"]
    (prim,) = mesh["primitives"]
    out = {k: accessor(prim["attributes"][k]) for k in ("POSITION", "NORMAL", "TEXCOORD_0")}
    out["faces"] = accessor(prim["indices"]).reshape(-1, 3).astype(np.int64)
    return out


def read_obj(path) -> dict[str, np.ndarray]:
    """v, vt, vn and faces of an OBJ whose corners use one index for all three (as fastdream writes them)."""
    rows: dict[str, list] = {"v": [], "vt": [], "vn": [], "f": []}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(" ")
        if key in ("v", "vt", "vn"):
            rows[key].append([float(x) for x in rest.split()])
        elif key == "f":
            corners = [[int(i) for i in c.split("/")] for c in rest.split()]
            assert all(len(set(c)) == 1 for c in corners), line  # v/vt/vn share one index
            rows["f"].append([c[0] - 1 for c in corners])
    return {"v": np.array(rows["v"]), "vt": np.array(rows["vt"]), "vn": np.array(rows["vn"]),
            "faces": np.array(rows["f"], dtype=np.int64)}


def test_glb_passes_the_khronos_validator(asset):
    report = gltf_validator.validate(asset / "model.glb")
    assert report["issues"]["numErrors"] == 0, gltf_validator.summary(report)


def test_the_validator_catches_a_zero_normal(tmp_path):
    """A normal of zero length (what coincident opposite faces gave before) is an error: the check above can fail."""
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    normals = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 0]], np.float32)
    path = write_glb(tmp_path / "bad.glb", v, np.array([[0, 1, 2]]), np.zeros((3, 2)),
                     np.zeros((8, 8, 3), np.uint8), normals=normals)
    report = gltf_validator.validate(path)
    codes = {m["code"] for m in report["issues"]["messages"]}
    assert report["issues"]["numErrors"] >= 1 and "ACCESSOR_VECTOR3_NON_UNIT" in codes, codes


def test_obj_and_glb_hold_the_same_mesh(asset):
    glb, obj = read_glb(asset / "model.glb"), read_obj(asset / "model.obj")
    np.testing.assert_array_equal(obj["faces"], glb["faces"])
    np.testing.assert_allclose(obj["v"], glb["POSITION"], atol=1e-6)  # OBJ: 6 decimals
    np.testing.assert_allclose(obj["vn"], glb["NORMAL"], atol=1e-5)  # OBJ: 5 decimals
    np.testing.assert_allclose(obj["vt"][:, 0], glb["TEXCOORD_0"][:, 0], atol=1e-6)
    np.testing.assert_allclose(obj["vt"][:, 1], 1.0 - glb["TEXCOORD_0"][:, 1], atol=1e-6)  # glTF: v = 0 at top


def test_files_are_one_closed_outward_shell_once_seams_are_welded(asset):
    """xatlas splits vertices along UV seams (bit-identical copies): welding equal positions undoes exactly that, and
    the welded mesh must be closed, manifold, one component, outward, without degenerate or duplicate faces."""
    glb = read_glb(asset / "model.glb")
    world = yup_to_world(glb["POSITION"]).astype(np.float32)
    verts, faces = weld(world, glb["faces"])
    assert len(verts) < len(world)  # there were seams to weld
    topo = topology(faces)
    assert topo.closed_manifold and topo.components == 1, topo
    import trimesh

    tm = trimesh.Trimesh(verts, faces, process=False)
    assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0
    assert len(remove_duplicate_faces(faces)) == len(faces)
    assert (face_areas(verts, faces) > 1e-10).all()
    # the outer sphere only, after decimation to 3000 faces: within a voxel and a half
    d = outer_distance(torch.from_numpy(verts)).numpy()
    assert np.abs(d).max() < 1.5 * VOXEL and np.abs(d).mean() < 0.5 * VOXEL, (d.min(), d.max(), np.abs(d).mean())
    # unit normals everywhere, pointing out of the sphere
    normals = yup_to_world(glb["NORMAL"])
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    radial = world - CENTRE.numpy()
    assert ((normals * radial).sum(1) > 0).all()
