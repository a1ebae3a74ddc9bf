"""Train the embedded shapes prior.

    python -m fastdream.priors.train_shapes --out DIR [--device cpu|cuda] [--steps N] [--batch B] [--resume]

DIR receives the diffusers-layout model (unet/, text_encoder/, tokenizer/, scheduler/) and, under DIR/.train/, the
geometry bank cache and a resumable checkpoint (written atomically every --ckpt-every steps). Data and noise are
deterministic by --seed and step, so a resumed run sees the same batches as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import logging
import os
import time
from pathlib import Path

import torch

log = logging.getLogger("fastdream.priors.train_shapes")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastdream.priors.train_shapes", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (model + .train/ state)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--per-shape", type=int, default=1000, help="geometry renders per primitive in the data bank")
    add_overhead_option(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text-dropout", type=float, default=0.1, help="prompt replaced by '' (for CFG)")
    p.add_argument("--freeze-text", action="store_true", help="keep the text encoder frozen at its random init")
    p.add_argument("--init-from", default=None,
                   help="start from this saved prior folder's weights (fine-tuning, e.g. under a new caption rule) "
                        "instead of a random init")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--time-limit", type=float, default=0.0,
                   help="stop after this many seconds of training (the LR decay follows time then); 0 = off")
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--resume", action="store_true", help="continue from DIR/.train/checkpoint.pt")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--eval-samples", type=int, default=0, help="after training: sample N and score with the matcher")
    p.add_argument("--eval-only", action="store_true",
                   help="skip training: load the model saved in --out and run --eval-samples (default 100)")
    p.add_argument("--sample-steps", type=int, default=50, help="DDIM steps for --eval-samples")
    p.add_argument("--guidance-scale", type=float, default=3.0, help="CFG scale for --eval-samples")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--no-progress", action="store_true")
    return p


def add_overhead_option(p: argparse.ArgumentParser) -> None:
    from fastdream.guidance.view_prompts import OVERHEAD_ELEVATION
    p.add_argument("--overhead-elevation", type=float, default=OVERHEAD_ELEVATION,
                   help="data views above this elevation (degrees) are captioned 'overhead view'; the model folder's "
                        "fastdream.json tells runs to prompt the same way")


def check_resumable(saved_args: dict, args) -> None:
    """Exit with one line when a checkpoint was captioned by another view rule than this run would declare."""
    from fastdream.guidance.view_prompts import OVERHEAD_ELEVATION
    # checkpoints from before the option were captioned by the default rule
    saved = saved_args.get("overhead_elevation", OVERHEAD_ELEVATION)
    if saved != args.overhead_elevation:
        raise SystemExit(f"cannot resume: the checkpoint's data were captioned with --overhead-elevation {saved:g}, "
                         f"this run asks for {args.overhead_elevation:g}")


def write_model_recipe(out: Path, args) -> None:
    """The model folder's fastdream.json: a run must caption its views as the data were (fastdream.guidance.kinds)."""
    from fastdream.guidance.kinds import MODEL_RECIPE_FILE
    from fastdream.guidance.view_prompts import FRONT_AZIMUTH_RANGE
    path = Path(out) / MODEL_RECIPE_FILE
    try:  # keep what the folder already declares beyond the caption rule (its elevation guidance scale)
        recipe = dict(json.loads(path.read_text()).get("recipe", {})) if path.is_file() else {}
    except (OSError, ValueError, AttributeError):
        recipe = {}
    recipe.update({"guidance.overhead_elevation": args.overhead_elevation,
                   "guidance.front_azimuth_range": FRONT_AZIMUTH_RANGE})
    path.write_text(json.dumps({"recipe": recipe}, indent=1) + "\n")


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load_bank(args, state_dir: Path):
    from fastdream.guidance.view_prompts import OVERHEAD_ELEVATION
    from fastdream.priors import shapes_data
    overhead = args.overhead_elevation
    # the default rule keeps the name earlier caches have
    tag = "" if overhead == OVERHEAD_ELEVATION else f"_o{overhead:g}"
    path = state_dir / f"bank_r{args.resolution}_n{args.per_shape}_s{args.seed}{tag}.pt"
    if path.exists():
        d = torch.load(path)
        return shapes_data.GeometryBank(**d)
    t0 = time.time()
    bank = shapes_data.build_bank(args.per_shape, args.resolution, seed=args.seed, device=args.device,
                                  chunk=512 if args.device != "cpu" else 128, progress=not args.no_progress,
                                  overhead_elevation=overhead)
    log.info("rendered %d geometry views in %.1fs", len(bank), time.time() - t0)
    _atomic_save(dict(alpha=bank.alpha, shade=bank.shade, shape_idx=bank.shape_idx, view_idx=bank.view_idx,
                      resolution=bank.resolution, elevation_deg=bank.elevation_deg), path)
    return bank


