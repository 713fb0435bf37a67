"""What ties a run to its code and data in MLflow: lineage tags, the prepared splits as datasets, and
the environment its logged models name. Shared by a trained run (ssgan.driver.launch) and one
recorded from committed outputs (ssgan.tracking.record)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from ssgan.data.identity import split_md5
from ssgan.data.parquet import describe
from ssgan.tracking import runs as tracking
from ssgan.tracking.promote import DATA_KEY_TAG

# The MLflow model environment: what loading the logged models needs (and faster than inferring it).
MODEL_REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}"]

SPLIT_CONTEXTS = {"labeled": "training", "unlabeled": "training", "val": "validation", "test": "test"}


def record_lineage(run: tracking.RunRef, data_dir: Path, source: str, model, lineage: Mapping[str, str],
                   key: str) -> None:
    """Tags that trace the run to its code and data (`key`: the data key), and the splits as MLflow
    datasets. Each dataset's digest is its file's md5: the md5 DVC lists for that file in data/prepared's manifest."""
    tags = {"ssgan.source": source, DATA_KEY_TAG: key, "ssgan.labels": str(describe(data_dir / "labeled.parquet")[1]),
            # the count, not the names: MLflow cuts a tag at 8,000 characters; the names travel in each
            # logged model (class_names.json and the payload), whatever their number
            "ssgan.num_classes": str(model.meta.num_classes), **lineage}
    for key, value in tags.items():
        tracking.set_tag(run, key, value)
    tracking.log_datasets(run, {name: (data_dir / f"{name}.parquet", split_md5(data_dir, name), context)
                                for name, context in SPLIT_CONTEXTS.items()})
