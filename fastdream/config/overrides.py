"""Configs as data: nested dicts (YAML, checkpoints) to and from the dataclass tree, and dot-list overrides."""
from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from fastdream.config.schema import Config
from fastdream.errors import UserError
from fastdream.files import atomic_write

__all__ = ["to_dict", "from_dict", "apply_overrides", "load_yaml", "save_yaml"]


def to_dict(cfg) -> dict:
    """Plain nested dict (tuples become lists) for YAML and checkpoints."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(cfg)


def from_dict(data: dict, base: Config | None = None) -> Config:
    """A Config from a (possibly partial) nested dict on top of `base` (default: the defaults)."""
    cfg = copy.deepcopy(base) if base is not None else Config()
    _merge(cfg, data, "")
    return cfg


def _merge(obj, data: dict, prefix: str) -> None:
    if not isinstance(data, dict):
        raise UserError(f"config: {prefix.rstrip('.') or 'the file'} must be a mapping, got {data!r}")
    names = {f.name: f for f in fields(obj)}
    for key, value in data.items():
        if key not in names:
            raise UserError(f"config: unknown key {prefix}{key}; known keys here: {', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{prefix}{key}.")
        else:
            setattr(obj, key, _coerce(f"{prefix}{key}", current, _numbers(value, str(names[key].type))))


# a number as a person writes it: 1e-3, 1E4, .5, 2., -3, 1_000 (YAML 1.1 reads the first two and the last as text)
_NUMBER = re.compile(r"[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _numbers(value, annotation: str):
    """Text that spells a number becomes one where the field holds numbers (annotation: the field's type)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_numbers(v, annotation) for v in value)
    if not isinstance(value, str) or "str" in annotation or not _NUMBER.fullmatch(value.strip()):
        return value
    number = float(value.strip())
    if "float" in annotation:
        return number
    if "int" in annotation and number.is_integer() and abs(number) < 2**63:
        return int(number)
    return value


def _coerce(name: str, current, value):
    """Match the type of the current value (tuples stay tuples, ints may become floats)."""
    if isinstance(current, tuple) and isinstance(value, (list, tuple)):
        return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) and isinstance(current[0], float)
                     else v for v in value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def apply_overrides(cfg: Config, overrides: list[str] | dict[str, Any]) -> Config:
    """Apply `section.key=value` overrides (values parsed as YAML scalars/lists) in place; returns cfg."""
    items = overrides.items() if isinstance(overrides, dict) else []
    if not isinstance(overrides, dict):
        parsed = []
        for item in overrides:
            if "=" not in item:
                raise UserError(f"override {item!r} must look like section.key=value (e.g. train.iters=2000)")
            key, text = item.split("=", 1)
            try:
                value = yaml.safe_load(text) if text.strip() else ""
            except yaml.YAMLError as exc:
                raise UserError(f"override {item!r}: cannot parse the value: {exc}") from None
            parsed.append((key.strip(), value))
        items = parsed
    for key, value in items:
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        _merge(cfg, nested, "")
    return cfg


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; UserError if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections (guidance:, train:, ...)")
    return data


def save_yaml(cfg: Config, path: str | Path) -> None:
    """Write the resolved config (atomically)."""
    with atomic_write(path, "w") as fh:
        fh.write(yaml.safe_dump(to_dict(cfg), sort_keys=False))
