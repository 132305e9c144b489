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
    assert exercises.check_kl(lambda m, lv: (0.5 * (np.exp(lv) + m**2 - 1 - lv)).mean())

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
    (lambda m, lv: (0.5 * (np.exp(lv) + m**2 - 1 - lv)).sum(1).mean(), "average over the features too"),
    (lambda m, lv: (np.exp(lv) + m**2 - 1 - lv).mean(), "1/2 is missing"),
    (lambda m, lv: (0.5 * (np.exp(lv) + m**2 - 1)).mean(), "'- log_var' term"),
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


def _pairs(d, images, text, wrong_text, fakes, d_loss=losses.gan_cls_d_loss, g_loss=losses.g_loss_nonsaturating,
           wrong_pair=None, fake_pair=None, g_pair=None):
    real = d({"image": images, "text": text})
    wrong = d(wrong_pair or {"image": images, "text": wrong_text})
    fake = d(fake_pair or {"image": fakes, "text": text})
    return d_loss(real, wrong, fake), g_loss(d(g_pair) if g_pair else fake)


def test_the_kits_pair_losses_and_hinge_and_penalty_pass():
    assert exercises.check_gan_cls_pairs(_pairs)
    assert exercises.check_hinge(losses.hinge_gan_cls_d_loss, losses.hinge_g_loss)
    assert exercises.check_gradient_penalty(lambda critic, real, fake, alpha: losses.gradient_penalty(
        critic, real, fake, alpha=alpha))


