"""Pixel-space SDS: the gradient identity d loss / d x = w(t)·(ε̂ − ε) on model-space pixels."""
import pytest
import torch

from fastdream.guidance.pixel import PixelDiffusionGuidance
from fastdream.priors.tokenizer import ShapesTokenizer


def _tiny_guidance(sample_size=8):
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(0)
    tok = ShapesTokenizer(model_max_length=8)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8,
                                        pad_token_id=0, bos_token_id=1, eos_token_id=2))
    unet = UNet2DConditionModel(sample_size=sample_size, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                                layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4)
    return PixelDiffusionGuidance(unet, text, tok, DDPMScheduler(num_train_timesteps=1000).alphas_cumprod)


def test_sds_gradient_identity():
    g = _tiny_guidance()
    emb = g.encode_prompts(["a red cube, side view", "a blue sphere"])
    assert emb["cond"].shape[0] == 2 and emb["uncond"].shape[0] == 1
    images = torch.rand(2, 3, 8, 8, dtype=torch.float32, requires_grad=True)
    out = g.sds(images, emb["cond"], emb["uncond"], guidance_scale=7.5, t_range=(0.2, 0.8),
                generator=torch.Generator().manual_seed(5))
    out.loss.backward()
    # redo the draws with the same seed and form w(t)(ε̂ − ε) independently
    gen = torch.Generator().manual_seed(5)
    t = torch.randint(200, 799 + 1, (2,), generator=gen)
    noise = torch.randn(2, 3, 8, 8, generator=gen)
    assert torch.equal(out.t, t)
    x = images.detach() * 2 - 1
    a = g.alphas_cumprod[t][:, None, None, None]
    x_t = a.sqrt() * x + (1 - a).sqrt() * noise
    uncond = g.text_encoder(input_ids=g.tokenizer([""])).last_hidden_state
    cond = g.text_encoder(input_ids=g.tokenizer(["a red cube, side view", "a blue sphere"])).last_hidden_state
    e_u = g.unet(x_t, t, encoder_hidden_states=uncond.expand(2, -1, -1)).sample
    e_c = g.unet(x_t, t, encoder_hidden_states=cond).sample
    expected = (1 - a) * (e_u + 7.5 * (e_c - e_u) - noise)
    # images -> x = 2·images − 1, so d loss / d images = 2·(d loss / d x); the loss averages the batch of 2
    torch.testing.assert_close(images.grad, 2 * expected / 2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.grad_norm, expected.norm(), atol=1e-5, rtol=1e-4)
    assert not out.grad_norm.requires_grad


def test_noise_samples_average_the_gradients_of_independent_draws():
    g = _tiny_guidance()
    prompts = ["a red cube, side view", "a blue sphere"]
    emb = g.encode_prompts(prompts)
    images = torch.rand(2, 3, 8, 8, requires_grad=True)
    k = 3
    out = g.sds(images, emb["cond"], emb["uncond"], guidance_scale=7.5, t_range=(0.1, 0.9),
                generator=torch.Generator().manual_seed(11), noise_samples=k)
    out.loss.backward()
    # the draws: k copies of the batch, draw-major, each with its own t and noise; every draw scored on its own
    gen = torch.Generator().manual_seed(11)
    t = torch.randint(100, 899 + 1, (k * 2,), generator=gen)
    noise = torch.randn(k * 2, 3, 8, 8, generator=gen)
    assert torch.equal(out.t, t) and len(set(t.tolist())) > 1
    x = images.detach() * 2 - 1
    uncond = g.text_encoder(input_ids=g.tokenizer([""])).last_hidden_state
    cond = g.text_encoder(input_ids=g.tokenizer(prompts)).last_hidden_state
    per_draw = []
    for j in range(k):
        tj, nj = t[2 * j:2 * j + 2], noise[2 * j:2 * j + 2]
        a = g.alphas_cumprod[tj][:, None, None, None]
        x_t = a.sqrt() * x + (1 - a).sqrt() * nj
        e_u = g.unet(x_t, tj, encoder_hidden_states=uncond.expand(2, -1, -1)).sample
        e_c = g.unet(x_t, tj, encoder_hidden_states=cond).sample
        per_draw.append((1 - a) * (e_u + 7.5 * (e_c - e_u) - nj))
    expected = torch.stack(per_draw).mean(0)
    torch.testing.assert_close(images.grad, 2 * expected / 2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.grad_norm, expected.norm(), atol=1e-5, rtol=1e-4)
    # and the average is not just one of the draws
    assert all(float((d - expected).abs().max()) > 1e-4 for d in per_draw)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_noise_samples_must_be_a_positive_integer(bad):
    g = _tiny_guidance()
    emb = g.encode_prompts(["a red cube"])
    with pytest.raises(ValueError, match="noise_samples"):
        g.sds(torch.rand(1, 3, 8, 8), emb["cond"], emb["uncond"], guidance_scale=5, noise_samples=bad)


def test_sds_resizes_to_model_resolution_and_scale_one_is_conditional():
    g = _tiny_guidance()
    emb = g.encode_prompts(["a green cone"])
    images = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = g.sds(images, emb["cond"], emb["uncond"], guidance_scale=1.0, t_range=(0.5, 0.5),
                generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    assert out.t.tolist() == [500] and images.grad.shape == images.shape and images.grad.abs().sum() > 0
    gen = torch.Generator().manual_seed(1)
    torch.randint(500, 501, (1,), generator=gen)
    noise = torch.randn(1, 3, 8, 8, generator=gen)
    x = g.to_model_input(images)  # differentiable resize
    a = g.alphas_cumprod[500]
    x_t = a.sqrt() * x.detach() + (1 - a).sqrt() * noise
    e_c = g.unet(x_t, torch.tensor([500]), encoder_hidden_states=emb["cond"]).sample  # scale 1 = conditional only
    grad_x = ((1 - a) * (e_c - noise)).detach()
    (ref,) = torch.autograd.grad((x * grad_x).sum(), images)
    torch.testing.assert_close(images.grad, ref, atol=1e-5, rtol=1e-4)


def test_sds_bad_inputs():
    g = _tiny_guidance()
    emb = g.encode_prompts(["a red cube"])
    with pytest.raises(ValueError, match="t_range"):
        g.sds(torch.rand(1, 3, 8, 8), emb["cond"], emb["uncond"], guidance_scale=5, t_range=(0.9, 0.1))
    with pytest.raises(ValueError, match="images"):
        g.sds(torch.rand(1, 4, 8, 8), emb["cond"], emb["uncond"], guidance_scale=5)
    with pytest.raises(ValueError, match="cond"):
        g.sds(torch.rand(3, 3, 8, 8), emb["cond"].expand(2, -1, -1), emb["uncond"], guidance_scale=5)
    with pytest.raises(ValueError, match="prompts"):
        g.encode_prompts([])
