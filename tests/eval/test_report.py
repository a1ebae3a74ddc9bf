"""The R@1 report over runs and seeds, with fake renders and a fake CLIP whose answers are known."""
from __future__ import annotations

import math

import pytest

from tests.helpers.eval_fakes import SCENARIO, VOCAB, FakeClip, fake_render_factory
from fastdream.errors import UserError
from fastdream.eval.report import evaluate_runs, format_table, mean_sem
from fastdream.config import make_config
from fastdream.eval.views import ViewProtocol, seed_from_run


def test_mean_sem():
    assert mean_sem([0.5]) == (0.5, None)
    m, s = mean_sem([1.0, 0.5])
    assert m == pytest.approx(0.75) and s == pytest.approx(0.25)
    m, s = mean_sem([0.0, 0.5, 1.0, 0.25])
    sd = math.sqrt(sum((v - 0.4375) ** 2 for v in [0.0, 0.5, 1.0, 0.25]) / 3)
    assert m == pytest.approx(0.4375) and s == pytest.approx(sd / 2)
    with pytest.raises(ValueError):
        mean_sem([])


def _result(report, clip, mode):
    [r] = [r for r in report["results"] if r["clip"] == clip and r["mode"] == mode]
    return r


def test_report_over_seeds_with_run_prompts_as_candidates():
    render = fake_render_factory(SCENARIO)
    protocol = ViewProtocol(views=2, size=8)
    report = evaluate_runs(list(SCENARIO), [FakeClip("a"), FakeClip("b")], protocol, render=render)
    assert render.calls == list(SCENARIO)  # each run rendered once, whatever the number of CLIP models
    assert report["candidates"]["count"] == 2
    per_run = {r["run_dir"]: r["r_at_1"]["a"]["color"] for r in report["runs"]}
    assert per_run == {"cube-s0": 1.0, "sphere-s0": 1.0, "cube-s1": 0.5, "sphere-s1": 0.5}
    for clip in ("a", "b"):
        color = _result(report, clip, "color")
        assert color["per_seed"] == {"0": 1.0, "1": 0.5}
        assert color["r_at_1_mean"] == pytest.approx(0.75)
        assert color["r_at_1_sem"] == pytest.approx(0.25)
        assert color["n_seeds"] == 2 and color["n_runs"] == 4
        assert {p["prompt"]: (p["mean"], p["n_seeds"]) for p in color["per_prompt"]} == {
            "a red cube": (0.75, 2), "a blue sphere": (0.75, 2)}
        # textureless renders look like a torus, which is no candidate: equal similarity to both, a tie, a miss
        tl = _result(report, clip, "textureless")
        assert tl["r_at_1_mean"] == 0.0 and tl["r_at_1_sem"] == 0.0
    table = format_table(report)
    assert "0.750 ± 0.250" in table and "textureless" in table and "a blue sphere" in table


def test_report_with_candidate_file_and_single_seed():
    render = fake_render_factory(SCENARIO)
    protocol = ViewProtocol(views=2, size=8, modes=("color",))
    report = evaluate_runs(["cube-s1", "sphere-s1"], [FakeClip()], protocol, candidates=VOCAB + ["a red cube"],
                           candidates_source="vocab", render=render)
    assert report["candidates"] == {"source": "vocab", "count": 4}  # duplicates dropped
    r = _result(report, "fake-clip", "color")
    # sphere-s1's first view now retrieves the cone caption (a clean miss), cube-s1 as before
    assert r["per_seed"] == {"1": 0.5} and r["r_at_1_sem"] is None
    assert "0.500 ± n/a" in format_table(report)


def test_run_prompt_missing_from_candidates_is_a_user_error():
    render = fake_render_factory(SCENARIO)
    with pytest.raises(UserError, match="not among the 2 candidate captions"):
        evaluate_runs(["cube-s0"], [FakeClip()], ViewProtocol(views=2, size=8), candidates=VOCAB[1:3],
                      render=render)


def test_protocol_validation_and_config_lookup(tmp_path):
    with pytest.raises(ValueError, match="views"):
        ViewProtocol(views=0)
    with pytest.raises(ValueError, match="modes"):
        ViewProtocol(modes=("normals",))
    with pytest.raises(ValueError, match="elevation"):
        ViewProtocol(elevation=90)
    assert ViewProtocol(views=4).azimuths() == [0.0, 90.0, 180.0, 270.0]
    cfg = make_config(prompt="a cube", **{"train.seed": 3})
    assert seed_from_run(cfg, tmp_path / "x-s9") == 3
    assert seed_from_run(None, tmp_path / "a_cube-s9") == 9
    assert seed_from_run(None, tmp_path / "a_cube") is None
