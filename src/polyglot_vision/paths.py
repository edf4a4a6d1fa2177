"""Paths: is this a Hub repository id or a local path (one answer for sources, checkpoints, cards and the demo),
and the YAML files a user writes (recipes, registries, alignment reviews), read with one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .errors import UserError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(name: str | None) -> bool:
    """`owner/name` that is not a local path: no such file or folder here, no leading `.`, `/` or `~`."""
    if not name:
        return False
    name = str(name)
    return bool(_HUB_ID.match(name)) and not Path(name).expanduser().exists()


def read_yaml(path: str | Path, what: str, hint: str = ""):
    """The content of a YAML file a user wrote; a missing file or a syntax error is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path}: file not found{hint}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{what} {path}: YAML syntax error{where}: {getattr(err, 'problem', None) or err}") from None
