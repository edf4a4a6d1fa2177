"""Built-in data made offline: PolyDigits (numerals of 13 writing systems) and synthetic object folders."""

from .objects import write_object_folders
from .polydigits import generate_polydigits

__all__ = ["generate_polydigits", "write_object_folders"]
