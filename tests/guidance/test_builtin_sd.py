"""builtin:NAME routing and recipes: a shipped prior in Stable Diffusion's layout (builtin:shapes-sd) loads through
StableDiffusionGuidance exactly as an SD checkpoint does; a small SD model gets a fast recipe sized for it."""

import pytest
import torch

from fastdream.config import make_config
from fastdream.errors import UserError
from fastdream.guidance import load_guidance
from fastdream.guidance import kinds, pixel, stable_diffusion
from fastdream.guidance.pixel import PixelDiffusionGuidance
from fastdream.guidance.stable_diffusion import StableDiffusionGuidance
from fastdream.priors.model import BUILTIN_DIR
from tests.helpers.tiny_sd import make_tiny_sd

SHIPPED = BUILTIN_DIR / "shapes-sd"


@pytest.mark.parametrize("spec, model", [("builtin:shapes-sd", None), ("sd", "builtin:shapes-sd"),
                                         ("sd", str(SHIPPED)), (str(SHIPPED), None)])
def test_shapes_sd_loads_through_stable_diffusion_guidance(no_network, spec, model):
    g = load_guidance(spec, model=model)
    assert type(g) is StableDiffusionGuidance
    assert (g.image_size, g.latent_size, g.vae_scale_factor) == (32, 8, 4)
    assert g.scaling_factor == pytest.approx(float(g.vae.config.scaling_factor)) and g.scaling_factor != 0.18215


def test_builtin_shapes_stays_the_pixel_prior(no_network):
    assert type(load_guidance("builtin:shapes")) is PixelDiffusionGuidance
    assert kinds.kind_of("builtin:shapes") == "builtin" and kinds.kind_of("builtin:shapes-sd") == "sd"
    assert kinds.kind_of("sd", "builtin:shapes-sd") == "sd"


def test_a_pixel_prior_folder_loads_by_path_as_the_builtin_does(no_network, tmp_path):
    """A prior trained by fastdream.priors.train_shapes, named by its folder: the pixel guidance and recipe of
    builtin:shapes (it is a copy of it), and the same SDS gradient on the same draw."""
    import shutil
    folder = tmp_path / "my-prior"
    shutil.copytree(BUILTIN_DIR / "shapes", folder)
    assert kinds.is_pixel_folder(folder) and not kinds.is_pixel_folder(SHIPPED) and not kinds.is_pixel_folder(None)
    for spec, model in ((str(folder), None), ("sd", str(folder))):
        assert kinds.kind_of(spec, model) == "builtin"
        assert kinds.recipe(spec, model, "fast") == kinds.recipe("builtin:shapes", None, "fast")
    assert make_config("fast", **{"guidance.model": str(folder)}).render.width == 32  # the pixel fast recipe
    by_path, shipped = load_guidance(str(folder)), load_guidance("builtin:shapes")
    assert type(by_path) is PixelDiffusionGuidance
    images = torch.rand(1, 3, 32, 32)
    grads = []
    for g in (by_path, shipped):
        emb = g.encode_prompts(["a red cube, side view"])
        x = images.clone().requires_grad_(True)
        out = g.sds(x, emb["cond"], emb["uncond"], guidance_scale=7.5, generator=torch.Generator().manual_seed(3))
        out.loss.backward()
        grads.append(x.grad)
    assert grads[0].abs().sum() > 0 and torch.equal(grads[0], grads[1])


