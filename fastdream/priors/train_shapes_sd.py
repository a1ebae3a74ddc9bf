"""Train the embedded latent shapes model (builtin:shapes-sd): first the VAE, then the UNet and text encoder.

    python -m fastdream.priors.train_shapes_sd --out DIR [--threads 1] [--time-limit S] [--resume]

Stage 1 trains the AutoencoderKL to reconstruct the procedural renders (L1 + KL at SD's weight 1e-6), then sets its
scaling_factor to 1 / std of the latents, as SD did. Stage 2 trains the UNet (epsilon prediction on the scaled
latents, SD's DDPM schedule, 10% empty prompts for classifier-free guidance) jointly with the CLIP text encoder, with
an EMA. DIR receives the StableDiffusionPipeline folder (fp16) and, under DIR/.train/, the data bank, a resumable
checkpoint (atomic, every --ckpt-every steps and at a stop) and train_info.json. Data and noise are deterministic by
--seed, stage and step, so a resumed run sees the same batches as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import shutil
import time
from pathlib import Path

import torch

from fastdream.priors import shapes_data
from fastdream.priors.latent_model import LatentShapesModel
from fastdream.priors.train_shapes import (_atomic_save, _load_bank, add_overhead_option, check_resumable,
                                           ema_update, evaluate_samples, warmup_cosine_lr, write_model_recipe)

log = logging.getLogger("fastdream.priors.train_shapes_sd")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastdream.priors.train_shapes_sd",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (SD pipeline folder + .train/ state)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--per-shape", type=int, default=1000, help="geometry renders per primitive in the data bank")
    p.add_argument("--vae-channels", type=_ints, default=(16, 32, 64), help="AutoencoderKL block_out_channels")
    p.add_argument("--unet-channels", type=_ints, default=(48, 96), help="UNet block_out_channels")
    add_overhead_option(p)
    p.add_argument("--text-hidden", type=int, default=64, help="CLIP text encoder width")
    p.add_argument("--vae-steps", type=int, default=1500)
    p.add_argument("--vae-batch", type=int, default=32)
    p.add_argument("--vae-lr", type=float, default=2e-3)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--steps", type=int, default=3000, help="UNet steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--text-dropout", type=float, default=0.1, help="prompt replaced by '' (for CFG)")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--time-limit", type=float, default=0.0,
                   help="seconds of training in all (both stages, over resumes); 0 = off. The VAE gets --vae-share "
                        "of it, the UNet the rest; each stage's LR decay follows its time then")
    p.add_argument("--vae-share", type=float, default=0.2)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--resume", action="store_true", help="continue from DIR/.train/checkpoint.pt")
    p.add_argument("--heldout-per-shape", type=int, default=50, help="held-out renders per primitive for the PSNR")
    p.add_argument("--eval-samples", type=int, default=0, help="after training: sample N and score with the matcher")
    p.add_argument("--eval-only", action="store_true", help="skip training: score the model saved in --out")
    p.add_argument("--sample-steps", type=int, default=25, help="DDIM steps for --eval-samples")
    p.add_argument("--guidance-scale", type=float, default=3.0, help="CFG scale for --eval-samples")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _batch(bank, args, stage: int, step: int, batch: int):
    """(images [B,3,R,R] in [0,1], captions, generator): deterministic by seed, stage and step."""
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + stage * 100_000_019 + step)
    images, caps, _, _ = shapes_data.sample_batch(bank, batch, g)
    return images, caps, g


def _randn(like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like `like`, drawn on the CPU (same numbers on every device)."""
    return torch.randn(like.shape, generator=g).to(like)


def _vae_step(model, opt, bank, args, step: int) -> float:
    images, _, g = _batch(bank, args, 1, step, args.vae_batch)
    dist = model.vae.encode(images * 2 - 1).latent_dist
    z = dist.mean + dist.std * _randn(dist.mean, g)
    recon = model.vae.decode(z).sample
    # SD's autoencoder loss without its perceptual and GAN terms: per-pixel L1 plus kl_weight x the summed KL, both
    # per image (here divided by the pixel count, which leaves their ratio as in SD)
    loss = (recon - (images * 2 - 1)).abs().mean() + args.kl_weight * dist.kl().sum() / images.numel()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.vae.parameters(), 1.0)
    opt.step()
    return loss.item()


@torch.no_grad()
def scaling_factor(model, bank, args, n: int = 1024) -> float:
    """1 / std of posterior samples of n training images, as SD computed its 0.18215."""
    images, _, g = _batch(bank, args, 3, 0, n)
    dist = model.vae.encode(images * 2 - 1).latent_dist
    return float(1.0 / (dist.mean + dist.std * _randn(dist.mean, g)).std())


