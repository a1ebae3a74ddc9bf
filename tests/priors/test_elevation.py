"""The elevation classifier (fastdream.priors.elevation), its training script, the classifier guidance it gives
PixelDiffusionGuidance, and the classifier shipped with builtin:shapes."""
import json

import pytest
import torch

from fastdream.config import make_config
from fastdream.errors import UserError
from fastdream.guidance.base import ViewContext
from fastdream.guidance.kinds import model_recipe
from fastdream.guidance.pixel import PixelDiffusionGuidance
from fastdream.guidance.target import TargetGuidance
from fastdream.priors.elevation import SUBFOLDER, ElevationClassifier, load_classifier
from fastdream.priors.model import BUILTIN_DIR, ShapesPrior


def _tiny_prior_folder(tmp_path, with_classifier: bool):
    prior = ShapesPrior.create(resolution=16, seed=0)
    folder = tmp_path / "prior"
    prior.save_pretrained(folder)
    if with_classifier:
        torch.manual_seed(3)
        ElevationClassifier(resolution=16).save(folder)
    return folder


def test_soft_targets_put_the_expected_bin_centre_on_the_elevation():
    model = ElevationClassifier()
    el = torch.empty(200).uniform_(-7.5, 42.5)  # inside the first and last bin centres
    w = model.soft_targets(el)
    centres = -10.0 + 5.0 * (torch.arange(model.bins) + 0.5)
    assert torch.allclose(w.sum(-1), torch.ones(200))
    assert torch.allclose((w * centres).sum(-1), el, atol=1e-4)
    outside = model.soft_targets(torch.tensor([-40.0, 80.0]))  # clamped to the end bins
    assert outside[0, 0] == 1 and outside[1, -1] == 1


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ElevationClassifier(resolution=16).eval()
    model.save(tmp_path)
    loaded = load_classifier(tmp_path)
    x, sigma = torch.randn(5, 3, 16, 16), torch.rand(5)
    assert loaded.config == model.config
    assert torch.allclose(loaded(x, sigma), model(x, sigma), atol=2e-2)  # saved in float16
    assert load_classifier(tmp_path / "nothing") is None
    (tmp_path / SUBFOLDER / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(UserError, match="not a readable elevation classifier"):
        load_classifier(tmp_path)
    (tmp_path / SUBFOLDER / "config.json").write_text("{")
    with pytest.raises(UserError, match="not a readable elevation classifier"):
        load_classifier(tmp_path)
    assert sorted(p.name for p in (tmp_path / SUBFOLDER).iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(ValueError, match="bad classifier config"):
        ElevationClassifier(resolution=20)


def test_guidance_subtracts_sigma_times_the_classifier_score(tmp_path):
    folder = _tiny_prior_folder(tmp_path, with_classifier=True)
    g = PixelDiffusionGuidance.from_pretrained(folder)
    assert g.elevation_classifier is not None
    clf = g.elevation_classifier.double()
    g.use_elevation_guidance(3.0)
    g._view_elevations = torch.tensor([-5.0, 30.0])
    x_t = torch.randn(4, 3, 16, 16, dtype=torch.float64)  # two draws of two views, draw-major
    a = torch.rand(4, 1, 1, 1, dtype=torch.float64) * 0.9 + 0.05
    eps = torch.randn_like(x_t)
    t = torch.randint(0, g.num_train_timesteps, (4,))
    guided = g.guide_elevation(eps.clone(), x_t, a, draws=2, t=t)
    with pytest.raises(ValueError, match="set_view"):  # three draws of two views is not this batch
        g.guide_elevation(eps.clone(), x_t, a, draws=3, t=t)
    el = torch.tensor([-5.0, 30.0, -5.0, 30.0], dtype=torch.float64)
    sigma = (1 - a).sqrt().reshape(-1)
    # the directional derivative of sum log p(e | x_t) along v, by central differences in float64
    v = torch.randn_like(x_t)
    h = 1e-4
    with torch.no_grad():
        fd = (clf.log_prob(x_t + h * v, sigma, el).sum() - clf.log_prob(x_t - h * v, sigma, el).sum()) / (2 * h)
    score = (eps - guided) / (3.0 * (1 - a).sqrt())
    assert torch.allclose((score * v).sum(), fd, rtol=1e-5, atol=1e-8)

    # guidance.elevation_guidance_min_t: draws below it come back untouched, the others exactly as guided above
    g.elevation_min_t = 0.5
    t_cut = round(0.5 * (g.num_train_timesteps - 1))
    t = torch.tensor([t_cut - 1, t_cut, 0, g.num_train_timesteps - 1])
    gated = g.guide_elevation(eps.clone(), x_t, a, draws=2, t=t)
    full = g.guide_elevation(eps.clone(), x_t, a, draws=2, t=torch.full_like(t, g.num_train_timesteps - 1))
    assert torch.equal(gated[[0, 2]], eps[[0, 2]])
    assert torch.allclose(gated[[1, 3]], full[[1, 3]], rtol=0, atol=0)

    # guidance.elevation_guidance_above(_factor): the 30° view (draws 1 and 3) gets a quarter of the push, -5° all of it
    g.elevation_min_t, g.elevation_above, g.elevation_above_factor = 0.0, 10.0, 0.25
    split = g.guide_elevation(eps.clone(), x_t, a, draws=2, t=t)
    assert torch.equal(split[[0, 2]], full[[0, 2]])
    assert torch.allclose(eps[[1, 3]] - split[[1, 3]], 0.25 * (eps[[1, 3]] - full[[1, 3]]), rtol=1e-9, atol=1e-12)


def test_elevation_guidance_refusals(tmp_path):
    bare = PixelDiffusionGuidance.from_pretrained(_tiny_prior_folder(tmp_path, with_classifier=False))
    assert bare.elevation_classifier is None
    bare.use_elevation_guidance(0.0)  # off: nothing needed
    with pytest.raises(UserError, match="elevation_classifier"):
        bare.use_elevation_guidance(4.0)
    with pytest.raises(UserError, match="elevation_classifier"):
        TargetGuidance("sphere").use_elevation_guidance(4.0)
    TargetGuidance("sphere").use_elevation_guidance(0.0)
    with pytest.raises(UserError, match="elevation_guidance"):
        make_config("fast", overrides=["guidance.elevation_guidance=-1"])


def test_a_classifier_of_another_model_space_is_refused(tmp_path):
    """A classifier trained for another resolution (a retrained prior, a copied folder) is one UserError line when
    the guidance is switched on, not a shape error mid-run; ignoring it (elevation_classifier=False) still loads."""
    folder = _tiny_prior_folder(tmp_path, with_classifier=False)
    ElevationClassifier(resolution=32).save(folder)  # the prior denoises 16² images
    g = PixelDiffusionGuidance.from_pretrained(folder)
    assert g.model_space() == (3, 16)
    g.use_elevation_guidance(0.0)
    with pytest.raises(UserError, match="retrain it"):
        g.use_elevation_guidance(4.0)
    assert PixelDiffusionGuidance.from_pretrained(folder, elevation_classifier=False).elevation_classifier is None


def test_cameras_outside_the_classifiers_elevations_are_named(tmp_path, caplog):
    """The classifier knows -10..45 degrees; a run whose cameras go lower is told that those views are guided as
    if they were at -10, and a run inside the range hears nothing."""
    g = PixelDiffusionGuidance.from_pretrained(_tiny_prior_folder(tmp_path, with_classifier=True))
    with caplog.at_level("WARNING", logger="fastdream.guidance.base"):
        g.use_elevation_guidance(4.0, (-10.0, 45.0))
        assert not caplog.records
        g.use_elevation_guidance(4.0, (-30.0, 45.0))
    assert len(caplog.records) == 1 and "-30..45" in caplog.text and "-10..45" in caplog.text


def test_sds_with_elevation_guidance_needs_the_views(tmp_path):
    g = PixelDiffusionGuidance.from_pretrained(_tiny_prior_folder(tmp_path, with_classifier=True))
    g.use_elevation_guidance(2.0)
    prompts = g.encode_prompts(["a red cube"])
    images = torch.rand(2, 3, 16, 16, requires_grad=True)
    with pytest.raises(ValueError, match="set_view"):
        g.sds(images, prompts["cond"], prompts["uncond"], guidance_scale=3.0)
    from fastdream.cameras import CameraConfig, CameraSampler
    cams = CameraSampler(CameraConfig()).sample(2, torch.Generator().manual_seed(0))
    g.set_view(ViewContext(cameras=cams, height=16, width=16, shading=["albedo"] * 2, ambient_ratio=[0.1] * 2,
                           background=torch.ones(2, 16, 16, 3)))
    out = g.sds(images, prompts["cond"], prompts["uncond"], guidance_scale=3.0, noise_samples=3,
                generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_the_scale_switches_to_the_end_value_at_the_scheduled_step(tmp_path):
    """guidance.elevation_guidance_end takes over once elevation_guidance_switch of the run has passed; the classifier
    is checked at the stronger of the two scales before the first step; guidance.elevation_guidance_min_t and
    _above(_factor) reach the guidance."""
    from fastdream.training.trainer import Trainer
    from tests.helpers.train_utils import tiny_config
    folder = _tiny_prior_folder(tmp_path, with_classifier=True)
    g = PixelDiffusionGuidance.from_pretrained(folder)
    scales, guide = [], g.guide_elevation
    g.guide_elevation = lambda *a, **k: (scales.append((g.elevation_scale, g.elevation_min_t)), guide(*a, **k))[1]
    cfg = tiny_config(**{"guidance.spec": f"builtin:{folder}", "train.iters": 5, "train.checkpoint_every": 0,
                         "guidance.guidance_scale": 3.0, "guidance.elevation_guidance": 2.0,
                         "guidance.elevation_guidance_end": 7.0, "guidance.elevation_guidance_switch": 0.6,
                         "guidance.elevation_guidance_min_t": 0.3, "guidance.elevation_guidance_above": 20.0,
                         "guidance.elevation_guidance_above_factor": 0.5})
    assert Trainer(cfg, tmp_path / "run", guidance=g, progress=False).train().status == "done"
    assert scales == [(2.0, 0.3)] * 3 + [(7.0, 0.3)] * 2  # steps 0-2 are before 0.6 · 5
    assert (g.elevation_above, g.elevation_above_factor) == (20.0, 0.5)
    bare = PixelDiffusionGuidance.from_pretrained(_tiny_prior_folder(tmp_path / "b", with_classifier=False))
    cfg = tiny_config(**{"guidance.elevation_guidance": 0.0, "guidance.elevation_guidance_end": 4.0})
    with pytest.raises(UserError, match="elevation_classifier"):  # the end scale needs the classifier too
        Trainer(cfg, tmp_path / "run2", guidance=bare, progress=False)
    for bad in ("guidance.elevation_guidance_end=-1", "guidance.elevation_guidance_switch=1.5",
                "guidance.elevation_guidance_min_t=1.5", "guidance.elevation_guidance_above=95",
                "guidance.elevation_guidance_above_factor=-1"):
        with pytest.raises(UserError, match=bad.split("=")[0]):
            make_config("fast", overrides=[bad])


def test_a_model_folder_may_declare_the_scale(tmp_path):
    (tmp_path / "fastdream.json").write_text(json.dumps({"recipe": {"guidance.elevation_guidance": 6.0}}))
    assert model_recipe(str(tmp_path)) == {"guidance.elevation_guidance": 6.0}


def test_training_script_writes_a_classifier_and_refuses_bad_input(tmp_path, capsys):
    from fastdream.priors import train_elevation
    folder = _tiny_prior_folder(tmp_path, with_classifier=False)
    assert train_elevation.main(["--prior", str(folder), "--per-shape", "4", "--steps", "3", "--batch", "8"]) == 0
    assert load_classifier(folder) is not None and (folder / SUBFOLDER / "model.safetensors").is_file()
    from tests.helpers.tiny_sd import make_tiny_sd
    sd = make_tiny_sd(tmp_path / "sd")  # a latent prior: the classifier reads its VAE's 4-channel latents
    assert train_elevation.main(["--prior", str(sd), "--per-shape", "4", "--steps", "3", "--batch", "8"]) == 0
    assert load_classifier(sd).config["in_channels"] == 4 and load_classifier(sd).config["resolution"] == 8
    (folder / SUBFOLDER / "config.json").write_text("{")  # a broken classifier is retrained, not a load error
    assert train_elevation.main(["--prior", str(folder), "--per-shape", "4", "--steps", "3", "--batch", "8"]) == 0
    assert load_classifier(folder).config["resolution"] == 16
    assert train_elevation.main(["--prior", str(tmp_path / "missing")]) == 2
    assert train_elevation.main(["--prior", str(folder), "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 2 and "Traceback" not in err


def test_the_shipped_classifier_reads_the_elevation_of_fresh_renders():
    """builtin:shapes ships a classifier, declares its scale, and at low noise it reads the elevation of renders it
    never saw far better than chance (uniform guessing over -10..45 is ~14 degrees off)."""
    from fastdream.priors import shapes_data
    from fastdream.priors.train_elevation import heldout_error
    shipped = BUILTIN_DIR / "shapes"
    clf = load_classifier(shipped)
    assert clf is not None
    assert model_recipe(str(shipped))["guidance.elevation_guidance"] > 0
    bank = shapes_data.build_bank(40, 32, seed=987)  # not the training seed
    prior = PixelDiffusionGuidance.from_pretrained(shipped)
    errors = heldout_error(clf, bank, torch.arange(len(bank)), prior.alphas_cumprod.cpu(), n=600)
    assert errors["t0-200"] < 9.0, errors


def test_a_stable_diffusion_folder_with_a_latent_classifier_is_guided_on_its_latents(tmp_path):
    """Any local SD folder may ship a classifier of its latents (builtin:shapes-sd can): the SD guidance loads it,
    and its noise prediction moves by exactly -s * sigma_t * grad log p(elevation | z_t)."""
    from fastdream.cameras import CameraConfig, CameraSampler
    from fastdream.guidance.stable_diffusion import StableDiffusionGuidance
    from tests.helpers.tiny_sd import make_tiny_sd
    folder = make_tiny_sd(tmp_path / "sd")
    plain = StableDiffusionGuidance.from_pretrained(str(folder), dtype=torch.float32)
    assert plain.elevation_classifier is None
    torch.manual_seed(4)
    ElevationClassifier(resolution=plain.latent_size, width=16, in_channels=4).save(folder)
    g = StableDiffusionGuidance.from_pretrained(str(folder), dtype=torch.float32)
    assert g.elevation_classifier is not None and g.elevation_classifier.config["in_channels"] == 4
    cams = CameraSampler(CameraConfig()).sample(2, torch.Generator().manual_seed(0))
    g.set_view(ViewContext(cameras=cams, height=32, width=32, shading=["albedo"] * 2, ambient_ratio=[0.1] * 2,
                           background=torch.ones(2, 32, 32, 3)))
    prompts = g.encode_prompts(["a red cube"])
    images = torch.rand(2, 3, 32, 32)

    def run(scale):
        g.use_elevation_guidance(scale)
        return g.sds(images.clone().requires_grad_(True), prompts["cond"].expand(2, -1, -1), prompts["uncond"],
                     guidance_scale=3.0, noise_samples=2, generator=torch.Generator().manual_seed(7))

    off, on = run(0.0), run(5.0)
    # the latent warm-up's [rgb, opacity] images are not VAE latents: the classifier must not read them
    warm = torch.rand(2, 4, plain.latent_size, plain.latent_size)
    g.use_elevation_guidance(5.0)
    warm_on = g.sds(warm.clone().requires_grad_(True), prompts["cond"].expand(2, -1, -1), prompts["uncond"],
                    guidance_scale=3.0, noise_samples=2, generator=torch.Generator().manual_seed(7), as_latent=True)
    g.use_elevation_guidance(0.0)
    warm_off = g.sds(warm.clone().requires_grad_(True), prompts["cond"].expand(2, -1, -1), prompts["uncond"],
                     guidance_scale=3.0, noise_samples=2, generator=torch.Generator().manual_seed(7), as_latent=True)
    assert torch.equal(warm_on.extras["noise_pred"], warm_off.extras["noise_pred"])
    assert torch.equal(off.t, on.t) and torch.equal(off.extras["x_t"], on.extras["x_t"])
    x = off.extras["x_t"].detach().requires_grad_(True)
    sigma = (1 - g.alphas_cumprod[off.t]).sqrt()
    log_p = g.elevation_classifier.log_prob(x, sigma, cams.elevation_deg.float().repeat(2)).sum()
    (score,) = torch.autograd.grad(log_p, x)
    expected = off.extras["noise_pred"] - 5.0 * sigma[:, None, None, None] * score
    assert score.abs().sum() > 0
    assert torch.allclose(on.extras["noise_pred"], expected, atol=1e-5)


def test_the_shipped_latent_classifier_reads_the_elevation_of_fresh_renders():
    """builtin:shapes-sd ships a classifier of its scaled latents and declares its scale; at low noise it reads the
    elevation of renders it never saw better than chance (~14 degrees)."""
    from fastdream.priors import shapes_data
    from fastdream.priors.train_elevation import _prior_space, heldout_error
    shipped = BUILTIN_DIR / "shapes-sd"
    clf = load_classifier(shipped)
    assert clf is not None and clf.config["in_channels"] == 4
    assert model_recipe(str(shipped))["guidance.elevation_guidance"] > 0
    resolution, alphas_cumprod, to_model, _ = _prior_space(shipped)
    bank = shapes_data.build_bank(40, resolution, seed=987)
    errors = heldout_error(clf, bank, torch.arange(len(bank)), alphas_cumprod, n=600, to_model=to_model)
    assert errors["t0-200"] < 11.5, errors
