"""The prepared splits reach the workers through Ray's object store, never by a path of the driver's
machine: a cluster's nodes share no disk, and a stale copy at the same path on another node would
train silently on other data.

The driver (which holds data/prepared) reads each split once and `ray.put`s it: the labeled set
whole (every rank trains on all of it), the unlabeled pool as one shard per rank, val for rank 0,
and test when a label curve scores its trials. Ray hands an array out of its object store without
a copy on the node that holds it and fetches it once per node elsewhere. Each part carries the
content digest the driver computed from the files the run key stands for; a rank recomputes it over
what it received and refuses a mismatch in one line.

A pool too big to hold in the object store streams instead (`StreamedSplits`): Ray Data reads the
unlabeled file in row groups, in read tasks pinned to the driver's node (the only one that has the
file), and `streaming_split` hands each rank its share of each pass, shuffled locally per pass;
labeled and val still travel whole as above. `stream_wanted` says when.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssgan.data.identity import content_digest
from ssgan.data.parquet import Split, decode_images, describe, read_split
from ssgan.driver.cluster import ClusterError
from ssgan.training.batches import WorkerData

STREAM_DATASET = "unlabeled"  # its name in TorchTrainer(datasets=...)
# auto (train.stream_unlabeled: null) streams a pool whose pixels exceed this share of the cluster's
# object store: the store also holds every other object of the job, and spills to disk when full.
STREAM_ABOVE_STORE_FRACTION = 0.25
PREFETCH_BATCHES = 4  # a shuffled stream's batch cost fell from 0.8 to 0.3 ms with prefetching (docs/distributed.md)


class DataIdentityError(ClusterError):
    """What a worker received is not the data of its run."""


@dataclass(frozen=True)
class ShippedPart:
    name: str  # e.g. "labeled.parquet" or "unlabeled.parquet shard 1/2", for messages
    ref: Any  # ray.ObjectRef of a Split
    digest: str  # content_digest of the Split the driver put
    rows: int


@dataclass(frozen=True, kw_only=True)
class WholeSplits:
    """The small splits, whole in the object store: labeled for every rank, val for rank 0, test for a curve."""
    labeled: ShippedPart
    validation: ShippedPart
    test: ShippedPart | None = None

    def val(self) -> Split:
        # Copied out of the object store, since torch warns on (and may not write to) read-only arrays.
        return fetch(self.validation, copy=True)

    def test_split(self) -> Split:
        if self.test is None:
            raise ClusterError("the test split was not shipped with this job")
        return fetch(self.test, copy=True)


@dataclass(frozen=True, kw_only=True)
class ShippedSplits(WholeSplits):
    """A `SplitSource` (ssgan.training.batches) of object references, for ranks anywhere on the cluster."""
    shards: tuple[ShippedPart, ...]  # the unlabeled pool, one contiguous shard per rank

    @property
    def unlabeled_total(self) -> int:
        return sum(s.rows for s in self.shards)

    def worker_data(self, rank: int, world_size: int) -> WorkerData:
        if world_size != len(self.shards):
            raise ClusterError(f"the unlabeled pool was shipped as {len(self.shards)} shard(s) for {world_size} "
                               f"worker(s); ship it again for this number of workers")
        # The pool shard stays in the object store: batches copy the rows they index.
        return WorkerData.of(fetch(self.labeled, copy=True), fetch(self.shards[rank]), self.unlabeled_total)


def put_split(name: str, split: Split) -> ShippedPart:
    import ray

    return ShippedPart(name, ray.put(split), content_digest(split), len(split.images))


def put_whole(data_dir: Path, with_test: bool) -> dict[str, ShippedPart | None]:
    """labeled, validation (and test) put whole: WholeSplits' fields."""
    def put(name: str) -> ShippedPart:
        return put_split(str(data_dir / f"{name}.parquet"), read_split(data_dir / f"{name}.parquet"))

    return {"labeled": put("labeled"), "validation": put("val"), "test": put("test") if with_test else None}