def _unet_step(model, ema, opt, params, bank, args, step: int) -> float:
    images, caps, g = _batch(bank, args, 2, step, args.batch)
    drop = torch.rand(args.batch, generator=g) < args.text_dropout
    caps = ["" if d else c for c, d in zip(caps, drop.tolist())]
    with torch.no_grad():
        latents = model.encode_images(images, g)
    t = torch.randint(0, len(model.alphas_cumprod), (args.batch,), generator=g).to(latents.device)
    noise = _randn(latents, g)
    a = model.alphas_cumprod[t][:, None, None, None]
    pred = model.unet(a.sqrt() * latents + (1 - a).sqrt() * noise, t,
                      encoder_hidden_states=model.encode_text(caps)).sample
    loss = torch.nn.functional.mse_loss(pred, noise)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    for name in ("unet", "text_encoder"):
        ema_update(getattr(ema, name).parameters(), getattr(model, name).parameters(), step, args.ema)
    return loss.item()


class _State:
    """Everything a resume needs: the model, the EMA model, both optimisers, stage, step and time spent."""

    def __init__(self, model, args):
        self.model, self.args = model, args
        self.vae_opt = torch.optim.AdamW(model.vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
        self.params = list(model.unet.parameters()) + list(model.text_encoder.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=args.lr, weight_decay=0.0)
        self.ema = None
        self.stage, self.step, self.elapsed, self.vae_steps = "vae", 0, {"vae": 0.0, "unet": 0.0}, 0

    def start_unet(self, sf: float) -> None:
        self.model.vae.register_to_config(scaling_factor=sf)
        self.model.vae.requires_grad_(False).eval()
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.stage, self.vae_steps, self.step = "unet", self.step, 0

    def save(self, path: Path) -> None:
        _atomic_save({"model": self.model.state_dict(), "ema": None if self.ema is None else self.ema.state_dict(),
                      "vae_opt": self.vae_opt.state_dict(), "opt": self.opt.state_dict(), "stage": self.stage,
                      "step": self.step, "vae_steps": self.vae_steps, "elapsed": self.elapsed, "scaling_factor": self.model.scaling_factor,
                      "args": vars(self.args)}, path)

    def restore(self, path: Path) -> None:
        ck = torch.load(path, map_location="cpu")
        check_resumable(ck.get("args", {}), self.args)
        self.model.load_state_dict(ck["model"])
        self.vae_opt.load_state_dict(ck["vae_opt"])
        self.opt.load_state_dict(ck["opt"])
        if ck["stage"] != "vae":
            self.start_unet(ck["scaling_factor"])
            self.ema.load_state_dict(ck["ema"])
        self.stage, self.step, self.elapsed, self.vae_steps = ck["stage"], ck["step"], ck["elapsed"], ck["vae_steps"]
        log.info("resumed in stage %s at step %d", self.stage, self.step)


def _budget(args, stage: str, st: _State) -> float:
    if args.time_limit <= 0:
        return 0.0
    vae_budget = args.vae_share * args.time_limit
    return vae_budget if stage == "vae" else args.time_limit - min(st.elapsed["vae"], vae_budget)


def _run_stage(st: _State, stage: str, steps: int, step_fn, opt, base_lr: float, ckpt: Path) -> None:
    """Run one stage from st.step to `steps` (or its time budget), checkpointing as it goes."""
    from tqdm import tqdm
    args = st.args
    budget = _budget(args, stage, st)
    bar = tqdm(range(st.step, steps), initial=st.step, total=steps, disable=args.no_progress, desc=stage)
    t0, before, loss_avg = time.time(), st.elapsed[stage], None
    for step in bar:
        st.elapsed[stage] = before + time.time() - t0
        if budget and st.elapsed[stage] > budget:
            log.info("%s: time budget %.0fs reached at step %d", stage, budget, step)
            break
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(base_lr, step, steps, st.elapsed[stage], budget, warmup=100)
        loss = step_fn(step)
        loss_avg = loss if loss_avg is None else 0.98 * loss_avg + 0.02 * loss
        st.step = step + 1
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss_avg:.4f}")
        if args.no_progress and step % 250 == 0:
            log.info("%s step %d/%d loss %.4f (%.0fs)", stage, step, steps, loss_avg, st.elapsed[stage])
        if st.step % args.ckpt_every == 0:
            st.save(ckpt)
    st.elapsed[stage] = before + time.time() - t0
    log.info("%s: %d steps, %.0fs, loss %s", stage, st.step, st.elapsed[stage], loss_avg)
    st.save(ckpt)


