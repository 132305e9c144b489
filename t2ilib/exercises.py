"""Checks students call on their own exercise solutions: ``check_gan_cls_d_loss(my_d_loss)``. Introduced in
notebook 03.

Each check runs the student's function on fixed inputs and compares it with the kit's reference (the code the
notebooks train with). On success it prints one line and returns True; on failure it raises ``AssertionError``
with a *specific* hint: the common mistakes are recognised by the value they produce (a missing 1/2, a sum where
a mean belongs, ...). nbgrader counts a cell that raises as failed, so the checks double as autograder tests.

Which notebook calls which check:

==========================  ==========================================================  ========
check                       the student writes                                          notebook
==========================  ==========================================================  ========
``check_tile``              ``tile(code [B, D], size) -> [B, size, size, D]``           03
``check_gan_cls_d_loss``    ``d_loss(real_logits, wrong_logits, fake_logits)``          04
``check_gan_cls_pairs``     ``losses(d, images, text, wrong_text, fakes) -> (L_D, L_G)``  04
``check_hinge``             ``hinge_d(real, wrong, fake)`` and ``hinge_g(fake)``          04
``check_kl``                ``kl(mean, log_var)``: CA's KL to N(0, I)                   05
``check_gradient_penalty``  ``penalty(critic, real, fake, alpha)``: WGAN-GP's term       06
``check_frechet``           ``frechet(features_a, features_b)``                         07
``check_inception_score``   ``inception_score(probabilities)`` (one split)              07
``check_mmd``               ``mmd2(features_a, features_b)``: unbiased, cubic kernel    07
==========================  ==========================================================  ========

Notebook 04's core-code ladder (the student's own G, D, losses and ``train_step``) is checked by ``t2ilib.ladder``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["check_tile", "check_gan_cls_d_loss", "check_gan_cls_pairs", "check_hinge", "check_kl",
           "check_gradient_penalty", "check_frechet", "check_inception_score", "check_mmd"]


def _number(value, what: str) -> float:
    array = np.asarray(value, dtype="float64")
    if array.size != 1:
        raise AssertionError(f"{what} should return one number (a scalar), got an array of shape {array.shape}: "
                             "did you forget to average over the batch?")
    return float(array.reshape(()))


def _diagnose(got: float, expected: float, mistakes: dict[str, float], what: str) -> None:
    """Pass if ``got`` is ``expected``; else raise with the hint of the known mistake that produces ``got``."""
    if np.isclose(got, expected, rtol=1e-4, atol=1e-5):
        return
    for hint, wrong_value in mistakes.items():
        if np.isclose(got, wrong_value, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{what}: got {got:.6g}, expected {expected:.6g}. Hint: {hint}")
    raise AssertionError(f"{what}: got {got:.6g}, expected {expected:.6g}. Check the formula term by term "
                         "against the equation in the notebook.")


def _passed(name: str, cases: int) -> bool:
    print(f"{name}: all {cases} cases pass")
    return True


def _softplus(x):
    return np.logaddexp(0.0, x)


def _binary_crossentropy(target, logits):
    """What ``keras.losses.binary_crossentropy`` gives when it is handed logits as if they were probabilities."""
    import keras

    logits = np.asarray(logits, "float32")
    return float(np.mean(keras.ops.convert_to_numpy(
        keras.losses.binary_crossentropy(np.full_like(logits, target), logits))))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_PROBABILITIES = ("the loss uses probabilities where the network gives logits: use -log sigmoid(s) = softplus(-s) "
                  "and -log(1 - sigmoid(s)) = softplus(s), or from_logits=True")


def check_tile(fn: Callable) -> bool:
    """``fn(code, size)``: the text code ``[B, D]`` copied to every position of a ``[B, size, size, D]`` map.
    Introduced in notebook 03."""
    code = np.arange(6, dtype="float32").reshape(2, 3)
    for size in (1, 4):
        got = np.asarray(fn(code, size))
        if got.shape != (2, size, size, 3):
            raise AssertionError(f"tile(code [2, 3], {size}) has shape {got.shape}, expected (2, {size}, {size}, 3). "
                                 "Hint: add two axes in the middle (code[:, None, None, :]) and tile only those.")
        if not np.allclose(got, code[:, None, None, :]):
            raise AssertionError("the shape is right but the values are not: every position (i, j) must hold the "
                                 "same code vector. Hint: did you reshape instead of tile, mixing the D values?")
    return _passed("check_tile", 2)


def check_gan_cls_d_loss(fn: Callable) -> bool:
    """``fn(real_logits, wrong_logits, fake_logits)``: GAN-CLS D loss = real->1, 1/2 (wrong->0 + fake->0).
    Introduced in notebook 04."""
    rng = np.random.default_rng(0)
    for case in range(3):
        real, wrong, fake = (rng.normal(scale=2.0, size=(8, 1)).astype("float32") for _ in range(3))
        real_term, wrong_term, fake_term = (_softplus(-real).mean(), _softplus(wrong).mean(), _softplus(fake).mean())
        got = _number(fn(real, wrong, fake), "the GAN-CLS D loss")
        if not np.isfinite(got):
            raise AssertionError(f"case {case + 1}: the loss is {got}. Hint: {_PROBABILITIES} (the log of a negative "
                                 "logit is NaN)")
        mistakes = {
            _PROBABILITIES: _binary_crossentropy(1, real) + 0.5 * (_binary_crossentropy(0, wrong)
                                                                   + _binary_crossentropy(0, fake)),
            "weight the two 'fake' terms by 1/2 each (Reed et al.'s Algorithm 1), or the loss counts fakes twice.":
                real_term + wrong_term + fake_term,
            "the wrong-caption pairs are missing: real image + wrong text must be called fake too.":
                real_term + fake_term,
            "the fake-image pairs are missing: G's image with the right text must be called fake.":
                real_term + 0.5 * wrong_term,
            "real and fake targets are swapped: real pairs have label 1, wrong and fake pairs label 0.":
                _softplus(real).mean() + 0.5 * (_softplus(-wrong).mean() + _softplus(-fake).mean()),
        }
        _diagnose(got, real_term + 0.5 * (wrong_term + fake_term), mistakes, f"case {case + 1}")
    return _passed("check_gan_cls_d_loss", 3)


def _toy_discriminator(inputs):
    """A fixed D with the kit's interface whose logit depends on the image, the text and whether they agree."""
    image = np.asarray(inputs["image"], dtype="float64").reshape(len(inputs["image"]), -1)
    text = np.asarray(inputs["text"], dtype="float64")
    return (np.sum(image * text, axis=1, keepdims=True) + 0.7 * image.mean(1, keepdims=True)).astype("float32")


