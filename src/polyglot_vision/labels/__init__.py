"""Labels: the concept registry, languages and scripts, and the alignment of source labels onto concepts."""

from .alignment import SourceAlignment, align_sources
from .languages import infer_script, is_valid_language, language_name, script_name
from .registry import Concept, LabelSpace, Match, normalise

__all__ = [
    "Concept",
    "LabelSpace",
    "Match",
    "SourceAlignment",
    "align_sources",
    "infer_script",
    "is_valid_language",
    "language_name",
    "normalise",
    "script_name",
]
