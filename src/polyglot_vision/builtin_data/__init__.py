"""Built-in data made offline: PolyDigits (numerals of 13 writing systems), handwriting at several framings
for evaluation, and PolyObjects (things drawn by twelve emoji designs)."""

from .handwriting import FRAMINGS, handwriting_framings
from .polydigits import DEFAULT_SYNTHESIS, SYNTHESIS, generate_polydigits
from .polyobjects import generate_polyobjects

__all__ = [
    "DEFAULT_SYNTHESIS",
    "FRAMINGS",
    "SYNTHESIS",
    "generate_polydigits",
    "generate_polyobjects",
    "handwriting_framings",
]
