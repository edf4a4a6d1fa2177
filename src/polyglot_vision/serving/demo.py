"""The Gradio demo (and Space): draw or upload an image, read the answer in your language.

    polyglot-vision demo outputs/polydigits/quickstart --examples space/examples   # local, on 127.0.0.1
    MODEL_ID=polyglot-vision/polydigits-quickstart python space/app.py

One inference path: every answer comes from `Predictor.class_probabilities` and `Predictor.rank` (what
`Predictor.top_k` does); changing the language only renames the answer shown (`Predictor.display_name`),
it does not run the model again. The page takes its title, languages and hints from the model's config,
so a model of objects gets a demo of objects. Uploads are checked before they are decoded (file size by
Gradio, pixel count here), and a file that is not an image gets a message, not a crash.

A crowd is served in batches: Gradio hands `predict` every upload waiting in the queue (up to
`MAX_BATCH_SIZE`) as lists, one per input; the images are decoded and checked one by one, preprocessed
and classified together (one model call per batch), and ranked per request with that request's language
and hint. A bad upload in a batch gets its own message in the note and an empty answer; it never fails
its batch-mates (`admission` refuses malformed calls before they join a batch). Beyond `MAX_QUEUE`
waiting requests a user is told the demo is busy and to try again.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import ctypes.util
import gc
import importlib.util
import io
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio's queue asks matplotlib for its backend around every call; unset, the first call resolves one by importing
# pyplot (about a second), and every call after switches backends twice. The demo draws nothing: agg from the start.
os.environ.setdefault("MPLBACKEND", "agg")

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..images import batches, load_image, read_file  # noqa: E402
from ..labels import language_name  # noqa: E402
from .admission import BUSY_MESSAGE, admission_middleware  # noqa: E402
from .predictor import Answer, Prediction, Predictor, input_side  # noqa: E402

__all__ = [
    "build_demo",
    "build_tabs",
    "launch",
    "language_choices",
    "read_upload",
    "flatten_sketch",
    "MAX_PIXELS",
    "BUSY_MESSAGE",
]

TOP_K = 5
MAX_PIXELS = 40_000_000  # larger images are refused before they are decoded
MAX_FILE_SIZE = "10mb"  # Gradio refuses larger uploads
MAX_BATCH_SIZE = 64  # uploads answered by one model call
BATCH_PIXELS = 16_000_000  # decoded pixels held at once; a batch beyond it is answered in several model calls
TRIM_AFTER_PIXELS = 4_000_000  # after a batch with an upload this large, memory is given back at once
UPLOAD_CACHE = (60, 600)  # every minute, uploads older than 10 minutes are deleted (all of them at shutdown)
CONCURRENCY_LIMIT = 1  # batches at once: one batch keeps a 2-core Space busy, a second only contends with it
MAX_QUEUE = 256  # waiting requests; beyond this a user is told the demo is busy
TORCH_THREADS = 1  # intra-op threads: on a few shared cores more threads spin-wait rather than compute
# Seconds an idle kept-alive connection stays open. uvicorn's default (5 s) equals httpx's pool expiry, so a client
# that reuses a connection after about 5 s idle (waiting in a crowd, between two calls) can send its request just
# as the server closes it: "Server disconnected without sending a response". Browsers keep theirs longer still.
KEEP_ALIVE_S = 75
# Gradio summarises its last GRADIO_ANALYTICS_MAX_EVENTS events with pandas after every
# GRADIO_ANALYTICS_CACHE_FREQUENCY events, only for its /monitoring page; by default that is after every
# request, over up to 10,000 events. These make it rare and small (the environment can still set them).
QUEUE_ANALYTICS_ENV = {"GRADIO_ANALYTICS_CACHE_FREQUENCY": "1000", "GRADIO_ANALYTICS_MAX_EVENTS": "1000"}
UNREADABLE_MESSAGE = "This file is not an image that can be read. Upload a PNG, JPEG or WebP picture."
HINT_HELP = "Optional: the writing the image shows. This model keeps one class per language, so a hint narrows it."

try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
except (OSError, AttributeError):  # not glibc
    _LIBC = None

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


def read_upload(source: str | Path | bytes, max_pixels: int = MAX_PIXELS, size: int | None = None) -> Image.Image:
    """An uploaded image, read as training read its images; a file that is not one, or too large, is a `gr.Error`.

    The pixel count is checked from the header, before anything is decoded; `size` (the side the model
    needs) shrinks a large image while it is decoded. The image's `info["source_pixels"]` is its pixel count.
    """
    if isinstance(source, bytes):
        data = source
    else:
        data, _ = read_file(source)
        if data is None:
            raise gr.Error(UNREADABLE_MESSAGE)
    try:
        with Image.open(io.BytesIO(data)) as header:  # lazy: reads the header only
            width, height = header.size
    except Image.DecompressionBombError:
        raise gr.Error(f"This image has too many pixels; the limit is {max_pixels / 1e6:.0f} megapixels.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise gr.Error(UNREADABLE_MESSAGE) from None
    if width * height > max_pixels:
        raise gr.Error(
            f"This image is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels. Please upload a smaller image."
        )
    try:
        image = load_image(data, max_pixels=max_pixels, size=size)
    except UserError:
        raise gr.Error("This image is damaged or truncated and cannot be read. Please try another file.") from None
    image.info["source_pixels"] = width * height
    return image


def give_memory_back() -> None:
    """Return the C heap's free pages to the system (glibc's `malloc_trim`), so that a burst of large
    images does not leave the server holding their memory; elsewhere, nothing."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


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


