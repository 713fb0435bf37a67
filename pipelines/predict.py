"""`ssgan predict --model M IMAGES...`: one line per image (path, predicted class, probability); --output writes CSV."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from ssgan.util.fileio import atomic_write, csv_bytes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files, folders of images, or Parquet files (a prepared split "
                        "or an `image` column of encoded images)")
    parser.add_argument("--model", default="models/model.pt",
                        help="models:/ssgan-digits-classifier@champion, runs:/<id>/classifier or a model file (default: %(default)s)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip files that are not decodable images (each named on stderr) instead of stopping")
    parser.add_argument("--output", type=Path, default=None, help="also write the predictions to this CSV file")


def run(args: argparse.Namespace) -> None:
    from ssgan.data.inputs import read_images
    from ssgan.tracking.serving import load_classifier

    P.use_project_store(args.model)
    model = load_classifier(args.model)
    skipped: list[str] | None = [] if args.skip_bad else None
    names, images = read_images(args.images, model.image_shape, skipped)
    for line in skipped or []:
        print(f"ssgan predict: skipped {line}", file=sys.stderr)
    probs = model.probabilities(images)
    rows = [{"image": n, "class": model.class_names[int(p.argmax())], "probability": round(float(p.max()), 6)}
            for n, p in zip(names, probs)]
    for r in rows:
        print(f"{r['image']}\t{r['class']}\t{r['probability']:.4f}")
    if args.output is not None:
        atomic_write(args.output, csv_bytes(rows, ["image", "class", "probability"]))


if __name__ == "__main__":
    from pipelines.cli import main

    main(["predict", *sys.argv[1:]])
