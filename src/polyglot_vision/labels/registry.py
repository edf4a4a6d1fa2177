"""The label space: concepts, their names in each language, and alignment of source labels onto them.

This module owns the concept registries (``recipes/labels/*.yaml``): loading and
validating them, the display name of a concept in a user's language, and the
mapping of whatever labels a source uses ("sept", "Katze", 7, "७", "七") onto
concept ids. It knows nothing about images or datasets; the data module calls
:meth:`LabelSpace.align` and reports what did not map.

Resolution order, first hit wins (``Match.method``):
``explicit`` label_map → ``id`` → exact ``name``/alias → ``normalised`` name/alias
→ Unicode ``numeral`` → ``number_word`` (num2words, when installed). Names are
looked up in the source's own language (and its base language) only: "chat" in
an English source is not the French word for cat. A name found only in another
language is evidence for a proposal (:meth:`LabelSpace.other_language_names`),
never a match; alignment.py weighs it with the embedding and image evidence.
Without a language (``language=None``) every language is searched. A label that
two concepts could claim resolves to nothing rather than to a guess.

Each name records where it came from (``human``, ``machine`` translation or
``source``): a registry entry is either a plain name or ``{name: …, origin: …}``.
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from num2words import num2words

from ..errors import UserError
from ..paths import read_yaml
from .languages import is_script_code, is_valid_language, language_candidates, language_key

_SEPARATORS = re.compile(r"[\s_.\-]+")
# Numbers written with a sign or a decimal part, in any script's digits ("-1", "+3", "5.0", "٥٫٠").
_SIGNED_OR_DECIMAL = re.compile(r"^(?:[+\-\u2212]\s*\d+(?:[.,\u066b]\d*)?|\d*[.,\u066b]\d+|\d+[.,\u066b])$")
# Accents are decoration on these scripts' letters but part of the word elsewhere
# (Devanagari vowel signs, Thai tone marks, kana dakuten, Bengali nukta).
_ACCENTED_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
# Arabic short-vowel marks and tatweel are optional in writing: "سَبْعَة" is "سبعة".
_ARABIC_OPTIONAL = {chr(c) for c in range(0x064B, 0x0653)} | {"\u0640"}

METHODS = ("explicit", "reviewed", "id", "name", "normalised", "numeral", "number_word", "embedding", "images", "new")
ORIGINS = ("human", "machine", "source")


@dataclass(frozen=True)
class Concept:
    id: str
    names: dict[str, str]  # BCP-47 language -> display name
    aliases: dict[str, tuple[str, ...]]
    origins: dict[str, str] = field(default_factory=dict)  # language -> where its name came from (ORIGINS)
    refusal: bool = False  # "none of the others": a class to learn, never an answer (its name says so)


@dataclass(frozen=True)
class Match:
    concept: str  # concept id
    method: str  # one of METHODS
    score: float  # 1.0 for exact methods, lower for fuzzier ones


def normalise(text: Any) -> str:
    """Fold case, accents on Latin/Greek/Cyrillic letters, and separators: "Zéro_Un " -> "zero un"."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", str(text)).casefold())
    kept: list[str] = []
    base_script = ""
    for ch in text:
        if ch in _ARABIC_OPTIONAL:
            continue
        if unicodedata.combining(ch):
            if base_script in _ACCENTED_SCRIPTS:
                continue
        else:
            base_script = unicodedata.name(ch, "").split(" ", 1)[0]
        kept.append(ch)
    text = unicodedata.normalize("NFC", "".join(kept))
    return _SEPARATORS.sub(" ", text).strip()


def _numeral_value(text: str) -> int | None:
    """Value of a numeral in any script: "7", "٧", "۷", "७", "๗", "七", "〇" ; None if it is not one."""
    if not text:
        return None
    if len(text) == 1:
        value = unicodedata.numeric(text, None)
        return int(value) if value is not None and float(value).is_integer() else None
    # Several characters: positional digits only ("07", "١٠"); "二十" is a word, not digits.
    digits = [unicodedata.decimal(ch, None) for ch in text]
    if any(d is None for d in digits):
        return None
    return int("".join(str(d) for d in digits))


def _label_id(label: Any) -> str | None:
    """Labels as concept ids: 7, numpy.int64(7), 7.0 and "7" all give "7"."""
    if isinstance(label, bool):
        return None
    if isinstance(label, numbers.Integral):
        return str(int(label))
    if isinstance(label, numbers.Real) and float(label).is_integer():
        return str(int(label))
    if isinstance(label, str):
        return label
    return None


@lru_cache(maxsize=None)
def _number_words(language: str, values: tuple[int, ...]) -> dict[str, int | None]:
    """num2words' words for `values` in `language`, normalised; None marks a word two values share."""
    words: dict[str, int | None] = {}
    for value in values:
        try:
            word = normalise(num2words(value, lang=language.replace("-", "_")))
        except (NotImplementedError, OverflowError, ValueError, TypeError):
            return {}  # num2words does not know this language
        words[word] = value if words.get(word, value) == value else None
    return words