def evaluate_samples(prior, n: int, device, seed: int = 0, steps: int = 50, guidance_scale: float = 3.0,
                     batch: int = 100) -> dict:
    """Sample n images over the shape × colour grid (view words cycling) and score them with the procedural matcher."""
    from fastdream.eval.procedural import COLOR_NAMES, SHAPES, ReferenceBank, classify_samples
    from fastdream.priors.shapes_data import VIEWS, caption
    combos = [(s, c) for s in SHAPES for c in COLOR_NAMES]
    prompts, truth = [], []
    for i in range(n):
        s, c = combos[(i * 7) % len(combos)] if n < len(combos) else combos[i % len(combos)]
        view = VIEWS[i % 3] if i % 4 else None
        prompts.append(caption(s, c, view))
        truth.append((SHAPES.index(s), COLOR_NAMES.index(c)))
    gen = torch.Generator(device=device).manual_seed(seed)
    images = torch.cat([prior.sample(prompts[i:i + batch], steps=steps, guidance_scale=guidance_scale, generator=gen)
                        for i in range(0, n, batch)])
    ref = ReferenceBank(prior.resolution, device=device)
    ps, pc = classify_samples(images, ref)
    ts = torch.tensor([t[0] for t in truth], device=ps.device)
    tc = torch.tensor([t[1] for t in truth], device=pc.device)
    return {"n": n, "steps": steps, "guidance_scale": guidance_scale,
            "accuracy": float(((ps == ts) & (pc == tc)).float().mean()),
            "shape_accuracy": float((ps == ts).float().mean()), "color_accuracy": float((pc == tc).float().mean()),
            "images": images.cpu(), "prompts": prompts}


def evaluate_folder(args) -> dict:
    """Score the prior saved in args.out with the procedural matcher (no training)."""
    from fastdream.priors.model import ShapesPrior
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = ShapesPrior.from_pretrained(args.out, device=args.device)
    t0 = time.time()
    res = evaluate_samples(prior, args.eval_samples or 100, torch.device(args.device), seed=args.seed,
                           steps=args.sample_steps, guidance_scale=args.guidance_scale)
    res.pop("images"), res.pop("prompts")
    res["wall_s"] = round(time.time() - t0, 1)
    return res


