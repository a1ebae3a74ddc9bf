"""export_asset end to end, OBJ/GLB round trips, all-or-nothing writes, turntable encoding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from tests.helpers.export_fields import (AABB, SPHERE_C, SPHERE_R, density_of, position_albedo, sample_texture, sphere_sdf)

from fastdream.errors import UserError
from fastdream.export import (NoSurfaceError, export_asset, parse_formats, render_turntable, turntable_azimuths,
                              world_to_yup, write_video, yup_to_world)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("asset") / "mesh"
    result = export_asset(density_of(sphere_sdf), position_albedo, AABB, out, formats="glb,obj", resolution=48,
                          texture_size=256, max_faces=4000, progress=False)
    return out, result


def test_export_writes_all_files_and_nothing_else(exported):
    out, result = exported
    names = sorted(p.name for p in out.iterdir())
    assert names == ["model.glb", "model.mtl", "model.obj", "model_albedo.png"]  # no temp leftovers
    assert set(result.files) == {"obj", "glb"}
    assert all(p.exists() and p.stat().st_size > 0 for paths in result.files.values() for p in paths)
    assert result.n_faces <= 4000 and result.texture_size == 256
    assert set(result.seconds) >= {"mesh", "unwrap", "bake", "write", "total"}


@pytest.mark.parametrize("fmt", ["glb", "obj"])
def test_files_load_back_with_the_same_mesh_texture_and_colours(exported, fmt):
    out, result = exported
    mesh = trimesh.load_mesh(out / f"model.{fmt}", process=False)
    assert len(mesh.faces) == result.n_faces
    image = np.asarray(mesh.visual.material.baseColorTexture if fmt == "glb" else mesh.visual.material.image)
    assert image.shape[:2] == (256, 256)
    world = yup_to_world(mesh.vertices)  # files are y-up; back to fastdream's z-up world
    radius = np.linalg.norm(world - SPHERE_C.numpy(), axis=1)
    assert np.abs(radius - SPHERE_R).max() < 0.05
    # the texture, read through the file's own UVs, gives the analytic colour at the vertices (catches V flips)
    colours = sample_texture(image[..., :3], np.asarray(mesh.visual.uv))
    want = position_albedo(torch.from_numpy(world).float()).numpy()
    assert np.abs(colours - want).mean() < 4.0 / 255.0


def test_axis_conversion_is_a_rotation_keeping_up_and_front():
    up, front = world_to_yup(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(up, [0, 1, 0])  # world z-up -> y-up
    np.testing.assert_allclose(front, [0, 0, 1])  # azimuth-0 camera side (world +x) -> glTF front (+z)
    r = world_to_yup(np.eye(3))
    assert np.linalg.det(r) == pytest.approx(1.0)
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(yup_to_world(world_to_yup(x)), x)


def test_empty_field_is_a_clear_error_and_leaves_no_files(tmp_path):
    out = tmp_path / "new" / "mesh"
    with pytest.raises(NoSurfaceError, match="no surface"):
        export_asset(lambda x: torch.zeros(x.shape[0]), position_albedo, AABB, out, resolution=16,
                     progress=False)
    assert not (tmp_path / "new").exists()  # the folders it created are gone again
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(NoSurfaceError):
        export_asset(lambda x: torch.zeros(x.shape[0]), position_albedo, AABB, existing, resolution=16,
                     progress=False)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_failure_half_way_leaves_no_half_written_files(tmp_path):
    def broken_albedo(x):
        raise RuntimeError("albedo network exploded")

    out = tmp_path / "mesh"
    with pytest.raises(RuntimeError, match="exploded"):
        export_asset(density_of(sphere_sdf), broken_albedo, AABB, out, resolution=24, texture_size=64,
                     progress=False)
    assert not out.exists()


def test_unwritable_output_folder_is_a_user_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "mesh"):
        with pytest.raises(UserError, match="folder"):
            export_asset(density_of(sphere_sdf), position_albedo, AABB, out, resolution=16, progress=False)
    assert blocker.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_bad_formats_and_names_are_rejected(tmp_path):
    assert parse_formats("GLB, obj,glb") == ("glb", "obj")
    with pytest.raises(ValueError, match="format"):
        parse_formats("fbx")
    with pytest.raises(ValueError, match="format"):
        parse_formats("")
    with pytest.raises(ValueError, match="name"):
        export_asset(density_of(sphere_sdf), position_albedo, AABB, tmp_path, name="../x", progress=False)
    assert list(tmp_path.iterdir()) == []


def _fake_view(h=36, w=48):
    def render(azimuth_deg: float) -> np.ndarray:
        img = np.zeros((h, w, 3), np.float32)
        img[..., 0] = azimuth_deg / 360.0  # encodes the azimuth, so the frame order can be read back
        img[..., 1] = np.linspace(0, 1, w)[None, :]
        return img
    return render


def test_turntable_mp4_has_every_frame_in_order(tmp_path):
    import imageio.v2 as imageio

    path = render_turntable(_fake_view(), tmp_path / "video" / "turntable.mp4", frames=12, fps=12)
    assert path.suffix == ".mp4" and path.exists()
    with imageio.get_reader(path, format="FFMPEG") as reader:
        frames = list(reader.iter_data())
    assert len(frames) == 12 and frames[0].shape == (36, 48, 3)
    red = np.array([f[..., 0].mean() for f in frames]) / 255.0
    np.testing.assert_allclose(red, turntable_azimuths(12) / 360.0, atol=0.03)
    # the video and its contact sheet, no temporary file left
    assert sorted(p.name for p in path.parent.iterdir()) == ["turntable.mp4", "turntable.png"]


def test_turntable_falls_back_to_gif_without_ffmpeg(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    from fastdream.export import turntable

    monkeypatch.setattr(turntable, "_ffmpeg_exe", lambda: None)
    path = render_turntable(_fake_view(35, 47), tmp_path / "turntable.mp4", frames=6)
    assert path.suffix == ".gif"
    frames = imageio.mimread(path)
    assert len(frames) == 6 and frames[0].shape[:2] == (36, 48)  # padded to even size before the fallback
    assert sorted(p.name for p in tmp_path.iterdir()) == ["turntable.gif", "turntable.png"]


def test_video_bad_input():
    with pytest.raises(ValueError, match="frames"):
        turntable_azimuths(0)
    with pytest.raises(ValueError, match="no frames"):
        write_video([], "/tmp/never.mp4")
    with pytest.raises(ValueError, match="fmt"):
        write_video([np.zeros((4, 4, 3))], "/tmp/never.avi")
    with pytest.raises(UserError, match="folder"):
        write_video([np.zeros((4, 4, 3))], "/dev/null/x.gif")
