"""Generation quality: pure statistics on feature sets, and the metric names used everywhere.

The statistics are the standard ones, as pytorch-fid, clean-fid and the KID paper define them;
which network produces the features is `ssgan.quality.feature_nets`' job:

- `fid_classifier_val`, `fid_classifier_test`, `kid_classifier_test`, `is_classifier`: in the penultimate features (and softmax)
  of a reference classifier trained once per prepared dataset on all of its train-pool labels.
  Cheap on a CPU, and meaningful for 8x8 and 28x28 images, where Inception is neither.
- `fid_inception_test`: TF-Inception-V3 pool3 features (2048-d), comparable with published FIDs.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

# The metric registry: one name per measurement, used in code, MLflow, metrics.json, DVC plots and
# the docs alike; the name says what is compared with which split, and METRICS how many samples.
FID_CLASSIFIER_VAL = "fid_classifier_val"
FID_CLASSIFIER_TEST = "fid_classifier_test"
KID_CLASSIFIER_TEST = "kid_classifier_test"
IS_CLASSIFIER = "is_classifier"  # the Inception Score's formula with the reference classifier's softmax
FID_INCEPTION_TEST = "fid_inception_test"
REFERENCE_TEST_ACCURACY = "reference_test_accuracy"  # how much the reference classifier's features can be trusted
METRICS = {
    FID_CLASSIFIER_VAL: "train, every quality.every_epochs: G's quality.train_samples samples against the val split",
    FID_CLASSIFIER_TEST: "evaluate: G's quality.n_samples samples against the test split",
    KID_CLASSIFIER_TEST: "evaluate: the same sets as fid_classifier_test, KID (subsets of <= 1000)",
    IS_CLASSIFIER: "evaluate: G's quality.n_samples samples, Inception Score formula with the reference softmax",
    FID_INCEPTION_TEST: "evaluate (quality.inception): G's quality.n_samples samples against test, TF-Inception pool3",
    REFERENCE_TEST_ACCURACY: "reference stage: the reference classifier's test accuracy",
}
QUALITY_METRICS = (FID_CLASSIFIER_TEST, KID_CLASSIFIER_TEST, IS_CLASSIFIER, FID_INCEPTION_TEST, REFERENCE_TEST_ACCURACY)
# `ssgan fid A B` compares two sets of the user's choosing: the measure's own name, no split.
FID_CLASSIFIER, FID_INCEPTION = "fid_classifier", "fid_inception"


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of an (N, D) feature set, in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need an (N >= 2, D) feature array, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Fréchet distance of two Gaussians.

    As pytorch-fid: a singular product gets `eps` on both diagonals, and the tiny imaginary part
    that `sqrtm` leaves from rounding is dropped (a large one is an error).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shapes differ: means {mu1.shape} vs {mu2.shape}, covariances {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # scipy warns of a singular product; handled below, as pytorch-fid does
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(sigma1)) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the covariance square root")
        covmean = covmean.real
    # Never below 0 in exact arithmetic; rounding can leave about -1e-12 for identical sets.
    return max(0.0, float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)))


def fid(features1: np.ndarray, features2: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))


# The KID paper's estimator, as torch-fidelity and clean-fid use it: subsets bound memory to O(size^2).
KID_SUBSET_SIZE, KID_SUBSETS = 1000, 100


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel (x.y / d + 1)^3 (Binkowski et al. 2018); can be slightly negative."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, d = len(x), len(y), x.shape[1]
    if m < 2 or n < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.mean())


def kid(features1: np.ndarray, features2: np.ndarray, subset_size: int = KID_SUBSET_SIZE,
        subsets: int = KID_SUBSETS, seed: int = 0) -> float:
    """Kernel Inception Distance: the mean unbiased MMD^2 over `subsets` seeded random subsets of
    min(subset_size, |A|, |B|) images from each set. Two sets of one size within `subset_size` are
    used whole (every subset would be the whole set)."""
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    size = min(subset_size, len(x), len(y))
    if len(x) == len(y) == size:
        return mmd2_unbiased(x, y)
    rng = np.random.default_rng(seed)
    return float(np.mean([mmd2_unbiased(x[rng.choice(len(x), size, replace=False)],
                                        y[rng.choice(len(y), size, replace=False)]) for _ in range(subsets)]))


def small_set_warning(name: str, n: int, dims: int) -> str | None:
    """A set with fewer images than feature dimensions has a singular covariance: its FID mostly
    measures the sample size. The line to print, or None when the set is large enough."""
    if n > dims:
        return None
    return (f"warning: {name} has {n} images, not more than the {dims} feature dimensions: its covariance is "
            f"singular and the FID mostly reflects the sample size; compare sets of well over {dims} images")


def inception_score(probs: np.ndarray, eps: float = 1e-12) -> float:
    """exp(E_x KL(p(y|x) || p(y))) of an (N, K) matrix of class probabilities (one split)."""
    probs = np.asarray(probs, np.float64)
    marginal = probs.mean(axis=0, keepdims=True)
    kl = (probs * (np.log(probs + eps) - np.log(marginal + eps))).sum(axis=1)
    return float(np.exp(kl.mean()))