def warmup_cosine_lr(base: float, step: int, steps: int, elapsed: float, budget: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine from base to 0.1 base over the steps (or over the time budget
    in seconds, whichever is nearer; budget 0 = none). Shared by both prior training scripts."""
    progress = step / max(steps, 1)
    if budget > 0:
        progress = max(progress, elapsed / budget)
    return base * min(1.0, (step + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0))))


@torch.no_grad()
def ema_update(ema_params, params, step: int, rate: float) -> None:
    """EMA of `params` into `ema_params`, with the usual warm-up: decay min(rate, (1 + step) / (10 + step))."""
    decay = min(rate, (1 + step) / (10 + step))
    for pe, pm in zip(ema_params, params):
        pe.lerp_(pm, 1 - decay)


def _save_state(prior, ema, opt, step: int, args, path: Path) -> None:
    _atomic_save({"model": prior.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                  "args": vars(args)}, path)


def _restore(prior, ema, opt, path: Path, dev, args) -> int:
    """Load a training checkpoint into prior, ema and opt; the step it was saved at."""
    ck = torch.load(path, map_location=dev)
    check_resumable(ck.get("args", {}), args)
    prior.load_state_dict(ck["model"])
    ema.load_state_dict(ck["ema"])
    opt.load_state_dict(ck["opt"])
    log.info("resumed at step %d", ck["step"])
    return ck["step"]


def _train_step(prior, ema, opt, params, bank, args, step: int, dev) -> float:
    """One denoising step on a fresh batch (seeded by step, so a resume draws the same data), then the EMA."""
    from fastdream.priors import shapes_data
    from fastdream.priors.model import NUM_TRAIN_TIMESTEPS

    g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    images, caps, _, _ = shapes_data.sample_batch(bank, args.batch, g)
    drop = torch.rand(args.batch, generator=g) < args.text_dropout
    caps = ["" if d else c for c, d in zip(caps, drop.tolist())]
    t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (args.batch,), generator=g).to(dev)
    noise = torch.randn(images.shape, generator=g).to(dev)
    a = prior.alphas_cumprod[t][:, None, None, None]
    xt = a.sqrt() * (images * 2 - 1) + (1 - a).sqrt() * noise
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16 and dev.type == "cuda"):
        pred = prior.unet(xt, t, encoder_hidden_states=prior.encode(caps)).sample
    loss = torch.nn.functional.mse_loss(pred.float(), noise)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    ema_update(ema.parameters(), prior.parameters(), step, args.ema)
    return loss.item()


def _finish(ema, args, out: Path, state_dir: Path, dev, info: dict) -> dict:
    """Save the EMA weights as the prior, score samples when asked, write train_info.json."""
    ema.save_pretrained(out)
    write_model_recipe(out, args)
    info.update(freeze_text=args.freeze_text, device=str(dev),
                device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu")
    if args.eval_samples:
        ema.eval()
        res = evaluate_samples(ema, args.eval_samples, dev, steps=args.sample_steps,
                               guidance_scale=args.guidance_scale)
        torch.save({"images": res.pop("images"), "prompts": res.pop("prompts")}, state_dir / "samples.pt")
        info["eval"] = res
        log.info("matcher on %d samples: %s", args.eval_samples, res)
    with open(state_dir / "train_info.json", "w") as f:
        json.dump(info, f, indent=1)
    return info


def _initial_prior(args):
    """A random prior, or with --init-from a saved one (fp32, trainable) at the resolution this run trains at."""
    from fastdream.priors.model import ShapesPrior
    if not args.init_from:
        return ShapesPrior.create(args.resolution, seed=args.seed)
    try:
        prior = ShapesPrior.from_pretrained(args.init_from)
    except Exception as e:  # diffusers, transformers and safetensors each raise their own kinds for a broken folder
        raise SystemExit(f"cannot start from {args.init_from}: {type(e).__name__}: {e}".splitlines()[0]) from None
    if prior.resolution != args.resolution:
        raise SystemExit(f"cannot start from {args.init_from}: it is a {prior.resolution}x{prior.resolution} prior, "
                         f"this run trains at --resolution {args.resolution}")
    return prior.train().requires_grad_(True)


def train(args) -> dict:
    from tqdm import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    state_dir = out / ".train"
    dev = torch.device(args.device)
    prior = _initial_prior(args).to(dev)  # before any setup work, so a bad --init-from is refused at once
    state_dir.mkdir(parents=True, exist_ok=True)
    bank = _load_bank(args, state_dir).to(dev)
    prior.text_encoder.requires_grad_(not args.freeze_text)
    params = [p for p in prior.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    ema = copy.deepcopy(prior).requires_grad_(False)
    ckpt_path = state_dir / "checkpoint.pt"
    start = _restore(prior, ema, opt, ckpt_path, dev, args) if args.resume and ckpt_path.exists() else 0
    n_params = sum(p.numel() for p in prior.unet.parameters()), sum(p.numel() for p in prior.text_encoder.parameters())
    log.info("unet %.2fM params, text encoder %.2fM params", n_params[0] / 1e6, n_params[1] / 1e6)
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, disable=args.no_progress, desc="train")
    t0, loss_avg, done = time.time(), None, start
    for step in bar:
        elapsed = time.time() - t0
        if args.time_limit > 0 and elapsed > args.time_limit:
            log.info("time limit reached at step %d", step)
            _save_state(prior, ema, opt, step, args, ckpt_path)
            break
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(args.lr, step, args.steps, elapsed, args.time_limit, warmup=200)
        loss = _train_step(prior, ema, opt, params, bank, args, step, dev)
        loss_avg = loss if loss_avg is None else 0.98 * loss_avg + 0.02 * loss
        done = step + 1
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss_avg:.4f}")
        if (step + 1) % args.ckpt_every == 0 or step + 1 == args.steps:
            _save_state(prior, ema, opt, step + 1, args, ckpt_path)
    info = {"steps": done, "batch": args.batch, "wall_s_this_session": round(time.time() - t0, 1),
            "loss_ema": loss_avg}
    return _finish(ema, args, out, state_dir, dev, info)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parser().parse_args(argv)
    if args.eval_only:
        info = evaluate_folder(args)
    else:
        info = train(args)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
