"""FID, KID, Inception Score and the Inception feature extractor of t2ilib.evaluation, against independent math."""

import numpy as np
import pytest
from scipy import linalg

from t2ilib import evaluation, metrics


def _gaussian(mean, cov, n, seed):
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


def test_frechet_matches_an_independent_scipy_computation():
    a = _gaussian([0, 1, 2], np.diag([1.0, 2.0, 0.5]), 400, 0)
    b = _gaussian([1, 0, 2], [[1.0, 0.3, 0], [0.3, 1.0, 0], [0, 0, 2.0]], 500, 1)
    mu_a, mu_b, cov_a, cov_b = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    # The symmetric form sqrt(C_a^1/2 C_b C_a^1/2) has the same trace as sqrt(C_a C_b): an independent route.
    root_a = linalg.sqrtm(cov_a).real
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(root_a @ cov_b @ root_a).real)
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_of_identical_sets_is_zero_and_shifted_gaussians_give_the_closed_form():
    a = _gaussian([0, 0], np.eye(2), 300, 2)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # N(m1, s1^2 I) vs N(m2, s2^2 I) in d dims: |m1 - m2|^2 + d (s1 - s2)^2. Large samples approach it.
    a = _gaussian([0, 0, 0], np.eye(3), 100_000, 3)
    b = _gaussian([3, 0, 4], 4 * np.eye(3), 100_000, 4)
    assert metrics.frechet_distance(a, b) == pytest.approx(25 + 3 * (1 - 2) ** 2, rel=0.01)


def test_fid_returns_a_score_with_its_sample_size():
    a, b = _gaussian([0, 0], np.eye(2), 50, 5), _gaussian([1, 1], np.eye(2), 60, 6)
    score = evaluation.fid(lambda x: x, a, b)
    assert score.n == 50 and score.mean == pytest.approx(metrics.frechet_distance(a, b))
    assert "n=50" in str(score)


def test_unbiased_mmd_is_near_zero_for_one_distribution_and_matches_a_loop():
    a, b = _gaussian([0, 0], np.eye(2), 40, 7), _gaussian([0, 0], np.eye(2), 30, 8)
    kernel = lambda x, y: (x @ y / 2 + 1) ** 3  # noqa: E731
    k_aa = np.mean([kernel(a[i], a[j]) for i in range(40) for j in range(40) if i != j])
    k_bb = np.mean([kernel(b[i], b[j]) for i in range(30) for j in range(30) if i != j])
    k_ab = np.mean([kernel(x, y) for x in a for y in b])
    assert evaluation.mmd2_unbiased(a, b) == pytest.approx(k_aa + k_bb - 2 * k_ab)
    same = evaluation.kid(lambda x: x, _gaussian([0] * 4, np.eye(4), 400, 9), _gaussian([0] * 4, np.eye(4), 400, 10),
                          subsets=5, subset_size=200)
    far = evaluation.kid(lambda x: x, _gaussian([0] * 4, np.eye(4), 400, 9), _gaussian([2] * 4, np.eye(4), 400, 10),
                         subsets=5, subset_size=200)
    assert abs(same.mean) < 0.1 < far.mean
    assert same.n == 200 and same.runs == 5 and same.std > 0


def test_inception_score_bounds():
    confident_and_varied = np.eye(10)[np.arange(100) % 10]
    assert evaluation.inception_score(confident_and_varied, splits=2).mean == pytest.approx(10.0, rel=1e-6)
    uniform = np.full((100, 10), 0.1)
    assert evaluation.inception_score(uniform, splits=2).mean == pytest.approx(1.0)
    one_class = np.eye(10)[np.zeros(100, int)]
    assert evaluation.inception_score(one_class, splits=2).mean == pytest.approx(1.0)
    with pytest.raises(ValueError, match="splits"):
        evaluation.inception_score(uniform[:3], splits=10)


def test_inception_features_run_the_keras_applications_path_offline():
    # The same code as on Colab, with random weights (no download here) and a small input size.
    extractor = evaluation.InceptionFeatures(weights=None, input_size=75, batch_size=3)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    features = extractor(images)
    assert features.shape == (4, 2048) and features.dtype == np.float64 and np.isfinite(features).all()
    assert np.allclose(extractor(images[:2]), features[:2], atol=1e-4)  # batching does not change features
    with pytest.raises(ValueError, match="at least 75"):
        evaluation.InceptionFeatures(weights=None, input_size=32)


def test_truncation_keeps_values_inside_the_threshold_and_is_seeded():
    z = evaluation.truncated_normal((500, 8), truncation=0.5, seed=1)
    assert np.abs(z).max() <= 0.5 and z.std() > 0.2
    assert np.array_equal(z, evaluation.truncated_normal((500, 8), truncation=0.5, seed=1))
    assert np.abs(evaluation.truncated_normal((500, 8), None, seed=1)).max() > 2
    with pytest.raises(ValueError, match="positive"):
        evaluation.truncated_normal((2, 2), truncation=0)


def test_diversity_is_zero_for_collapsed_samples():
    assert evaluation.mean_pairwise_distance(np.ones((5, 3))) == pytest.approx(0.0)
    assert evaluation.mean_pairwise_distance(np.array([[0.0, 0], [3, 4]])) == pytest.approx(5.0)
