"""The one way images are read: checks, conversion and content hash for `prepare`, and `load_image` for models.

Training, evaluation, prediction and the Space all see an image the same way: upright
(EXIF orientation applied), RGB or grayscale, transparent pixels over white paper.

Bad files must not stop a long run half-way, so each image is checked once,
when the sources are unified, and the verdict travels with it:

- readable RGB / grayscale images keep their encoded bytes untouched (no re-encoding);
- convertible ones (CMYK, palette, 16-bit, alpha, EXIF-rotated) are converted to
  RGB or 8-bit grayscale (alpha over white: ink on paper) and saved as PNG;
- missing, truncated or corrupt files and decompression bombs get a `problem`
  string; `data/unify.py` counts them and skips them or stops, as the recipe says.

The hash is taken over the encoded file, so an image copied into two sources (or
twice into one) is recognised as one; the same picture re-encoded differently is not.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps

from .errors import UserError

KEPT_MODES = ("RGB", "L")
# File endings that image folders are read by (those of `datasets`' imagefolder builder, commonest first).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
EXIF_ORIENTATION = 0x0112
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
# Corrupt files raise many kinds of errors inside decoders; all of them mean "unreadable".
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    TypeError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
    ZeroDivisionError,
    MemoryError,
)


def read_bytes(value, base_dir: str | None) -> tuple[bytes | None, str | None, str | None]:
    """(encoded bytes, file name, problem) of an `Image(decode=False)` value or a path string."""
    if value is None:
        return None, None, "no image"
    if isinstance(value, str):
        value = {"bytes": None, "path": value}
    data, path = value.get("bytes"), value.get("path")
    if data is not None:
        return data, path, None
    if not path:
        return None, None, "no image"
    full = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
    try:
        with open(full, "rb") as handle:
            return handle.read(), path, None
    except FileNotFoundError:
        return None, path, "missing file"
    except OSError as err:
        return None, path, f"unreadable file ({err.strerror or type(err).__name__})"


def to_rgb_or_gray(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB or L the way a viewer would show it."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(to_8bit(np.asarray(image)), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode == "1":
        return image.convert("L")
    return image if image.mode in KEPT_MODES else image.convert("RGB")


# Full scales that high-bit and float images are stored in: [0, 1] floats, then 8- to 32-bit integers.
FULL_SCALES = (1.0, 255.0, 1023.0, 4095.0, 16383.0, 65535.0, 2.0**32 - 1)


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """Grey levels of any depth as 8 bits, scaled from their own full scale, so that an image looks as it did.

    The full scale is the least of FULL_SCALES that holds the brightest value: a float image in
    [0, 1] is scaled by 255, a 16-bit one by 255/65535, a 12-bit one stored in 16 bits by 255/4095;
    8-bit values stored in a wider type stay as they are. An image with values below 0 is
    scaled from its own least to its greatest value.
    """
    pixels = np.asarray(pixels)
    scales = FULL_SCALES if np.issubdtype(pixels.dtype, np.floating) else FULL_SCALES[1:]
    pixels = np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low = float(pixels.min(initial=0.0))
    if low < 0:
        pixels = pixels - low
        scale = float(pixels.max()) or 1.0
    else:
        peak = float(pixels.max(initial=0.0))
        scale = next((s for s in scales if peak <= s), peak)
    return np.clip(np.round(pixels * (255.0 / scale)), 0, 255).astype(np.uint8)


def frame_count(data: bytes) -> int:
    """Frames in an encoded image (animated GIF, PNG or WebP, multi-page TIFF); 1 when it cannot tell."""
    if not data.startswith((b"GIF8", b"II*\x00", b"MM\x00*", b"RIFF", b"\x89PNG")):
        return 1
    if data.startswith(b"\x89PNG") and b"acTL" not in data[: data.find(b"IDAT") if b"IDAT" in data else 4096]:
        return 1  # a plain PNG: no animation control chunk before its pixels
    try:
        with _open(data) as image:
            return int(getattr(image, "n_frames", 1) or 1)
    except DECODE_ERRORS:
        return 1


def _format_of(data: bytes) -> list[str] | None:
    """Pillow's format name from the file's magic bytes, so that `Image.open` tries one plugin, not all."""
    for magic, name in MAGIC:
        if data.startswith(magic):
            return [name]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ["WEBP"]
    return None


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=_format_of(data))


def check_image(data: bytes, max_pixels: int | None = None) -> tuple[bytes | None, str | None, str | None]:
    """(bytes to store, content hash, problem) for one encoded image.

    The bytes are the input itself when the image needs no conversion. A PNG is checked
    with `verify()` (chunk CRCs up to IEND: a truncated or damaged file fails) without
    decoding its pixels; other formats, which have no checksums, are decoded.
    """
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(data)  # reads the header only
            width, height = image.size
            if limit and width * height > limit:
                return None, None, f"decompression bomb ({width}x{height} pixels)"
            exif_formats = ("JPEG", "TIFF", "WEBP", "MPO")
            orientation = image.getexif().get(EXIF_ORIENTATION, 1) if image.format in exif_formats else 1
            upright = orientation in (None, 1)
            if image.format == "PNG":
                image.verify()
                if image.mode in KEPT_MODES and upright:
                    return data, _digest(data), None
                image = _open(data)
            elif image.format == "JPEG" and max(width, height) > 1024 and image.mode in KEPT_MODES and upright:
                image.draft(image.mode, (width // 4, height // 4))  # decode at reduced scale; still reads every byte
            image.load()  # a truncated or corrupt file fails here
            if image.mode in KEPT_MODES and upright:
                return data, _digest(data), None
            converted = to_rgb_or_gray(image if upright else ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, None, "decompression bomb (too many pixels)"
    except DECODE_ERRORS as err:
        return None, None, f"corrupt or truncated image ({_reason(err)})"
    buffer = io.BytesIO()
    converted.save(buffer, format="PNG")
    return buffer.getvalue(), _digest(data), None


def _digest(data: bytes) -> str:
    """Content hash of the encoded file: identical files are one image."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:120]


