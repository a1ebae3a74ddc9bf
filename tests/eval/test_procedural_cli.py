"""`fastdream eval --procedural`: offline shape × colour retrieval of runs, through the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from fastdream.cli import main
from fastdream.eval.views import RenderedRun

SMALL = ["render.width=16", "render.height=16", "render.render_step_size=0.05", "render.grid_resolution=16",
         "train.eval_resolution=16", "train.eval_views=2", "train.log_every=1",
         "field.options={log2_hashmap_size: 12, n_levels: 4, finest_resolution: 64, hidden_dim: 16, "
         "n_hidden_layers: 1}"]


def test_procedural_eval_of_a_real_run_writes_json(tmp_path, capsys):
    """A real (tiny, 2-step) oracle run of an orange sphere, rendered by the real renderer, scored by the CLI."""
    run = tmp_path / "an_orange_sphere-s0"
    assert main(["generate", "an orange sphere", "--guidance", "target:sphere", "--out", str(run), "--device", "cpu",
                 "--iters", "2", "--no-export", *SMALL]) == 0
    out = tmp_path / "eval" / "proc.json"
    assert main(["eval", str(run), "--procedural", "--views", "2", "--size", "16", "--device", "cpu",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "R@1" in printed and "an orange sphere" in printed
    report = json.loads(out.read_text())
    s = report["summary"]
    assert s["n"] == 1
    for key in ("r_at_1", "shape_accuracy", "color_accuracy"):
        assert 0.0 <= s[key] <= 1.0
    (r,) = report["runs"]
    assert (r["true_shape"], r["true_color"]) == ("sphere", "orange") and r["rank"] >= 1 and r["seed"] == 0
    assert report["protocol"]["views"] == 2 and report["protocol"]["size"] == 16


def test_procedural_eval_recovers_exact_renders(tmp_path, monkeypatch, capsys):
    """Runs whose views ARE the procedural ground truth are retrieved exactly; a prompt naming no shape is skipped."""
    from fastdream.cameras import pose_spherical
    from fastdream.eval import views
    from fastdream.priors.shapes_data import compose, render_geometry
    from fastdream.procedural import COLORS

    prompts = {"a": "a red cube", "b": "a blue cone, side view", "c": "a cat"}

    def fake_render(run_dir, protocol, device="cpu"):
        n = protocol.views
        c2w = pose_spherical(torch.full((n,), 1.75), torch.full((n,), protocol.elevation),
                             torch.tensor(protocol.azimuths(), dtype=torch.float32))
        prompt = prompts[Path(run_dir).name]
        words = prompt.replace(",", "").split()
        shape, color = (words[2], words[1]) if prompt != "a cat" else ("sphere", "white")
        alpha, shade = render_geometry(shape, c2w, torch.full((n,), 55.0), torch.full((n, 3), 10.0),
                                       torch.full((n,), 0.45), protocol.size)
        img = compose(alpha, shade, torch.tensor(COLORS[color]).expand(n, 3), torch.ones(n, 3),
                      torch.zeros(n, dtype=torch.bool))
        return RenderedRun(run_dir=Path(run_dir), prompt=prompt, seed=0,
                           images={"color": img.permute(0, 2, 3, 1)}, c2w=c2w, fovy=55.0)

    monkeypatch.setattr(views, "render_run", fake_render)
    for name in prompts:
        (tmp_path / name).mkdir()
    out = tmp_path / "r.json"
    assert main(["eval", *(str(tmp_path / n) for n in prompts), "--procedural", "--views", "2", "--size", "16",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["summary"] == {"n": 2, "r_at_1": 1.0, "shape_accuracy": 1.0, "color_accuracy": 1.0}
    assert [r["rank"] for r in report["runs"]] == [1, 1]
    assert [s["prompt"] for s in report["skipped"]] == ["a cat"]
    assert "skipped 1 run" in capsys.readouterr().out


def test_eval_needs_clip_or_procedural(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--clip" in err and "--procedural" in err and "Traceback" not in err