def check_gan_cls_pairs(fn: Callable) -> bool:
    """``fn(discriminator, images, text, wrong_text, fakes) -> (d_loss, g_loss)``: GAN-CLS's three pairs, scored
    by ``discriminator({"image": ..., "text": ...})`` (logits), and both networks' cross-entropy losses.
    Introduced in notebook 04."""
    rng = np.random.default_rng(5)
    images, fakes = (rng.normal(size=(8, 2, 2, 1)).astype("float32") for _ in range(2))
    text, wrong_text = (rng.normal(size=(8, 4)).astype("float32") for _ in range(2))

    def d_logits(image, caption):
        return _toy_discriminator({"image": image, "text": caption})

    real, wrong, fake = d_logits(images, text), d_logits(images, wrong_text), d_logits(fakes, text)
    terms = {"real": _softplus(-real).mean(), "wrong": _softplus(wrong).mean(), "fake": _softplus(fake).mean()}
    result = fn(_toy_discriminator, images, text, wrong_text, fakes)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise AssertionError("return two numbers, (d_loss, g_loss)")
    d_got, g_got = _number(result[0], "d_loss"), _number(result[1], "g_loss")
    fake_wrong = d_logits(fakes, wrong_text)
    d_mistakes = {
        "the wrong-caption pair is (real image, wrong text): you scored the wrong text with the fake image.":
            terms["real"] + 0.5 * (_softplus(fake_wrong).mean() + terms["fake"]),
        "the fake pair is (G's image, the right text): you paired the fakes with the wrong text.":
            terms["real"] + 0.5 * (terms["wrong"] + _softplus(fake_wrong).mean()),
        "the wrong-caption pair must use wrong_text: you scored (real image, right text) as fake.":
            terms["real"] + 0.5 * (_softplus(real).mean() + terms["fake"]),
        "weight the two 'fake' terms by 1/2 each, or the loss counts fakes twice.":
            terms["real"] + terms["wrong"] + terms["fake"],
        "the wrong-caption pairs are missing: a plain conditional GAN's D loss.": terms["real"] + terms["fake"],
        "real and fake targets are swapped: real pairs have label 1, wrong and fake pairs label 0.":
            _softplus(real).mean() + 0.5 * (_softplus(-wrong).mean() + _softplus(-fake).mean()),
    }
    _diagnose(d_got, terms["real"] + 0.5 * (terms["wrong"] + terms["fake"]), d_mistakes, "d_loss")
    g_mistakes = {
        "G's loss is the non-saturating -log D(G(z), t); you wrote the minimax log(1 - D(G(z), t)).":
            -terms["fake"],
        "G is scored with the right text: (G(z, t), t), not the wrong caption.": _softplus(-fake_wrong).mean(),
        "G's loss has one pair only, (G(z, t), t): the wrong-caption pair is D's business.":
            _softplus(-fake).mean() + 0.5 * _softplus(-wrong).mean(),
        "G wants D to say 'real' (label 1) for its fakes: you used label 0.": terms["fake"],
    }
    _diagnose(g_got, _softplus(-fake).mean(), g_mistakes, "g_loss")
    return _passed("check_gan_cls_pairs", 2)


