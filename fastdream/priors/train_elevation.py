"""Train the elevation classifier of a shapes prior (fastdream.priors.elevation) and save it into the prior's folder,
where its guidance finds it: a pixel-space prior (builtin:shapes) or one in Stable Diffusion's layout
(builtin:shapes-sd), whose classifier reads the latents its own VAE encodes.

    python -m fastdream.priors.train_elevation --prior fastdream/priors/weights/shapes [--per-shape 2000]
        [--steps 4000] [--batch 128] [--seed 0] [--threads 2]

The data are the prior's own: shapes_data renders (training cameras and lights, random size, colour and background)
in the prior's model space (pixels in [-1, 1], or the scaled VAE latents), noised at a uniform timestep of its
schedule. The held-out error of the expected elevation is printed per
noise band: high noise levels carry little of the elevation, which is what the guidance relies on (it only adds
what the noisy image tells).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fastdream.errors import UserError

log = logging.getLogger("fastdream.train_elevation")

NOISE_BANDS = ((0, 200), (200, 500), (500, 800), (800, 1000))  # timesteps of the held-out report


def pixels(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A pixel prior's model space: images [B,3,R,R] in [0,1] -> [-1, 1]."""
    del generator
    return images * 2 - 1


def noisy_batch(bank, rows: torch.Tensor, n: int, gen: torch.Generator, alphas_cumprod: torch.Tensor,
                to_model=pixels):
    """(x_t [n,C,r,r], sigma [n], elevation [n], t [n]) from the bank rows `rows`, mirrored at random (a mirror
    keeps the elevation); to_model(images in [0,1], generator) maps images to the prior's model space."""
    from fastdream.priors import shapes_data
    idx = rows[torch.randint(len(rows), (n,), generator=gen)]
    _, rgb, bg, lambertian = shapes_data.random_appearance(n, gen)
    x = shapes_data.compose(bank.alpha[idx], bank.shade[idx], rgb, bg, lambertian).clamp(0, 1)
    x = torch.where((torch.rand(n, generator=gen) < 0.5)[:, None, None, None], x.flip(-1), x)
    x = to_model(x, gen)
    t = torch.randint(0, len(alphas_cumprod), (n,), generator=gen)
    a = alphas_cumprod[t][:, None, None, None]
    x_t = a.sqrt() * x + (1 - a).sqrt() * torch.randn(x.shape, generator=gen)
    return x_t, (1 - a).sqrt().reshape(-1), bank.elevation_deg[idx], t


@torch.no_grad()
def heldout_error(model, bank, rows, alphas_cumprod, n: int = 2000, to_model=pixels) -> dict[str, float]:
    """Mean |E[elevation | x_t] - elevation| (degrees) on held-out rows, per band of NOISE_BANDS."""
    x_t, sigma, el, t = noisy_batch(bank, rows, n, torch.Generator().manual_seed(12345), alphas_cumprod, to_model)
    c = model.config
    centres = c["lo"] + c["bin_deg"] * (torch.arange(model.bins) + 0.5)
    expected = (torch.softmax(model(x_t, sigma), -1) * centres).sum(-1)
    err = (expected - el.clamp(c["lo"], c["hi"])).abs()
    return {f"t{lo}-{hi}": float(err[(t >= lo) & (t < hi)].mean()) for lo, hi in NOISE_BANDS}


def train(bank, alphas_cumprod, steps: int, batch: int, seed: int, lr: float = 2e-3, to_model=pixels,
          model=None):
    """A classifier (default: for a pixel prior at the bank's resolution) trained on 90% of the bank; returns
    (model, held-out errors by noise band)."""
    from fastdream.priors.elevation import ElevationClassifier
    torch.manual_seed(seed)
    rows = torch.arange(len(bank))
    held = rows % 10 == 0
    model = model or ElevationClassifier(resolution=bank.resolution)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        x_t, sigma, el, _ = noisy_batch(bank, rows[~held], batch, gen, alphas_cumprod, to_model)
        loss = -(model.soft_targets(el) * F.log_softmax(model(x_t, sigma), -1)).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == steps - 1:
            log.info("step %d loss %.3f", step, loss.item())
    model.eval()
    return model, heldout_error(model, bank, rows[held], alphas_cumprod, to_model=to_model)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prior", required=True, help="the prior's folder (the classifier is saved into it)")
    p.add_argument("--per-shape", type=int, default=2000, help="rendered views per primitive")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _prior_space(folder: Path):
    """(image resolution, alphas_cumprod, to_model, a fresh classifier) for the prior in `folder`."""
    from fastdream.guidance.kinds import is_sd_folder
    from fastdream.priors.elevation import ElevationClassifier
    if is_sd_folder(folder):
        from fastdream.guidance.stable_diffusion import StableDiffusionGuidance
        sd = StableDiffusionGuidance.from_pretrained(str(folder), dtype=torch.float32, elevation_classifier=False)

        @torch.no_grad()
        def latents(images, generator):  # the scaled latents the SD guidance itself feeds its UNet
            return sd.encode_images(images, generator)

        channels, size = sd.model_space()  # the space use_elevation_guidance checks the classifier against
        return (sd.image_size, sd.alphas_cumprod.cpu(), latents,
                ElevationClassifier(resolution=size, width=8, stem=8, in_channels=channels))
    from fastdream.guidance.pixel import PixelDiffusionGuidance
    prior = PixelDiffusionGuidance.from_pretrained(folder, elevation_classifier=False)
    channels, size = prior.model_space()
    return (prior.resolution, prior.alphas_cumprod.cpu(), pixels,
            ElevationClassifier(resolution=size, in_channels=channels))


def _run(args) -> int:
    from fastdream.priors import shapes_data
    folder = Path(args.prior)
    if not (folder / "unet").is_dir():
        raise UserError(f"{folder} is not a prior folder (no unet/)")
    if min(args.per_shape, args.steps, args.batch) < 1:
        raise UserError("--per-shape, --steps and --batch must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    resolution, alphas_cumprod, to_model, model = _prior_space(folder)
    t0 = time.time()
    bank = shapes_data.build_bank(args.per_shape, resolution, seed=args.seed, chunk=128)
    log.info("rendered %d views in %.0fs", len(bank), time.time() - t0)
    model, errors = train(bank, alphas_cumprod, args.steps, args.batch, args.seed, to_model=to_model, model=model)
    out = model.save(folder)
    log.info("held-out elevation error (degrees) by timestep: %s", ", ".join(f"{k} {v:.1f}" for k, v in
                                                                              errors.items()))
    log.info("saved %s (%.0fs in all); runs use it when the folder's fastdream.json sets "
             "guidance.elevation_guidance (builtin:shapes: 8, builtin:shapes-sd: 24)", out, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
