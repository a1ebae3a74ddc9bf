"""The latent shapes model's training script on tiny sizes: it writes a Stable Diffusion folder that SD's loader
reads, with its own scaling factor, and a resumed run ends exactly where an uninterrupted one does."""
import json

import pytest
import torch
from safetensors.torch import load_file

from fastdream.priors import train_shapes_sd

TINY = ["--threads", "1", "--per-shape", "4", "--vae-channels", "8,16,16", "--unet-channels", "16,32",
        "--text-hidden", "32", "--vae-steps", "4", "--vae-batch", "4", "--steps", "6", "--batch", "4",
        "--heldout-per-shape", "1", "--ckpt-every", "3", "--no-progress"]


def _weights(folder):
    return {sub: load_file(str(next((folder / sub).glob("*.safetensors")))) for sub in ("vae", "unet", "text_encoder")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("sd") / "model"
    assert train_shapes_sd.main(["--out", str(out), *TINY]) == 0
    return out


def test_writes_a_pipeline_folder_that_sds_loader_reads(trained):
    from fastdream.guidance.stable_diffusion import _load_parts
    index = json.loads((trained / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["vae"] == ["diffusers", "AutoencoderKL"]
    unet, vae, text, tok, sched = _load_parts(str(trained), torch.float32, local_files_only=True)
    assert vae.config.latent_channels == 4 and unet.config.sample_size * 4 == 32
    assert sched.config.prediction_type == "epsilon" and sched.config.beta_schedule == "scaled_linear"
    assert tok.model_max_length == text.config.max_position_embeddings
    assert all(t.dtype == torch.float16 for w in _weights(trained).values() for t in w.values())


def test_scaling_factor_is_measured_not_sds(trained):
    info = json.loads((trained / ".train" / "train_info.json").read_text())
    sf = json.loads((trained / "vae" / "config.json").read_text())["scaling_factor"]
    assert sf == pytest.approx(info["scaling_factor"]) and sf != 0.18215 and sf > 0
    assert info["vae_steps"] == 4 and info["unet_steps"] == 6 and "psnr_mean_db" in info["vae_heldout"]


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(trained, tmp_path, monkeypatch):
    step = train_shapes_sd._unet_step

    def stop_at_4(model, ema, opt, params, bank, args, s):
        if s == 4:
            raise KeyboardInterrupt  # after the checkpoint at step 3
        return step(model, ema, opt, params, bank, args, s)

    out = tmp_path / "model"
    monkeypatch.setattr(train_shapes_sd, "_unet_step", stop_at_4)
    with pytest.raises(KeyboardInterrupt):
        train_shapes_sd.main(["--out", str(out), *TINY])
    assert torch.load(out / ".train" / "checkpoint.pt")["step"] == 3
    monkeypatch.setattr(train_shapes_sd, "_unet_step", step)
    assert train_shapes_sd.main(["--out", str(out), *TINY, "--resume"]) == 0
    a, b = _weights(trained), _weights(out)
    for sub in a:
        for k in a[sub]:
            torch.testing.assert_close(a[sub][k], b[sub][k], rtol=0, atol=0, msg=f"{sub}.{k}")


def test_the_folder_declares_its_captions_view_rule(tmp_path):
    from fastdream.config import make_config
    from fastdream.guidance import kinds
    out = tmp_path / "model"
    assert train_shapes_sd.main(["--out", str(out), *TINY, "--overhead-elevation", "15"]) == 0
    declared = json.loads((out / kinds.MODEL_RECIPE_FILE).read_text())["recipe"]
    assert declared["guidance.overhead_elevation"] == 15.0
    # a run on the folder prompts "overhead view" above 15 degrees, as the data's captions do
    cfg = make_config("fast", **{"guidance.spec": "sd", "guidance.model": str(out)})
    assert cfg.guidance.overhead_elevation == 15.0
    # the bank was captioned by the same rule: some of its views say "overhead" (none do at the default 60)
    bank = torch.load(next((out / ".train").glob("bank_*_o15.pt")))
    from fastdream.priors.shapes_data import VIEWS
    assert (bank["view_idx"] == VIEWS.index("overhead")).any()
    # resuming under another caption rule would mix two rules in one model: refused in one line
    with pytest.raises(SystemExit, match="cannot resume: .*captioned with --overhead-elevation 15"):
        train_shapes_sd.main(["--out", str(out), *TINY, "--resume"])


def test_retraining_sets_aside_the_classifier_of_the_old_latents(tmp_path):
    """The elevation classifier read the previous VAE's latents: after a retrain it must not guide runs silently.
    It is moved aside, and the folder's declared elevation guidance then fails in one line naming the trainer."""
    from fastdream.errors import UserError
    from fastdream.guidance.stable_diffusion import StableDiffusionGuidance
    from fastdream.priors.elevation import SUBFOLDER, ElevationClassifier
    out = tmp_path / "model"
    ElevationClassifier(resolution=8, width=8, stem=8, in_channels=4).save(out)
    assert train_shapes_sd.main(["--out", str(out), *TINY]) == 0
    assert not (out / SUBFOLDER).exists() and (out / (SUBFOLDER + ".stale") / "config.json").is_file()
    g = StableDiffusionGuidance.from_pretrained(str(out), dtype=torch.float32)
    assert g.elevation_classifier is None
    with pytest.raises(UserError, match="train_elevation"):
        g.use_elevation_guidance(24.0)
    assert train_shapes_sd.set_aside_stale_classifier(out) is None  # nothing left to move
