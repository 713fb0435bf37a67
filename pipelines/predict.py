"""`ssgan predict --model M IMAGES...`: one line per image (path, predicted class, probability); --output writes CSV."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from pipelines import tracking as T
from ssgan.util.fileio import atomic_write, csv_bytes

EXPECTS = ("Images are read as the training images were stored: 8-bit pixels (0..255; 16-bit by their full range, "
           "float as 0..1), resized to the model's size, in the training data's polarity (the built-in digit sets: "
           "light digits on a dark background). Transparency is composited onto black. An image whose mean pixel is "
           "far from the training images' gets one warning on stderr (invert or rescale it).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = f"{parser.description}. {EXPECTS}"
    parser.add_argument("images", nargs="+", help="image files, folders of images, or Parquet files (a prepared split "
                        "or an `image` column of encoded images)")
    parser.add_argument("--model", default="models/model.pt",
                        help="models:/ssgan-digits-classifier@champion, runs:/<id>/classifier or a model file (default: %(default)s)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip files that are not decodable images (each named on stderr) instead of stopping")
    parser.add_argument("--output", type=Path, default=None, help="also write the predictions to this CSV file")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"),
                        help="prepared splits the images' statistics are checked against, when they are of the "
                             "model's size (default: %(default)s; else the built-in figures of the model's data set)")


def run(args: argparse.Namespace) -> None:
    from ssgan.data.input_stats import far_from_training, training_reference
    from ssgan.data.inputs import iter_images
    from ssgan.tracking.serving import load_classifier

    T.use_project_store(args.model)
    model = load_classifier(args.model)
    reference = training_reference(_training_source(args.model), model.image_shape, args.data)
    skipped: list[str] | None = [] if args.skip_bad else None
    rows, warned = [], False
    # A batch at a time: memory is bounded by the batch, however many images there are.
    for names, images in iter_images(args.images, model.image_shape, skipped):
        if reference is not None and not warned:
            warning = far_from_training(names, images, reference)
            if warning:
                print(f"ssgan predict: {warning}", file=sys.stderr)
                warned = True
        probs = model.probabilities(images)
        rows += [{"image": n, "class": model.class_names[int(p.argmax())], "probability": round(float(p.max()), 6)}
                 for n, p in zip(names, probs)]
    for line in skipped or []:
        print(f"ssgan predict: skipped {line}", file=sys.stderr)
    # Printed once every image is read: an unreadable one stops the command before any line is out.
    for r in rows:
        print(f"{r['image']}\t{r['class']}\t{r['probability']:.4f}")
    if args.output is not None:
        atomic_write(args.output, csv_bytes(rows, ["image", "class", "probability"]))


def _training_source(model: str) -> str | None:
    """The data source a model file was trained on (its weights-only payload's metadata); None for an
    MLflow URI, whose images are then checked against --data alone."""
    if model.startswith(("runs:/", "models:/")):
        return None
    from ssgan.training.checkpoint import load_payload

    return str(load_payload(Path(model)).get("data", {}).get("source") or "") or None


if __name__ == "__main__":
    from pipelines.cli import main

    main(["predict", *sys.argv[1:]])
