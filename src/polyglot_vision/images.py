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

Reading is bounded: only regular files are opened (a FIFO, a device or a socket is refused, never waited
on), a file's size is checked before its bytes are read, the pixel count before anything is decoded, and
`load_image` shrinks a large image while it decodes it (JPEG `draft`, then `reduce`) to what the caller
needs, so a 4.9 kB PNG of 40 megapixels costs a model's input size in memory, not 160 MB per copy.
`batches` groups decoded images so that a batch never holds more than a pixel budget.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np
from PIL import Image, ImageFile, ImageOps

from .errors import UserError

KEPT_MODES = ("RGB", "L")
MAX_FILE_BYTES = 128 << 20  # larger files are refused before they are read (an uncompressed 40 MP image fits)
BATCH_PIXELS = 32_000_000  # decoded pixels a batch of `batches` may hold at once
# Pillow's `reduce` works in these modes; others are converted first.
REDUCIBLE_MODES = ("L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F")
# File endings that image folders are read by (those of `datasets`' imagefolder builder, commonest first).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
EXIF_ORIENTATION = 0x0112
EXIF_FORMATS = ("JPEG", "TIFF", "WEBP", "MPO")
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
    data, problem = read_file(full)
    return data, path, problem


def read_file(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> tuple[bytes | None, str | None]:
    """(bytes, None) of a regular file of at most `limit` bytes, else (None, problem).

    The file is opened without blocking and checked on the open handle, so a FIFO (whose reader would wait
    for a writer forever), a device such as /dev/zero (endless), a socket, or a file swapped for one of
    those meanwhile is refused, and a file's size (a sparse file of 2 GB takes no room on disk) is checked
    before any of its bytes is read.
    """
    handle, problem = open_regular(path, limit)
    if handle is None:
        return None, problem
    with handle:
        try:
            data = handle.read(os.fstat(handle.fileno()).st_size + 1)  # read(n) sets n bytes aside first
            while len(data) <= limit and (more := handle.read(1 << 20)):  # it grew, or says 0 (/proc)
                data += more
        except OSError as err:
            return None, f"unreadable file ({err.strerror or type(err).__name__})"
    if len(data) > limit:
        return None, f"file too large (over {limit >> 20} MB)"
    return data, None


def open_regular(path: str | os.PathLike, limit: int = MAX_FILE_BYTES):
    """(binary file handle, None) of a regular file of at most `limit` bytes, else (None, problem); see `read_file`."""
    try:
        problem = _not_regular(os.stat(path), limit)  # before opening: opening some devices does something
        if problem:
            return None, problem
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None, "missing file"
    except OSError as err:
        return None, f"unreadable file ({err.strerror or type(err).__name__})"
    handle = os.fdopen(fd, "rb")
    try:
        problem = _not_regular(os.fstat(fd), limit)
    except OSError as err:
        problem = f"unreadable file ({err.strerror or type(err).__name__})"
    if problem:
        handle.close()
        return None, problem
    return handle, None


def check_image_file(path: str | os.PathLike, max_pixels: int | None = None) -> None:
    """A UserError naming `path` unless it is a regular, not too large file whose header is an image's of at
    most `max_pixels`: the cheap checks, to fail before a long run starts (the pixels are checked when read)."""
    handle, problem = open_regular(path)
    if handle is not None:
        with handle:
            problem = _header_problem(handle, max_pixels)
    if problem is not None:
        raise UserError(f"image {path}: {'file not found' if problem == 'missing file' else problem}")


def _header_problem(handle, max_pixels: int | None) -> str | None:
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            magic = handle.read(16)
            handle.seek(0)
            with Image.open(handle, formats=_format_of(magic)) as image:  # reads the header only
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "decompression bomb (too many pixels)"
    except DECODE_ERRORS as err:
        return f"corrupt or truncated image ({_reason(err)})"
    if limit and width * height > limit:
        return f"decompression bomb ({width}x{height} pixels)"
    return None


def _not_regular(info: os.stat_result, limit: int) -> str | None:
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not an image file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, device or socket is never read)"
    if info.st_size > limit:
        return f"file too large ({info.st_size / 2**20:,.0f} MB; the limit is {limit >> 20} MB)"
    return None


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