def _sketch_source(editor: gr.Sketchpad, payload: Any) -> str | bytes | None:
    """The drawing's composite from a sketchpad payload: a file (an API call's {"composite": FileData}), or the
    bytes the page posted beforehand. The page sends the editor's layers to /gradio_api/component_server
    (`accept_blobs`, kept by the component under an id) and the event carries only {"id": …}; Gradio's own
    preprocess would decode them unchecked, so they are taken here (and dropped, which Gradio does only in its
    preprocess) and read like any upload."""
    if not isinstance(payload, dict):
        return None
    if payload.get("id") is not None:
        blobs = editor.blob_storage.pop(str(payload["id"]), None)
        return blobs.composite if blobs is not None and blobs.composite else None
    return _file_source(payload.get("composite"))


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def _pixels(image: Image.Image) -> int:
    return image.width * image.height


def _labels(predictions: Answer, predictor: Predictor | None = None, language: str | None = None) -> dict[str, float]:
    """{"localized name (concept id)": score} for gr.Label; a refused image shows only the refusal concept's name
    (its display name in the registry)."""
    if getattr(predictions, "refused", False) and predictor is not None:
        concept = predictor.refusal_concepts[0]
        return {f"{predictor.display_name(concept, language)} ({concept})": predictions.refusal_score}
    return {f"{p.name} ({p.concept})": p.score for p in predictions}


def _answer_note(predictions: Answer) -> str:
    """What the answer as a whole says: why it is refused, or the two readings of a shape two scripts share."""
    if predictions.refused:
        return f"Refused: {predictions.reason}."
    if predictions.twin:
        return f"{predictions.text}: these scripts draw this shape alike. Choose the script as a hint for one answer."
    return ""


def _shown_concepts(shown: Any) -> list[tuple[str, float]] | None:
    """[(concept id, score)] read back from a gr.Label value {"name (concept)": score}, or None."""
    if not isinstance(shown, dict) or not shown:
        return None
    pairs = []
    for text, score in shown.items():
        name, _, rest = str(text).rpartition(" (")
        if not name or not rest.endswith(")") or not isinstance(score, (int, float)):
            return None
        pairs.append((rest[:-1], float(score)))
    return pairs


