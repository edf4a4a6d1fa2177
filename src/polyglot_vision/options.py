"""`option(default, help)`: a dataclass field with the help text that `HfArgumentParser` shows for it."""

from __future__ import annotations

from dataclasses import MISSING, field


def option(default=MISSING, help: str = "", *, default_factory=MISSING):
    """`field(default=…, metadata={"help": help})`, as the argument dataclasses of recipes declare their keys."""
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})
