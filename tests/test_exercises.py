"""t2ilib.exercises and t2ilib.ladder: the reference solutions pass every check; each known mistake has a hint."""

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from scipy import linalg

from t2ilib import evaluation, exercises, ladder, layers, losses, metrics
from tools import student


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


# The core-code ladder of notebook 04 (exercises 6-9): the notebook's own solutions pass, what `make student` leaves
# of them fails with NotImplementedError, and each typical mistake gets its one-line message.

NOTEBOOK_04 = Path(__file__).resolve().parent.parent / "notebooks" / "04_gan_cls.ipynb"
PREAMBLE = "import keras\nimport tensorflow as tf\nfrom keras import layers, ops\n"


def _notebook_code(name, changes=(), stub=False):
    """What notebook 04's cell defining ``name`` defines, run with ``changes`` (old, new) made, or as a student stub."""
    (source,) = [cell.source for cell in nbformat.read(NOTEBOOK_04, as_version=4).cells
                 if cell.cell_type == "code" and re.search(rf"^(def|class) {name}\(", cell.source, re.M)]
    for old, new in changes:
        assert old in source, f"the solution no longer contains {old!r}"
        source = source.replace(old, new)
    if stub:
        source, blocks = student.strip_solutions(source)
        assert blocks
    namespace = {}
    exec(compile(PREAMBLE + source, str(NOTEBOOK_04), "exec"), namespace)
    return namespace


def test_the_notebooks_ladder_solutions_pass(capsys):
    models = _notebook_code("build_reed_generator")
    assert ladder.check_reed_models(models["build_reed_generator"], models["build_reed_discriminator"])
    pieces = _notebook_code("cls_d_loss")
    assert ladder.check_gan_cls_losses(pieces["cls_d_loss"], pieces["cls_g_loss"])
    assert ladder.check_train_step(_notebook_code("MyGANCLS")["MyGANCLS"])
    assert capsys.readouterr().out.count("cases pass") == 3


def test_what_make_student_leaves_of_the_ladder_fails_at_the_stub():
    models = _notebook_code("build_reed_generator", stub=True)
    pieces = _notebook_code("cls_d_loss", stub=True)
    for check, arguments in ((ladder.check_reed_models, (models["build_reed_generator"],
                                                            models["build_reed_discriminator"])),
                             (ladder.check_gan_cls_losses, (pieces["cls_d_loss"], pieces["cls_g_loss"])),
                             (ladder.check_train_step, (_notebook_code("MyGANCLS", stub=True)["MyGANCLS"],))):
        with pytest.raises(NotImplementedError):
            check(*arguments)


@pytest.mark.parametrize("old, new, hint", [
    ('padding="same", activation="tanh")', 'padding="same")', r"not in \[-1, 1\] \(tanh\)"),
    ('activation="tanh"', 'activation="sigmoid"', "never below 0"),
    ("while 2 * size < image_size", "while 4 * size < image_size", "generator's output has shape"),
    ("layers.Concatenate()([z, code])", "layers.Concatenate()([z, 0.0 * code])", "generator ignores the text"),
    ('layers.Conv2D(1, 4, padding="valid")', 'layers.Conv2D(1, 4, padding="valid", activation="sigmoid")',
     "ends with a sigmoid"),
    ('logit = layers.Flatten()(layers.Conv2D(1, 4, padding="valid")(x))',
     'logit = layers.Conv2D(1, 4, padding="valid")(x)', r"discriminator's output has shape \(4, 1, 1, 1\)"),
    ("layers.Concatenate()([x, tiled])", "layers.Concatenate()([x, 0.0 * tiled])", "discriminator ignores the text"),
])
def test_model_mistakes_get_their_hints(old, new, hint):
    models = _notebook_code("build_reed_generator", changes=[(old, new)])
    with pytest.raises(AssertionError, match=hint):
        ladder.check_reed_models(models["build_reed_generator"], models["build_reed_discriminator"])


def _ops():
    from keras import ops

    return ops


def _cls_d(real, wrong, fake):
    ops = _ops()
    return ops.mean(ops.softplus(-real)) + 0.5 * (ops.mean(ops.softplus(wrong)) + ops.mean(ops.softplus(fake)))


def _cls_g(fake):
    return _ops().mean(_ops().softplus(-fake))


def _keras_bce(target, logits):  # from_logits=False, Keras' default: the logits read as probabilities
    import keras

    return _ops().mean(keras.losses.binary_crossentropy(_ops().full_like(logits, target), logits))


