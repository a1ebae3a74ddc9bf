"""CLIP loading and embedding with a tiny random transformers CLIP saved offline, and `fastdream eval` end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.helpers.eval_fakes import make_tiny_clip
from fastdream import cli
from fastdream.errors import UserError
from fastdream.eval import r_precision
from fastdream.eval.clip import load_clip
from fastdream.eval.views import RenderedRun

PROMPTS = ["a red cube", "a blue sphere", "a green cone"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny ops: threads only add barrier waits


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_embeddings_match_transformers_pipeline(tiny_clip_dir):
    from transformers import CLIPModel, CLIPTokenizer

    clip = load_clip(str(tiny_clip_dir))
    assert clip.image_size == 32 and clip.mean == pytest.approx((0.5, 0.4, 0.3))
    txt = clip.embed_texts(PROMPTS)
    assert txt.shape == (3, 16) and torch.allclose(txt.norm(dim=1), torch.ones(3), atol=1e-6)

    model = CLIPModel.from_pretrained(str(tiny_clip_dir)).eval()
    tok = CLIPTokenizer.from_pretrained(str(tiny_clip_dir))
    with torch.no_grad():
        out = model.get_text_features(**tok(PROMPTS, padding=True, return_tensors="pt"))
    ref = F.normalize(out if isinstance(out, torch.Tensor) else out.pooler_output, dim=1)
    torch.testing.assert_close(txt, ref, atol=1e-5, rtol=1e-5)

    images = torch.rand(4, 32, 32, 3)
    img = clip.embed_images(images)
    # CLIPProcessor's normalisation of an image already at the input size: (x - mean) / std per channel
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    pixels = (images.permute(0, 3, 1, 2) - mean) / std
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels)
    ref = F.normalize(out if isinstance(out, torch.Tensor) else out.pooler_output, dim=1)
    torch.testing.assert_close(img, ref, atol=1e-5, rtol=1e-5)
    # larger renders are resized to the model's input size
    assert clip.embed_images(torch.rand(2, 48, 48, 3)).shape == (2, 16)
    with pytest.raises(ValueError, match="images must be a tensor"):
        clip.embed_images(torch.rand(2, 3, 32, 32))


def test_missing_weights_give_one_clear_user_error(tmp_path):
    with pytest.raises(UserError, match="could not be loaded") as exc:
        load_clip("fastdream-no-such-org/no-such-clip", local_files_only=True)
    msg = str(exc.value)
    assert "\n" not in msg and "only local files" in msg and "huggingface-cli download" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="could not be loaded"):
        load_clip(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="is not a folder"):
        load_clip(str(tmp_path / "nowhere"))


def test_cli_missing_clip_prints_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    rc = cli.main(["eval", str(run), "--clip", str(tmp_path / "nowhere"), "--offline"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "could not be loaded" in err


def _fake_runs(tmp_path):
    """Three prompts x two seeds; each render is a distinct smooth random image."""
    table = {}
    for p_i, prompt in enumerate(PROMPTS):
        for seed in (0, 1):
            d = tmp_path / "runs" / f"p{p_i}-s{seed}"
            d.mkdir(parents=True)
            table[d.name] = (prompt, seed)
    return table


def test_eval_cli_end_to_end_with_tiny_clip_and_fake_renders(tiny_clip_dir, tmp_path, monkeypatch, capsys):
    from fastdream.eval import views

    table = _fake_runs(tmp_path)
    seen = []

    def fake_render(run_dir, protocol, device="cpu"):
        prompt, seed = table[Path(run_dir).name]
        g = torch.Generator().manual_seed(hash((prompt, seed)) % 2**31)
        images = {m: torch.rand(protocol.views, protocol.size, protocol.size, 3, generator=g) for m in protocol.modes}
        seen.append((Path(run_dir).name, protocol.views, protocol.elevation, protocol.size, device))
        return RenderedRun(run_dir=Path(run_dir), prompt=prompt, seed=seed, images=images)

    monkeypatch.setattr(views, "render_run", fake_render)
    out = tmp_path / "report.json"
    run_dirs = [str(tmp_path / "runs" / n) for n in table]
    rc = cli.main(["eval", *run_dirs, "--clip", str(tiny_clip_dir), "--views", "3", "--size", "40",
                   "--elevation", "20", "--device", "cpu", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "R@1 mean ± s.e.m." in printed and "textureless" in printed
    assert [s[1:] for s in seen] == [(3, 20.0, 40, "cpu")] * 6
    report = json.loads(out.read_text())
    assert report["candidates"]["count"] == 3 and report["protocol"]["views"] == 3

    # recompute every run's R@1 from the CLIP embeddings directly
    clip = load_clip(str(tiny_clip_dir))
    txt = clip.embed_texts(PROMPTS)
    for row in report["runs"]:
        rendered = fake_render(row["run_dir"], views.ViewProtocol(views=3, size=40, elevation=20), "cpu")
        for mode in ("color", "textureless"):
            img = clip.embed_images(rendered.images[mode])
            expect = r_precision(img, txt, torch.full((3,), PROMPTS.index(row["prompt"])))
            assert row["r_at_1"][str(tiny_clip_dir)][mode] == pytest.approx(expect)
    for res in report["results"]:
        per_seed = [sum(r["r_at_1"][res["clip"]][res["mode"]] for r in report["runs"] if r["seed"] == s) / 3
                    for s in (0, 1)]
        assert res["r_at_1_mean"] == pytest.approx(sum(per_seed) / 2)
        assert res["r_at_1_sem"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2)

    # a candidate file (JSON dict of lists, like the DreamFusion gallery file) with one candidate per run prompt only
    cand = tmp_path / "cands.json"
    cand.write_text(json.dumps({"set": ["a red cube"]}))
    rc = cli.main(["eval", run_dirs[0], run_dirs[1], "--clip", str(tiny_clip_dir), "--views", "2", "--size", "32",
                   "--prompts", str(cand), "--modes", "color", "--json", str(out)])
    report = json.loads(out.read_text())
    assert rc == 0 and report["candidates"] == {"source": str(cand), "count": 1}
    [res] = report["results"]
    assert res["r_at_1_mean"] == 1.0 and res["n_seeds"] == 2  # a single candidate is always retrieved
