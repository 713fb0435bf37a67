"""Do a user's images look like the training images? The check behind `predict`'s warning.

A classifier sees pixels as `prepare` stored its training images: 8-bit (0..255), in the training
set's polarity (light digits on a dark background for the built-in digit sets). A dark-on-light scan,
or pixels on another scale (0..16, 0..1), still gets a class and a confident probability; the mean
pixel of such an image lies far outside the training images' range, which is what is checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Reference:
    lo: float  # the smallest and largest mean pixel of one training image
    hi: float
    what: str  # where the figures come from, named in the warning


# scikit-learn's 1797 digits as `prepare` stores them (0..16 scaled to 0..255); every split of them lies inside.
BUILTIN = {"digits": Reference(46.0, 107.8, "the digits data set")}
# An image is far when its mean is beyond the training range by more than this share of the range.
MARGIN = 0.25


def image_means(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).mean(axis=1)


def training_reference(source: str | None, shape: tuple[int, int, int], prepared: Path | None) -> Reference | None:
    """The training images' range: from the prepared labeled and val splits in `prepared` when they are
    of the model's image shape (and source, when known), else the built-in figures of `source`, else None."""
    from ssgan.data.parquet import PreparedDataError, describe, read_split

    splits = [Path(prepared) / f"{s}.parquet" for s in ("labeled", "val")] if prepared is not None else []
    if splits and all(p.is_file() for p in splits):
        try:
            meta = describe(splits[0])[0]
            if tuple(meta["shape"]) == tuple(shape) and source in (None, meta.get("source")):
                means = np.concatenate([image_means(read_split(p).images) for p in splits])
                if len(means):
                    return Reference(float(means.min()), float(means.max()), f"the prepared splits in {prepared}")
        except (PreparedDataError, KeyError, ValueError, OSError):
            pass  # unreadable splits: no reference from them; predicting does not need them
    return BUILTIN.get(source) if source is not None else None


def far_from_training(names: list[str], images: np.ndarray, ref: Reference) -> str | None:
    """The warning for the first image whose mean pixel is far from the training range; None if none is."""
    margin = MARGIN * (ref.hi - ref.lo)
    means = image_means(images)
    far = np.flatnonzero((means < ref.lo - margin) | (means > ref.hi + margin))
    if not len(far):
        return None
    i = int(far[0])
    light_background = ref.lo > 127.5
    polarity = "dark shapes on a light background" if light_background else (
        "light shapes on a dark background" if ref.hi < 127.5 else None)
    inverted = polarity is not None and (means[i] > 127.5) != light_background and abs(means[i] - 127.5) > 32
    if inverted:
        advice = "invert it (255 - pixel)"
    elif means[i] < ref.lo:
        advice = "it is far darker (pixels on a 0..1 or 0..16 scale?): scale it to 0..255"
    else:
        advice = "it is far brighter: check its contrast and background"
    return (f"warning: {names[i]}: mean pixel {means[i]:.0f}, far from the training images' {ref.lo:.0f}..{ref.hi:.0f} "
            f"({ref.what}); the model expects 8-bit pixels (0..255){', ' + polarity if polarity else ''}: "
            f"{advice}, or its prediction means little (said once, for the first such image)")