@pytest.mark.parametrize("d_fn, g_fn, hint", [
    (lambda r, w, f: _keras_bce(1, r) + 0.5 * (_keras_bce(0, w) + _keras_bce(0, f)), _cls_g,
     "uses probabilities where the network gives logits"),
    (_cls_d, lambda f: -_ops().mean(_ops().log(f)), "uses probabilities where the network gives logits"),
    (lambda r, w, f: _cls_d(_ops().sigmoid(r), _ops().sigmoid(w), _ops().sigmoid(f)), _cls_g, "applied twice"),
    (lambda r, w, f: _ops().mean(_ops().softplus(-r)) + _ops().mean(_ops().softplus(f)), _cls_g,
     "D never sees the wrong caption"),
    (lambda r, w, f: _cls_d(r, w, f) + 0.5 * (_ops().mean(_ops().softplus(w)) + _ops().mean(_ops().softplus(f))),
     _cls_g, "counts fakes twice"),
    (_cls_d, lambda f: -_ops().mean(_ops().softplus(f)), "minimax"),
    (lambda r, w, f: np.logaddexp(0, -np.asarray(r)).mean() + 0.5 * (np.logaddexp(0, np.asarray(w)).mean()
                                                                     + np.logaddexp(0, np.asarray(f)).mean()),
     _cls_g, "GradientTape cannot differentiate"),
])
def test_loss_mistakes_get_their_hints(d_fn, g_fn, hint):
    assert ladder.check_gan_cls_losses(_cls_d, _cls_g)
    with pytest.raises(AssertionError, match=hint):
        ladder.check_gan_cls_losses(d_fn, g_fn)


def _step_class(d_pair_text="wrong_text", g_loss_of="g", d_variables="d", g_variables="g", swap=False,
                logs="tensors", one_call=False):
    """A GAN-CLS model whose train_step makes the mistake the arguments name (by default none)."""
    import keras
    import tensorflow as tf

    class Step(keras.Model):
        def __init__(self, generator, discriminator, z_dim):
            super().__init__()
            self.generator, self.discriminator, self.z_dim = generator, discriminator, z_dim

        def compile(self, d_optimizer, g_optimizer, d_loss_fn, g_loss_fn):
            super().compile()
            self.d_optimizer, self.g_optimizer = (g_optimizer, d_optimizer) if swap else (d_optimizer, g_optimizer)
            self.d_loss_fn, self.g_loss_fn = d_loss_fn, g_loss_fn

        def train_step(self, batch):
            images, text = batch["image"], batch["text"]
            z = tf.random.normal((tf.shape(images)[0], self.z_dim))
            variables = {"d": self.discriminator.trainable_variables, "g": self.generator.trainable_variables,
                         "all": self.trainable_variables}
            with tf.GradientTape(persistent=True) as tape:  # one tape, both networks: simultaneous updates
                fakes = self.generator({"z": z, "text": text}, training=True)
                if one_call:  # keras-io's way: the three kinds of pairs in one batch, the logits split after
                    real, wrong, fake = tf.split(self.discriminator({
                        "image": tf.concat([images, images, fakes], 0),
                        "text": tf.concat([text, batch[d_pair_text], text], 0)}), 3)
                else:
                    real = self.discriminator({"image": images, "text": text})
                    wrong = self.discriminator({"image": images, "text": batch[d_pair_text]})
                    fake = self.discriminator({"image": fakes, "text": text})
                d_loss = self.d_loss_fn(real, wrong, fake)
                if g_loss_of == "wrong_text":
                    fake = self.discriminator({"image": fakes, "text": batch["wrong_text"]})
                g_loss = d_loss if g_loss_of == "d" else self.g_loss_fn(fake)
            d_grads = tape.gradient(d_loss, variables[d_variables])
            g_grads = tape.gradient(g_loss, variables[g_variables])
            self.d_optimizer.apply_gradients(zip(d_grads, variables[d_variables]))
            self.g_optimizer.apply_gradients(zip(g_grads, variables[g_variables]))
            if logs == "none":
                return None
            return {"d_loss": float(d_loss), "g_loss": float(g_loss)} if logs == "floats" else \
                {"d_loss": d_loss, "g_loss": g_loss}

    return Step


@pytest.mark.parametrize("mistake, hint", [
    (dict(d_pair_text="text"), "D never sees the wrong caption"),
    (dict(g_loss_of="d"), "D's gradients were applied to G"),
    (dict(d_variables="all"), "the fakes carry G's gradients into D's update"),
    (dict(g_variables="all"), "G's update also changed D's weights"),
    (dict(swap=True), "the optimizers are swapped"),
    (dict(g_loss_of="wrong_text"), "G is scored with the wrong caption"),
    (dict(logs="none"), "return {'d_loss'"),
    (dict(logs="floats"), "fails inside fit"),
])
def test_train_step_mistakes_get_their_hints(mistake, hint):
    assert ladder.check_train_step(_step_class())  # simultaneous updates from one tape are right too
    with pytest.raises(AssertionError, match=re.escape(hint) if "{" in hint else hint):
        ladder.check_train_step(_step_class(**mistake))


def test_three_pairs_scored_in_one_call_pass_and_are_read_apart():
    assert ladder.check_train_step(_step_class(one_call=True))
    with pytest.raises(AssertionError, match="D never sees the wrong caption"):
        ladder.check_train_step(_step_class(one_call=True, d_pair_text="text"))


@pytest.mark.filterwarnings("ignore:invalid value encountered in log")  # the NaN is the mistake
@pytest.mark.parametrize("wrong", [
    lambda r, w, f: -np.log(r).mean() - 0.5 * (np.log(1 - w).mean() + np.log(1 - f).mean()),
    lambda r, w, f: _keras_bce(1, r) + 0.5 * (_keras_bce(0, w) + _keras_bce(0, f)),
])
def test_the_numpy_d_loss_check_names_probabilities_too(wrong):
    with pytest.raises(AssertionError, match="probabilities where the network gives logits"):
        exercises.check_gan_cls_d_loss(wrong)
