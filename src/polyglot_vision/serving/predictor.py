"""Localized top-k predictions: one inference path for the CLI, the Space and tests.

The model folder is a standard one (`pipeline()` loads it too); the display
names per language come from `label_display_names` in its config. A joint
(concept, language) model answers in concepts too: the probabilities of a
concept's classes are summed over languages, or, given a hint, over the classes
of the hinted script (ISO 15924, `Deva`) or language (`hi`) only: some shapes
mean different things in different scripts. Its answers also name the script
the image most likely shows (the likeliest script among the concept's classes).

An answer (`Answer`, a list of `Prediction`s) also says two things the model's config decides (fitted at export,
evaluation/answers.py): that the image is refused, when it is no concept the model knows (its refusal concept,
such as "none", holds `refusal_threshold` of the probability or more; never given as an answer itself), and,
without a hint, the twin of its first prediction: the same shape read in another script as another concept
("8 (Latin) or 4 (Bengali)"), a pair the config lists in `label_twins` or one the probabilities split between.
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
from ..labels.languages import is_script_code, language_candidates, language_key, script_name
from ..modeling import (
    check_loaded_weights,
    check_model_source,
    concept_fold,
    concept_ids,
    label_languages,
    label_scripts,
    model_error,
)

# Images are decoded down to this many times the model's input side: the processor's own resize still does
# the last step (and smaller images are decoded whole), so answers match `pipeline()`'s.
DECODE_MARGIN = 4


def input_side(processor) -> int:
    """The longest side of the images an image processor produces (its crop if it crops, else its resize)."""
    size = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    size = dict(size or getattr(processor, "size", None) or {})
    sides = [v for k, v in size.items() if k in ("height", "width", "shortest_edge", "longest_edge") and v]
    return int(max(sides, default=224))


@dataclass(frozen=True)
class Prediction:
    concept: str  # concept id, e.g. "7"
    name: str  # display name in the requested language, e.g. "sept"
    score: float
    script: str | None = None  # ISO 15924 code of the script read (joint models), e.g. "Deva"
    script_name: str | None = None  # its English name, e.g. "Thai"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def read_as(self) -> str:
        """ "8 (Latin)": the concept and the script it was read in."""
        return f"{self.concept} ({self.script_name})" if self.script_name else self.concept


class Answer(list):
    """One image's top-k predictions (a list of `Prediction`, best first) and what the answer as a whole says.

    refused: the image is no concept the model knows; `reason` says so, in the answer's language.
    twin:    without a hint, the other reading of a shape that two scripts draw alike (a `Prediction`), else None.
    """

    def __init__(
        self, predictions=(), refused: bool = False, reason: str | None = None, twin=None, refusal_score=None
    ):
        super().__init__(predictions)
        self.refused, self.reason, self.twin = refused, reason, twin
        self.refusal_score: float | None = refusal_score  # the probability on the refusal concept (None: no such)

    @property
    def text(self) -> str:
        """The answer in a few words: "8 (Latin)", "8 (Latin) or 4 (Bengali)", or the reason of a refusal."""
        if self.refused:
            return self.reason or "refused"
        if not self:
            return ""
        return self[0].read_as + (f" or {self.twin.read_as}" if self.twin else "")

    def to_dict(self) -> dict:
        return {
            "answer": self.text,
            "refused": self.refused,
            "reason": self.reason,
            "twin": self.twin.to_dict() if self.twin else None,
            "refusal_score": self.refusal_score,
            "predictions": [p.to_dict() for p in self],
        }


# Without a declared twin, the best class of another script and concept is named beside the first when it holds
# this much of the probability: the model cannot choose between two readings of one shape.
TWIN_SHARE = 0.25
DEFAULT_REFUSAL_THRESHOLD = 0.5


class Predictor:
    """Load a model once; answer `top_k` for batches of images in any language."""

    def __init__(self, model, processor, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        # On the CPU, oneDNN's convolutions run a ResNet's small batches two to three times faster with channels-last
        # weights and inputs; ViT and ConvNeXt give the same scores at the same speed (their convolutions are few).
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.processor = processor
        self.decode_side = DECODE_MARGIN * input_side(processor)
        config = model.config
        self.concepts = concept_ids(config)
        self.fold = concept_fold(config)  # None for a concept-level model
        self.class_languages = label_languages(config)
        self.class_scripts = label_scripts(config)
        self.scripts = sorted({script for script in self.class_scripts if script})
        self.language_scripts = {
            language_key(lang): script for lang, script in (getattr(config, "language_scripts", None) or {}).items()
        }
        refusal = set(getattr(config, "refusal_concepts", None) or [])
        self.refusal_concepts = [c for c in self.concepts if c in refusal]
        self.answer_mask = torch.tensor([c not in refusal for c in self.concepts])
        # the concept (its index) of each class
        self.class_concepts = list(range(len(self.concepts))) if self.fold is None else self.fold.argmax(1).tolist()
        self.refusal_classes = torch.tensor([float(self.concepts[c] in refusal) for c in self.class_concepts])
        # a hint names a script or language of the concepts, not the refusal class's "no language" (zxx, Zyyy)
        self.scripts = sorted({s for s, r in zip(self.class_scripts, self.refusal_classes.tolist()) if s and not r})
        self.language_scripts = {lang: s for lang, s in self.language_scripts.items() if s in self.scripts}
        self.refusal_threshold = float(getattr(config, "refusal_threshold", None) or DEFAULT_REFUSAL_THRESHOLD)
        # What ranking reads for every answer, made once: the classes of each script (classes, scripts), the
        # first class of each (concept, script), and the classes of every other concept that can be a twin.
        self.script_masks = torch.tensor([[float(s == script) for script in self.scripts] for s in self.class_scripts])
        self.class_index: dict[tuple[int, str | None], int] = {}
        for i, key in enumerate(zip(self.class_concepts, self.class_scripts)):
            self.class_index.setdefault(key, i)
        answering = [i for i, refused in enumerate(self.refusal_classes.tolist()) if not refused]
        self.twin_candidates = [
            [i for i in answering if self.class_concepts[i] != concept] for concept in range(len(self.concepts))
        ]
        labels = {name: i for i, name in config.id2label.items()}
        self.twins: dict[int, list[int]] = {}
        for a, b in getattr(config, "label_twins", None) or []:
            if a in labels and b in labels:
                self.twins.setdefault(labels[a], []).append(labels[b])
                self.twins.setdefault(labels[b], []).append(labels[a])
        self.default_language: str = getattr(config, "default_language", None) or "en"
        self.label_space = LabelSpace.from_names(
            self.concepts,
            getattr(config, "label_display_names", None) or {},
            self.default_language,
            getattr(config, "label_space_name", "labels"),
        )

    @classmethod
    def from_pretrained(cls, model_id: str | Path, device=None, **kwargs) -> "Predictor":
        """A local model folder or a Hub id, checked first (`check_model_source`): never its code, never a size
        its weights do not hold; any failure to load it is a `UserError` naming it."""
        model_id = str(model_id)
        check_model_source(model_id, kwargs.get("revision"))
        try:
            model, loading = AutoModelForImageClassification.from_pretrained(
                model_id, trust_remote_code=False, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
            )
            processor = AutoImageProcessor.from_pretrained(
                model_id, backend="pil", trust_remote_code=False, revision=kwargs.get("revision")
            )
        except Exception as err:  # a model folder is data: whatever is wrong with it is one line
            raise model_error(model_id, err) from None
        check_loaded_weights(model_id, model, loading)
        try:
            return cls(model, processor, device)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise UserError(
                f"model {model_id}: config.json: its label maps do not agree ({first_line(err)})"
            ) from None

    @property
    def languages(self) -> list[str]:
        """The languages the model can name its concepts in."""
        return self.label_space.languages

    def display_name(self, concept: str, language: str | None = None) -> str:
        """The concept's name in `language`, else its base language, else the default, else the id."""
        return self.label_space.display_name(concept, language)

    @property
    def hint_languages(self) -> list[str]:
        """The languages a hint can name (those of a joint model's data; none for a concept model)."""
        if self.fold is None:
            return []
        return sorted({lang for lang in self.class_languages if lang} | set(self.language_scripts))

    def hint_mask(self, hint: str) -> torch.Tensor:
        """1 for the classes of the hinted script (`Deva`, any case) or language (`hi`, `th-TH` -> `th`), else 0."""
        if self.fold is None:
            raise UserError(
                f"hint {hint!r}: this model has one class per concept; "
                "hints need a model trained with `label_granularity: concept_script` or `concept_language`"
            )
        code = hint.strip()[:1].upper() + hint.strip()[1:].lower()
        if is_script_code(code) and code in self.scripts:
            return torch.tensor([float(s == code) for s in self.class_scripts])
        for lang in language_candidates(hint):
            mask = torch.tensor([float(c is not None and language_key(c) == lang) for c in self.class_languages])
            if mask.any():
                return mask
            script = self.language_scripts.get(lang)  # a (concept, script) model reads a language by its script
            if script and not any(self.class_languages):
                return torch.tensor([float(s == script) for s in self.class_scripts])
        raise UserError(
            f"hint {hint!r}: not a script ({', '.join(self.scripts)}) "
            f"nor a language ({', '.join(self.hint_languages)}) of this model"
        )

    def concept_probabilities(self, probabilities: torch.Tensor, hint: str | None = None) -> torch.Tensor:
        """Class probabilities -> concept probabilities (summed over every class, or within the hinted ones)."""
        if hint:
            probabilities = probabilities * self.hint_mask(hint)
            probabilities = probabilities / probabilities.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return probabilities if self.fold is None else probabilities @ self.fold

    def concept_scripts(self, probabilities: torch.Tensor, hint: str | None = None) -> list[list[str | None]]:
        """For each image and concept, the likeliest script among the concept's classes (None: concept model)."""
        if self.fold is None:
            return [[None] * len(self.concepts) for _ in range(len(probabilities))]
        if hint:
            probabilities = probabilities * self.hint_mask(hint)
        # (images, concepts, scripts): each concept's probability within each script's classes
        per_script = torch.einsum("ic,cs,ck->iks", probabilities, self.script_masks, self.fold)
        best = per_script.argmax(dim=-1)
        return [[self.scripts[j] for j in row] for row in best.tolist()]

    def read(self, source, max_pixels: int | None = None) -> Image.Image:
        """An image file, encoded bytes or Pillow image, decoded no larger than this model needs (`load_image`)."""
        return load_image(source, max_pixels=max_pixels, size=self.decode_side)

    @torch.inference_mode()
    def class_probabilities(self, images: list) -> torch.Tensor:
        """The model's own class probabilities (images, classes), as `pipeline()` gives them: one processor call
        and one forward for the batch."""
        inputs = self.processor([self.read(image) for image in images], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device)
        if self.channels_last and pixels.dim() == 4:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        logits = self.model(pixel_values=pixels).logits
        return logits.float().softmax(dim=-1).cpu()

    def probabilities(self, images: list[Image.Image], hint: str | None = None) -> torch.Tensor:
        """Concept probabilities (images, concepts)."""
        if hint:
            self.hint_mask(hint)  # a bad hint fails before the model runs
        return self.concept_probabilities(self.class_probabilities(images), hint)

    def rank(
        self, class_probabilities: torch.Tensor, k: int = 3, language: str | None = None, hint: str | None = None
    ) -> list[Answer]:
        """Top-k concepts per row of `class_probabilities` (from `class_probabilities`), named in `language`.

        The model does not run here, so the rows of one batch can be ranked with different hints and languages.
        A refusal concept is never among them; the scores are the model's own (those `pipeline()` gives, summed).
        """
        k = max(1, min(k, int(self.answer_mask.sum())))
        concept_probabilities = self.concept_probabilities(class_probabilities, hint)
        ranked = concept_probabilities.masked_fill(~self.answer_mask, -1.0)
        scores, indices = ranked.topk(k, dim=-1)
        scripts = self.concept_scripts(class_probabilities, hint)
        answers = []
        for row, (row_scores, row_indices, script_row) in enumerate(zip(scores, indices, scripts)):
            predictions = [
                self._prediction(i, float(s), script_row[i], language)
                for s, i in zip(row_scores.tolist(), row_indices.tolist())
            ]
            share = float(class_probabilities[row] @ self.refusal_classes) if self.refusal_concepts else None
            if share is not None and share >= self.refusal_threshold:
                answers.append(Answer(predictions, True, self.refusal_reason(share, language), refusal_score=share))
                continue
            twin = None if hint else self._twin(class_probabilities[row], concept_probabilities[row], predictions[0])
            answers.append(Answer(predictions, twin=twin and self._prediction(*twin, language), refusal_score=share))
        return answers

    def read_hint(self, hint: str | None, language: str | None = None) -> tuple[str | None, str | None]:
        """(answer language, hint to apply): a bad hint is one line. Drawings of things are not written in a
        script: to a concept model, a language hint that its label space names says only which language the
        answer is wanted in (unless `language` says it)."""
        if not hint:
            return language, None
        if self.fold is None and self.label_space.answer_language(hint) is not None:
            return language or hint, None
        self.hint_mask(hint)
        return language, hint

    def _prediction(self, concept: int, score: float, script: str | None, language: str | None) -> Prediction:
        name = self.display_name(self.concepts[concept], language)
        return Prediction(self.concepts[concept], name, score, script, script_name(script) if script else None)

    def refusal_reason(self, share: float, language: str | None = None) -> str:
        """Why an image is refused, led by the refusal concept's own name in `language` (its registry name)."""
        concept = self.refusal_concepts[0]
        return (
            f"{self.display_name(concept, language)} ({share:.0%} of the probability on {concept!r}, "
            f"refused from {self.refusal_threshold:.0%})"
        )

    def _twin(self, probabilities: torch.Tensor, concept_probabilities: torch.Tensor, first: Prediction):
        """(concept index, score, script) of the other reading of the first prediction's shape, or None.

        A twin class the config lists for the first prediction's class comes first; else the best class of another
        concept, when it is of another script and holds TWIN_SHARE of the probability.
        """
        if self.fold is None or first.script is None:
            return None
        first_concept = self.concepts.index(first.concept)
        first_class = self.class_index.get((first_concept, first.script))
        others = self.twin_candidates[first_concept]  # the classes of every other concept
        if not others or first_class is None:
            return None
        declared = [i for i in self.twins.get(first_class, []) if i in others]
        scores = probabilities.tolist()
        best = max(declared or others, key=scores.__getitem__)
        if not declared and (self.class_scripts[best] == first.script or scores[best] < TWIN_SHARE):
            return None
        concept = self.class_concepts[best]
        return concept, float(concept_probabilities[concept]), self.class_scripts[best]

    def top_k(self, images, k: int = 3, language: str | None = None, hint: str | None = None) -> list[Answer]:
        """Top-k concepts per image, named in `language` (falling back to the default language).

        `hint` (a joint model) says which script (`Deva`) or language (`hi`) the images are written in; with it, an
        answer names one reading, without it the twins of a shape both. To a concept model, a language hint that the
        label space names is the answer's language. Each answer is a list of
        `Prediction`s that also says whether the image is refused (`Answer.refused`, `Answer.reason`).
        """
        if isinstance(images, Image.Image):
            images = [images]
        if not images:
            return []
        language, hint = self.read_hint(hint, language)  # a bad hint fails before the model runs
        return self.rank(self.class_probabilities(images), k, language, hint)
