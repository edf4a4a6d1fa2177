"""The Gradio demo (and Space): draw or upload a numeral in any script, read the answer in your language.

    polyglot-vision demo outputs/polydigits/quickstart      # local, on 127.0.0.1
    MODEL_ID=polyglot-vision/polydigits-quickstart python space/app.py

One inference path: every answer comes from `Predictor.top_k`; changing the language only renames the
last answer (`Predictor.display_name`), it does not run the model again.  Uploads are checked before
they are decoded (file size by Gradio, pixel count here), and a file that is not an image gets a
message, not a crash.
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

from .errors import UserError  # noqa: E402
from .polydigits import DIGITS  # noqa: E402
from .predictor import Predictor  # noqa: E402

__all__ = ["build_demo", "launch", "language_choices", "load_image", "flatten_sketch", "MAX_PIXELS"]

TOP_K = 5
MAX_PIXELS = 40_000_000  # larger images are refused before they are decoded
MAX_FILE_SIZE = "10mb"  # Gradio refuses larger uploads
CONCURRENCY_LIMIT = 2  # model calls at once (a free CPU Space has 2 cores)
MAX_QUEUE = 256  # waiting requests beyond this are refused with "queue full"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "space" / "examples"  # in a source checkout

# The numeral systems the PolyDigits models read: (ISO 15924 code, name, digits 0-9 from polydigits.DIGITS).
SCRIPTS: tuple[tuple[str, str, str], ...] = tuple(
    (code, name, DIGITS[key])
    for code, name, key in (
        ("Latn", "Latin", "latn"),
        ("Arab", "Arabic-Indic", "arab"),
        ("Aran", "Persian (Extended Arabic-Indic)", "pers"),
        ("Deva", "Devanagari", "deva"),
        ("Beng", "Bengali", "beng"),
        ("Gujr", "Gujarati", "gujr"),
        ("Taml", "Tamil", "taml"),
        ("Telu", "Telugu", "telu"),
        ("Knda", "Kannada", "knda"),
        ("Thai", "Thai", "thai"),
        ("Khmr", "Khmer", "khmr"),
        ("Mymr", "Myanmar", "mymr"),
        ("Hani", "Han", "hani"),
    )
)
SCRIPT_HINT_HELP = (
    "Optional. This model reads every script with one classifier and has no script input, "
    "so the hint does not change the answer; it is only repeated with the result."
)

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


def language_name(code: str) -> str:
    """The language's name in itself ("Français", "العربية", "हिन्दी"); the code if babel does not know it."""
    try:
        from babel import Locale

        name = Locale.parse(code.replace("-", "_")).get_display_name(code.replace("-", "_"))
    except Exception:  # babel missing, unknown or malformed code
        return code
    return (name[:1].upper() + name[1:]) if name else code


def language_choices(languages: list[str]) -> list[tuple[str, str]]:
    """(name in its own language, code) pairs for the language picker, ordered by code."""
    return [(language_name(code), code) for code in languages]


def _best_language(accept_language: str, languages: list[str], default: str) -> str:
    """The first language of an Accept-Language header that the model can name concepts in."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip()
        for candidate in (tag, tag.split("-")[0]):
            if candidate in languages:
                return candidate
    return default


# --------------------------------------------------------------------------------------------------
# Images: checked before decoding, sketches flattened onto white paper
# --------------------------------------------------------------------------------------------------


def load_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an uploaded image, refusing non-images and images over `max_pixels` before decoding them.

    Raises `gr.Error` with a message for the user.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image = Image.open(stream)  # lazy: reads the header only
    except Image.DecompressionBombError:
        raise gr.Error(f"This image has too many pixels; the limit is {max_pixels / 1e6:.0f} megapixels.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise gr.Error("This file is not an image that can be read. Upload a PNG, JPEG or WebP picture.") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise gr.Error(
                f"This image is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
                f"the limit is {max_pixels / 1e6:.0f} megapixels. Please upload a smaller image."
            )
        try:
            image.load()
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            return _on_white(image)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise gr.Error("This image is damaged or truncated and cannot be read. Please try another file.") from None


def _on_white(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white paper (they would otherwise read as black ink)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return image.convert("RGB")


def flatten_sketch(composite: Image.Image, margin: float = 0.15) -> Image.Image | None:
    """The sketchpad's RGBA composite on white, cropped to the ink and centred in a square (or None if blank)."""
    image = _on_white(composite)
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


