"""Checks for notebook 04's core-code ladder (exercises 6-9): the student writes Reed et al.'s G and D, GAN-CLS's
losses and a ``train_step``, then trains them with ``fit``. Introduced in notebook 04.

Each check runs the student's code on fixed inputs (tiny models, a recording optimizer) and, as in
``t2ilib.exercises``, prints one line on success or raises ``AssertionError`` naming the usual mistake.

==========================  ==========================================================  ========
check                       the student writes                                          notebook
==========================  ==========================================================  ========
``check_reed_models``       ``build_reed_generator``, ``build_reed_discriminator``      04
``check_gan_cls_losses``    ``d_loss(real, wrong, fake)``, ``g_loss(fake)`` in TF      04
``check_train_step``        a ``keras.Model`` subclass with GAN-CLS's ``train_step``     04
==========================  ==========================================================  ========
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from t2ilib.exercises import _PROBABILITIES, _binary_crossentropy, _diagnose, _number, _passed, _sigmoid, _softplus

__all__ = ["check_reed_models", "check_gan_cls_losses", "check_train_step"]


def _keras():
    import keras

    return keras


def _output_operation(model):
    """The layer or op that produces ``model``'s (single) output, looking through Flatten/Reshape."""
    tensor = model.outputs[0]
    for _ in range(3):
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        operation = history[0]
        if type(operation).__name__ not in ("Flatten", "Reshape"):
            return operation
        tensor = operation.input
    return None


def _ends_with_sigmoid(model) -> bool:
    operation = _output_operation(model)
    if operation is None:
        return False
    activation = getattr(getattr(operation, "activation", None), "__name__", "")
    return "sigmoid" in (activation or type(operation).__name__.lower())


def _model_call(model, inputs, what: str, how: str):
    try:
        return np.asarray(model(inputs, training=False))
    except NotImplementedError:
        raise
    except Exception as error:  # the student's model is called as the trainer will call it
        raise AssertionError(f"{what} failed on {how}: {type(error).__name__}: {str(error)[:200]}") from None


def check_reed_models(build_generator: Callable, build_discriminator: Callable) -> bool:
    """``build_generator(z_dim=, text_dim=, image_size=)`` -> a Keras model ``{"z", "text"} -> [B, S, S, 3]`` in
    [-1, 1]; ``build_discriminator(text_dim=, image_size=)`` -> ``{"image", "text"} -> [B, 1]`` logits. Both must
    read the text. Built at two image sizes (16 and 32 px), called on fixed inputs. Introduced in notebook 04."""
    keras = _keras()
    rng = np.random.default_rng(8)
    batch, z_dim, text_dim = 4, 8, 12
    z, text = rng.normal(size=(batch, z_dim)).astype("float32"), rng.normal(size=(batch, text_dim)).astype("float32")
    other_text = rng.normal(size=(batch, text_dim)).astype("float32")
    for size in (16, 32):
        generator = build_generator(z_dim=z_dim, text_dim=text_dim, image_size=size)
        if not isinstance(generator, keras.Model):
            raise AssertionError(f"build_reed_generator returned {type(generator).__name__}, not a keras.Model: "
                                 "return keras.Model({'z': z, 'text': text}, image)")
        how = "{'z': [4, 8], 'text': [4, 12]}: name the inputs keras.Input(..., name='z') and name='text'"
        images = _model_call(generator, {"z": z, "text": text}, "the generator", how)
        if images.shape != (batch, size, size, 3):
            raise AssertionError(f"the generator's output has shape {images.shape} for image_size={size}, expected "
                                 f"{(batch, size, size, 3)}: from 4x4, one x2 upsampling per block up to image_size, "
                                 "the last one to 3 channels")
        loud = _model_call(generator, {"z": 100 * z, "text": 100 * text}, "the generator", how)
        if loud.max() > 1 + 1e-5 or loud.min() < -1 - 1e-5:
            raise AssertionError(f"the generator's output is not in [-1, 1] (tanh): it reaches [{loud.min():.3g}, "
                                 f"{loud.max():.3g}]. The real images are scaled to [-1, 1]: end with tanh")
        if loud.min() >= 0:
            raise AssertionError("the generator's output is never below 0 (a sigmoid or ReLU at the end?): the real "
                                 "images are scaled to [-1, 1], end with tanh")
        if np.allclose(images, _model_call(generator, {"z": z, "text": other_text}, "the generator", how)):
            raise AssertionError("the generator ignores the text: other captions, the same images. Compress the "
                                 "text (Dense + LeakyReLU) and concatenate it with z")
        if np.allclose(images, _model_call(generator, {"z": -z, "text": text}, "the generator", how)):
            raise AssertionError("the generator ignores z: other noise, the same images. Concatenate z with the "
                                 "text code before the first Dense")

        discriminator = build_discriminator(text_dim=text_dim, image_size=size)
        if not isinstance(discriminator, keras.Model):
            raise AssertionError(f"build_reed_discriminator returned {type(discriminator).__name__}, not a "
                                 "keras.Model: return keras.Model({'image': image, 'text': text}, logit)")
        how = f"{{'image': [4, {size}, {size}, 3], 'text': [4, 12]}}: name the inputs 'image' and 'text'"
        logits = _model_call(discriminator, {"image": images, "text": text}, "the discriminator", how)
        if logits.shape != (batch, 1):
            raise AssertionError(f"the discriminator's output has shape {logits.shape} for image_size={size}, expected "
                                 f"{(batch, 1)}: one logit per pair (down to 4x4, then a 4x4 'valid' conv to 1 "
                                 "channel and Flatten)")
        if _ends_with_sigmoid(discriminator):
            raise AssertionError("the discriminator ends with a sigmoid: return the logit (no activation); the "
                                 "losses take logits, and a sigmoid inside them is stable where one here is not")
        if np.allclose(logits, _model_call(discriminator, {"image": images, "text": other_text},
                                           "the discriminator", how)):
            raise AssertionError("the discriminator ignores the text: other captions, the same scores. Compress the "
                                 "text, tile it at 4x4 and concatenate it with the image features")
    return _passed("check_reed_models", 2)


