"""Which truth a run answers to, the builtin size fit, and the pass bars (fastdream.eval.truth_target)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastdream.eval import truth as tm
from fastdream.eval import truth_target as tt
from fastdream.eval.truth_report import measure

pytestmark = pytest.mark.usefixtures("one_thread")

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]


def box_mesh(half: float, yaw_deg: float = 0.0):
    import trimesh

    m = trimesh.creation.box(extents=[2 * half] * 3)
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return np.asarray(m.vertices) @ rot.T, np.asarray(m.faces, dtype=np.int64)


def fit(kind: str, vertices, faces, rng) -> tt.Truth:
    points = tm.sample_mesh_surface(vertices, faces, tm.CHAMFER_SAMPLES, rng)
    unit = tt.unit_surface_points(kind, tm.CHAMFER_SAMPLES, rng)
    return tt.build_truth(tt.TruthSpec("builtin", kind, f"builtin:shapes {kind}"), points, unit, 1.0, rng), points


def test_truth_spec_from_the_run_config():
    assert tt.truth_spec({"guidance": {"spec": "target:sphere"}}, "a ball") == \
        tt.TruthSpec("target", "sphere", "target:sphere")
    # `generate --model builtin:shapes` stores the prior as guidance.spec; a bare model entry counts too
    assert tt.truth_spec({"guidance": {"spec": "builtin:shapes"}}, "a red cube, side view").name == "cube"
    assert tt.truth_spec({"guidance": {"spec": "sd", "model": "builtin:shapes"}}, "a blue torus").name == "torus"
    # the latent model trained on the same data answers to the same truth
    sd = tt.truth_spec({"guidance": {"spec": "builtin:shapes-sd"}}, "a red cone, front view")
    assert (sd.kind, sd.name, sd.label) == ("builtin", "cone", "builtin:shapes-sd cone")
    with pytest.raises(ValueError, match="no procedural truth"):
        tt.truth_spec({"guidance": {"spec": "builtin:other"}}, "a red cube")
    with pytest.raises(ValueError, match="no exact truth"):
        tt.truth_spec({"guidance": {"spec": "sd"}}, "a red cube")
    with pytest.raises(ValueError, match="names no procedural"):
        tt.truth_spec({"guidance": {"spec": "builtin:shapes"}}, "a cat")
    with pytest.raises(ValueError, match="unknown oracle target"):
        tt.truth_spec({"guidance": {"spec": "target:teapot"}}, "a teapot")


def test_fit_recovers_a_random_cube_size_and_yaw():
    rng = np.random.default_rng()
    half, yaw = float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.0, 90.0))
    truth, points = fit("cube", *box_mesh(half, yaw), rng)
    assert truth.fit["fitted_size"] == pytest.approx(half, abs=0.01)
    assert truth.fit["truth_size"] == pytest.approx(half, abs=0.01)
    # the cube repeats every 90 degrees about z
    assert abs((truth.fit["fitted_yaw_deg"] - yaw + 45.0) % 90.0 - 45.0) < 2.0
    figures = measure(*box_mesh(half, yaw), truth, BOX, points, rng)
    assert figures["chamfer_mesh_to_truth_pct"] < 0.3 and figures["chamfer_truth_to_mesh_pct"] < 0.3
    assert figures["volume_iou"] > 0.95 and figures["off_surface"] == 0.0
    assert tt.judge(figures, tt.BUILTIN_BARS, truth.fit) == ["silhouette IoU not measured"]


def test_a_box_filling_the_field_fails_as_a_red_cube():
    """The issue's red block: a cube of half-extent ~0.95, where the prior's cubes are 0.4-0.6."""
    rng = np.random.default_rng(3)
    vertices, faces = box_mesh(0.95)
    truth, points = fit("cube", vertices, faces, rng)
    assert truth.fit["fitted_size"] == pytest.approx(0.95, abs=0.01)
    assert truth.fit["truth_size"] == pytest.approx(0.75)  # the largest allowed: 0.6 + 25 %
    figures = measure(vertices, faces, truth, BOX, points, rng)
    # every point of the block is at least 0.2 from any allowed cube: 5.8 % of the diagonal or more
    assert figures["chamfer_mesh_to_truth_pct"] > 5.0
    assert figures["off_surface"] > 0.9
    fails = tt.judge({**figures, "silhouette_iou": 0.9}, tt.BUILTIN_BARS, truth.fit)
    assert fails[0] == "size 0.95 outside [0.30, 0.75]"
    assert fails[1].startswith("chamfer ") and "> 2.5%" in fails[1]
    assert fails[2].startswith("off-surface ") and len(fails) == 3


def test_a_sphere_fit_and_the_oracle_sphere():
    rng = np.random.default_rng()
    r = float(rng.uniform(0.35, 0.65))
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=4, radius=r)
    truth, _ = fit("sphere", ico.vertices, ico.faces, rng)
    assert truth.fit["fitted_size"] == pytest.approx(r, abs=0.01) and truth.yaw_deg == 0.0
    oracle = tt.build_truth(tt.TruthSpec("target", "sphere", "target:sphere"), np.zeros((0, 3)), None, 1.0, rng)
    assert oracle.bars is tt.SPHERE_BARS and oracle.fit == {}
    x = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(oracle.sdf(x), torch.tensor([0.0, -0.5], dtype=torch.float64))
    snowman = tt.build_truth(tt.TruthSpec("target", "snowman", "target:snowman"), np.zeros((0, 3)), None, 1.0, rng)
    assert snowman.bars is tt.TARGET_BARS


def test_judge_names_each_failing_figure():
    good = {"chamfer_mesh_to_truth_pct": 0.5, "chamfer_truth_to_mesh_pct": 0.8, "silhouette_iou": 0.95,
            "off_surface": 0.01, "validity": {"watertight": True, "components": 1, "boundary_edges": 0,
                                              "nonmanifold_edges": 0}}
    assert tt.judge(good, tt.SPHERE_BARS) == []
    bad = {**good, "chamfer_truth_to_mesh_pct": 1.2, "off_surface": 0.65,
           "validity": {"watertight": False, "components": 3, "boundary_edges": 7, "nonmanifold_edges": 2}}
    assert tt.judge(bad, tt.SPHERE_BARS) == [
        "chamfer 1.20% (truth->mesh) > 1%", "off-surface 65.0% > 2%",
        "not watertight (7 open, 2 non-manifold edges)", "3 components (need 1)"]
    # the builtin bars also judge the silhouette, and the size when a fit is given
    fit = {"fitted_size": 0.2, "allowed_size_range": [0.3, 0.75]}
    assert tt.judge({**good, "silhouette_iou": 0.7}, tt.BUILTIN_BARS, fit) == [
        "size 0.20 outside [0.30, 0.75]", "silhouette IoU 0.700 < 0.8"]
