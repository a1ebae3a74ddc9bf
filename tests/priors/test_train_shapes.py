"""The pixel prior's training script on a tiny budget: the model folder declares the caption rule its data used, and
a resume under another rule is refused."""
import json

import pytest

from fastdream.config import make_config
from fastdream.guidance import kinds
from fastdream.priors import train_shapes

TINY = ["--device", "cpu", "--threads", "1", "--steps", "2", "--batch", "2", "--per-shape", "2", "--ckpt-every", "1",
        "--no-progress"]


def test_the_folder_declares_its_captions_view_rule(tmp_path):
    out = tmp_path / "model"
    assert train_shapes.main(["--out", str(out), *TINY, "--overhead-elevation", "20"]) == 0
    declared = json.loads((out / kinds.MODEL_RECIPE_FILE).read_text())["recipe"]
    assert declared == {"guidance.overhead_elevation": 20.0, "guidance.front_azimuth_range": 45.0}
    assert kinds.model_recipe(str(out)) == declared
    assert make_config("fast", **{"guidance.spec": str(out)}).guidance.overhead_elevation == 20.0
    with pytest.raises(SystemExit, match="cannot resume: .*--overhead-elevation 20, this run asks for 60"):
        train_shapes.main(["--out", str(out), *TINY, "--resume"])