def check_hinge(d_fn: Callable, g_fn: Callable) -> bool:
    """``d_fn(real, wrong, fake)``: GAN-CLS's hinge D loss
    ``E relu(1 - s_r) + 1/2 (E relu(1 + s_w) + E relu(1 + s_f))``; ``g_fn(fake)``: the hinge G loss ``-E s_f``.
    Introduced in notebook 04."""
    rng = np.random.default_rng(6)

    def relu(x):
        return np.maximum(x, 0.0)

    for case in range(3):
        real, wrong, fake = (rng.normal(scale=1.5, size=(8, 1)).astype("float32") for _ in range(3))
        d_mistakes = {
            "the hinge clips at the margin: relu(1 - s_r) for real pairs, relu(1 + s) for the others.":
                (1 - real).mean() + 0.5 * ((1 + wrong).mean() + (1 + fake).mean()),
            "the signs are swapped: real pairs pay relu(1 - s), wrong and fake pairs relu(1 + s).":
                relu(1 + real).mean() + 0.5 * (relu(1 - wrong).mean() + relu(1 - fake).mean()),
            "weight the wrong and fake terms by 1/2 each.":
                relu(1 - real).mean() + relu(1 + wrong).mean() + relu(1 + fake).mean(),
            "the wrong-caption term is missing.": relu(1 - real).mean() + 0.5 * relu(1 + fake).mean(),
        }
        expected = relu(1 - real).mean() + 0.5 * (relu(1 + wrong).mean() + relu(1 + fake).mean())
        _diagnose(_number(d_fn(real, wrong, fake), "the hinge D loss"), expected, d_mistakes, f"D, case {case + 1}")
        g_mistakes = {
            "G's hinge loss has no margin: it is linear, -mean(s_f), not mean(relu(1 - s_f)).": relu(1 - fake).mean(),
            "the sign: G wants D's score on its fakes high, so it minimises -mean(s_f).": fake.mean(),
        }
        _diagnose(_number(g_fn(fake), "the hinge G loss"), -fake.mean(), g_mistakes, f"G, case {case + 1}")
    return _passed("check_hinge", 3)


