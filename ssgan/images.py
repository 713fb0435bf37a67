"""Image grids as PNG bytes: generated samples, the labeled preview (figures with axes: ssgan.plots)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def grid_png(images: np.ndarray, rows: int, scale: int = 1, pad: int = 1) -> bytes:
    """Tile uint8 (N, H, W, C) images into `rows` rows; upscale small images by `scale` (nearest)."""
    n, h, w, c = images.shape
    cols = -(-n // rows)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y:y + h, x:x + w] = images[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def to_uint8(images: "np.ndarray") -> np.ndarray:
    """float (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C)."""
    return np.rint(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
