"""The label space: the digits registry, alignment of source labels onto it, and registry validation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from polyglot_vision.errors import UserError
from polyglot_vision.labels import LabelSpace, Match, normalise

DIGITS_YAML = Path(__file__).resolve().parents[1] / "recipes" / "labels" / "digits.yaml"
REQUIRED_LANGUAGES = "en fr de es it pt nl ru ar fa ur hi bn gu ta te kn ml th km my zh ja ko".split()
# The seven in each of the 13 numeral systems the project renders.
SEVENS = {
    "Latin": "7",
    "Arabic-Indic": "٧",
    "Persian": "۷",
    "Devanagari": "७",
    "Bengali": "৭",
    "Gujarati": "૭",
    "Tamil": "௭",
    "Telugu": "౭",
    "Kannada": "೭",
    "Thai": "๗",
    "Khmer": "៧",
    "Myanmar": "၇",
    "Han": "七",
}


@pytest.fixture(scope="module")
def digits() -> LabelSpace:
    return LabelSpace.from_yaml(DIGITS_YAML)


def test_registry_has_ten_concepts_named_in_many_languages(digits: LabelSpace) -> None:
    assert digits.name == "digits"
    assert digits.default_language == "en"
    assert digits.ids == [str(i) for i in range(10)]
    assert len(digits.languages) >= 18
    for concept in digits.concepts:
        missing = set(REQUIRED_LANGUAGES) - set(concept.names)
        assert not missing, f"concept {concept.id} lacks names in {sorted(missing)}"
    names = digits.names_by_language()
    assert names["fr"]["7"] == "sept"
    assert names["hi"]["5"] == "पाँच"
    assert list(names["en"]) == digits.ids


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("fr", "zéro un deux trois quatre cinq six sept huit neuf"),
        ("de", "null eins zwei drei vier fünf sechs sieben acht neun"),
        ("ar", "صفر واحد اثنان ثلاثة أربعة خمسة ستة سبعة ثمانية تسعة"),
        ("th", "ศูนย์ หนึ่ง สอง สาม สี่ ห้า หก เจ็ด แปด เก้า"),
        ("hi", "शून्य एक दो तीन चार पाँच छह सात आठ नौ"),
        ("zh", "零 一 二 三 四 五 六 七 八 九"),
    ],
    ids=lambda value: value if len(value) <= 3 else "words",
)
def test_number_words_map_to_their_digit(digits: LabelSpace, language: str, words: str) -> None:
    for value, word in enumerate(words.split()):
        for source_language in (language, None):  # with and without knowing the source's language
            match = digits.resolve(word, language=source_language)
            assert match == Match(str(value), "name", 1.0), (word, source_language)


def test_persian_and_urdu_use_their_own_letters(digits: LabelSpace) -> None:
    # Persian/Urdu write yeh and kaf as ی ک, Arabic as ي ك; a mix-up renders and matches wrongly.
    for concept in digits.concepts:
        for lang in ("fa", "ur"):
            assert not set(concept.names[lang]) & {"\u064a", "\u0643"}, (lang, concept.names[lang])
        assert not set(concept.names["ar"]) & {"\u06cc", "\u06a9"}, concept.names["ar"]


def test_aliases_resolve(digits: LabelSpace) -> None:
    assert digits.resolve("zwo", "de").concept == "2"
    assert digits.resolve("سبع", "ar").concept == "7"
    assert digits.resolve("اثنين", "ar").concept == "2"
    assert digits.resolve("पांच", "hi").concept == "5"
    assert digits.resolve("貳", "zh").concept == "2"


@pytest.mark.parametrize("system", sorted(SEVENS))
def test_numerals_of_every_script_map_by_value(digits: LabelSpace, system: str) -> None:
    match = digits.resolve(SEVENS[system])
    assert match is not None and match.concept == "7"


def test_numeral_method_covers_scripts_without_names() -> None:
    # A registry with English names only: every non-Latin seven must come from its Unicode value.
    space = LabelSpace.from_dict({"concepts": [{"id": str(i), "names": {"en": f"d{i}"}} for i in range(10)]})
    for system, seven in SEVENS.items():
        expected = "id" if system == "Latin" else "numeral"
        assert space.resolve(seven) == Match("7", expected, 1.0), system
    assert space.resolve("〇").concept == "0"
    assert space.resolve("٣") == Match("3", "numeral", 1.0)
    assert space.resolve("10") is None  # a numeral, but not a concept
    assert space.resolve("½") is None


def test_ints_and_strings_map_by_id(digits: LabelSpace) -> None:
    for label in (7, "7", np.int64(7), np.int32(7)):
        assert digits.resolve(label) == Match("7", "id", 1.0), repr(label)
    assert digits.resolve(0).concept == "0"


@pytest.mark.parametrize(
    ("label", "language", "concept"),
    [
        ("ZERO", "en", "0"),
        ("zero", "en", "0"),
        ("Zéro", "fr", "0"),
        ("sieben ", "de", "7"),
        ("Fünf", "de", "5"),
        ("EEN", "nl", "1"),
        ("sevens", "en", "7"),
        ("سَبْعَة", "ar", "7"),
    ],
)
def test_normalisation(digits: LabelSpace, label: str, language: str, concept: str) -> None:
    match = digits.resolve(label, language=language)
    assert match is not None and match.concept == concept, label


def test_a_name_is_matched_in_the_source_language_only() -> None:
    # "chat" is French for cat and "cane" Italian for dog: in an English source they are neither.
    space = LabelSpace.from_dict(
        {
            "concepts": [
                {"id": "cat", "names": {"en": "cat", "fr": "chat"}},
                {"id": "dog", "names": {"en": "dog", "it": "cane"}},
                {"id": "boat", "names": {"en": "boat", "de": "Boot"}},
            ]
        }
    )
    assert space.resolve("chat", language="en") is None
    assert space.resolve("cane", language="en") is None
    assert space.resolve("chat", language="fr").concept == "cat"
    assert space.resolve("Boot", language="de-AT").concept == "boat"  # the base language counts as its own
    assert space.other_language_names("chat", "en") == [("cat", "fr")]
    assert space.other_language_names("boot", "en") == [("boat", "de")]


def test_normalise_keeps_non_latin_marks() -> None:
    assert normalise("  Zéro_Un-deux.trois  ") == "zero un deux trois"
    assert normalise("Straße") == "strasse"
    # Vowel signs, tone marks and dakuten are part of these words.
    for word in ("पाँच", "हिन्दी", "เก้า", "ご", "ছয়", "한국어"):
        assert normalise(word) == word


def test_explicit_label_map_wins(digits: LabelSpace) -> None:
    mapping = digits.align(["sept", "Katze", 3], language="fr", label_map={"sept": "1", "Katze": "8"})
    assert mapping["sept"] == Match("1", "explicit", 1.0)
    assert mapping["Katze"] == Match("8", "explicit", 1.0)
    assert mapping[3] == Match("3", "id", 1.0)


def test_label_map_to_unknown_concept_is_a_user_error(digits: LabelSpace) -> None:
    with pytest.raises(UserError, match="'cat'"):
        digits.align(["Katze"], label_map={"Katze": "cat"})


def test_unmappable_labels_give_none(digits: LabelSpace) -> None:
    result = digits.align(["Katze", "", "eleven", 42, None])
    assert result == {"Katze": None, "": None, "eleven": None, 42: None, None: None}


def test_ambiguous_name_does_not_resolve_silently() -> None:
    space = LabelSpace.from_dict(
        {"concepts": [{"id": "a", "names": {"en": "tre"}}, {"id": "b", "names": {"it": "tre"}}]}
    )
    assert space.resolve("tre", language="it").concept == "b"
    assert space.resolve("tre", language="en").concept == "a"
    assert space.resolve("tre") is None


def test_number_words_from_num2words(digits: LabelSpace) -> None:
    # Lithuanian is not in the registry; only num2words knows "septyni".
    match = digits.resolve("septyni", language="lt")
    if importlib.util.find_spec("num2words") is not None:
        assert match == Match("7", "number_word", 0.9)
    else:
        assert match is None
    assert digits.resolve("septyni", language="xx") is None


def test_display_name_fallbacks(digits: LabelSpace) -> None:
    assert digits.display_name("7", "fr") == "sept"
    assert digits.display_name("7", "pt-BR") == "sete"
    assert digits.display_name("7", "zh-Hant") == "七"
    assert digits.display_name("7", "xx") == "seven"
    assert digits.display_name("7") == "seven"
    space = LabelSpace.from_dict({"default_language": "en", "concepts": [{"id": "cat", "names": {"fr": "chat"}}]})
    assert space.display_name("cat", "de") == "cat"


# ---- validation: one UserError naming the file and the culprit -------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("name: x\nconcepts: []\n", "no concepts"),
        ("name: x\n", "no concepts"),
        ("concepts:\n  - names: {en: one}\n", "has no id"),
        ("concepts:\n  - {id: a, names: {en: one}}\n  - {id: a, names: {en: two}}\n", "duplicate concept id 'a'"),
        ("concepts:\n  - {id: a, names: {en: one}}\n  - {id: b, names: {en: one}}\n", "'one'"),
        ("concepts:\n  - {id: a, names: {en: one}}\n  - {id: b, aliases: {en: [one]}}\n", "'one'"),
        ("concepts:\n  - {id: a, names: {english: one}}\n", "'english'"),
        ("concepts:\n  - {id: a, names: {en: one, no: en}}\n", "False"),
        ("concepts:\n  - {id: a, names: {de: null}}\n", "'de'"),
        ("concepts:\n  - {id: a, names: {en: one\n", "YAML syntax error"),
    ],
)
def test_registry_errors_name_file_and_culprit(tmp_path: Path, text: str, culprit: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as info:
        LabelSpace.from_yaml(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert culprit in message


def test_missing_registry_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(UserError, match="nope.yaml"):
        LabelSpace.from_yaml(path)
