"""The procedural quality metric on constructed cases."""
import pytest
import torch

from fastdream.cameras import get_rays, pose_spherical
from fastdream.eval import procedural as ev
from fastdream.procedural import COLORS, Scene, Shape, render, rotate_z


def _views(kind, color, size=0.5, res=16, bg=1.0):
    c2w = pose_spherical(torch.tensor([1.8, 1.8]), torch.tensor([15.0, 35.0]), torch.tensor([20.0, 140.0]))
    imgs = []
    for i in range(2):
        ro, rd = get_rays(c2w[i], 50.0, res, res)
        rgb, _ = render(Scene([Shape(kind, color, size=size)]), ro.reshape(-1, 3), rd.reshape(-1, 3), background=bg)
        imgs.append(rgb.reshape(res, res, 3).permute(2, 0, 1))
    return torch.stack(imgs), c2w


def test_procedural_scores_retrieves_the_rendered_prompt():
    results = []
    for kind, color in (("cube", "red"), ("torus", "yellow")):
        images, c2w = _views(kind, color, size=0.45)
        r = ev.procedural_scores(images, c2w, 50.0, kind, color, background=1.0, sizes=(0.45,))
        assert r["rank"] == 1 and (r["pred_shape"], r["pred_color"]) == (kind, color)
        assert r["ranking"][0][2] < 0.5 * r["ranking"][1][2]  # edges differ only by antialiasing
        results.append(r)
    # the same views scored against a wrong prompt: neither its R@1 nor its accuracies may count
    wrong = ev.procedural_scores(*_views("sphere", "green", size=0.45), 50.0, "capsule", "purple", sizes=(0.45,))
    assert wrong["rank"] > 1 and wrong["pred_shape"] == "sphere" and wrong["pred_color"] == "green"
    s = ev.summarize(results + [wrong])
    assert s == {"n": 3, "r_at_1": 2 / 3, "shape_accuracy": 2 / 3, "color_accuracy": 2 / 3}


@pytest.mark.parametrize("kind, size", [("sphere", 0.5), ("cube", 0.4), ("cylinder", 0.4), ("cone", 0.6),
                                        ("torus", 0.5), ("capsule", 0.6)])
def test_an_exact_render_between_the_coarse_sizes_ranks_first(kind, size):
    # an exact render of every shape at a size off the coarse grid (0.35/0.45/0.55/0.65) must name its own prompt:
    # on the coarse grid alone a sphere of 0.5 ranked "cube" first and a cube of 0.4 "sphere" (64 px, 8 views)
    c2w = pose_spherical(torch.full((4,), 3.0), torch.full((4,), 30.0), torch.tensor([0.0, 90.0, 180.0, 270.0]))
    imgs = []
    for i in range(4):
        ro, rd = get_rays(c2w[i], 40.0, 32, 32)
        rgb, _ = render(Scene([Shape(kind, "red", size=size)]), ro.reshape(-1, 3), rd.reshape(-1, 3), background=1.0)
        imgs.append(rgb.reshape(32, 32, 3).permute(2, 0, 1))
    r = ev.procedural_scores(torch.stack(imgs), c2w, 40.0, kind, "red", background=1.0)
    assert r["rank"] == 1, r["ranking"][:3]


@pytest.mark.parametrize("yaw, shading", [(37.0, "albedo"), (20.0, "lambertian")])
def test_a_turned_cube_ranks_first(yaw, shading):
    # the cameras take every azimuth, so a cube turned about z is as right as an upright one; scored upright only, an
    # exact cube turned by 20-45 degrees ranked 3rd or 4th, behind the sphere and the cylinder
    c2w = pose_spherical(torch.full((4,), 3.0), torch.full((4,), 30.0), torch.tensor([10.0, 100.0, 190.0, 280.0]))
    light = torch.tensor([2.0, -1.0, 3.0])
    imgs = []
    for i in range(4):
        ro, rd = get_rays(c2w[i], 40.0, 32, 32)
        ro, rd = rotate_z(ro.reshape(-1, 3), -yaw), rotate_z(rd.reshape(-1, 3), -yaw)  # the scene turned by +yaw
        rgb, _ = render(Scene([Shape("cube", "blue", size=0.45)]), ro, rd, background=1.0, shading=shading,
                        light_position=rotate_z(light, -yaw))
        imgs.append(rgb.reshape(32, 32, 3).permute(2, 0, 1))
    r = ev.procedural_scores(torch.stack(imgs), c2w, 40.0, "cube", "blue", background=1.0, shading=shading,
                             light_position=light)
    assert r["rank"] == 1, r["ranking"][:3]
    if shading == "albedo":  # the turned candidate matches to antialiasing (lambertian: to the two shaders' gap)
        assert r["ranking"][0][2] < 0.5 * r["ranking"][1][2]

def test_procedural_scores_bad_inputs():
    images, c2w = _views("cube", "red")
    with pytest.raises(ValueError, match="true prompt"):
        ev.procedural_scores(images, c2w, 50.0, "pyramid", "red")
    with pytest.raises(ValueError, match="c2w"):
        ev.procedural_scores(images, c2w[:1], 50.0, "cube", "red")
    with pytest.raises(ValueError, match="shading"):
        ev.procedural_scores(images, c2w, 50.0, "cube", "red", shading="toon")
    with pytest.raises(ValueError):
        ev.summarize([])


def test_parse_prompt_and_colour_classifier():
    assert ev.parse_prompt("a Red cube, side view") == ("cube", "red")
    with pytest.raises(ValueError, match="names no procedural"):
        ev.parse_prompt("a photo of a dog")
    # flat and shaded discs of every colour on a contrasting background
    imgs, truth = [], []
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    disc = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2) < 25
    for ci, name in enumerate(ev.COLOR_NAMES):
        rgb = torch.tensor(COLORS[name])
        bg = torch.tensor([1.0, 1.0, 1.0]) if name != "white" else torch.tensor([0.2, 0.5, 0.6])
        for shade in (1.0, 0.5):
            img = bg[:, None, None].expand(3, 16, 16).clone()
            img[:, disc] = rgb[:, None] * (shade + (1 - shade) * xx[disc] / 15)  # a shading ramp
            imgs.append(img)
            truth.append(ci)
    pred, costs = ev.classify_color(torch.stack(imgs))
    assert pred.tolist() == truth
    assert costs.shape == (len(truth), len(ev.COLOR_NAMES))


def test_classify_samples_on_ground_truth_renders():
    from fastdream.priors import shapes_data as sd
    # references rendered from the same cameras as the images: every silhouette has an exact match (IoU 1), so the
    # shape must be recovered; colours come from fresh composites (random backgrounds and shading)
    ref = ev.ReferenceBank(resolution=16, per_shape=3, seed=5)
    bank = sd.build_bank(3, 16, seed=5)
    images, _, shape_idx, color_idx = sd.sample_batch(bank, 32, torch.Generator().manual_seed(2))
    ps, pc = ev.classify_samples(images, ref)
    assert (pc == color_idx).float().mean() >= 0.9
    assert torch.equal(ps, shape_idx)