class LabelSpace:
    """A named set of concepts with display names per language, loaded from a registry."""

    def __init__(self, name: str, default_language: str, concepts: Iterable[Concept], source: str = "<dict>"):
        self.name = name
        self.default_language = default_language
        self.concepts: tuple[Concept, ...] = tuple(concepts)
        self.source = source
        # ((concept, script), (concept, script)): shapes two scripts draw alike for different concepts
        self.twins: list[tuple[tuple[str, str], tuple[str, str]]] = []
        self._by_id = {c.id: c for c in self.concepts}
        # language -> word -> concept ids; a set so that a word two concepts claim stays visible.
        self._exact: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._normal: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for concept in self.concepts:
            for lang, word in _words(concept):
                for index, key in ((self._exact, word), (self._normal, normalise(word))):
                    index[language_key(lang)][key].add(concept.id)
                    index["*"][key].add(concept.id)  # "*": any language
            self._normal["*"][normalise(concept.id)].add(concept.id)

    # ---- loading -------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> "LabelSpace":
        """A registry file; `extends: other.yaml` (beside it) takes that registry's concepts first."""
        data = read_yaml(path, "label registry")
        if isinstance(data, Mapping) and data.get("extends") is not None:
            base = read_yaml(Path(path).parent / str(data["extends"]), f"label registry {path}: extends")
            if not isinstance(base, Mapping) or base.get("extends") is not None:
                raise UserError(f"{path}: `extends` must name a registry that extends no other")
            own = data.get("concepts") or []
            if not isinstance(own, list):
                raise UserError(f"{path}: no concepts (expected a list under 'concepts')")
            data = {**base, **data, "concepts": [*(base.get("concepts") or []), *own]}
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> "LabelSpace":
        if not isinstance(data, Mapping):
            raise UserError(f"{source}: a label registry is a mapping with 'name' and 'concepts'")
        raw_concepts = data.get("concepts")
        if not raw_concepts or not isinstance(raw_concepts, list):
            raise UserError(f"{source}: no concepts (expected a list under 'concepts')")
        default_language = str(data.get("default_language", "en"))
        if not is_valid_language(default_language):
            raise UserError(f"{source}: invalid language tag {default_language!r} in default_language")

        concepts: list[Concept] = []
        seen_ids: set[str] = set()
        owner: dict[tuple[str, str], tuple[str, str]] = {}  # (language, normalised word) -> (concept, word)
        for position, raw in enumerate(raw_concepts, start=1):
            concept = _parse_concept(raw, position, source)
            if concept.id in seen_ids:
                raise UserError(f"{source}: duplicate concept id {concept.id!r}")
            seen_ids.add(concept.id)
            for lang, word in _words(concept):
                if not is_valid_language(lang):
                    raise UserError(f"{source}: concept {concept.id!r}: invalid language tag {lang!r}")
                # "Chat" and "chat" are one name to a user: compare the normalised forms.
                other, other_word = owner.setdefault((language_key(lang), normalise(word)), (concept.id, word))
                if other != concept.id:
                    raise UserError(
                        f"{source}: name {word!r} ({lang}) belongs to two concepts: {other!r} "
                        f"({other_word!r}) and {concept.id!r}"
                    )
            concepts.append(concept)
        space = cls(str(data.get("name", Path(source).stem)), default_language, concepts, source)
        space.twins = _parse_twins(data.get("twins"), seen_ids, source)
        return space

    # ---- reading -------------------------------------------------------------------------

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.concepts]

    @property
    def refusal_ids(self) -> list[str]:
        """The concepts that mean "none of the others" (`refusal: true`): learnt, never given as an answer."""
        return [c.id for c in self.concepts if c.refusal]

    @property
    def languages(self) -> list[str]:
        return sorted({lang for c in self.concepts for lang in c.names})

    def display_name(self, concept_id: str, language: str | None = None) -> str:
        """Name in `language`, else its base language (pt-BR -> pt), else default_language, else the id."""
        concept = self._by_id.get(str(concept_id))
        if concept is None:
            raise UserError(f"unknown concept {concept_id!r} in label space {self.name!r}")
        names = {language_key(lang): name for lang, name in concept.names.items()}
        for lang in [*language_candidates(language), *language_candidates(self.default_language)]:
            if lang in names:
                return names[lang]
        return concept.id

    def answer_language(self, language: str | None) -> str | None:
        """The registry language that names answer a request for `language` ("FR" -> "fr", "pt_BR" -> "pt"),
        or None when the registry has no name in it or its base language."""
        known = {language_key(lang): lang for lang in self.languages}
        return next((known[lang] for lang in language_candidates(language) if lang in known), None)

    @classmethod
    def from_names(
        cls,
        ids: list[str],
        names_by_language: Mapping[str, Mapping[str, str]],
        default_language: str,
        name: str = "labels",
    ) -> "LabelSpace":
        """A label space rebuilt from a model config's `label_display_names` ({language: {concept id: name}})."""
        concepts = [
            Concept(cid, {lang: names[cid] for lang, names in names_by_language.items() if cid in names}, {})
            for cid in ids
        ]
        return cls(name, default_language, concepts, source="config.json")

    def names_by_language(self) -> dict[str, dict[str, str]]:
        """{language: {concept id: name}} with only the names the registry gives (no fallbacks)."""
        return {lang: {c.id: c.names[lang] for c in self.concepts if lang in c.names} for lang in self.languages}

    # ---- alignment -----------------------------------------------------------------------

    def resolve(self, label: Any, language: str | None = None, label_map: Mapping | None = None) -> Match | None:
        """The concept `label` names, or None when nothing (or more than one concept) fits."""
        if label_map:
            target = label_map.get(label, label_map.get(str(label)))
            if target is not None:
                return Match(self._checked_target(label, target), "explicit", 1.0)

        as_id = _label_id(label)
        if as_id is not None and as_id in self._by_id and self._id_speaks(as_id, language):
            return Match(as_id, "id", 1.0)
        if not isinstance(label, str):
            return None

        if _SIGNED_OR_DECIMAL.match(label.strip()):  # "-1", "+3", "5.0": a number, but no concept's numeral
            return None
        langs = language_candidates(language) or ["*"]
        text = label.strip()
        found = _lookup(self._exact, langs, text)
        if found:
            return Match(found, "name", 1.0)
        norm = normalise(label)
        found = _lookup(self._normal, langs, norm)
        if found:
            return Match(found, "normalised", 0.9)
        # Plural only as a last resort, so that "trois" or "dos" are never read as plurals.
        if len(norm) > 3 and norm.endswith("s"):
            found = _lookup(self._normal, langs, norm[:-1])
            if found:
                return Match(found, "normalised", 0.8)

        # A numeral only as written, or in its compatibility form ("７" -> "7"): normalising would drop a
        # sign or a decimal point and read "-1" or "5.0" as a digit.
        for text in dict.fromkeys((label.strip(), unicodedata.normalize("NFKC", label.strip()))):
            value = _numeral_value(text)
            if value is not None and str(value) in self._by_id:
                return Match(str(value), "numeral", 1.0)

        return self._number_word(norm, language)

    def _id_speaks(self, concept_id: str, language: str | None) -> bool:
        """Whether an id equal to a label counts as a match: ids without letters ("7") always; ids that
        are words ("beer") only in the registry's default language, which they are written in
        (Dutch "beer" is a bear)."""
        if language is None or not any(ch.isalpha() for ch in concept_id):
            return True
        return language_candidates(self.default_language)[-1] in language_candidates(language)

    def other_language_names(self, label: Any, language: str | None) -> list[tuple[str, str]]:
        """(concept id, language) of every registry name or alias equal to `label` (normalised) in a
        language other than `language`: "chat" in an English source -> [("cat", "fr")]."""
        if not isinstance(label, str) or not label.strip():
            return []
        own = set(language_candidates(language))
        norm = normalise(label)
        found = []
        for concept in self.concepts:
            for lang, word in _words(concept):
                if language_key(lang) not in own and normalise(word) == norm:
                    found.append((concept.id, lang))
        text = label.strip()
        if text in self._by_id and not self._id_speaks(text, language) and text not in {c for c, _ in found}:
            found.append((text, "id"))
        return list(dict.fromkeys(found))

    def align(self, labels: Iterable, language: str | None = None, label_map: Mapping | None = None) -> dict:
        """{label: Match | None} for each distinct label of a source."""
        if label_map:
            for key, target in label_map.items():
                self._checked_target(key, target)
        return {label: self.resolve(label, language, label_map) for label in dict.fromkeys(labels)}

    def add_concept(self, concept_id: str, language: str, name: str) -> Concept:
        """A new concept named by a source (`unmapped_labels: keep`); its name's origin is `source`."""
        if concept_id in self._by_id:
            raise UserError(f"label {name!r} would become concept {concept_id!r}, which {self.name!r} already has")
        concept = Concept(concept_id, {language: name}, {}, {language: "source"})
        self.concepts = (*self.concepts, concept)
        self._by_id[concept_id] = concept
        for key, index in ((name, self._exact), (normalise(name), self._normal)):
            index[language_key(language)][key].add(concept_id)
            index["*"][key].add(concept_id)
        return concept

    def named_texts(self) -> list[tuple[str, str, str]]:
        """(concept id, language, text) for every name and alias: what a label's text is compared with."""
        return [(concept.id, lang, word) for concept in self.concepts for lang, word in dict.fromkeys(_words(concept))]

    def origin(self, concept_id: str, language: str) -> str:
        """Where the concept's name in `language` came from: human, machine or source."""
        return self._by_id[concept_id].origins.get(language, "human")

    def _checked_target(self, label: Any, target: Any) -> str:
        concept_id = _label_id(target)
        if concept_id not in self._by_id:
            raise UserError(
                f"label_map sends {label!r} to {target!r}, which is not a concept of {self.name!r} ({self.source})"
            )
        return concept_id

    def _number_word(self, norm: str, language: str | None) -> Match | None:
        values = tuple(int(i) for i in self.ids if i.isdigit())
        if not values:
            return None
        for lang in language_candidates(language):
            value = _number_words(lang, values).get(norm)
            if value is not None:
                return Match(str(value), "number_word", 0.9)
        return None

    def __repr__(self) -> str:
        return f"LabelSpace({self.name!r}, {len(self.concepts)} concepts, {len(self.languages)} languages)"


