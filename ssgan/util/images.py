"""Image grids as PNG bytes: generated samples, the labeled preview (figures with axes: ssgan.util.plots)."""
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


CAPTION_HEIGHT = 12  # pixels under each image of a contact sheet, for its row id


def contact_sheet_png(images: np.ndarray, captions: list[str], cols: int = 10, scale: int = 1) -> bytes:
    """A grid for an annotator: each uint8 (H, W, C) image upscaled by `scale`, with its caption (the
    row id to put in the labels CSV) printed under it, so no one maps grid positions to rows by hand."""
    from PIL import ImageDraw, ImageFont

    n, h, w, c = images.shape
    cell_w, cell_h = max(w * scale, 6 * max(map(len, captions), default=1)) + 4, h * scale + CAPTION_HEIGHT + 4
    rows = -(-n // cols)
    sheet = Image.new("L" if c == 1 else "RGB", (cols * cell_w, rows * cell_h), 255)
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for i, (image, caption) in enumerate(zip(images, captions)):
        r, col = divmod(i, cols)
        x, y = col * cell_w + 2, r * cell_h + 2
        tile = Image.fromarray(image[..., 0] if c == 1 else image).resize((w * scale, h * scale), Image.NEAREST)
        sheet.paste(tile, (x, y))
        draw.text((x, y + h * scale + 1), caption, fill=0, font=font)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def to_uint8(images: "np.ndarray") -> np.ndarray:
    """float (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C)."""
    return np.rint(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