def check_kl(fn: Callable) -> bool:
    """``fn(mean, log_var)``: KL(N(mean, exp(log_var)) || N(0, I)) averaged over the features and the batch
    (StackGAN's normalisation). Introduced in notebook 05."""
    rng = np.random.default_rng(1)
    mean, log_var = rng.normal(size=(4, 5)).astype("float32"), rng.normal(scale=0.5, size=(4, 5)).astype("float32")
    per_feature = 0.5 * (np.exp(log_var) + mean**2 - 1 - log_var)
    got = _number(fn(mean, log_var), "the KL loss")
    var = np.exp(log_var)
    mistakes = {
        "average over the features too (StackGAN's normalisation); you summed them, which is "
        f"{mean.shape[1]} times larger.": per_feature.sum(1).mean(),
        "the factor 1/2 is missing.": 2 * per_feature.mean(),
        "log_var is the log of the variance: the variance term is exp(log_var).": 0.5 * (mean**2 - 1).mean(),
        "the '- log_var' term is missing.": 0.5 * (var + mean**2 - 1).mean(),
        "the result should be averaged over the batch and the features, not summed.": per_feature.sum(),
    }
    _diagnose(got, per_feature.mean(), mistakes, "KL")
    zero = _number(fn(np.zeros((2, 3), "float32"), np.zeros((2, 3), "float32")), "the KL loss")
    if not np.isclose(zero, 0.0, atol=1e-6):
        raise AssertionError(f"KL(N(0, I) || N(0, I)) must be 0, got {zero:.6g}")
    return _passed("check_kl", 2)


def check_gradient_penalty(fn: Callable) -> bool:
    """``fn(critic, real, fake, alpha)``: ``mean_i (||grad critic(x_hat_i)||_2 - 1)^2`` at
    ``x_hat_i = alpha_i real_i + (1 - alpha_i) fake_i``, the norm taken per sample. Introduced in notebook 06."""
    import tensorflow as tf

    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(4, 3, 3, 2)).astype("float32"), rng.normal(size=(4, 3, 3, 2)).astype("float32")
    alpha = np.array([0.1, 0.4, 0.7, 0.9], "float32")
    scale = np.linspace(0.2, 1.0, 18, dtype="float32").reshape(1, 3, 3, 2)

    def critic(images):  # D(x) = 1/2 sum(scale x^2): its gradient is scale * x
        return 0.5 * tf.reduce_sum(scale * tf.square(images), axis=[1, 2, 3])

    def penalty_at(points, per_sample=True, squared=False, minus_one=True, absolute=False):
        gradients = scale * points
        norms = (np.sqrt((gradients**2).sum(axis=(1, 2, 3))) if per_sample
                 else np.full(len(points), np.sqrt((gradients**2).sum())))
        norms = norms**2 if squared else norms
        gap = norms - 1 if minus_one else norms
        return float(np.abs(gap).mean() if absolute else (gap**2).mean())

    a = alpha.reshape(-1, 1, 1, 1)
    between = a * real + (1 - a) * fake
    mistakes = {
        "the gradient is taken at the interpolates x_hat = alpha real + (1 - alpha) fake, not at the real images.":
            penalty_at(real),
        "the gradient is taken at the interpolates x_hat, not at the fake images.": penalty_at(fake),
        "alpha weighs the real image: x_hat = alpha real + (1 - alpha) fake (you swapped them).":
            penalty_at((1 - a) * real + a * fake),
        "take the norm per sample (sum over the pixel axes 1, 2, 3), not over the whole batch.":
            penalty_at(between, per_sample=False),
        "the penalty is on the norm ||g||, not on the squared norm ||g||^2: take the square root.":
            penalty_at(between, squared=True),
        "the penalty pulls the norm towards 1: (||g|| - 1)^2, you left out the '- 1'.":
            penalty_at(between, minus_one=False),
        "square the gap, (||g|| - 1)^2, rather than taking its absolute value.": penalty_at(between, absolute=True),
    }
    got = _number(fn(critic, real, fake, alpha), "the gradient penalty")
    _diagnose(got, penalty_at(between), mistakes, "gradient penalty")
    return _passed("check_gradient_penalty", 1)


