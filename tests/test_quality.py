"""Generation-quality statistics against closed forms."""
import numpy as np
import pytest

from ssgan.quality.measures import fid, frechet_distance, gaussian_stats, inception_score, kid


def test_frechet_distance_of_gaussians_in_closed_form():
    # Equal covariances: only the means differ.
    assert frechet_distance(np.zeros(3), np.eye(3), np.ones(3), np.eye(3)) == pytest.approx(3.0)
    # Diagonal covariances: sum_i (s1_i + s2_i - 2 sqrt(s1_i s2_i)) = sum_i (sqrt(s1_i) - sqrt(s2_i))^2.
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 2.0 ** 2 + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(np.zeros(3), np.diag(s1), np.array([2.0, 0, 0]), np.diag(s2)) == pytest.approx(expected)
    # 1-D: (m1 - m2)^2 + (sd1 - sd2)^2.
    assert frechet_distance(np.array([1.0]), np.array([[0.25]]), np.array([-1.0]), np.array([[4.0]])) == pytest.approx(4 + 1.5 ** 2)
    # Rotating both Gaussians alike changes nothing.
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = frechet_distance(np.zeros(3), q @ np.diag(s1) @ q.T, q @ np.array([2.0, 0, 0]), q @ np.diag(s2) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
    assert abs(fid(real, real)) < 1e-6
    scores = [fid(real, real + rng.normal(scale=s, size=real.shape)) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(scores, scores[1:])), scores


def test_gaussian_stats_and_kid():
    mu, sigma = gaussian_stats(np.array([[0.0, 1.0], [2.0, 3.0]]))
    np.testing.assert_allclose(mu, [1.0, 2.0])
    np.testing.assert_allclose(sigma, [[2.0, 2.0], [2.0, 2.0]])
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    assert abs(kid(x, y)) < 0.05  # unbiased: about 0 for one distribution
    assert kid(x, y + 1.0) > 1.0
    # Closed form for one point each side: k(a,a) terms drop (off-diagonal sums), so MMD^2 = -2 k(a, b).
    a, b = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0], [2.0, 0.0]])
    k = lambda u, v: (u @ v / 2 + 1) ** 3  # noqa: E731
    expected = 2 * k(a[0], a[1]) / 2 + 2 * k(b[0], b[1]) / 2 - 2 * np.mean([k(p, q) for p in a for q in b])
    assert kid(a, b) == pytest.approx(expected)


def test_inception_score_bounds():
    k = 10
    assert inception_score(np.eye(k)) == pytest.approx(k)  # confident and diverse: the maximum, K
    assert inception_score(np.full((50, k), 1 / k)) == pytest.approx(1.0)  # uncertain: the minimum, 1
    assert inception_score(np.tile(np.eye(k)[0], (50, 1))) == pytest.approx(1.0)  # collapsed to one class: 1


def test_kid_subsets_estimate_the_whole_set_value_and_are_seeded():
    from ssgan.quality.measures import mmd2_unbiased

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(600, 4)), rng.normal(size=(400, 4)) + 0.5
    whole = mmd2_unbiased(x, y)
    sub = kid(x, y, subset_size=100, subsets=200, seed=1)
    assert sub == pytest.approx(whole, rel=0.1)  # unbiased on every subset, so the mean converges to it
    assert sub == kid(x, y, subset_size=100, subsets=200, seed=1) and sub != kid(x, y, subset_size=100, subsets=200, seed=2)
    # Sets of one size within the subset size are used whole: the closed form above still holds.
    assert kid(x[:300], y[:300]) == mmd2_unbiased(x[:300], y[:300])


def test_small_set_warning_names_the_set():
    from ssgan.quality.measures import small_set_warning

    assert small_set_warning("a.parquet", 100, 64) is None
    line = small_set_warning("photos/", 6, 64)
    assert line.startswith("warning: photos/ has 6 images, not more than the 64 feature dimensions")