def check_gan_cls_losses(d_fn: Callable, g_fn: Callable) -> bool:
    """``d_fn(real_logits, wrong_logits, fake_logits)`` and ``g_fn(fake_logits)``: GAN-CLS's cross-entropy losses
    from D's logits, written with TensorFlow or ``keras.ops`` so that a ``GradientTape`` differentiates them (they
    train the student's GAN). Introduced in notebook 04."""
    import tensorflow as tf

    rng = np.random.default_rng(9)
    for case in range(2):
        real, wrong, fake = (rng.normal(scale=2.0, size=(8, 1)).astype("float32") for _ in range(3))
        variables = [tf.Variable(x) for x in (real, wrong, fake)]
        with tf.GradientTape(persistent=True) as tape:
            d_value, g_value = d_fn(*variables), g_fn(variables[2])
        d_got, g_got = _number(d_value, "the D loss"), _number(g_value, "the G loss")
        if not np.isfinite(d_got) or not np.isfinite(g_got):
            raise AssertionError(f"case {case + 1}: a loss is {d_got if not np.isfinite(d_got) else g_got}. Hint: "
                                 f"{_PROBABILITIES} (the log of a negative logit is NaN)")
        real_t, wrong_t, fake_t = _softplus(-real).mean(), _softplus(wrong).mean(), _softplus(fake).mean()
        d_mistakes = {
            _PROBABILITIES: _binary_crossentropy(1, real) + 0.5 * (_binary_crossentropy(0, wrong)
                                                                   + _binary_crossentropy(0, fake)),
            "the sigmoid is applied twice: the cross-entropy from logits already contains it.":
                _softplus(-_sigmoid(real)).mean() + 0.5 * (_softplus(_sigmoid(wrong)).mean()
                                                           + _softplus(_sigmoid(fake)).mean()),
            "weight the two 'fake' terms by 1/2 each (Reed et al.'s Algorithm 1), or the loss counts fakes twice.":
                real_t + wrong_t + fake_t,
            "D never sees the wrong caption: the (real image, wrong text) term is missing.": real_t + fake_t,
            "the fake-image pairs are missing: G's image with the right text must be called fake.":
                real_t + 0.5 * wrong_t,
            "real and fake targets are swapped: real pairs have label 1, wrong and fake pairs label 0.":
                _softplus(real).mean() + 0.5 * (_softplus(-wrong).mean() + _softplus(-fake).mean()),
        }
        _diagnose(d_got, real_t + 0.5 * (wrong_t + fake_t), d_mistakes, f"D loss, case {case + 1}")
        g_mistakes = {
            _PROBABILITIES: _binary_crossentropy(1, fake),
            "the sigmoid is applied twice: the cross-entropy from logits already contains it.":
                _softplus(-_sigmoid(fake)).mean(),
            "G's loss is the non-saturating -log D(G(z), t); you wrote the minimax log(1 - D(G(z), t)).": -fake_t,
            "G wants D to say 'real' (label 1) for its fakes: you used label 0.": fake_t,
        }
        _diagnose(g_got, _softplus(-fake).mean(), g_mistakes, f"G loss, case {case + 1}")
        tensors = tf.is_tensor(d_value) and tf.is_tensor(g_value)
        gradients = tape.gradient(d_value, variables) + [tape.gradient(g_value, variables[2])] if tensors else [None]
        if any(gradient is None for gradient in gradients):
            raise AssertionError("the values are right but GradientTape cannot differentiate them: the loss leaves "
                                 "TensorFlow (NumPy, float(), .numpy()). Write it with tf or keras.ops")
    return _passed("check_gan_cls_losses", 2)


