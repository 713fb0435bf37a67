from __future__ import annotations

from pathlib import Path

import pytest

from ssgan.config import Config, from_mapping
from ssgan.data.prepare import prepare

TINY_PARAMS = {
    "data": {"source": "digits", "n_labeled_per_class": 3, "val_size": 100, "test_size": 100, "seed": 0},
    "model": {"arch": "mlp", "d_hidden": [32, 16], "g_hidden": [32], "latent_dim": 8},
    "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 16, "num_workers": 2, "sample_rows": 2},
    "evaluate": {"batch_size": 64},
}


@pytest.fixture
def tiny_config() -> Config:
    return from_mapping(TINY_PARAMS)


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(from_mapping(TINY_PARAMS).data, out)
    return out


def pytest_collection_modifyitems(items):
    """A test that needs Ray in this process is a slow one too: `-m "not slow"` then starts no Ray at all."""
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_local():
    """One private local Ray instance for all tests that need it (start-up is the slow part), started
    the way `ssgan train` starts it, so it never joins another instance on the machine."""
    import ray

    from ssgan.config import Cluster
    from ssgan.driver.cluster import connect

    connect(Cluster())
    yield
    ray.shutdown()
