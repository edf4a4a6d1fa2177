"""Languages (BCP-47) and scripts (ISO 15924): the one place that checks, compares and names them."""

from __future__ import annotations

import re
from functools import lru_cache

import langcodes
from babel import Locale, UnknownLocaleError

_SCRIPT = re.compile(r"^[A-Z][a-z]{3}$")


def language_key(tag: str) -> str:
    """A tag as compared: lower case, `-` as separator ("pt_BR" -> "pt-br")."""
    return str(tag).strip().lower().replace("_", "-")


def is_valid_language(tag) -> bool:
    """A well-formed BCP-47 tag of a known language ("fr", "pt-BR", "zh-Hant"; not "xx" or "FR_fr!")."""
    if not isinstance(tag, str) or not tag.strip():
        return False
    if not langcodes.tag_is_valid(tag.replace("_", "-")):
        return False
    try:
        return langcodes.Language.get(tag.replace("_", "-")).is_valid()
    except (langcodes.LanguageTagError, ValueError):
        return False


def standard_tag(tag: str) -> str:
    """A valid tag in its usual spelling: "DE" -> "de", "pt_br" -> "pt-BR"."""
    return langcodes.standardize_tag(str(tag).strip().replace("_", "-"))


def language_candidates(language: str | None) -> list[str]:
    """The tag itself, then its base language: "pt-BR" -> ["pt-br", "pt"]."""
    if not language:
        return []
    key = language_key(language)
    base = key.split("-", 1)[0]
    return [key] if base == key else [key, base]


def is_script_code(code) -> bool:
    return isinstance(code, str) and bool(_SCRIPT.match(code))


@lru_cache(maxsize=None)
def infer_script(language: str) -> str:
    """The usual ISO 15924 script of a BCP-47 language (`hi` -> `Deva`, `zh` -> `Hans`); `Zyyy` if unknown."""
    try:
        return langcodes.Language.get(language).maximize().script or "Zyyy"
    except (langcodes.LanguageTagError, ValueError):
        return "Zyyy"


@lru_cache(maxsize=None)
def script_name(code: str) -> str:
    """The English name of an ISO 15924 script ("Deva" -> "Devanagari"); the code if unknown."""
    return Locale("en").scripts.get(code) or code


@lru_cache(maxsize=None)
def language_name(tag: str) -> str:
    """A language's name in itself ("Français", "العربية", "हिन्दी"); the tag if unknown."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return tag
    name = locale.get_display_name(locale) or ""
    return (name[:1].upper() + name[1:]) if name else tag