@pytest.mark.parametrize("mistake, hint", [
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, wrong_pair={"image": f, "text": w}), "scored the wrong text with"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, fake_pair={"image": f, "text": w}), "paired the fakes with"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, wrong_pair={"image": x, "text": t}), "must use wrong_text"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, d_loss=lambda r, w_, f_: losses.bce_real(r) + losses.bce_fake(
        w_) + losses.bce_fake(f_)), "counts fakes twice"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, d_loss=lambda r, w_, f_: losses.d_loss(r, f_)),
     "plain conditional"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, d_loss=lambda r, w_, f_: losses.bce_fake(r) + 0.5 * (
        losses.bce_real(w_) + losses.bce_real(f_))), "swapped"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, g_loss=losses.g_loss_minimax), "minimax"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, g_pair={"image": f, "text": w}), "not the wrong caption"),
    (lambda d, x, t, w, f: (_pairs(d, x, t, w, f)[0], _pairs(d, x, t, w, f)[1] + 0.5 * losses.bce_real(
        d({"image": x, "text": w}))), "one pair only"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f, g_loss=losses.bce_fake), "label 0"),
    (lambda d, x, t, w, f: _pairs(d, x, t, w, f)[0], "two numbers"),
])
def test_pair_mistakes_get_specific_hints(mistake, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_gan_cls_pairs(mistake)


def _relu(x):
    return np.maximum(x, 0.0)


@pytest.mark.parametrize("d_fn, g_fn, hint", [
    (lambda r, w, f: (1 - r).mean() + 0.5 * ((1 + w).mean() + (1 + f).mean()), losses.hinge_g_loss, "clips"),
    (lambda r, w, f: _relu(1 + r).mean() + 0.5 * (_relu(1 - w).mean() + _relu(1 - f).mean()), losses.hinge_g_loss,
     "swapped"),
    (lambda r, w, f: _relu(1 - r).mean() + _relu(1 + w).mean() + _relu(1 + f).mean(), losses.hinge_g_loss, "1/2"),
    (lambda r, w, f: _relu(1 - r).mean() + 0.5 * _relu(1 + f).mean(), losses.hinge_g_loss, "wrong-caption term"),
    (losses.hinge_gan_cls_d_loss, lambda f: _relu(1 - f).mean(), "no margin"),
    (losses.hinge_gan_cls_d_loss, lambda f: f.mean(), "the sign"),
])
def test_hinge_mistakes_get_specific_hints(d_fn, g_fn, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_hinge(d_fn, g_fn)


def _penalty(critic, points, per_sample=True, squared=False, minus_one=True, absolute=False):
    import tensorflow as tf

    points = tf.constant(points)
    with tf.GradientTape() as tape:
        tape.watch(points)
        scores = critic(points)
    gradients = tape.gradient(scores, points)
    axes = [1, 2, 3] if per_sample else [0, 1, 2, 3]
    squares = tf.reduce_sum(tf.square(gradients), axis=axes)
    norms = squares if squared else tf.sqrt(squares)
    gap = norms - 1.0 if minus_one else norms
    return tf.reduce_mean(tf.abs(gap) if absolute else tf.square(gap))


def _mix(real, fake, alpha):
    return alpha.reshape(-1, 1, 1, 1) * real + (1 - alpha.reshape(-1, 1, 1, 1)) * fake


@pytest.mark.parametrize("mistake, hint", [
    (lambda c, r, f, a: _penalty(c, r), "not at the real images"),
    (lambda c, r, f, a: _penalty(c, f), "not at the fake images"),
    (lambda c, r, f, a: _penalty(c, _mix(f, r, a)), "swapped"),
    (lambda c, r, f, a: _penalty(c, _mix(r, f, a), per_sample=False), "per sample"),
    (lambda c, r, f, a: _penalty(c, _mix(r, f, a), squared=True), "square root"),
    (lambda c, r, f, a: _penalty(c, _mix(r, f, a), minus_one=False), "'- 1'"),
    (lambda c, r, f, a: _penalty(c, _mix(r, f, a), absolute=True), "absolute value"),
])
def test_gradient_penalty_mistakes_get_specific_hints(mistake, hint):
    assert exercises.check_gradient_penalty(lambda c, r, f, a: _penalty(c, _mix(r, f, a)))
    with pytest.raises(AssertionError, match=hint):
        exercises.check_gradient_penalty(mistake)


@pytest.mark.parametrize("wrong, hint", [
    (lambda code, size: np.tile(code[:, None, None, :], (1, size, size, 1)).transpose(0, 1, 2, 3).reshape(
        len(code), size, size, -1)[:, :, :, ::-1], "values are not"),
])
def test_tile_values_mistake_gets_its_hint(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_tile(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, lv: (0.5 * (m**2 - 1)).mean(), "exp\\(log_var\\)"),
    (lambda m, lv: (0.5 * (np.exp(lv) + m**2 - 1 - lv)).sum(), "averaged over the batch"),
    (lambda m, lv: np.array(0.5 * (np.exp(lv) + m**2 - 1 - lv).mean(1)), "one number"),
])
def test_more_kl_mistakes_get_their_hints(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_kl(wrong)


def test_more_gan_cls_and_metric_mistakes_get_their_hints():
    with pytest.raises(AssertionError, match="fake-image pairs are missing"):
        exercises.check_gan_cls_d_loss(lambda r, w, f: _softplus(-r).mean() + 0.5 * _softplus(w).mean())
    with pytest.raises(AssertionError, match="mean term is missing"):
        exercises.check_frechet(lambda a, b: np.trace(np.cov(a.T) + np.cov(b.T) - 2 * linalg.sqrtm(
            np.cov(a.T) @ np.cov(b.T)).real))
    with pytest.raises(AssertionError, match="p\\(y\\|x\\) first"):
        exercises.check_inception_score(
            lambda p: np.exp((p.mean(0) * (np.log(p.mean(0)) - np.log(p))).sum(1).mean()))
    with pytest.raises(AssertionError, match="over the images"):
        exercises.check_inception_score(
            lambda p: np.exp((p * (np.log(p) - np.log(p.mean(1, keepdims=True)))).sum(1).mean()))
    with pytest.raises(AssertionError, match="feature dimension"):
        exercises.check_mmd(lambda a, b: evaluation.mmd2_unbiased(a * np.sqrt(3), b * np.sqrt(3)))
    with pytest.raises(AssertionError, match="subtracted twice"):
        exercises.check_mmd(lambda a, b: evaluation.mmd2_unbiased(a, b) + ((a @ b.T / 3 + 1) ** 3).mean())
