"""`ssgan fid A B`: the Fréchet distance between two image sets, in the convention of pytorch-fid.

A and B are each a Parquet split (data/prepared/test.parquet), a folder of images, a model file
(models/model.pt) or an MLflow model URI (runs:/<id>/generator, models:/<name>@<alias>) whose G
gives --n samples. --metric classifier (default) uses the reference classifier (`ssgan reference`);
--metric inception the TF-Inception-V3 of standard FID.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pipelines import params as P
from pipelines import tracking as T
from ssgan.quality import measures as Q
from ssgan.data.catalog import DataSourceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", help="Parquet split, image folder, model file or MLflow model URI")
    parser.add_argument("b", help="the same kinds as A")
    parser.add_argument("--metric", choices=("classifier", "inception"), default="classifier",
                        help="features: the reference classifier's (fid_classifier) or Inception's (fid_inception)")
    parser.add_argument("--n", type=int, default=None,
                        help="images per set: samples drawn from a model (default 1000), a seeded subset of a split or folder (default: all)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--reference", type=Path, default=Path("models/reference.pt"),
                        help="reference classifier for --metric classifier (default: %(default)s)")
    parser.add_argument("--params", default=P.DEFAULT_PARAMS,
                        help="params file: quality.inception_weights and data.cache_dir for --metric inception")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and subsets")


def run(args: argparse.Namespace) -> None:
    from ssgan.quality.feature_nets import classifier_outputs, inception_features, reference_from_payload
    from ssgan.quality.image_sets import load_image_set, native_shape

    if args.n is not None and args.n < 2:
        raise DataSourceError(f"--n {args.n}: need at least 2 images per set")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise DataSourceError(f"--device {args.device}: no CUDA GPU here; leave --device out to run on the CPU")
    if args.metric == "classifier":
        if not args.reference.exists():
            raise DataSourceError(f"{args.reference}: no reference classifier; run `ssgan reference` (or `dvc repro`) first")
        net = reference_from_payload(torch.load(args.reference, map_location="cpu", weights_only=True))
        c, h, w = net.image_shape
        target = (h, w, c)

        def features(images):
            return classifier_outputs(net, images, args.batch_size, args.device)[0]
    else:
        from ssgan.quality.inception import load_inception, resolve_weights

        cfg = P.load_config(args.params, ("quality",))
        inception = load_inception(resolve_weights(cfg.quality.inception_weights, Path(P.data_config(args.params).cache_dir)))
        target = native_shape(args.a) or native_shape(args.b) or (299, 299, 3)

        def features(images):
            return inception_features(inception, images, args.batch_size, args.device)
    T.use_project_store(args.a, args.b)
    sets = [load_image_set(s, args.n, target, args.seed) for s in (args.a, args.b)]
    for source, images in zip((args.a, args.b), sets):
        if len(images) < 2:  # a covariance needs two samples
            raise DataSourceError(f"{source}: {len(images)} image(s); FID needs at least 2 per set")
    for source, images in zip((args.a, args.b), sets):
        if args.metric == "classifier" and tuple(images.shape[1:]) != target:
            raise DataSourceError(f"{source}: images of shape {tuple(images.shape[1:])}; the reference classifier "
                                  f"takes {target} (H, W, C): a set of another dataset")
    feature_sets = [features(images) for images in sets]
    for source, f in zip((args.a, args.b), feature_sets):
        warning = Q.small_set_warning(source, len(f), f.shape[1])
        if warning:
            print(f"ssgan fid: {warning}", file=sys.stderr)
    distance = Q.fid(*feature_sets)
    name = Q.FID_CLASSIFIER if args.metric == "classifier" else Q.FID_INCEPTION
    print(f"{name}: {distance:.4f}  ({len(sets[0])} vs {len(sets[1])} images)")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["fid", *sys.argv[1:]])
