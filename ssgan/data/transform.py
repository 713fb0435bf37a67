"""Normalise images to the configured size and channel count (or refuse them when resizing is off)."""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ssgan.data.catalog import DataSourceError

# Said by every per-file image error: `predict` can skip such files instead of stopping.
SKIP_HINT = "; with `ssgan predict`, --skip-bad skips such files"
# PIL modes with a single intensity channel; anything else is treated as colour.
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


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
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float greyscale: scale the full range to 8 bits rather than clip it.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        img = Image.fromarray(np.rint((arr - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8))
    img = img.convert("L" if c == 1 else "RGB")
    if img.size != (w, h):
        # Centre-crop to the target aspect, then resample: photos keep their proportions.
        img = ImageOps.fit(img, (w, h), method=Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if c == 1 else arr


def decode(data: bytes, target: tuple[int, int, int], resize: bool, where: str) -> np.ndarray:
    """Encoded image bytes (any format Pillow reads) -> uint8 (H, W, C) at `target`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. palette-with-transparency notes; not the user's problem
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                img = ImageOps.exif_transpose(img)  # phone photos: honour the orientation tag
    except UnidentifiedImageError:  # its message names Pillow's BytesIO, not the user's file
        raise DataSourceError(f"{where}: not a decodable image (no image format Pillow reads){SKIP_HINT}") from None
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as err:
        raise DataSourceError(f"{where}: not a decodable image ({err}){SKIP_HINT}") from None
    return fit_pil(img, target, resize, where)
