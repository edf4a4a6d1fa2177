"""Is this a Hub repository id or a local path? One answer for sources, checkpoints, cards and the demo."""

from __future__ import annotations

import re
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(name: str | None) -> bool:
    """`owner/name` that is not a local path: no such file or folder here, no leading `.`, `/` or `~`."""
    if not name:
        return False
    name = str(name)
    return bool(_HUB_ID.match(name)) and not Path(name).expanduser().exists()
