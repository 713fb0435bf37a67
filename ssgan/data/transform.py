"""Normalise images to the configured size and channel count (or refuse them when resizing is off)."""
from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ssgan.data.catalog import DataSourceError

# Said by every per-file image error: `predict` can skip such files instead of stopping.
SKIP_HINT = "; with `ssgan predict`, --skip-bad skips such files"
# Larger images are refused unread (docs/data-sources.md): 8192 x 8192; decoding one takes at most 256 MB (RGBA).
MAX_PIXELS = 8192 * 8192
# PIL modes with a single intensity channel; anything else is treated as colour.
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def target_shape(native: tuple[int, int, int], image_size: int | None, channels: int | None) -> tuple[int, int, int]:
    h, w, c = native
    return (h if image_size is None else image_size, w if image_size is None else image_size,
            c if channels is None else channels)


def mismatch(where: str, got: tuple[int, ...], want: tuple[int, int, int]) -> DataSourceError:
    return DataSourceError(f"{where}: image is {_fmt(got)}, data.image_size/data.channels ask for {_fmt(want)} "
                           "and data.resize is false; set data.resize: true or match the size")


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def fit_array(images: np.ndarray, target: tuple[int, int, int], resize: bool, where: str) -> np.ndarray:
    """uint8 (n, h, w, c) -> (n, *target); a no-op when the shape already matches."""
    if images.shape[1:] == target:
        return images
    if not resize:
        raise mismatch(where, images.shape[1:], target)
    out = np.empty((len(images), *target), np.uint8)
    for i, img in enumerate(images):
        out[i] = fit_pil(Image.fromarray(img[..., 0] if img.shape[2] == 1 else img), target, resize, where)
    return out


def fit_pil(img: Image.Image, target: tuple[int, int, int], resize: bool, where: str) -> np.ndarray:
    h, w, c = target
    native_c = 1 if img.mode in _GRAY_MODES else 3
    if not resize and (img.height, img.width, native_c) != target:
        raise mismatch(where, (img.height, img.width, native_c), target)
    img = _flatten_alpha(_to_8bit(img))
    img = img.convert("L" if c == 1 else "RGB")
    if img.size != (w, h):
        # Centre-crop to the target aspect, then resample: photos keep their proportions.
        img = ImageOps.fit(img, (w, h), method=Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if c == 1 else arr


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float greyscale -> 8 bits by the type's fixed range, never by the image's own min and max:
    a faint scan stays faint, as it does in 8 bits. 16-bit (and Pillow's 32-bit "I", which older Pillows
    give 16-bit PNGs) is value / 257, clipped to 0..65535; float is taken as 0..1 (clipped), times 255."""
    if img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return img
    arr = np.asarray(img, dtype=np.float64)
    scaled = arr.clip(0.0, 1.0) * 255.0 if img.mode == "F" else arr.clip(0.0, 65535.0) / 257.0
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Transparency -> an opaque image: composited onto black, like the dark background of the built-in
    digit sets. When every visible pixel has one colour, the shape is drawn by alpha alone (a glyph or a
    mask, whichever its colour), so alpha itself is the intensity: opaque white, transparent black."""
    if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in img.info:
        return img
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
    colour, alpha = rgba[..., :3], rgba[..., 3:] / 255.0
    visible = colour[alpha[..., 0] > 0]
    if alpha.min() < alpha.max() and len(visible) and (visible == visible[0]).all():
        out = np.repeat(alpha * 255.0, 3, axis=2)
    else:
        out = colour * alpha
    return Image.fromarray(np.rint(out).astype(np.uint8), "RGB")


def decode(data: bytes, target: tuple[int, int, int], resize: bool, where: str) -> np.ndarray:
    """Encoded image bytes (any format Pillow reads) -> uint8 (H, W, C) at `target`. An image of more
    than MAX_PIXELS pixels is refused before its pixels are decoded."""
    too_large = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. palette-with-transparency notes; not the user's problem
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # but a bomb is refused, not muted
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:  # the header's size: nothing decoded yet
                    too_large = f"{img.width}x{img.height} = {img.width * img.height:,} pixels"
                else:
                    img.load()
                    img = ImageOps.exif_transpose(img)  # phone photos: honour the orientation tag
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        found = re.search(r"\((\d+) pixels\)", str(err))  # Pillow's message gives the count, not the size
        too_large = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    except UnidentifiedImageError:  # its message names Pillow's BytesIO, not the user's file
        raise DataSourceError(f"{where}: not a decodable image (no image format Pillow reads){SKIP_HINT}") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise DataSourceError(f"{where}: not a decodable image ({err}){SKIP_HINT}") from None
    if too_large is not None:
        raise DataSourceError(f"{where}: image of {too_large}, more than the limit of {MAX_PIXELS:,} "
                              f"(a decompression bomb, or a photo to shrink first){SKIP_HINT}")
    return fit_pil(img, target, resize, where)
