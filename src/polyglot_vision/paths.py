"""Paths: is this a Hub repository id or a local path (one answer for sources, checkpoints, cards and the demo),
and the YAML a user writes (recipes, registries, alignment reviews, values on the command line), read safely
with one-line errors."""

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


class AliasRefused(yaml.YAMLError):
    """A YAML alias (`*name`): one alias can stand for a whole tree, and nested ones for billions of leaves."""

    def __init__(self, name: str, mark):
        super().__init__(f"YAML alias *{name}: aliases are not accepted, write the value out")
        self.problem_mark = mark
        self.problem = str(self)


class SafeNoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data, no tags that run code) that also refuses aliases."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise AliasRefused(event.anchor, event.start_mark)
        return super().compose_node(parent, index)


def parse_yaml(text: str):
    """YAML text a user wrote (a file's content, or a value on the command line) -> plain Python data."""
    return yaml.load(text, Loader=SafeNoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path, what: str, hint: str = ""):
    """The content of a YAML file a user wrote; a missing file, a syntax error or an alias is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path}: file not found{hint}")
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except AliasRefused as err:
        raise UserError(f"{what} {path}: line {err.problem_mark.line + 1}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{what} {path}: YAML syntax error{where}: {getattr(err, 'problem', None) or err}") from None