@torch.no_grad()
def heldout_psnr(model, args) -> dict:
    """VAE reconstruction (posterior mean) PSNR in dB on renders of a bank the training never saw."""
    bank = shapes_data.build_bank(args.heldout_per_shape, args.resolution, seed=args.seed + 7919)
    images = shapes_data.sample_batch(bank, len(bank), torch.Generator().manual_seed(args.seed + 7919))[0]
    images = images.to(model.alphas_cumprod.device)
    mse = (model.decode(model.encode_images(images, sample=False)) - images).square().flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return {"n": len(bank), "psnr_mean_db": round(float(psnr.mean()), 2), "psnr_min_db": round(float(psnr.min()), 2),
            "psnr_of_mean_mse_db": round(float(10 * torch.log10(1.0 / mse.mean())), 2)}


def _score(model, args, info: dict) -> dict:
    info["vae_heldout"] = heldout_psnr(model, args)
    log.info("VAE held-out reconstruction: %s", info["vae_heldout"])
    if args.eval_samples:
        t0 = time.time()
        res = evaluate_samples(model, args.eval_samples, model.alphas_cumprod.device, seed=args.seed,
                               steps=args.sample_steps, guidance_scale=args.guidance_scale)
        info["samples"] = {"images": res.pop("images"), "prompts": res.pop("prompts")}
        info["eval"] = {**res, "wall_s": round(time.time() - t0, 1)}
        log.info("matcher on %d samples: %s", args.eval_samples, info["eval"])
    return info


def _counts(model) -> dict:
    return {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in ("vae", "unet", "text_encoder")}


def set_aside_stale_classifier(out: Path) -> Path | None:
    """An elevation classifier in `out` read the previous VAE's latents: rename it to elevation_classifier.stale/
    so that no run is guided by it (a fastdream.json that still asks for elevation guidance then fails in one line
    naming train_elevation). Returns the new path, or None when there was none."""
    from fastdream.priors.elevation import SUBFOLDER
    old = Path(out) / SUBFOLDER
    if not old.is_dir():
        return None
    stale = old.with_name(SUBFOLDER + ".stale")
    if stale.is_dir():
        shutil.rmtree(stale)
    elif stale.exists():
        stale.unlink()
    old.rename(stale)
    log.warning("%s read the previous VAE's latents: moved to %s; retrain it with python -m "
                "fastdream.priors.train_elevation --prior %s", old, stale, out)
    return stale


def train(args) -> dict:
    """Both stages (resuming where the checkpoint stopped), then save the EMA model and score it."""
    out = Path(args.out)
    state_dir = out / ".train"
    state_dir.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    bank = _load_bank(args, state_dir).to(dev)
    model = LatentShapesModel.create(state_dir, args.resolution, args.seed, args.vae_channels, args.unet_channels,
                                     args.text_hidden).to(dev)
    log.info("parameters: %s", _counts(model))
    st, ckpt = _State(model, args), state_dir / "checkpoint.pt"
    if args.resume and ckpt.exists():
        st.restore(ckpt)
    if st.stage == "vae":
        model.vae.train()
        _run_stage(st, "vae", args.vae_steps, lambda s: _vae_step(model, st.vae_opt, bank, args, s), st.vae_opt,
                   args.vae_lr, ckpt)
        st.start_unet(scaling_factor(model, bank, args))
        log.info("VAE scaling_factor %.4f", model.scaling_factor)
        st.save(ckpt)
    model.unet.train(), model.text_encoder.train()
    _run_stage(st, "unet", args.steps, lambda s: _unet_step(model, st.ema, st.opt, st.params, bank, args, s), st.opt,
               args.lr, ckpt)
    final = st.ema.eval()
    final.save_pretrained(out)
    write_model_recipe(out, args)
    set_aside_stale_classifier(out)
    info = {"parameters": _counts(final), "scaling_factor": final.scaling_factor, "vae_steps": st.vae_steps,
            "unet_steps": st.step, "wall_s": {k: round(v, 1) for k, v in st.elapsed.items()}, "args": vars(args)}
    info = _score(final, args, info)
    samples = info.pop("samples", None)
    if samples is not None:
        torch.save(samples, state_dir / "samples.pt")
    with open(state_dir / "train_info.json", "w") as f:
        json.dump(info, f, indent=1, default=str)
    return info


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval_only:
        # prints only: --out may be the shipped folder, which must not gain files
        model = LatentShapesModel.from_pretrained(args.out, device=args.device)
        info = _score(model, args, {"eval_only": True})
        info.pop("samples", None)
    else:
        info = train(args)
    print(json.dumps(info, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
