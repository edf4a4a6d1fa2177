"""The Gradio demo (and Space): draw or upload an image, read the answer in your language.

    polyglot-vision demo outputs/polydigits/quickstart --examples space/examples   # local, on 127.0.0.1
    MODEL_ID=polyglot-vision/polydigits-quickstart python space/app.py

One inference path: every answer comes from `Predictor.top_k`; changing the language only renames the
last answer (`Predictor.display_name`), it does not run the model again. The page takes its title,
languages and hints from the model's config, so a model of objects gets a demo of objects. Uploads
are checked before they are decoded (file size by Gradio, pixel count here), and a file that is not
an image gets a message, not a crash.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..images import load_image  # noqa: E402
from ..labels import language_name  # noqa: E402
from .predictor import Predictor  # noqa: E402

__all__ = ["build_demo", "launch", "language_choices", "read_upload", "flatten_sketch", "MAX_PIXELS"]

TOP_K = 5
MAX_PIXELS = 40_000_000  # larger images are refused before they are decoded
MAX_FILE_SIZE = "10mb"  # Gradio refuses larger uploads
CONCURRENCY_LIMIT = 2  # model calls at once (a free CPU Space has 2 cores)
MAX_QUEUE = 256  # waiting requests beyond this are refused with "queue full"
HINT_HELP = "Optional: the writing the image shows. This model keeps one class per language, so a hint narrows it."

# Names in right-to-left scripts are laid out by their own direction (like dir="auto").
CSS = """
#pv-result .output-class, #pv-result .label *, #pv-language input, #pv-language li,
#pv-language .token, .pv-auto-dir { unicode-bidi: plaintext; }
"""

NO_MODEL_MESSAGE = """### No model is loaded

Set the environment variable **`MODEL_ID`** to a Hub model id or a local model folder, then restart:

- on a Hugging Face Space: *Settings → Variables and secrets → New variable*, name `MODEL_ID`,
  value e.g. `polyglot-vision/polydigits-quickstart`;
- locally: `MODEL_ID=outputs/polydigits/quickstart python space/app.py`, or
  `polyglot-vision demo outputs/polydigits/quickstart`.
"""


# --------------------------------------------------------------------------------------------------
# Languages
# --------------------------------------------------------------------------------------------------


def language_choices(languages: list[str]) -> list[tuple[str, str]]:
    """(name in its own language, code) pairs for the language picker, ordered by code."""
    return [(language_name(code), code) for code in languages]


def _best_language(accept_language: str, predictor: Predictor, default: str) -> str:
    """The first language of an Accept-Language header that the model can name concepts in."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip()
        found = predictor.label_space.answer_language(tag) if tag and tag != "*" else None
        if found:
            return found
    return default


# --------------------------------------------------------------------------------------------------
# Images: checked before decoding, sketches flattened onto white paper
# --------------------------------------------------------------------------------------------------


