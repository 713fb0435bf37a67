"""The labeling loop: rank the unlabeled split by the classifier's uncertainty (`suggest`), and
check and merge an annotator's labels back (`add_labels`).

May import: `ssgan.config`, `ssgan.metrics`, `ssgan.util`, `ssgan.data`. Must never import Ray,
MLflow or the training, driver, sweep, quality or tracking packages: the commands in `pipelines/`
load the classifier and hand its logits in.
"""
