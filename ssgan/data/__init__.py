"""Data: sources (raw images and labels, downloads checked by checksum), seeded splits, the Parquet
format between stages, `prepare`, and one identity for prepared data (`identity`).

May import: `ssgan.config`, `ssgan.util`, numpy, pyarrow, Pillow. Must never import torch's
training side, Ray, MLflow or any other ssgan package: every other layer reads data through here.
"""