def read_upload(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An uploaded image, read as training read its images; a file that is not one, or too large, is a `gr.Error`.

    The pixel count is checked from the header, before anything is decoded.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as header:  # lazy: reads the header only
            width, height = header.size
    except Image.DecompressionBombError:
        raise gr.Error(f"This image has too many pixels; the limit is {max_pixels / 1e6:.0f} megapixels.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise gr.Error("This file is not an image that can be read. Upload a PNG, JPEG or WebP picture.") from None
    if width * height > max_pixels:
        raise gr.Error(
            f"This image is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels. Please upload a smaller image."
        )
    try:
        return load_image(data, max_pixels=max_pixels)
    except UserError:
        raise gr.Error("This image is damaged or truncated and cannot be read. Please try another file.") from None


def flatten_sketch(composite: Image.Image, margin: float = 0.15) -> Image.Image | None:
    """The sketchpad's RGBA composite on white, cropped to the ink and centred in a square (or None if blank)."""
    image = load_image(composite)
    ink = Image.eval(image.convert("L"), lambda v: 255 if v < 250 else 0)
    box = ink.getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    side = int(max(right - left, bottom - top) * (1 + 2 * margin)) + 1
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image.crop(box), ((side - (right - left)) // 2, (side - (bottom - top)) // 2))
    return square


def _file_source(payload: Any) -> str | bytes | None:
    """The uploaded file's path (or a data: URL's bytes) from an unprocessed Image/FileData payload."""
    if payload is None:
        return None
    if isinstance(payload, (str, Path)):
        return str(payload)
    if not isinstance(payload, dict):
        raise gr.Error("Unexpected input; upload an image file.")
    if payload.get("path"):
        return payload["path"]
    url = payload.get("url") or ""
    if url.startswith("data:"):
        try:
            data = base64.b64decode(url.split(",", 1)[1], validate=False)
        except (IndexError, binascii.Error, ValueError):
            raise gr.Error("This file is not an image that can be read.") from None
        return data
    return None


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def _labels(predictor: Predictor, result: list[list[Any]] | None, language: str | None) -> dict[str, float] | None:
    """{"localized name (concept id)": score} for gr.Label, from a stored [[concept, score], …]."""
    if not result:
        return None
    return {f"{predictor.display_name(concept, language)} ({concept})": float(score) for concept, score in result}


def _description(predictor: Predictor) -> str:
    """What the model knows, in a sentence: its concepts (a few, named) and the languages it answers in."""
    concepts = predictor.concepts
    shown = ", ".join(predictor.display_name(c) for c in concepts[:8]) + (", …" if len(concepts) > 8 else "")
    return (
        f"Draw or upload an image and read the answer in your language. This model knows "
        f"{len(concepts)} concepts ({shown}) and names them in {len(predictor.languages)} languages."
    )


def _hint_note(predictor: Predictor | None, hint: str | None) -> str:
    """What the answer says about a hint: the language it was restricted to, or that this model takes none."""
    if not hint or predictor is None:
        return ""
    if not predictor.hint_languages:
        return f"Hint {hint!r} not used: this model reads every language with one classifier."
    return f"Read as {language_name(hint)} ({hint})."


def build_demo(
    predictor: Predictor | None, examples_dir: str | Path | None = None, *, notice: str | None = None
) -> gr.Blocks:
    """The Blocks app; `predictor=None` gives a page that explains how to set MODEL_ID (`notice`: why)."""
    example_files = sorted(Path(examples_dir).glob("*.png")) if examples_dir and Path(examples_dir).is_dir() else []
    languages = predictor.languages if predictor else []
    hints = predictor.hint_languages if predictor else []
    title = (getattr(predictor.model.config, "label_space_name", None) or "image classifier") if predictor else ""
    default_language = predictor.default_language if predictor else None
    if predictor and default_language not in languages and languages:
        default_language = languages[0]

    def answer(image: Image.Image | None, language: str | None, hint: str | None):
        if predictor is None:
            raise gr.Error("No model is loaded: set MODEL_ID to a Hub model id or a model folder and restart.")
        if image is None:
            return None, None, ""
        try:
            [predictions] = predictor.top_k(
                [image], k=TOP_K, language=language or None, hint=(hint or None) if hints else None
            )
        except UserError as err:
            raise gr.Error(str(err)) from None
        result = [[p.concept, p.score] for p in predictions]
        return _labels(predictor, result, language), result, _hint_note(predictor, hint)

    def predict(image, language, hint):
        """Top-k concepts of an uploaded image, named in `language`."""
        source = _file_source(image)
        return answer(read_upload(source) if source is not None else None, language, hint)

    def predict_sketch(sketch, language, hint):
        """Top-k concepts of a drawing on the sketchpad (ink on white)."""
        composite = _file_source((sketch or {}).get("composite")) if isinstance(sketch, dict) else None
        image = flatten_sketch(read_upload(composite)) if composite is not None else None
        return answer(image, language, hint)

    def relabel(result, language):
        """The last answer, renamed in another language (the model does not run again)."""
        return _labels(predictor, result, language) if predictor else None

    def pick_language(request: gr.Request):
        header = request.headers.get("accept-language", "") if request is not None else ""
        return _best_language(header, predictor, default_language)

    with gr.Blocks(title=f"polyglot-vision: {title}", analytics_enabled=False) as demo:
        gr.Markdown(f"# polyglot-vision · {title}\n" + (_description(predictor) if predictor else ""))
        if predictor is None:
            gr.Markdown((f"**{notice}**\n\n" if notice else "") + NO_MODEL_MESSAGE, elem_id="pv-no-model")
        result_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab("Upload or camera", id="upload"):
                        image = gr.Image(
                            label="Image",
                            sources=["upload", "webcam", "clipboard"],
                            type="filepath",
                            image_mode=None,
                            height=320,
                            elem_id="pv-image",
                        )
                        if example_files:
                            gr.Examples(
                                examples=[[str(path)] for path in example_files],
                                inputs=[image],
                                label="Examples (click one)",
                                examples_per_page=len(example_files),
                            )
                    with gr.Tab("Draw", id="draw"):
                        sketch = gr.Sketchpad(
                            label="Draw with the mouse (dark ink on white)",
                            type="pil",
                            image_mode="RGBA",
                            canvas_size=(280, 280),
                            brush=gr.Brush(
                                default_size=14, colors=["#000000"], default_color="#000000", color_mode="fixed"
                            ),
                            layers=False,
                            transforms=(),
                            elem_id="pv-sketch",
                        )
            with gr.Column(scale=2):
                language = gr.Dropdown(
                    choices=language_choices(languages),
                    value=default_language,
                    label="Answer in",
                    info="Language of the names, each written in itself.",
                    interactive=bool(languages),
                    elem_id="pv-language",
                )
                # Only a model with one class per language can use a hint: for any other the control is hidden.
                script = gr.Dropdown(
                    choices=[("Not sure / any", "")] + language_choices(hints),
                    value="",
                    label="Written in (optional hint)",
                    info=HINT_HELP,
                    visible=bool(hints),
                    elem_id="pv-script",
                )
                label = gr.Label(num_top_classes=TOP_K, label="Top answers", elem_id="pv-result")
                note = gr.Markdown("", elem_id="pv-note", elem_classes=["pv-auto-dir"])

        outputs = [label, result_state, note]
        # preprocess=False: the handlers get the uploaded file's path and decode it themselves, after
        # checking its pixel count, so that a bad upload gets a message rather than a server error.
        image.change(predict, [image, language, script], outputs, api_name="predict", preprocess=False)
        sketch.change(
            predict_sketch,
            [sketch, language, script],
            outputs,
            api_name="predict_sketch",
            preprocess=False,
            trigger_mode="always_last",
            show_progress="hidden",
        )
        language.change(relabel, [result_state, language], [label], api_visibility="private", queue=False)
        if predictor is not None and languages:
            demo.load(pick_language, None, [language], api_visibility="private", queue=False)
    return demo


def launch(
    model: Predictor | str | Path | None,
    host: str | None = "127.0.0.1",
    port: int | None = None,
    *,
    examples_dir: str | Path | None = None,
    max_file_size: str | int = MAX_FILE_SIZE,
    concurrency_limit: int = CONCURRENCY_LIMIT,
    max_queue: int = MAX_QUEUE,
    block: bool = True,
    quiet: bool = False,
    notice: str | None = None,
) -> gr.Blocks:
    """Load the model once and serve the demo (never a share link).

    model: a Predictor, a model folder or Hub id, or None (a page that explains how to set MODEL_ID).
    host=None lets Gradio choose (GRADIO_SERVER_NAME, else 127.0.0.1), as a Space needs.
    block=False returns at once with the server running; `demo.local_url` is its address.
    """
    predictor = model if isinstance(model, Predictor) or model is None else Predictor.from_pretrained(model)
    demo = build_demo(predictor, examples_dir=examples_dir, notice=notice)
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=max_queue)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=max_file_size,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=False,
        footer_links=["api"],
        css=CSS,
        ssr_mode=False,
    )
    return demo


def load_predictor_or_message(model_id: str | None) -> tuple[Predictor | None, str | None]:
    """For the Space: (predictor, None), or (None, why not) when MODEL_ID is unset or cannot be loaded."""
    if not model_id:
        return None, "MODEL_ID is not set."
    try:
        return Predictor.from_pretrained(model_id), None
    except UserError as err:
        return None, str(err)