def _description(predictor: Predictor) -> str:
    """What the model knows, in a sentence: its concepts (a few, named) and the languages it answers in."""
    concepts = [c for c in predictor.concepts if c not in predictor.refusal_concepts]
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
    predictor: Predictor | None,
    examples_dir: str | Path | None = None,
    *,
    notice: str | None = None,
    max_batch_size: int = MAX_BATCH_SIZE,
) -> gr.Blocks:
    """The Blocks app; `predictor=None` gives a page that explains how to set MODEL_ID (`notice`: why)."""
    example_files = sorted(Path(examples_dir).glob("*.png")) if examples_dir and Path(examples_dir).is_dir() else []
    languages = predictor.languages if predictor else []
    hints = predictor.hint_languages if predictor else []
    title = (getattr(predictor.model.config, "label_space_name", None) or "image classifier") if predictor else ""
    default_language = predictor.default_language if predictor else None
    if predictor and default_language not in languages and languages:
        default_language = languages[0]

    def answer_batch(images: list[Image.Image], languages_: list[str | None], hints_: list[str | None]):
        """(predictions or None, note) per image: one model call for all, ranked with each one's language and hint."""
        probabilities = predictor.class_probabilities(images)
        answers: list[tuple[list[Prediction] | None, str]] = [(None, "")] * len(images)
        groups: dict[tuple[str | None, str | None], list[int]] = {}  # rows asking alike are ranked together
        for row, (language_, hint) in enumerate(zip(languages_, hints_)):
            groups.setdefault((language_ or None, hint or None), []).append(row)
        for (language_, hint), rows in groups.items():
            language_hint = hint if hints else None  # a concept model's note says the hint is not used
            try:
                ranked = predictor.rank(probabilities[rows], TOP_K, language_, language_hint)
            except UserError as err:  # a hint this model does not know
                for row in rows:
                    answers[row] = (None, f"⚠️ {err}")
                continue
            for row, predictions in zip(rows, ranked):
                notes = [_answer_note(predictions), _hint_note(predictor, hint)]
                answers[row] = (predictions, " ".join(note for note in notes if note))
        return answers

    def predict(image: list[Any], language: list[Any], hint: list[Any]):
        """Top-k concepts of a batch of uploaded images, named in each one's `language` (lists in, lists out).

        The parameters keep the names of one request: /gradio_api/info and gradio_client keywords use them.
        """
        if predictor is None:
            raise gr.Error("No model is loaded: set MODEL_ID to a Hub model id or a model folder and restart.")
        n = len(image)
        labels: list[dict[str, float] | None] = [None] * n
        notes = [""] * n
        # Whatever is wrong with one request (an API caller's wrong types, a bad file) stays its own problem.
        languages_ = [value if isinstance(value, str) else None for value in language]
        hints_ = [value if isinstance(value, str) else None for value in hint]
        largest = 0

        def decoded():
            """(row, image) of each readable upload, decoded one at a time when the batch needs it."""
            nonlocal largest
            for row, payload in enumerate(image):
                try:
                    source = _file_source(payload)
                    if source is not None:
                        picture = read_upload(source, size=predictor.decode_side)
                        largest = max(largest, picture.info["source_pixels"])
                        yield row, picture
                except gr.Error as err:
                    notes[row] = f"⚠️ {err.message}"
                except Exception:  # noqa: BLE001 - never a stack trace, never the batch-mates' failure
                    notes[row] = f"⚠️ {UNREADABLE_MESSAGE}"

        # One model call for the whole batch, unless its decoded pixels exceed the budget.
        for part in batches(decoded(), len(image), BATCH_PIXELS, pixels=lambda item: _pixels(item[1])):
            rows = [row for row, _ in part]
            answers = answer_batch([p for _, p in part], [languages_[r] for r in rows], [hints_[r] for r in rows])
            for row, (predictions, note) in zip(rows, answers):
                labels[row] = _labels(predictions, predictor, languages_[row]) if predictions else None
                notes[row] = note
            del part, answers  # else this part stays alive while the next one is read
        if largest > TRIM_AFTER_PIXELS:
            give_memory_back()
        return [labels, notes]

    def predict_sketch(drawing, language, hint):
        """Top-k concepts of a drawing on the sketchpad (ink on white)."""
        if predictor is None:
            raise gr.Error("No model is loaded: set MODEL_ID to a Hub model id or a model folder and restart.")
        composite = _sketch_source(sketch, drawing)
        image = flatten_sketch(read_upload(composite)) if composite is not None else None
        if image is None:
            return None, ""
        [(predictions, note)] = answer_batch([image], [language], [hint])
        if predictions is None:
            raise gr.Error(note.removeprefix("⚠️ "))
        return _labels(predictions, predictor, language), note

    def relabel(shown, language):
        """The answer shown, renamed in another language from the concept ids in its labels (no model call)."""
        pairs = _shown_concepts(shown) if predictor else None
        if pairs is None:
            return gr.skip()
        return {f"{predictor.display_name(concept, language)} ({concept})": score for concept, score in pairs}

    def pick_language(request: gr.Request):
        header = request.headers.get("accept-language", "") if request is not None else ""
        return _best_language(header, predictor, default_language)

    with gr.Blocks(title=f"polyglot-vision: {title}", analytics_enabled=False, delete_cache=UPLOAD_CACHE) as demo:
        gr.Markdown(f"# polyglot-vision · {title}\n" + (_description(predictor) if predictor else ""))
        if predictor is None:
            gr.Markdown((f"**{notice}**\n\n" if notice else "") + NO_MODEL_MESSAGE, elem_id="pv-no-model")
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

        # No gr.State output: in a batch Gradio writes output states into the first request's session only,
        # so the language switch reads the concept ids back from the label shown.
        outputs = [label, note]
        # preprocess=False: the handlers get the uploaded file's path and decode it themselves, after
        # checking its pixel count, so that a bad upload gets a message rather than a server error.
        shared = dict(outputs=outputs, preprocess=False)
        image.change(
            predict, [image, language, script], api_name="predict", batch=True, max_batch_size=max_batch_size, **shared
        )
        sketch.change(
            predict_sketch,
            [sketch, language, script],
            api_name="predict_sketch",
            trigger_mode="always_last",
            show_progress="hidden",
            **shared,
        )
        language.change(relabel, [label, language], [label], api_visibility="private", queue=False)
        if predictor is not None and languages:
            demo.load(pick_language, None, [language], api_visibility="private", queue=False)
    return demo


