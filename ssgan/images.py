"""Images as PNG bytes: sample grids, previews, the confusion matrix."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


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


def confusion_png(counts: np.ndarray, class_names: tuple[str, ...], cell: int = 36) -> bytes:
    """counts[true, predicted] as a heat map (shade = share of the true class), counts written in each cell."""
    k = len(counts)
    label_w = 8 + 7 * max(len(n) for n in class_names)
    img = Image.new("RGB", (label_w + k * cell + 1, label_w + k * cell + 1), "white")
    draw = ImageDraw.Draw(img)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    for t in range(k):
        draw.text((4, label_w + t * cell + cell // 3), class_names[t], fill="black")  # rows: true class
        draw.text((label_w + t * cell + 2, label_w - 14), class_names[t][: cell // 7], fill="black")  # cols: predicted
        for p in range(k):
            shade = int(255 * (1 - shares[t, p]))
            x, y = label_w + p * cell, label_w + t * cell
            draw.rectangle([x, y, x + cell, y + cell], fill=(shade, shade, 255), outline="gray")
            draw.text((x + 4, y + cell // 3), str(int(counts[t, p])), fill="white" if shade < 128 else "black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