class _Recorder:
    """What a train_step did: which pairs D scored, which variables each optimizer updated."""

    def __init__(self, images, text, wrong_text):
        self.images, self.text, self.wrong_text = images, text, wrong_text
        self.pairs, self.updated = [], {"d": [], "g": []}

    def pair(self, image, text):
        import tensorflow as tf

        if not tf.executing_eagerly() or not hasattr(image, "numpy"):  # traced by fit: nothing to compare
            return
        image, text, size = np.asarray(image), np.asarray(text), len(self.images)
        for start in range(0, len(image), size):  # a batch of several kinds of pairs, concatenated, counts each
            part_image, part_text = image[start:start + size], text[start:start + size]
            which_image = "real" if part_image.shape == self.images.shape and np.allclose(part_image,
                                                                                         self.images) else "other"
            which_text = next((name for name, value in (("right", self.text), ("wrong", self.wrong_text))
                               if part_text.shape == value.shape and np.allclose(part_text, value)), "other")
            self.pairs.append((which_image, which_text))


def _toy_pieces(recorder, image_size: int, text_dim: int):
    """A tiny G (its images depend on the text only, so any z gives the same fakes) and a tiny D (its logit depends
    on the image, the text and their agreement), both recording what they are called with."""
    keras = _keras()
    from keras import layers, ops

    pixels = image_size * image_size * 3

    class ToyGenerator(keras.Model):
        def __init__(self):
            super().__init__(name="toy_generator")
            self.dense = layers.Dense(pixels)

        def call(self, inputs, training=False):
            if not isinstance(inputs, dict) or set(inputs) != {"z", "text"}:
                raise AssertionError("call the generator as generator({'z': z, 'text': text})")
            return ops.reshape(ops.tanh(self.dense(inputs["text"])), (-1, image_size, image_size, 3))

    class ToyDiscriminator(keras.Model):
        def __init__(self):
            super().__init__(name="toy_discriminator")
            self.dense = layers.Dense(1)

        def call(self, inputs, training=False):
            if not isinstance(inputs, dict) or set(inputs) != {"image", "text"}:
                raise AssertionError("call the discriminator as discriminator({'image': images, 'text': text})")
            recorder.pair(inputs["image"], inputs["text"])
            flat = ops.reshape(inputs["image"], (-1, pixels))
            agreement = flat[:, :text_dim] * inputs["text"]
            return self.dense(ops.concatenate([flat, inputs["text"], agreement], axis=1))

    generator, discriminator = ToyGenerator(), ToyDiscriminator()
    rng = np.random.default_rng(10)
    sample_text = np.zeros((1, text_dim), "float32")
    generator({"z": np.zeros((1, 2), "float32"), "text": sample_text})
    discriminator({"image": np.zeros((1, image_size, image_size, 3), "float32"), "text": sample_text})
    for model in (generator, discriminator):
        model.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32") for w in model.get_weights()])
    recorder.pairs.clear()
    return generator, discriminator