def test_an_unknown_builtin_is_a_one_line_user_error():
    for call in (lambda: load_guidance("builtin:dinosaurs"), lambda: load_guidance("sd", model="builtin:dinosaurs"),
                 lambda: make_config("fast", **{"guidance.spec": "builtin:dinosaurs"})):
        with pytest.raises(UserError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and "dinosaurs" in msg and "shapes-sd" in msg and "shapes" in msg


def test_sds_gradients_on_a_32px_render_are_finite_and_shaped(no_network):
    g = load_guidance("builtin:shapes-sd")
    emb = g.encode_prompts(["a red cube, side view", "a blue sphere, front view"])
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = g.sds(images, emb["cond"], emb["uncond"], guidance_scale=20.0, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert out.extras["latents"].shape == (2, 4, 8, 8)
    assert images.grad.shape == images.shape and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_small_sd_models_get_the_small_fast_recipe(tmp_path):
    small = make_tiny_sd(tmp_path / "small", latent_size=8)  # 16x16 images
    large = make_tiny_sd(tmp_path / "large", latent_size=64)  # 128x128 images
    assert stable_diffusion.native_image_size(str(small)) == 16
    assert stable_diffusion.native_image_size(str(large)) == 128
    assert stable_diffusion.native_image_size(stable_diffusion.DEFAULT_MODEL) is None  # a hub id: not read
    small_fast = {**stable_diffusion.BASE_PRESET, **stable_diffusion.SMALL_FAST_PRESET}
    # the shipped folder declares only its elevation classifier's scale (its data were captioned by the default
    # view rule)
    shipped = {"guidance.elevation_guidance": 24.0}
    assert kinds.model_recipe(str(BUILTIN_DIR / "shapes-sd")) == shipped
    assert kinds.recipe("builtin:shapes-sd", None, "fast") == {**small_fast, **shipped}
    assert kinds.recipe("sd", "builtin:shapes-sd", "fast") == {**small_fast, **shipped}
    # a small model renders at its own size: 16x16 here, 32x32 for the shipped one
    assert small_fast["render.width"] == 32 and small_fast["render.height"] == 32
    small16 = {**small_fast, "render.width": 16, "render.height": 16}
    assert kinds.recipe("sd", str(small), "fast") == small16
    assert kinds.recipe(str(small), None, "fast") == small16
    assert make_config("fast", **{"guidance.spec": "sd", "guidance.model": str(small)}).render.width == 16
    sd_fast = {**stable_diffusion.BASE_PRESET, **stable_diffusion.FAST_PRESET}
    assert kinds.recipe("sd", str(large), "fast") == sd_fast
    assert kinds.recipe("sd", stable_diffusion.DEFAULT_MODEL, "fast") == sd_fast
    assert kinds.recipe("builtin:shapes-sd", None, "default") == {**stable_diffusion.BASE_PRESET, **shipped}
    assert kinds.recipe("builtin:shapes", None, "fast") == {**pixel.FAST_PRESET, "guidance.elevation_guidance": 8.0,
                                                           "guidance.elevation_guidance_end": 48.0,
                                                           "guidance.elevation_guidance_switch": 0.25}


def test_a_model_folder_declares_how_its_data_was_captioned(tmp_path):
    small = make_tiny_sd(tmp_path / "small", latent_size=8)
    (small / kinds.MODEL_RECIPE_FILE).write_text('{"recipe": {"guidance.overhead_elevation": 12.5}}')
    for spec, model in (("sd", str(small)), (str(small), None)):
        for preset in ("fast", "default"):
            assert kinds.recipe(spec, model, preset)["guidance.overhead_elevation"] == 12.5
    cfg = make_config("fast", **{"guidance.spec": "sd", "guidance.model": str(small)})
    assert cfg.guidance.overhead_elevation == 12.5
    # the model named by an override or the YAML declares it too, not only the --model flag
    assert make_config("fast", overrides=[f"guidance.model={small}"]).guidance.overhead_elevation == 12.5
    assert make_config("fast", overrides=[f"guidance.spec={small}"]).guidance.overhead_elevation == 12.5
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(f"guidance:\n  model: {small}\n")
    assert make_config("fast", yaml_file=yaml_file).guidance.overhead_elevation == 12.5
    assert make_config("fast", yaml_file=yaml_file).render.width == 16  # and its small fast recipe, at its size
    # the user's own override still wins over the model's declaration
    cfg = make_config("fast", overrides={"guidance.overhead_elevation": 30.0},
                      **{"guidance.spec": "sd", "guidance.model": str(small)})
    assert cfg.guidance.overhead_elevation == 30.0
    assert kinds.model_recipe(stable_diffusion.DEFAULT_MODEL) == {}  # a hub id declares nothing
    (small / kinds.MODEL_RECIPE_FILE).write_text('{"recipe": {"loss.sparsity": 0}}')
    with pytest.raises(UserError, match="may only declare"):
        kinds.recipe("sd", str(small), "fast")
    (small / kinds.MODEL_RECIPE_FILE).write_text('{"recipe": [1]}')
    with pytest.raises(UserError, match="may only declare"):
        kinds.recipe("sd", str(small), "fast")
    (small / kinds.MODEL_RECIPE_FILE).write_text('not json')
    with pytest.raises(UserError, match="not a JSON object"):
        kinds.recipe("sd", str(small), "fast")


def test_shapes_sd_fast_config_is_32px_with_sds_init():
    cfg = make_config("fast", **{"guidance.spec": "builtin:shapes-sd"})
    assert (cfg.render.width, cfg.render.height, cfg.train.iters) == (32, 32, 600)
    assert cfg.field.options.density_activation == "softplus" and cfg.field.options.blob_shape == "cone"
    assert cfg.field.options.log2_hashmap_size == 14
    # the pixel prior's size-holding terms, not SD 2.1's sparsity 1.0 (calibrated to SD's gradient scale)
    assert cfg.loss.sparsity == 100.0 and cfg.background.kind == "white"
    # but not its normal smoothness, which rounds this model's cube (the pixel prior's cube gains from it)
    assert cfg.loss.normal_smoothness == 0.0
    assert make_config("fast", **{"guidance.spec": "builtin:shapes"}).loss.normal_smoothness == 30.0
    assert make_config("default", **{"guidance.spec": "builtin:shapes-sd"}).loss.sparsity == 1.0
