"""bench/recipe_truth.py's ceiling rows: the oracle trained under a builtin model's own fast recipe. Its command must
resolve to that recipe's config in everything but what scores the renders, or the ceiling measures another recipe."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from fastdream.config import make_config


def _args(**kw):
    base = {"only": "ceiling", "shapes": "cube,torus", "colors": "red", "model": "builtin:shapes", "iters": None}
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("model", ["builtin:shapes", "builtin:shapes-sd"])
def test_ceiling_run_resolves_to_the_builtin_recipe_with_the_oracle_in_place_of_the_prior(model):
    from bench import recipe_truth
    todo = recipe_truth.jobs(_args(model=model))
    assert [name for name, _, _ in todo] == ["ceiling-cube", "ceiling-torus"]
    name, prompt, extra = todo[0]
    assert extra[:2] == ["--guidance", "target:cube"]
    ceiling = make_config("fast", overrides=extra[2:], **{"guidance.spec": "target:cube"})
    builtin = make_config("fast", **{"guidance.spec": model})
    assert ceiling.guidance.spec == "target:cube"
    assert ceiling.guidance.elevation_guidance == 0 and ceiling.guidance.elevation_guidance_end is None  # no classifier
    for part in ("camera", "render", "shading", "loss", "optim", "background", "field", "train"):
        assert dataclasses.asdict(getattr(ceiling, part)) == dataclasses.asdict(getattr(builtin, part)), part
    # and the oracle's own fast recipe differs from it, so the overrides are what made them equal
    oracle = make_config("fast", **{"guidance.spec": "target:cube"})
    assert dataclasses.asdict(oracle.render) != dataclasses.asdict(builtin.render)


def test_ceiling_iters_flag_is_not_overridden_by_the_recipe_step_count():
    from bench import recipe_truth
    _, _, extra = recipe_truth.jobs(_args(iters=50))[0]
    assert not any(a.startswith("train.iters=") for a in extra)


def test_set_overrides_reach_every_generate_command_after_the_jobs_own(tmp_path, monkeypatch):
    from bench import recipe_truth
    seen = []

    class Done:
        returncode = 0

    monkeypatch.setattr(recipe_truth.subprocess, "run", lambda cmd, **kw: (seen.append(cmd), Done())[1])
    args = argparse.Namespace(**{**vars(_args()), "out": str(tmp_path), "seed": 0, "jobs": 1, "threads": 1,
                                 "set": ["guidance.elevation_guidance_end=32"]})
    for job in recipe_truth.jobs(args):
        assert recipe_truth.train(job, args)["rc"] == 0
    assert len(seen) == 2 and all(cmd[-1] == "guidance.elevation_guidance_end=32" for cmd in seen)
    make_config("fast", overrides=seen[0][seen[0].index("--guidance") + 2:])  # every override is a valid one
    with pytest.raises(SystemExit):
        recipe_truth.main(["--out", str(tmp_path), "--set", "no-equals-sign"])


def test_a_table_whose_runs_all_refuse_to_start_ends_in_one_line_naming_why(tmp_path, capsys):
    """A misspelt --set key fails every run: the table says so and why, instead of a traceback from eval."""
    from bench import recipe_truth
    rc = recipe_truth.main(["--out", str(tmp_path / "runs"), "--results", str(tmp_path / "res"), "--only", "builtin",
                            "--shapes", "cube", "--colors", "red", "--jobs", "1", "--set", "train.batch_size=2"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert "red-cube: exit 2" in out and "unknown key train.batch_size" in out
    assert err.strip().splitlines() == [f"recipe_truth: every run failed to train (see {tmp_path / 'runs'}/*.log)"]


def test_a_row_passes_only_with_the_truth_bars_r1_and_the_validator():
    from bench.recipe_truth import passed_and_failures
    bars_ok, bars_bad = {"passed": True, "failures": []}, {"passed": False, "failures": ["off-surface 7.4% > 5%"]}
    assert passed_and_failures(bars_ok, 1, 0) == {"passed": True, "failures": []}
    assert passed_and_failures(bars_ok, None, None)["passed"]  # an oracle row; the validator could not run
    assert passed_and_failures(bars_ok, 2, 0) == {"passed": False, "failures": ["R@1 ranked it 2"]}
    assert passed_and_failures(bars_ok, 1, 3) == {"passed": False, "failures": ["3 glTF validator errors"]}
    assert passed_and_failures(bars_bad, 2, 0)["failures"] == ["off-surface 7.4% > 5%", "R@1 ranked it 2"]
    assert passed_and_failures({}, 1, 0) == {"passed": False, "failures": ["no truth"]}