def _recording_sgd(recorder, key: str, learning_rate: float):
    """Plain SGD that notes in ``recorder.updated[key]`` which variables it is asked to update."""
    keras = _keras()

    class RecordingSGD(keras.optimizers.SGD):
        def apply(self, grads, trainable_variables=None):
            variables = trainable_variables if trainable_variables is not None else self._trainable_variables
            recorder.updated[key].extend(id(v) for v in variables)
            return super().apply(grads, trainable_variables)

    return RecordingSGD(learning_rate=learning_rate)


def _step_of(loss_of, variables, learning_rate: float):
    """``variables`` after one SGD step on ``loss_of()`` (computed on copies; the variables are restored)."""
    import tensorflow as tf

    before = [v.numpy() for v in variables]
    with tf.GradientTape() as tape:
        loss = loss_of()
    gradients = tape.gradient(loss, variables)
    return [b - learning_rate * (0 if g is None else g.numpy()) for b, g in zip(before, gradients)]


def _same(weights_a, weights_b) -> bool:
    return all(np.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(weights_a, weights_b))


def check_train_step(model_class) -> bool:
    """``model_class(generator, discriminator, z_dim)``, compiled with ``compile(d_optimizer=, g_optimizer=,
    d_loss_fn=, g_loss_fn=)``: one call of its ``train_step({"image", "text", "wrong_text"})`` must take one
    D step on GAN-CLS's three pairs with ``d_optimizer`` and one G step with ``g_optimizer``, each changing only its
    own network, and return ``{"d_loss", "g_loss"}``; then ``fit`` must run it. Tiny recording G and D and plain SGD
    make every update exactly predictable. Introduced in notebook 04."""
    import tensorflow as tf

    from t2ilib import losses

    rng = np.random.default_rng(11)
    size, text_dim, z_dim, batch = 4, 6, 2, 8
    images = np.tanh(rng.normal(size=(batch, size, size, 3))).astype("float32")
    text, wrong_text = (rng.normal(size=(batch, text_dim)).astype("float32") for _ in range(2))
    recorder = _Recorder(images, text, wrong_text)
    generator, discriminator = _toy_pieces(recorder, size, text_dim)
    g_vars, d_vars = generator.trainable_variables, discriminator.trainable_variables
    start_g, start_d = generator.get_weights(), discriminator.get_weights()
    lr_d, lr_g = 0.5, 0.2

    model = model_class(generator, discriminator, z_dim)
    model.compile(d_optimizer=_recording_sgd(recorder, "d", lr_d), g_optimizer=_recording_sgd(recorder, "g", lr_g),
                  d_loss_fn=losses.gan_cls_d_loss, g_loss_fn=losses.g_loss_nonsaturating)
    batch_data = {"image": tf.constant(images), "text": tf.constant(text), "wrong_text": tf.constant(wrong_text)}
    logs = model.train_step(batch_data)
    if not isinstance(logs, dict) or not {"d_loss", "g_loss"} <= set(logs):
        raise AssertionError(f"train_step returned {type(logs).__name__} {list(logs) if isinstance(logs, dict) else ''}"
                             ": return {'d_loss': d_loss, 'g_loss': g_loss}, what fit's progress bar shows")

    # Which optimizer updated which network.
    g_ids, d_ids = {id(v) for v in g_vars}, {id(v) for v in d_vars}
    by_d, by_g = set(recorder.updated["d"]), set(recorder.updated["g"])
    if by_d and by_g and by_d <= g_ids and by_g <= d_ids:
        raise AssertionError("the optimizers are swapped: D's gradients were applied with g_optimizer and G's with "
                             "d_optimizer. Each network has its own optimizer (and learning rate)")
    if by_d & g_ids:
        raise AssertionError("the fakes carry G's gradients into D's update: d_optimizer changed G's weights. Take "
                             "D's gradients with respect to discriminator.trainable_variables only (and draw the "
                             "fakes outside D's tape)")
    if by_g & d_ids:
        raise AssertionError("G's update also changed D's weights: take G's gradients with respect to "
                             "generator.trainable_variables only")
    if not by_d & d_ids:
        raise AssertionError("D was never updated: apply d_optimizer to D's gradients")
    if not by_g & g_ids:
        raise AssertionError("G was never updated: apply g_optimizer to G's gradients")

    pairs = list(recorder.pairs)  # which pairs D scored during the step
    # What the updates were, against the expected SGD steps (G's fakes do not depend on z here, so any z will do).
    after_g, after_d = generator.get_weights(), discriminator.get_weights()

    def restore(weights_g, weights_d):
        generator.set_weights(weights_g)
        discriminator.set_weights(weights_d)

    def d_logits(image, caption):
        return discriminator({"image": image, "text": caption})

    def fakes():
        return generator({"z": tf.zeros((batch, z_dim)), "text": text})

    def d_loss():
        return losses.gan_cls_d_loss(d_logits(images, text), d_logits(images, wrong_text), d_logits(fakes(), text))

    def g_loss(caption=text):
        return losses.g_loss_nonsaturating(d_logits(fakes(), caption))

    restore(start_g, start_d)
    expected_d = _step_of(d_loss, d_vars, lr_d)
    g_on_old_d = _step_of(g_loss, g_vars, lr_g)
    g_on_d_loss = _step_of(d_loss, g_vars, lr_g)
    g_on_wrong = _step_of(lambda: g_loss(wrong_text), g_vars, lr_g)
    d_on_swapped = _step_of(lambda: losses.gan_cls_d_loss(d_logits(fakes(), text), d_logits(images, wrong_text),
                                                          d_logits(images, text)), d_vars, lr_d)
    restore(start_g, expected_d)
    g_on_new_d = _step_of(g_loss, g_vars, lr_g)
    restore(after_g, after_d)

    if not _same(after_d, expected_d):
        if ("real", "wrong") not in pairs:
            raise AssertionError("D never sees the wrong caption: score (real image, wrong_text) and pass its logits "
                                 "to d_loss_fn as the second argument")
        if ("real", "right") not in pairs:
            raise AssertionError("D never sees a real image with its own caption: score (images, text)")
        if ("other", "right") not in pairs:
            raise AssertionError("D never scores G's images with the right caption: score (fakes, text)")
        if _same(after_d, d_on_swapped):
            raise AssertionError("d_loss_fn takes the logits in the order (real, wrong, fake): you passed the fakes' "
                                 "logits as the real ones")
        if _same(after_d, start_d):
            raise AssertionError("D's weights did not change: apply d_optimizer to the gradients of d_loss")
        raise AssertionError("D's update is not one step on d_loss_fn(D(x, t), D(x, wrong t), D(G(z, t), t)): check "
                             "which image meets which caption, and that the gradients are d_loss's")
    if not (_same(after_g, g_on_new_d) or _same(after_g, g_on_old_d)):
        if _same(after_g, g_on_d_loss):
            raise AssertionError("D's gradients were applied to G: G's update follows D's loss. G descends its own "
                                 "loss, g_loss_fn(D(G(z, t), t))")
        if _same(after_g, g_on_wrong):
            raise AssertionError("G is scored with the wrong caption: its pair is (G(z, t), t)")
        if _same(after_g, start_g):
            raise AssertionError("G's weights did not change: apply g_optimizer to the gradients of g_loss")
        raise AssertionError("G's update is not one step on g_loss_fn(D(G(z, t), t)): check that G's loss is taken "
                             "inside G's tape, on fakes drawn inside it")

    # Keras traces train_step into a graph inside fit: the same code must run there.
    dataset = tf.data.Dataset.from_tensors(batch_data).repeat()
    try:
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    except NotImplementedError:
        raise
    except Exception as error:
        raise AssertionError(f"train_step runs eagerly but fails inside fit, which traces it as a tf.function (no "
                             f".numpy() or float() in the step): {type(error).__name__}: {str(error)[:200]}") from None
    return _passed("check_train_step", 3)