def _header(data: bytes, max_pixels: int | None) -> tuple[Image.Image, int | None, str | None]:
    """(image opened from its header only, its EXIF orientation, a pixel-count problem or None)."""
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    image = _open(data)
    width, height = image.size
    if limit and width * height > limit:
        return image, None, f"decompression bomb ({width}x{height} pixels)"
    orientation = image.getexif().get(EXIF_ORIENTATION, 1) if image.format in EXIF_FORMATS else 1
    return image, orientation, None


def check_image(data: bytes, max_pixels: int | None = None) -> tuple[bytes | None, str | None, str | None]:
    """(bytes to store, content hash, problem) for one encoded image.

    The bytes are the input itself when the image needs no conversion. A PNG is checked
    with `verify()` (chunk CRCs up to IEND: a truncated or damaged file fails) without
    decoding its pixels; other formats, which have no checksums, are decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image, orientation, problem = _header(data, max_pixels)
            if problem:
                return None, None, problem
            width, height = image.size
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


def load_image(
    source: str | os.PathLike | bytes | Image.Image, max_pixels: int | None = None, size: int | None = None
) -> Image.Image:
    """An RGB image ready for a model, read exactly as `prepare` stores it; a UserError names a bad file.

    A path or encoded bytes go through the same checks and conversion as `check_image`; an
    already decoded Pillow image is turned upright and flattened onto white the same way.
    `size`: the side the caller needs. An image of more than twice that on each side is shrunk while it
    is decoded, by a whole factor that keeps each side at `size` or more; smaller ones are left alone.
    """
    if isinstance(source, Image.Image):
        return to_rgb_or_gray(ImageOps.exif_transpose(_shrink(source, size))).convert("RGB")
    name = "upload" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        data, problem = source, None
    else:
        data, problem = read_file(source)
        problem = "file not found" if problem == "missing file" else problem
    if problem is None:
        image, problem = decode_image(data, max_pixels, size)
    if problem is not None:
        raise UserError(f"image {name}: {problem}")
    return image


def decode_image(data: bytes, max_pixels: int | None = None, size: int | None = None):
    """(upright RGB image, None) or (None, problem): `check_image`'s checks, decoding at most what `size` needs.

    The pixel count is checked from the header; a JPEG is decoded at a reduced scale (`draft`), any other
    image is reduced (`reduce`) as soon as it is decoded, before any conversion multiplies its size.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image, orientation, problem = _header(data, max_pixels)
            if problem:
                return None, problem
            if image.format == "PNG":
                image.verify()  # chunk checksums, without decoding
                image = _open(data)
            if size and image.format == "JPEG":
                image.draft(None, (size, size))  # decodes at 1/2, 1/4 or 1/8 scale, no side below `size`
            image.load()  # a truncated or corrupt file fails here
            image = _shrink(image, size)
            if orientation not in (None, 1):
                image = ImageOps.exif_transpose(image)
            return to_rgb_or_gray(image).convert("RGB"), None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "decompression bomb (too many pixels)"
    except DECODE_ERRORS as err:
        return None, f"corrupt or truncated image ({_reason(err)})"


def _shrink(image: Image.Image, size: int | None) -> Image.Image:
    """`image` reduced by the largest whole factor that keeps both sides at `size` or more (if 2 or more)."""
    factor = min(image.width, image.height) // size if size else 0
    if factor < 2:
        return image
    if image.mode not in REDUCIBLE_MODES:
        image = image.convert("L") if image.mode == "1" else to_rgb_or_gray(image)
    return image.reduce(factor)


T = TypeVar("T")


def batches(
    items: Iterable[T],
    max_items: int,
    max_pixels: int = BATCH_PIXELS,
    pixels: Callable[[T], int] = lambda image: image.width * image.height,
) -> Iterator[list[T]]:
    """Consecutive batches of `items` (read lazily) of at most `max_items` and `max_pixels` pixels in all.

    An item larger than the budget alone makes a batch of one.
    """
    batch, total = [], 0
    for item in items:
        count = pixels(item)
        if batch and (len(batch) >= max_items or total + count > max_pixels):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += count
    if batch:
        yield batch


def problem_kind(problem: str) -> str:
    """ "corrupt or truncated image (…)" -> "corrupt or truncated image", for counting."""
    return problem.split(" (", 1)[0]


# Pillow refuses truncated files unless told otherwise; keep that default even if a library changed it.
ImageFile.LOAD_TRUNCATED_IMAGES = False
