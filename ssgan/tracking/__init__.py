"""Everything MLflow: runs, their metrics, tags, datasets and artifacts (`runs`), logged and
registered models (`registry`), the served model wrappers and loading models back from MLflow or
a model file (`serving`), and champion promotion per val set (`promote`).

The only package that imports MLflow; it runs on the driver side, never in a Ray worker or trial.
May import: `ssgan.config`, `ssgan.metrics`, `ssgan.util`, `ssgan.data`, `ssgan.training`. Must
never import Ray or the driver, sweep, quality or active packages. The global MLflow tracking URI
is set only inside `runs.using_tracking_uri`, and restored on exit.
"""
