"""The SD guidance's speed options: the TAESD encoder (guidance.encoder=tiny) from a local folder, its offline error,
compile wrapping the encoder and the UNet; on CUDA, CUDA-graph replay and fused Adam against the eager defaults."""
from __future__ import annotations

import pytest
import torch

from fastdream.errors import UserError
from fastdream.guidance import load_guidance
from fastdream.guidance.stable_diffusion import StableDiffusionGuidance

from tests.helpers.tiny_sd import make_tiny_sd
from tests.helpers.train_utils import tiny_config

TINY_TAESD = dict(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
                  num_decoder_blocks=(1, 1), latent_channels=4)


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return make_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="module")
def taesd_dir(tmp_path_factory):
    """A tiny random AutoencoderTiny saved as a diffusers folder (no download)."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("taesd")
    AutoencoderTiny(**TINY_TAESD).save_pretrained(folder)
    return folder


def test_tiny_encoder_replaces_the_vae(tiny_sd_dir, taesd_dir):
    from diffusers import AutoencoderTiny

    sd = load_guidance(str(tiny_sd_dir), "cpu", encoder="tiny", tiny_encoder=str(taesd_dir))
    assert sd.vae is None and sd.encoder.kind == "tiny"  # the full VAE is not even loaded
    assert sd.image_size == 16 and sd.latent_size == 8  # 2x downsampling, as the tiny VAE
    images = torch.rand(2, 3, 24, 24, requires_grad=True)
    latents = sd.encode_images(images)
    taesd = AutoencoderTiny.from_pretrained(taesd_dir)
    # a render larger than the model's image is shrunk with an antialiased filter
    x = torch.nn.functional.interpolate(images.detach(), (16, 16), mode="bilinear", align_corners=False,
                                        antialias=True) * 2 - 1
    torch.testing.assert_close(latents, taesd.encode(x).latents * taesd.config.scaling_factor)
    e = sd.encode_prompts(["a cat"])
    out = sd.sds(images, e["cond"].expand(2, -1, -1), e["uncond"], guidance_scale=7.5, t_range=(0.02, 0.98),
                 generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0  # flows through TAESD


def test_trainer_config_selects_the_tiny_encoder(tiny_sd_dir, taesd_dir, tmp_path):
    from fastdream.training.trainer import Trainer

    cfg = tiny_config(**{"guidance.spec": "sd", "guidance.model": str(tiny_sd_dir), "guidance.encoder": "tiny",
                         "guidance.tiny_encoder": str(taesd_dir), "train.checkpoint_every": 0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    assert trainer.guidance.encoder.kind == "tiny" and not trainer.guidance.cuda_graphs
    assert torch.isfinite(trainer.train_step()["loss"])


def test_unreachable_tiny_encoder_is_one_clear_line(tiny_sd_dir, tmp_path, monkeypatch):
    with pytest.raises(UserError) as e:
        load_guidance(str(tiny_sd_dir), "cpu", encoder="tiny", tiny_encoder="fastdream-tests/no-such-taesd",
                      local_files_only=True)
    msg = str(e.value)
    assert "\n" not in msg and "cannot load the tiny encoder 'fastdream-tests/no-such-taesd'" in msg
    assert "guidance.tiny_encoder=DIR" in msg and "guidance.encoder=vae" in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: the cache only, same message
    with pytest.raises(UserError, match="neither in the local Hugging Face cache nor reachable"):
        load_guidance(str(tiny_sd_dir), "cpu", encoder="tiny", tiny_encoder="fastdream-tests/no-such-taesd")
    with pytest.raises(UserError, match="no such folder"):
        load_guidance(str(tiny_sd_dir), "cpu", encoder="tiny", tiny_encoder=str(tmp_path / "nope" / "taesd"))
    with pytest.raises(UserError, match="not a diffusers AutoencoderTiny folder"):
        load_guidance(str(tiny_sd_dir), "cpu", encoder="tiny", tiny_encoder=str(tmp_path))


def test_compile_wraps_the_encoder_and_the_unet(tiny_sd_dir):
    sd = load_guidance(str(tiny_sd_dir), "cpu")
    parts = (sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, _scheduler())
    compiled = StableDiffusionGuidance(*parts, compile=True)  # compiles lazily: nothing runs here
    assert compiled._unet_module is not compiled.unet and hasattr(compiled._unet_module, "_orig_mod")
    assert getattr(compiled._encode_fn, "_torchdynamo_orig_callable", None) is not None
    assert sd._unet_module is sd.unet and not compiled.channels_last  # channels_last applies on CUDA only


def _scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def _cuda_guidance(sd, **kw):
    return StableDiffusionGuidance(sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, _scheduler(), device="cuda",
                                   dtype=torch.bfloat16, **kw)


@pytest.mark.cuda
def test_cuda_graphed_sds_gradient_matches_eager(tiny_sd_dir):
    sd = load_guidance(str(tiny_sd_dir), "cpu")
    eager, graphed = _cuda_guidance(sd), _cuda_guidance(sd, cuda_graphs=True)
    e = eager.encode_prompts(["a cat", "a dog"])
    images = torch.rand(2, 3, 16, 16, device="cuda")
    grads = []
    for g in (eager, graphed, graphed):  # the second graphed call replays the captured graph
        x = images.clone().requires_grad_(True)
        out = g.sds(x, e["cond"], e["uncond"], guidance_scale=7.5, t_range=(0.02, 0.98),
                    generator=torch.Generator("cuda").manual_seed(3))
        out.loss.backward()
        grads.append(x.grad)
    assert graphed._unet_call.disabled_reason is None and len(graphed._unet_call._graphs) == 1
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0], atol=2e-2, rtol=2e-2)  # bf16 tolerance


@pytest.mark.cuda
def test_cuda_fused_adam_matches_the_default():
    """Our Optimizer with optim.fused on and off, fed the same gradients: the same parameters after 5 steps."""
    from fastdream.scene.scene import Scene
    from fastdream.training.optim import Optimizer

    runs = []
    for fused in (False, True):
        cfg = tiny_config(**{"train.device": "cuda", "optim.fused": fused})
        torch.manual_seed(0)
        scene = Scene.from_config(cfg, torch.device("cuda"))
        opt = Optimizer(scene, cfg.optim, cfg.train.precision, torch.device("cuda"))
        assert opt.fused is fused
        params = [p for g in opt.adam.param_groups for p in g["params"]]
        gen = torch.Generator("cuda").manual_seed(1)
        for _ in range(5):
            for p in params:  # gradients well away from zero, where Adam's direction is well defined
                p.grad = torch.randn(p.shape, device="cuda", generator=gen) + 0.5
            opt.apply()
        runs.append([p.detach().clone() for p in params])
    for a, b in zip(*runs):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
