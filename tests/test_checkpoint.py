"""Checkpoint I/O: atomic writes, safe loading, load_run."""
import os

import pytest
import torch

from fastdream.checkpoint import checkpoint_path, load_checkpoint, load_run, save_checkpoint
from fastdream.errors import UserError
from fastdream.training.trainer import Trainer

from tests.helpers.train_utils import tiny_config


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_atomic_save_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"format": "fastdream", "field": {"w": torch.ones(2)}, "step": 1, "config": {}}, p)
    save_checkpoint({"format": "fastdream", "field": {"w": torch.zeros(2)}, "step": 2, "config": {}}, p)
    assert sorted(os.listdir(p.parent)) == ["last.pt"]
    state = load_checkpoint(p)
    assert state["step"] == 2 and torch.equal(state["field"]["w"], torch.zeros(2))


def test_unsafe_corrupt_and_foreign_files_are_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"format": "fastdream", "field": Evil()}, p)
    with pytest.raises(UserError, match="refused: it holds Python objects") as info:
        load_checkpoint(p)  # weights_only=True refuses to run code
    assert "weights_only" not in str(info.value)  # and we do not pass on torch's advice to load it anyway
    p.write_bytes(b"not a zip file at all")
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(p)
    torch.save({"weights": torch.ones(1)}, p)
    with pytest.raises(UserError, match="not a fastdream checkpoint"):
        load_checkpoint(p)
    with pytest.raises(UserError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_load_run_roundtrip_and_errors(tmp_path):
    cfg = tiny_config(**{"train.iters": 2, "train.checkpoint_every": 0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.train()
    run = load_run(tmp_path / "run")
    assert run.step == 2 and run.prompt == "a sphere" and run.config.render.width == 16
    for a, b in zip(run.field.state_dict().values(), trainer.field.state_dict().values()):
        assert torch.equal(a, b.cpu())
    assert not run.field.training
    x = torch.rand(64, 3) * 2 - 1
    torch.testing.assert_close(run.field.density(x), trainer.field.density(x).detach())
    with pytest.raises(UserError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no checkpoint"):
        load_run(tmp_path / "empty")
    checkpoint_path(tmp_path / "run").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="corrupt"):
        load_run(tmp_path / "run")


def test_a_checkpoint_from_before_the_restructure_still_loads(tmp_path):
    """Before the layers, config.field.options was a plain dict holding only the keys a preset set; the scene
    entries were the same three. Such a checkpoint loads into today's typed options with the same field."""
    cfg = tiny_config(**{"train.iters": 1, "train.checkpoint_every": 0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.train()
    path = checkpoint_path(tmp_path / "run")
    state = load_checkpoint(path)
    defaults = type(cfg.field.options)()
    state["config"]["field"]["options"] = {k: v for k, v in state["config"]["field"]["options"].items()
                                           if getattr(defaults, k) != v}  # the old, sparse form
    save_checkpoint(state, path)
    run = load_run(tmp_path / "run")
    assert run.config.field.options == cfg.field.options
    x = torch.rand(32, 3) * 2 - 1
    torch.testing.assert_close(run.field.density(x), trainer.field.density(x).detach())


def test_a_newer_checkpoint_version_says_to_upgrade(tmp_path):
    p = tmp_path / "last.pt"
    torch.save({"format": "fastdream", "field": {}, "version": 99, "step": 0}, p)
    with pytest.raises(UserError, match="newer fastdream"):
        load_checkpoint(p)
@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"hello, I am a text file\n", "corrupt or not a fastdream checkpoint"),
    ({"format": "fastdream", "field": {}, "config": {}}, "its step is None"),
    ({"format": "fastdream", "field": {}, "config": {}, "step": "7"}, "its step is '7'"),
    ({"format": "fastdream", "field": {}, "step": 3}, "holds no config"),
    ({"format": "fastdream", "field": [], "step": 3, "config": {}}, "not a fastdream checkpoint"),
])
def test_damaged_checkpoints_are_one_line_errors(tmp_path, content, message):
    p = tmp_path / "last.pt"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        torch.save(content, p)
    with pytest.raises(UserError, match=message) as info:
        load_checkpoint(p)
    assert "\n" not in str(info.value)


def test_a_checkpoint_without_random_state_cannot_be_resumed(tmp_path):
    cfg = tiny_config(**{"train.iters": 1})
    Trainer(cfg, tmp_path / "run", progress=False).train()
    state = load_checkpoint(checkpoint_path(tmp_path / "run"))
    del state["rng"]
    save_checkpoint(state, checkpoint_path(tmp_path / "run"))
    with pytest.raises(UserError, match="does not match this run"):
        Trainer(tiny_config(**{"train.iters": 2}), tmp_path / "run", resume=True, progress=False)
