"""Errors a user can cause: the command line prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input from the user (recipe key, missing file, unmappable label, unreadable image).

    The message must name the culprit: the file, the key or the label.
    """
