"""The Ray driver: connect to (or start) a cluster with the environment Ray needs scoped to its calls
(`cluster`), run the per-worker loop under a TorchTrainer and hand each epoch to the driver side
(`fit`, `worker`: the Ray Train `Session`), key, lease and prune run directories (`resume`), and
the train stage that ties them to MLflow and the output files (`launch`).

May import: every lower layer (`config`, `metrics`, `util`, `data`, `training`, `tracking`,
`quality`), Ray and pyarrow's filesystems. Must never import `ssgan.sweep` or `ssgan.active`.
The only package (with `sweep`) that imports Ray, and the only one that touches Ray's private
modules (each behind an ImportError fallback).
"""
