"""t2ilib.exercises: the reference solutions pass every check; each known mistake gets its own hint."""

import numpy as np
import pytest
from scipy import linalg

from t2ilib import evaluation, exercises, layers, losses, metrics


def _softplus(x):
    return np.logaddexp(0.0, x)


def test_the_kits_own_functions_pass_every_check(capsys):
    assert exercises.check_tile(lambda code, size: layers.SpatialTile(size)(code))
    assert exercises.check_gan_cls_d_loss(losses.gan_cls_d_loss)
    assert exercises.check_kl(losses.kl_loss)
    assert exercises.check_frechet(metrics.frechet_distance)
    assert exercises.check_inception_score(lambda p: evaluation.inception_score(p, splits=1).mean)
    assert exercises.check_mmd(evaluation.mmd2_unbiased)
    assert capsys.readouterr().out.count("cases pass") == 6


def test_numpy_solutions_pass_too():
    # What a student writes in the notebooks: plain numpy, no t2ilib.
    assert exercises.check_tile(lambda code, size: np.tile(code[:, None, None, :], (1, size, size, 1)))
    assert exercises.check_gan_cls_d_loss(
        lambda r, w, f: _softplus(-r).mean() + 0.5 * (_softplus(w).mean() + _softplus(f).mean()))
    assert exercises.check_kl(lambda m, lv: (0.5 * (np.exp(lv) + m**2 - 1 - lv).sum(1)).mean())

    def frechet(a, b):
        ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)

    assert exercises.check_frechet(frechet)


@pytest.mark.parametrize("wrong, hint", [
    (lambda r, w, f: _softplus(-r).mean() + _softplus(w).mean() + _softplus(f).mean(), "by 1/2"),
    (lambda r, w, f: _softplus(-r).mean() + _softplus(f).mean(), "wrong-caption pairs are missing"),
    (lambda r, w, f: _softplus(r).mean() + 0.5 * (_softplus(-w).mean() + _softplus(-f).mean()), "swapped"),
    (lambda r, w, f: np.zeros(3), "one number"),
    (lambda r, w, f: 1.0, "term by term"),
])
def test_gan_cls_mistakes_get_specific_hints(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_gan_cls_d_loss(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, lv: (0.5 * (np.exp(lv) + m**2 - 1 - lv)).mean(), "sum over the features"),
    (lambda m, lv: (np.exp(lv) + m**2 - 1 - lv).sum(1).mean(), "1/2 is missing"),
    (lambda m, lv: (0.5 * (np.exp(lv) + m**2 - 1)).sum(1).mean(), "'- log_var' term"),
])
def test_kl_mistakes_get_specific_hints(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_kl(wrong)


def test_other_mistakes_get_specific_hints():
    with pytest.raises(AssertionError, match="add two axes"):
        exercises.check_tile(lambda code, size: np.tile(code, (size, size)))
    with pytest.raises(AssertionError, match="matrix square root"):
        exercises.check_frechet(lambda a, b: ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(
            np.cov(a.T) + np.cov(b.T) - 2 * np.sqrt(np.abs(np.cov(a.T) @ np.cov(b.T)))))
    with pytest.raises(AssertionError, match="only the means"):
        exercises.check_frechet(lambda a, b: ((a.mean(0) - b.mean(0)) ** 2).sum())
    with pytest.raises(AssertionError, match="exp\\(mean KL\\)"):
        exercises.check_inception_score(
            lambda p: (p * (np.log(p) - np.log(p.mean(0)))).sum(1).mean())
    with pytest.raises(AssertionError, match="unbiased"):
        exercises.check_mmd(lambda a, b: ((a @ a.T / 3 + 1) ** 3).mean() + ((b @ b.T / 3 + 1) ** 3).mean()
                            - 2 * ((a @ b.T / 3 + 1) ** 3).mean())