def _examples_for(examples_dir: str | Path | None, predictor: Predictor, first: bool) -> Path | None:
    """A tab's examples: the folder named after its label space (examples/polyobjects), else, for the first
    tab only, the images at the top of `examples_dir`."""
    if not examples_dir:
        return None
    own = Path(examples_dir) / str(getattr(predictor.model.config, "label_space_name", ""))
    return own if own.is_dir() else (Path(examples_dir) if first else None)


def build_tabs(
    predictors: list[Predictor], examples_dir: str | Path | None = None, *, max_batch_size: int = MAX_BATCH_SIZE
) -> gr.Blocks:
    """One page with a tab per model (PolyDigits beside PolyObjects), each the demo of `build_demo`.

    The first tab's endpoints keep their names (`/predict`); the next ones get Gradio's suffixes (`/predict_1`).
    """
    demos = [
        build_demo(p, _examples_for(examples_dir, p, i == 0), max_batch_size=max_batch_size)
        for i, p in enumerate(predictors)
    ]
    with gr.Blocks(title="polyglot-vision", analytics_enabled=False, delete_cache=UPLOAD_CACHE) as page:
        with gr.Tabs():
            for predictor, demo in zip(predictors, demos):
                with gr.Tab(getattr(predictor.model.config, "label_space_name", None) or "model"):
                    demo.render()
    return page


