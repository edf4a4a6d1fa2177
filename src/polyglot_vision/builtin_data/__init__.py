"""Built-in data made offline: PolyDigits (numerals of 13 writing systems), handwriting at several framings
for evaluation, PolyObjects (things drawn by twelve emoji designs), and synthetic object folders."""

from .handwriting import FRAMINGS, handwriting_framings
from .objects import write_object_folders
from .polydigits import DEFAULT_SYNTHESIS, SYNTHESIS, generate_polydigits
from .polyobjects import generate_polyobjects

__all__ = [
    "DEFAULT_SYNTHESIS",
    "FRAMINGS",
    "SYNTHESIS",
    "generate_polydigits",
    "generate_polyobjects",
    "handwriting_framings",
    "write_object_folders",
]
