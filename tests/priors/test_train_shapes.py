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


def test_retraining_keeps_the_folders_other_recipe_keys(tmp_path):
    """The elevation classifier outlives a UNet retrain, so its scale in fastdream.json must too."""
    out = tmp_path / "model"
    out.mkdir()
    (out / kinds.MODEL_RECIPE_FILE).write_text(json.dumps({"recipe": {"guidance.elevation_guidance": 8.0,
                                                                       "guidance.overhead_elevation": 60.0}}))
    assert train_shapes.main(["--out", str(out), *TINY, "--overhead-elevation", "25"]) == 0
    assert kinds.model_recipe(str(out)) == {"guidance.elevation_guidance": 8.0, "guidance.overhead_elevation": 25.0,
                                            "guidance.front_azimuth_range": 45.0}


def test_init_from_starts_at_the_saved_weights(tmp_path):
    """--init-from loads a saved prior's weights, not a random init: at a zero learning rate they come out
    unchanged."""
    import torch
    from fastdream.priors.model import ShapesPrior

    base = tmp_path / "base"
    # another seed than the tuned run's, so a random init there could not come out equal
    assert train_shapes.main(["--out", str(base), *TINY, "--seed", "3"]) == 0
    tuned = tmp_path / "tuned"
    assert train_shapes.main(["--out", str(tuned), *TINY, "--init-from", str(base), "--lr", "0"]) == 0
    a, b = ShapesPrior.from_pretrained(base), ShapesPrior.from_pretrained(tuned)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)
    # and every weight it loads is trained (from_pretrained hands back a frozen model)
    args = train_shapes._parser().parse_args(["--out", str(tmp_path / "x"), "--init-from", str(base)])
    assert all(p.requires_grad for p in train_shapes._initial_prior(args).parameters())


def test_init_from_refuses_broken_weights_in_one_line(tmp_path):
    base = tmp_path / "base"
    assert train_shapes.main(["--out", str(base), *TINY]) == 0
    for weights in (base / "text_encoder").glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    out = tmp_path / "tuned"
    with pytest.raises(SystemExit, match="^cannot start from .*: [A-Za-z]+Error: [^\n]*$"):
        train_shapes.main(["--out", str(out), *TINY, "--init-from", str(base)])
    assert not out.exists()  # refused before any setup work


def test_init_from_refuses_bad_folders_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="cannot start from .*missing unet/"):
        train_shapes.main(["--out", str(tmp_path / "m"), *TINY, "--init-from", str(tmp_path)])
    small = tmp_path / "small"
    assert train_shapes.main(["--out", str(small), *TINY, "--resolution", "16"]) == 0
    with pytest.raises(SystemExit, match="it is a 16x16 prior, this run trains at --resolution 32"):
        train_shapes.main(["--out", str(tmp_path / "m2"), *TINY, "--init-from", str(small)])
