"""Errors a user can cause: the command line prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input from the user (recipe key, missing file, unmappable label, unreadable image).

    The message must name the culprit: the file, the key or the label.
    """


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (or its type), to quote inside a UserError."""
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__
