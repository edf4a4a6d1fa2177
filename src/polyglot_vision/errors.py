"""Errors a user can cause: the command line prints them as one line and exits with status 2.

Names in messages come from the user's files (file names, labels, keys), so every message is made safe to
print first: control characters (terminal escape sequences, carriage returns, bells) and bidirectional
overrides are shown escaped, and very long messages are shortened in the middle.
"""

from __future__ import annotations

import re

MESSAGE_LIMIT = 1000  # characters of a message before it is shortened (a 200 kB label must not make a 200 kB line)
# C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional embeddings, overrides and
# isolates (they reorder what follows them on the line); left-to-right and right-to-left marks are harmless.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: object, limit: int | None = MESSAGE_LIMIT, keep: str = "") -> str:
    """`text` safe to show on a terminal: unsafe characters escaped as `\\uXXXX` (except those in `keep`),
    and, beyond `limit` characters, the middle replaced by a note of how much was left out."""
    text = str(text)
    if limit and len(text) > limit:
        head, tail = limit * 2 // 3, limit // 3
        text = f"{text[:head]}…[{len(text) - head - tail} characters left out]…{text[len(text) - tail :]}"
    # `\uXXXX` is also a JSON escape, so JSON output stays JSON
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else f"\\u{ord(m.group()):04x}", text)


class UserError(Exception):
    """Bad input from the user (recipe key, missing file, unmappable label, unreadable image).

    The message must name the culprit: the file, the key or the label. However it is shown, it is one
    line, safe to print (see `printable`).
    """

    def __str__(self) -> str:
        return printable(super().__str__())


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (or its type), to quote inside a UserError."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(err).__name__