def check_batch(values: list, base_dir: str | None = None, max_pixels: int | None = None) -> dict[str, list]:
    """`check_image` over a batch of `Image(decode=False)` values: images, hashes, problems, file names."""
    images, hashes, problems, files = [], [], [], []
    for value in values:
        data, path, problem = read_bytes(value, base_dir)
        digest = None
        if problem is None:
            data, digest, problem = check_image(data, max_pixels)
        images.append({"bytes": data, "path": os.path.basename(path) if path else None} if problem is None else None)
        hashes.append(digest)
        problems.append(problem)
        files.append(path)
    return {"image": images, "_hash": hashes, "_problem": problems, "_file": files}


def load_image(source: str | os.PathLike | bytes | Image.Image, max_pixels: int | None = None) -> Image.Image:
    """An RGB image ready for a model, read exactly as `prepare` stores it; a UserError names a bad file.

    A path or encoded bytes go through the same checks and conversion as `check_image`; an
    already decoded Pillow image is turned upright and flattened onto white the same way.
    """
    if isinstance(source, Image.Image):
        return to_rgb_or_gray(ImageOps.exif_transpose(source)).convert("RGB")
    name = "upload" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        data, problem = source, None
    elif os.path.isdir(source):
        raise UserError(f"image {name}: is a folder, not an image file")
    else:
        data, _, problem = read_bytes(str(source), None)
        problem = "file not found" if problem == "missing file" else problem
    if problem is None:
        data, _, problem = check_image(data, max_pixels)
    if problem is not None:
        raise UserError(f"image {name}: {problem}")
    with Image.open(io.BytesIO(data), formats=_format_of(data)) as image:
        return image.convert("RGB")


def problem_kind(problem: str) -> str:
    """ "corrupt or truncated image (…)" -> "corrupt or truncated image", for counting."""
    return problem.split(" (", 1)[0]


# Pillow refuses truncated files unless told otherwise; keep that default even if a library changed it.
ImageFile.LOAD_TRUNCATED_IMAGES = False