def _words(concept: Concept) -> Iterable[tuple[str, str]]:
    for lang, name in concept.names.items():
        yield lang, name
    for lang, aliases in concept.aliases.items():
        for alias in aliases:
            yield lang, alias


def _lookup(index: dict[str, dict[str, set[str]]], langs: list[str], key: str) -> str | None:
    """The one concept `key` names in the first language that knows it; None if none or ambiguous."""
    for lang in langs:
        ids = index.get(lang, {}).get(key)
        if ids:
            return next(iter(ids)) if len(ids) == 1 else None
    return None


def _check_tag_type(lang: Any, where: str) -> None:
    # YAML 1.1 reads a bare `no` (Norwegian) as False.
    if not isinstance(lang, str):
        raise UserError(f"{where}: invalid language tag {lang!r} (quote it in YAML)")


def _parse_twins(raw: Any, ids: set[str], source: str) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """`twins: [[4@Beng, 8@Latn], …]`: pairs of (concept id @ ISO 15924 script)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError(f"{source}: 'twins' must be a list of pairs like [4@Beng, 8@Latn]")
    pairs = []
    for pair in raw:
        sides = []
        for side in pair if isinstance(pair, list) and len(pair) == 2 else [None]:
            concept, _, script = str(side).rpartition("@")
            if side is None or concept not in ids or not is_script_code(script):
                raise UserError(f"{source}: twins: {pair!r} is not a pair of concept@Script (like [4@Beng, 8@Latn])")
            sides.append((concept, script))
        pairs.append((sides[0], sides[1]))
    return pairs


def _parse_concept(raw: Any, position: int, source: str) -> Concept:
    if not isinstance(raw, Mapping):
        raise UserError(f"{source}: concept #{position} is not a mapping")
    if raw.get("id") is None or str(raw["id"]).strip() == "":
        raise UserError(f"{source}: concept #{position} has no id")
    concept_id = str(raw["id"]).strip()
    where = f"{source}: concept {concept_id!r}"

    names = raw.get("names") or {}
    if not isinstance(names, Mapping):
        raise UserError(f"{where}: 'names' must map language -> name")
    origins: dict[str, str] = {}
    plain: dict[str, str] = {}
    for lang, name in names.items():
        _check_tag_type(lang, where)
        if isinstance(name, Mapping):  # {name: chat, origin: machine}
            origins[str(lang)] = str(name.get("origin", "human"))
            if origins[str(lang)] not in ORIGINS:
                raise UserError(
                    f"{where}: origin of the {lang!r} name is {origins[str(lang)]!r}; use one of {', '.join(ORIGINS)}"
                )
            name = name.get("name")
        # YAML reads a bare `null`, `no` or `on` as a non-string: say so rather than store "None".
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{where}: name for {lang!r} is {name!r}, not text (quote it in YAML)")
        plain[str(lang)] = name
    names = plain

    aliases_raw = raw.get("aliases") or {}
    if not isinstance(aliases_raw, Mapping):
        raise UserError(f"{where}: 'aliases' must map language -> list of names")
    aliases: dict[str, tuple[str, ...]] = {}
    for lang, values in aliases_raw.items():
        _check_tag_type(lang, where)
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise UserError(f"{where}: aliases for {lang!r} must be a list of text, got {values!r}")
        aliases[str(lang)] = tuple(v.strip() for v in values)
    refusal = raw.get("refusal", False)
    if not isinstance(refusal, bool):
        raise UserError(f"{where}: 'refusal' must be true or false, got {refusal!r}")
    return Concept(concept_id, {str(k): v.strip() for k, v in names.items()}, aliases, origins, refusal)
