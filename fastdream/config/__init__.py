"""Run configuration: the dataclass tree, its validation, presets, YAML files and dot-list overrides."""
from fastdream.config.overrides import apply_overrides, from_dict, load_yaml, save_yaml, to_dict
from fastdream.config.presets import PRESETS, make_config
from fastdream.config.schema import *  # noqa: F401,F403
from fastdream.config.schema import __all__ as _schema_all

__all__ = [*_schema_all, "PRESETS", "make_config", "to_dict", "from_dict", "load_yaml", "save_yaml",
           "apply_overrides"]
