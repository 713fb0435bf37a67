"""Data: sources (raw images and labels), seeded splits, and the Parquet format between stages."""