def ship_splits(data_dir: Path, world_size: int, with_test: bool = False) -> ShippedSplits:
    """Read the prepared splits on the driver and put them in the object store (Ray must be connected)."""
    data_dir = Path(data_dir)
    path = data_dir / "unlabeled.parquet"
    total = describe(path)[1]
    shards = tuple(put_split(f"{path} shard {r + 1}/{world_size}", read_split(path, r, world_size))
                   for r in range(world_size))
    shipped = ShippedSplits(shards=shards, **put_whole(data_dir, with_test))
    assert shipped.unlabeled_total == total, (shipped.unlabeled_total, total)
    return shipped


def fetch(part: ShippedPart, copy: bool = False) -> Split:
    """The part's Split from the object store, checked against the digest the driver sent with it."""
    import ray

    split = ray.get(part.ref)
    got = content_digest(split)
    if got != part.digest:
        raise DataIdentityError(f"{part.name}: the rows this worker received (digest {got}) are not the ones the "
                                f"driver read for this run ({part.digest}); rerun, and check that no other "
                                f"process changed the object store's contents")
    if not copy:
        return split
    return dataclasses.replace(split, images=split.images.copy(),
                               labels=None if split.labels is None else split.labels.copy())


def stream_wanted(setting: bool | None, data_dir: Path) -> bool:
    """train.stream_unlabeled: true/false as set; null streams a pool over a quarter of the object store."""
    if setting is not None:
        return setting
    import ray

    meta, rows = describe(Path(data_dir) / "unlabeled.parquet")
    pixels = rows * int(np.prod(meta["shape"]))
    return pixels > STREAM_ABOVE_STORE_FRACTION * ray.cluster_resources().get("object_store_memory", float("inf"))


@dataclass(frozen=True)
class StreamShard:
    """A rank's share of the streamed pool, read with Ray Data as it trains (ssgan.training.batches.UnlabeledStream)."""
    meta: dict
    shuffle_buffer: int

    def passes(self, batch_size: int, seed: int):
        import ray.train

        shard = ray.train.get_dataset_shard(STREAM_DATASET)
        for batch in shard.iter_batches(batch_size=batch_size, batch_format="pyarrow", drop_last=True,
                                        local_shuffle_buffer_size=max(self.shuffle_buffer, batch_size),
                                        local_shuffle_seed=seed, prefetch_batches=PREFETCH_BATCHES):
            yield decode_images(batch, self.meta)


@dataclass(frozen=True, kw_only=True)
class StreamedSplits(WholeSplits):
    """A `SplitSource` whose unlabeled pool streams through Ray Data (`dataset` goes to TorchTrainer)."""
    dataset: Any  # ray.data.Dataset of the unlabeled file's image column
    unlabeled_total: int
    meta: dict
    shuffle_buffer: int = 10_000  # rows each rank shuffles among as they stream

    def worker_data(self, rank: int, world_size: int) -> WorkerData:
        return WorkerData.of(fetch(self.labeled, copy=True), None, self.unlabeled_total,
                             StreamShard(self.meta, self.shuffle_buffer))


def stream_splits(data_dir: Path, with_test: bool = False) -> StreamedSplits:
    """Labeled and val (and test) into the object store; the unlabeled pool as a Ray Data dataset whose
    read tasks run on this (the driver's) node, the one that holds the file."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    data_dir = Path(data_dir)
    path = data_dir / "unlabeled.parquet"
    meta, rows = describe(path)
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    with warnings.catch_warnings():
        # Ray 2.60 deprecates ray_remote_args for named parameters, but has no named scheduling strategy.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
        dataset = ray.data.read_parquet(str(path.resolve()), ray_remote_args={"scheduling_strategy": here})
    dataset = dataset.select_columns(["image"])  # Ray Data pushes the projection into the read
    return StreamedSplits(dataset=dataset, unlabeled_total=rows, meta=meta, **put_whole(data_dir, with_test))


def send_splits(data_dir: Path, world_size: int, stream: bool | None, with_test: bool = False) -> ShippedSplits | StreamedSplits:
    """The driver's prepared splits for `world_size` ranks anywhere: whole in the object store, or the
    pool streamed (train.stream_unlabeled; null: by size)."""
    if stream_wanted(stream, data_dir):
        return stream_splits(data_dir, with_test)
    return ship_splits(data_dir, world_size, with_test)
