"""`ssgan suggest --model M --n 100`: the unlabeled images to label next, ranked by the classifier's uncertainty.

Writes suggest/to_label.parquet (row_id, score, predicted class, the image as PNG bytes) and
suggest/contact_sheet.png (the top N, most uncertain first, row by row, each captioned with its row_id) for an annotator, who
returns a `row_id,label` CSV to `ssgan add-labels`.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from pipelines import params as P
from pipelines import tracking as T
from ssgan.active.suggest import SCORES, rank_unlabeled, unlabeled_rows
from ssgan.data.catalog import DataSourceError
from ssgan.util.fileio import atomic_write_many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="models/model.pt",
                        help="models:/ssgan-digits-classifier@champion, runs:/<id>/classifier or a model file (default: %(default)s)")
    parser.add_argument("--n", type=int, default=100, help="images to suggest (default: %(default)s)")
    # margin: the only rule that beat random labels in benchmarks/active.py (docs/active.md)
    parser.add_argument("--score", choices=SCORES, default="margin", help="ranking (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="prepared splits (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("suggest"), help="output folder (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from ssgan.util.images import contact_sheet_png
    from ssgan.tracking.serving import load_classifier

    if args.n < 1:
        raise DataSourceError(f"--n {args.n}: need at least 1")
    T.use_project_store(args.model)
    model = load_classifier(args.model)
    images, row_ids = unlabeled_rows(args.data)
    if tuple(images.shape[1:]) != model.image_shape:
        raise DataSourceError(f"{args.model} takes images of shape {model.image_shape}; {args.data} holds "
                              f"{tuple(images.shape[1:])}: a model of another dataset")
    logits = np.concatenate([model.logits(images[s:s + 1000]) for s in range(0, len(images), 1000)])
    order, scores = rank_unlabeled(logits, row_ids, args.score, args.n)
    pngs = []
    for img in images[order]:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    table = pa.table({"row_id": row_ids[order], "score": scores, "score_kind": [args.score] * len(order),
                      "predicted": [model.class_names[int(i)] for i in logits[order].argmax(axis=1)],
                      "image": pa.array(pngs, pa.binary())})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    sheet = images[order]
    atomic_write_many({args.out / "to_label.parquet": sink.getvalue().to_pybytes(),
                       args.out / "contact_sheet.png": contact_sheet_png(sheet, [str(r) for r in row_ids[order]],
                                                                         scale=4 if sheet.shape[1] < 16 else 1)})
    print(f"[ssgan] {len(order)} of {len(images)} unlabeled images by {args.score} -> {args.out}/to_label.parquet, "
          f"{args.out}/contact_sheet.png (row by row, most uncertain first, each with its row id); label them in a row_id,label CSV, "
          f"then `ssgan add-labels FILE.csv`")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["suggest", *sys.argv[1:]])