def check_frechet(fn: Callable) -> bool:
    """``fn(features_a, features_b)``: ``|mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))``.
    Introduced in notebook 07."""
    from scipy import linalg

    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 4))
    b = rng.normal(loc=0.5, scale=1.5, size=(300, 4))
    mu_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    expected = mu_term + np.trace(cov_a + cov_b - 2 * root)
    same = _number(fn(a, a), "the Frechet distance")
    if not np.isclose(same, 0.0, atol=1e-5):
        raise AssertionError(f"the distance of a set to itself must be 0, got {same:.6g}. Hint: the covariance "
                             "term needs the matrix square root (scipy.linalg.sqrtm) of C_a C_b, not an elementwise "
                             "sqrt.")
    got = _number(fn(a, b), "the Frechet distance")
    mistakes = {
        "the mean term is missing: add |mu_a - mu_b|^2.": expected - mu_term,
        "only the means: add the covariance term Tr(C_a + C_b - 2 sqrt(C_a C_b)).": mu_term,
        "use the matrix square root sqrtm(C_a @ C_b), not np.sqrt elementwise.":
            mu_term + np.trace(cov_a + cov_b - 2 * np.sqrt(np.abs(cov_a @ cov_b))),
    }
    _diagnose(got, expected, mistakes, "Frechet distance")
    return _passed("check_frechet", 2)


def check_inception_score(fn: Callable) -> bool:
    """``fn(probabilities [N, classes])``: ``exp(mean_x KL(p(y|x) || p(y)))`` on one split.
    Introduced in notebook 07."""
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3.0, size=(50, 6))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    marginal = p.mean(0)
    kl = (p * (np.log(p) - np.log(marginal))).sum(1)
    got = _number(fn(p), "the Inception Score")
    mistakes = {
        "the score is exp(mean KL), not the mean KL itself.": kl.mean(),
        "KL(p(y|x) || p(y)) has p(y|x) first: sum p(y|x) (log p(y|x) - log p(y)).":
            float(np.exp((marginal * (np.log(marginal) - np.log(p))).sum(1).mean())),
        "p(y) is the mean of p(y|x) over the images (axis 0), not over the classes.":
            float(np.exp((p * (np.log(p) - np.log(p.mean(1, keepdims=True)))).sum(1).mean())),
    }
    _diagnose(got, float(np.exp(kl.mean())), mistakes, "Inception Score")
    uniform = _number(fn(np.full((10, 4), 0.25)), "the Inception Score")
    if not np.isclose(uniform, 1.0, atol=1e-5):
        raise AssertionError(f"identical uniform predictions must score 1 (no information), got {uniform:.6g}")
    return _passed("check_inception_score", 2)


def check_mmd(fn: Callable) -> bool:
    """``fn(features_a, features_b)``: the unbiased MMD^2 with ``k(x, y) = (x.y / d + 1)^3`` (the KID estimator).
    Introduced in notebook 07."""
    from t2ilib.evaluation import mmd2_unbiased

    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 3)), rng.normal(loc=0.3, size=(40, 3))
    got = _number(fn(a, b), "MMD^2")

    def kernel(x, y):  # KID's polynomial kernel for these 3-d features
        return (x @ y.T / 3 + 1) ** 3

    mistakes = {
        "leave out the diagonal k(x_i, x_i) of the within-set terms and divide by m (m - 1): that makes it unbiased.":
            kernel(a, a).mean() + kernel(b, b).mean() - 2 * kernel(a, b).mean(),
        "the kernel divides the dot product by the feature dimension d before adding 1.":
            mmd2_unbiased(a * np.sqrt(3), b * np.sqrt(3)),
        "the cross term is subtracted twice: - 2 mean k(a, b).":
            mmd2_unbiased(a, b) + kernel(a, b).mean(),
    }
    _diagnose(got, mmd2_unbiased(a, b), mistakes, "MMD^2")
    return _passed("check_mmd", 1)
