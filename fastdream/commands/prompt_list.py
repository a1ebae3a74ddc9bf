"""Read a list of prompts from a file: plain text (one per line) or JSON (a list, or a dict of lists)."""
from __future__ import annotations

import json
from pathlib import Path

from fastdream.errors import UserError


def read_prompt_list(path: str | Path) -> list[str]:
    """Prompts from `path`, stripped, blank lines and `#` comments skipped, duplicates dropped (first kept).

    A .json file may hold a list of strings or a dict whose values are lists of strings (concatenated in order),
    like {"dreamfusion": [...]}.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"prompt file {path} does not exist")
    if not path.is_file():
        raise UserError(f"prompt file {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"prompt file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                        f"{exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"cannot read prompt file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"prompt file {path} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            items = []
            for key, value in data.items():
                if not isinstance(value, list):
                    raise UserError(f"prompt file {path}: key {key!r} must hold a list of prompts")
                items.extend(value)
        elif isinstance(data, list):
            items = data
        else:
            raise UserError(f"prompt file {path} must hold a JSON list of prompts or a dict of such lists")
        if not all(isinstance(p, str) for p in items):
            raise UserError(f"prompt file {path}: every prompt must be a string")
    else:
        items = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    prompts = []
    seen = set()
    for p in items:
        p = " ".join(p.split())
        if p and p not in seen:
            seen.add(p)
            prompts.append(p)
    if not prompts:
        raise UserError(f"prompt file {path} holds no prompts")
    return prompts
