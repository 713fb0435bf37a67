"""Label-preserving views of an image batch for D's unlabeled-data terms (train.augment).

What a source allows is declared in `ssgan.config.SOURCE_VIEWS` (a mirrored digit can change class;
an 8x8 digit has no pixels to spare); `ssgan.config.views_for` resolves it with the train.augment_*
overrides into a `ViewSpec`. The weak view flips and translates; the strong view adds a cutout
(FixMatch's pair). D's own Gaussian noise comes on top of both in every training forward.

Every function draws from torch's global generator on the batch's device, which the loop seeds per
(seed, rank, epoch): a resumed run draws the same views.
"""
from __future__ import annotations

import torch
from torch import nn

from ssgan.config import ViewSpec


def random_translate(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image moved by its own integer offset in [-max_shift, max_shift]^2, zero-filled."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), device=x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
    # Advanced indices split by a slice put their broadcast dims first: (N, H, W, C).
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_cutout(x: torch.Tensor, max_side: int) -> torch.Tensor:
    """Each image with one square zeroed: side uniform in [1, max_side] (clipped to the image), centre
    anywhere on the image, so part of the square may fall outside it."""
    n, _, h, w = x.shape
    max_side = min(max_side, h, w)
    if max_side == 0:
        return x
    side = torch.randint(1, max_side + 1, (n,), device=x.device)
    top = torch.randint(0, h, (n,), device=x.device) - side // 2
    left = torch.randint(0, w, (n,), device=x.device) - side // 2
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + side)[:, None])  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + side)[:, None])  # (N, W)
    hole = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (N, 1, H, W)
    return x.masked_fill(hole, 0.0)


def weak_view(x: torch.Tensor, spec: ViewSpec) -> torch.Tensor:
    return random_translate(random_flip(x) if spec.flip else x, spec.translate)


def strong_view(x: torch.Tensor, spec: ViewSpec) -> torch.Tensor:
    return random_cutout(weak_view(x, spec), spec.cutout)
