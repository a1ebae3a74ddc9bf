"""Small configs for trainer tests on CPU."""
from fastdream.config import make_config


def tiny_config(**overrides):
    base = {
        "guidance.spec": "target:sphere", "train.device": "cpu", "train.iters": 6, "render.width": 16,
        "render.height": 16, "render.render_step_size": 0.05, "render.grid_resolution": 16,
        "render.grid_update_every": 4, "render.grid_warmup_steps": 8, "train.log_every": 1,
        "train.checkpoint_every": 3, "train.preview_every": 0, "train.eval_every": 0, "train.eval_resolution": 16,
        "train.export": False, "train.eval_views": 2,
        "field.options": {"log2_hashmap_size": 12, "n_levels": 4, "finest_resolution": 64, "hidden_dim": 16,
                          "n_hidden_layers": 1},
    }
    base.update(overrides)
    return make_config("default", prompt="a sphere", **base)
