"""Training that runs anywhere: the networks (`models`), the pure losses and D's unlabeled-data terms
(`losses`, `unlabeled_terms`), one D + G step (`step`), per-rank batch streams (`batches`), the
per-worker loop behind a `Session` (`loop`), rank 0's validation, model selection and checkpoints
(`rank0`), and the checkpoint format (`checkpoint`: state_dicts plus config).

May import: `ssgan.config`, `ssgan.metrics`, `ssgan.util`, `ssgan.data`, torch (torch.distributed
only in `loop` and `step`, for the DDP all-reduce). Must never import Ray, MLflow, Tune or the
driver, sweep, quality or tracking packages: the loop reaches Ray Train only through the `Session`
that `ssgan.driver.worker` supplies, and an optional G score only through a probe in the job.
"""