def launch(
    model: Predictor | str | Path | list | None,
    host: str | None = "127.0.0.1",
    port: int | None = None,
    *,
    examples_dir: str | Path | None = None,
    max_file_size: str | int = MAX_FILE_SIZE,
    concurrency_limit: int = CONCURRENCY_LIMIT,
    max_queue: int = MAX_QUEUE,
    max_batch_size: int = MAX_BATCH_SIZE,
    torch_threads: int | None = TORCH_THREADS,
    cheap_queue_analytics: bool = True,
    block: bool = True,
    quiet: bool = False,
    notice: str | None = None,
) -> gr.Blocks:
    """Load the model once and serve the demo (never a share link).

    model: a Predictor, a model folder or Hub id, a list of them (a tab each), or None (a page that explains how
    to set MODEL_ID).
    host=None lets Gradio choose (GRADIO_SERVER_NAME, else 127.0.0.1), as a Space needs.
    block=False returns at once with the server running; `demo.local_url` is its address.
    max_batch_size=1, torch_threads=None (torch's default) and cheap_queue_analytics=False undo this
    module's serving choices one by one, to measure what each buys.
    """
    if torch_threads:
        torch.set_num_threads(torch_threads)
    if isinstance(model, (list, tuple)) and len(model) == 1:
        model = model[0]
    if isinstance(model, (list, tuple)):
        predictors = [m if isinstance(m, Predictor) else Predictor.from_pretrained(m) for m in model]
        for predictor in predictors:
            warm_up(predictor)
        demo = build_tabs(predictors, examples_dir=examples_dir, max_batch_size=max_batch_size)
    else:
        predictor = model if isinstance(model, Predictor) or model is None else Predictor.from_pretrained(model)
        warm_up(predictor)
        demo = build_demo(predictor, examples_dir=examples_dir, notice=notice, max_batch_size=max_batch_size)
    if cheap_queue_analytics:  # read when the queue is made, in demo.queue()
        for key, value in QUEUE_ANALYTICS_ENV.items():
            os.environ.setdefault(key, value)
    freeze_startup_objects()  # before serving: its one full pass is not paid by a request
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=max_queue)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=max_file_size,
        prevent_thread_lock=True,
        quiet=quiet,
        show_error=False,
        footer_links=["api"],
        css=CSS,
        ssr_mode=False,
        app_kwargs={"middleware": admission_middleware(demo)},
    )
    if demo.server is not None:  # read by each new connection; Gradio does not pass it to uvicorn
        demo.server.config.timeout_keep_alive = KEEP_ALIVE_S
    if block:
        demo.block_thread()
    return demo


def freeze_startup_objects() -> None:
    """Keep what exists before the app serves (the model, torch, Gradio's blocks: over half a million objects) out of
    the garbage collector's full passes, which would otherwise walk all of it every so often while serving: a
    pause of a few hundred milliseconds that the requests waiting at that moment pay. New objects are still
    collected as before."""
    gc.collect()
    gc.freeze()


def warm_up(predictor: Predictor | None) -> None:
    """What the first request would otherwise pay, paid before serving: the queue's matplotlib import, and one
    model call (its kernels chosen and its memory laid out)."""
    if importlib.util.find_spec("matplotlib") is not None:
        import matplotlib  # noqa: F401 - Gradio's queue imports it around every call

    if predictor is not None:
        side = input_side(predictor.processor)
        predictor.class_probabilities([Image.new("RGB", (side, side), (255, 255, 255))])


def load_predictor_or_message(model_id: str | None) -> tuple[Predictor | None, str | None]:
    """For the Space: (predictor, None), or (None, why not) when MODEL_ID is unset or cannot be loaded."""
    if not model_id:
        return None, "MODEL_ID is not set."
    try:
        return Predictor.from_pretrained(model_id), None
    except UserError as err:
        return None, str(err)


def load_predictors_or_message(model_ids: str | None) -> tuple[list[Predictor] | Predictor | None, str | None]:
    """For the Space: MODEL_ID may name several models, separated by commas (a tab each); (predictors, None),
    or (None, why not) when it is unset or one of them cannot be loaded."""
    ids = [part.strip() for part in (model_ids or "").split(",") if part.strip()]
    if len(ids) <= 1:
        return load_predictor_or_message(ids[0] if ids else None)
    predictors = []
    for model_id in ids:
        predictor, notice = load_predictor_or_message(model_id)
        if predictor is None:
            return None, notice
        predictors.append(predictor)
    return predictors, None
