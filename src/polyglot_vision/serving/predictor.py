"""Localized top-k predictions: one inference path for the CLI, the Space and tests.

The model folder is a standard one (`pipeline()` loads it too); the display
names per language come from `label_display_names` in its config. A joint
(concept, language) model answers in concepts too: the probabilities of a
concept's classes are summed over languages, or, given a language hint, over
that language's classes only (some shapes mean different things in different scripts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

from ..errors import UserError, first_line
from ..images import load_image
from ..labels import LabelSpace
from ..labels.languages import language_candidates, language_key
from ..modeling import concept_fold, concept_ids, label_languages


@dataclass(frozen=True)
class Prediction:
    concept: str  # concept id, e.g. "7"
    name: str  # display name in the requested language, e.g. "sept"
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


class Predictor:
    """Load a model once; answer `top_k` for batches of images in any language."""

    def __init__(self, model, processor, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.processor = processor
        config = model.config
        self.concepts = concept_ids(config)
        self.fold = concept_fold(config)  # None for a concept-level model
        self.class_languages = label_languages(config)
        self.default_language: str = getattr(config, "default_language", None) or "en"
        self.label_space = LabelSpace.from_names(
            self.concepts,
            getattr(config, "label_display_names", None) or {},
            self.default_language,
            getattr(config, "label_space_name", "labels"),
        )

    @classmethod
    def from_pretrained(cls, model_id: str | Path, device=None, **kwargs) -> "Predictor":
        """A local model folder or a Hub id."""
        model_id = str(model_id)
        try:
            model = AutoModelForImageClassification.from_pretrained(model_id, **kwargs)
            processor = AutoImageProcessor.from_pretrained(model_id, backend="pil")
        except (OSError, ValueError) as err:
            reason = first_line(err)
            raise UserError(f"model {model_id}: cannot be loaded ({reason})") from None
        return cls(model, processor, device)

    @property
    def languages(self) -> list[str]:
        """The languages the model can name its concepts in."""
        return self.label_space.languages

    def display_name(self, concept: str, language: str | None = None) -> str:
        """The concept's name in `language`, else its base language, else the default, else the id."""
        return self.label_space.display_name(concept, language)

    @property
    def hint_languages(self) -> list[str]:
        """The languages a hint can name (those of a joint model's classes; none for a concept model)."""
        return sorted({lang for lang in self.class_languages if lang})

    def hint_mask(self, language_hint: str) -> torch.Tensor:
        """1 for the classes of the hinted language (or its base language, `th-TH` -> `th`), else 0."""
        if self.fold is None:
            raise UserError(
                f"language hint {language_hint!r}: this model has one class per concept; "
                "hints need a model trained with `label_granularity: concept_language`"
            )
        for lang in language_candidates(language_hint):
            mask = torch.tensor([float(c is not None and language_key(c) == lang) for c in self.class_languages])
            if mask.any():
                return mask
        raise UserError(
            f"language hint {language_hint!r}: not a language of this model ({', '.join(self.hint_languages)})"
        )

    def concept_probabilities(self, probabilities: torch.Tensor, language_hint: str | None = None) -> torch.Tensor:
        """Class probabilities -> concept probabilities (summed over languages, or within the hinted one)."""
        if language_hint:
            probabilities = probabilities * self.hint_mask(language_hint)
            probabilities = probabilities / probabilities.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return probabilities if self.fold is None else probabilities @ self.fold

    @torch.inference_mode()
    def class_probabilities(self, images: list[Image.Image]) -> torch.Tensor:
        """The model's own class probabilities (images, classes): one processor call and one forward for the batch."""
        inputs = self.processor([load_image(image) for image in images], return_tensors="pt")
        logits = self.model(pixel_values=inputs["pixel_values"].to(self.device)).logits
        return logits.float().softmax(dim=-1).cpu()

    def probabilities(self, images: list[Image.Image], language_hint: str | None = None) -> torch.Tensor:
        """Concept probabilities (images, concepts)."""
        if language_hint:
            self.hint_mask(language_hint)  # a bad hint fails before the model runs
        return self.concept_probabilities(self.class_probabilities(images), language_hint)

    def rank(
        self,
        class_probabilities: torch.Tensor,
        k: int = 3,
        language: str | None = None,
        language_hint: str | None = None,
    ) -> list[list[Prediction]]:
        """Top-k concepts per row of `class_probabilities` (from `class_probabilities`), named in `language`.

        The model does not run here, so the rows of one batch can be ranked with different hints and languages.
        """
        k = max(1, min(k, len(self.concepts)))
        scores, indices = self.concept_probabilities(class_probabilities, language_hint).topk(k, dim=-1)
        return [
            [
                Prediction(self.concepts[i], self.display_name(self.concepts[i], language), float(s))
                for s, i in zip(row_scores.tolist(), row_indices.tolist())
            ]
            for row_scores, row_indices in zip(scores, indices)
        ]

    def top_k(
        self, images, k: int = 3, language: str | None = None, language_hint: str | None = None
    ) -> list[list[Prediction]]:
        """Top-k concepts per image, named in `language` (falling back to the default language).

        `language_hint` (a joint model only) says which language's writing the images show.
        """
        if isinstance(images, Image.Image):
            images = [images]
        images = [load_image(image) for image in images]
        if not images:
            return []
        if language_hint:
            self.hint_mask(language_hint)  # a bad hint fails before the model runs
        return self.rank(self.class_probabilities(images), k, language, language_hint)