def _script_note(script: str | None) -> str:
    names = {code: name for code, name, _ in SCRIPTS}
    if not script:
        return ""
    return f"Written in: {names.get(script, script)} (a hint only; this model does not use it)."


def build_demo(predictor: Predictor | None, examples_dir: str | Path | None = None, *,
               notice: str | None = None) -> gr.Blocks:
    """The Blocks app; `predictor=None` gives a page that explains how to set MODEL_ID (`notice`: why)."""
    examples_dir = Path(examples_dir) if examples_dir is not None else EXAMPLES_DIR
    example_files = sorted(examples_dir.glob("*.png")) if examples_dir.is_dir() else []
    languages = predictor.languages if predictor else []
    default_language = predictor.default_language if predictor else None
    if predictor and default_language not in languages and languages:
        default_language = languages[0]

    def answer(image: Image.Image | None, language: str | None, script: str | None):
        if predictor is None:
            raise gr.Error("No model is loaded: set MODEL_ID to a Hub model id or a model folder and restart.")
        if image is None:
            return None, None, ""
        [predictions] = predictor.top_k([image], k=TOP_K, language=language or None)
        result = [[p.concept, p.score] for p in predictions]
        return _labels(predictor, result, language), result, _script_note(script)

    def predict(image, language, script):
        """Top-k concepts of an uploaded image, named in `language`."""
        source = _file_source(image)
        return answer(load_image(source) if source is not None else None, language, script)

    def predict_sketch(sketch, language, script):
        """Top-k concepts of a drawing on the sketchpad (ink on white)."""
        composite = _file_source((sketch or {}).get("composite")) if isinstance(sketch, dict) else None
        image = flatten_sketch(load_image(composite)) if composite is not None else None
        return answer(image, language, script)

    def relabel(result, language):
        """The last answer, renamed in another language (the model does not run again)."""
        return _labels(predictor, result, language) if predictor else None

    def pick_language(request: gr.Request):
        header = request.headers.get("accept-language", "") if request is not None else ""
        return _best_language(header, languages, default_language)

    with gr.Blocks(title="polyglot-vision: numerals in any script", analytics_enabled=False) as demo:
        gr.Markdown(
            "# polyglot-vision · numerals in any script\n"
            "Draw or upload a digit written in any of 13 numeral systems — Latin, Arabic-Indic, Persian, "
            "Devanagari, Bengali, Gujarati, Tamil, Telugu, Kannada, Thai, Khmer, Myanmar, Han — and read "
            "the answer in your language."
        )
        if predictor is None:
            gr.Markdown((f"**{notice}**\n\n" if notice else "") + NO_MODEL_MESSAGE, elem_id="pv-no-model")
        result_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab("Upload or camera", id="upload"):
                        image = gr.Image(
                            label="Image of a numeral",
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
                                label="Examples: one numeral from each of the 13 scripts, and one MNIST handwritten digit (click one)",
                                examples_per_page=len(example_files),
                            )
                    with gr.Tab("Draw", id="draw"):
                        sketch = gr.Sketchpad(
                            label="Draw one numeral with the mouse (dark ink on white)",
                            type="pil",
                            image_mode="RGBA",
                            canvas_size=(280, 280),
                            brush=gr.Brush(default_size=14, colors=["#000000"], default_color="#000000",
                                           color_mode="fixed"),
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
                script = gr.Dropdown(
                    choices=[("Not sure / any", "")] + [(f"{name}  {digits}", code) for code, name, digits in SCRIPTS],
                    value="",
                    label="Written in (optional hint)",
                    info=SCRIPT_HINT_HELP,
                    elem_id="pv-script",
                )
                label = gr.Label(num_top_classes=TOP_K, label="Top answers", elem_id="pv-result")
                note = gr.Markdown("", elem_id="pv-note", elem_classes=["pv-auto-dir"])

        outputs = [label, result_state, note]
        # preprocess=False: the handlers get the uploaded file's path and decode it themselves, after
        # checking its pixel count, so that a bad upload gets a message rather than a server error.
        image.change(predict, [image, language, script], outputs, api_name="predict", preprocess=False)
        sketch.change(predict_sketch, [sketch, language, script], outputs, api_name="predict_sketch",
                      preprocess=False, trigger_mode="always_last", show_progress="hidden")
        language.change(relabel, [result_state, language], [label], api_visibility="private", queue=False)
        script.change(_script_note, [script], [note], api_visibility="private", queue=False)
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
