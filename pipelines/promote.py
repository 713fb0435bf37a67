"""DVC stage `promote` (after evaluate): the run that wrote models/model.pt -> registry aliases, promotion.json.

Its classifier version becomes `champion` when its val error is lower than the champion's for the
same data (ssgan.tracking.promote explains the scheme), else `challenger`; `--force` promotes regardless.
A store that lacks the run behind models/model.pt (a fresh clone, a new tracking server: DVC skipped
train and evaluate) first gets it, recorded from the committed outputs (ssgan.tracking.record).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from pipelines import tracking as T
from ssgan.tracking.record import PipelineOutputs, record
from ssgan.util.fileio import atomic_write, json_bytes
from ssgan.tracking.promote import promote

OUTPUT = Path("promotion.json")
PIPELINE_OUTPUTS = PipelineOutputs(
    model=Path("models/model.pt"), history=Path("plots/train.csv"), metrics=Path("metrics.json"),
    figures=(Path("plots/samples.png"), Path("plots/curves.png"), Path("plots/confusion.csv"),
             Path("plots/confusion.png"), Path("plots/test_accuracy_class.csv")),
    per_class=Path("plots/test_accuracy_class.csv"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"), help="model file (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="make it champion whatever its val error (says so)")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="the decision as JSON (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"),
                        help="prepared splits, for the lineage of a run recorded from the outputs (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    if not args.model.exists():
        raise FileNotFoundError(f"{args.model}: no model file; run `dvc repro` (or `ssgan train`) first")
    root = P.project_root()
    uri = T.tracking_uri(root)
    if args.model == PIPELINE_OUTPUTS.model:  # the pipeline's own outputs, which DVC may have restored, not trained
        recorded = record(PIPELINE_OUTPUTS, args.data, uri, T.artifact_root(root), P.git_lineage(root))
        if recorded is not None:
            print(f"[ssgan] the MLflow store had no run for {args.model}: recorded MLflow run {recorded.run_id} from "
                  f"the committed outputs (params, epochs, test metrics, figures, registered models)")
    result = promote(args.model, uri, force=args.force)
    name, version, key = result.get("name", ""), result["version"], result["data_key"]
    if result["already"]:
        print(f"[ssgan] {name or 'the classifier'} version {version} is already the champion for {key}")
    elif result["promoted"]:
        how = "forced (--force), " if result["forced"] else ""
        print(f"[ssgan] promoted {name} version {version} to champion for {key}: {how}{result['reason']}")
    else:
        print(f"[ssgan] not promoted: {name} version {version} stays challenger for {key}: {result['reason']} "
              f"(champion: version {result['champion_version']})")
    atomic_write(args.out, json_bytes({k: v for k, v in result.items()}))


if __name__ == "__main__":
    from pipelines.cli import main

    main(["promote", *sys.argv[1:]])
