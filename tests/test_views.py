"""Label-preserving views (train.augment): what each source declares, the overrides, and the view math."""
import pytest
import torch

from ssgan.config import SOURCE_VIEWS, ConfigError, TrainConfig, ViewSpec, from_mapping, views_for
from ssgan.training.views import random_cutout, random_flip, strong_view, weak_view


def test_flip_only_where_a_mirror_keeps_the_class():
    flips = {source: views_for(source, TrainConfig(augment=True)).flip for source in SOURCE_VIEWS}
    assert flips == {"digits": False, "mnist": False, "fashion_mnist": True, "cifar10": True, "svhn": False}


def test_each_source_declares_its_views_and_user_sources_none():
    assert views_for("digits", TrainConfig(augment=True)) == ViewSpec()  # 8x8: D's noise only
    assert views_for("fashion_mnist", TrainConfig(augment=True)) == ViewSpec(True, 2, 14)
    assert views_for("svhn", TrainConfig(augment=True)) == ViewSpec(False, 2, 16)
    for user in ("idx", "image_folder", "parquet"):
        assert views_for(user, TrainConfig(augment=True)) == ViewSpec()
    assert views_for("fashion_mnist", TrainConfig(augment=False)) == ViewSpec()  # off unless asked


def test_a_user_source_states_its_own_and_overrides_win():
    tc = TrainConfig(augment=True, augment_flip=True, augment_translate=3, augment_cutout=8)
    assert views_for("image_folder", tc) == ViewSpec(True, 3, 8)
    assert views_for("fashion_mnist", TrainConfig(augment=True, augment_flip=False)) == ViewSpec(False, 2, 14)


@pytest.mark.parametrize("source", ["digits", "mnist", "svhn"])
def test_a_flip_that_can_change_the_class_is_refused(source):
    with pytest.raises(ConfigError, match=f"train.augment_flip: got True; allowed: false or null for data.source {source}"):
        views_for(source, TrainConfig(augment=True, augment_flip=True))


def test_the_check_runs_when_params_are_parsed():
    with pytest.raises(ConfigError, match="train.augment_flip"):
        from_mapping({"data": {"source": "mnist"}, "train": {"augment": True, "augment_flip": True}})
    assert from_mapping({"data": {"source": "fashion_mnist"}, "train": {"augment": True}}).train.augment


def test_random_flip_mirrors_each_image_or_keeps_it():
    torch.manual_seed(0)
    x = torch.arange(64 * 12, dtype=torch.float32).view(64, 1, 3, 4)
    out = random_flip(x)
    mirrored = torch.tensor([torch.equal(o, xi.flip(2)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert bool((mirrored ^ kept).all())  # exactly one of the two, image by image
    assert 10 < int(mirrored.sum()) < 54  # about half (p < 1e-6 outside)


def test_cutout_zeroes_one_square_of_at_most_the_side():
    torch.manual_seed(1)
    x = torch.ones(200, 1, 10, 10)
    out = random_cutout(x, 4)
    holes = (out == 0).squeeze(1)
    for hole in holes:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert len(rows) >= 1 and len(rows) <= 4 and len(cols) <= 4
        # a rectangle (a square clipped at the border): every pixel inside its bounding box is zero
        assert int(hole.sum()) == len(rows) * len(cols)
    assert torch.equal(random_cutout(x, 0), x)


def test_weak_and_strong_views_follow_the_spec():
    x = torch.rand(8, 1, 6, 6)
    assert torch.equal(weak_view(x, ViewSpec()), x) and torch.equal(strong_view(x, ViewSpec()), x)
    torch.manual_seed(2)
    strong = strong_view(torch.ones(50, 1, 6, 6), ViewSpec(cutout=3))
    assert (strong == 0).any() and strong.sum() < 50 * 36
