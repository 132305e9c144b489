"""Text-conditional GAN training as a ``keras.Model``: ``gan.compile(...)`` then ``gan.fit(dataset)``.

The keras-io pattern (``dcgan_overriding_train_step.py``): the model holds a generator and a discriminator,
``compile`` takes one optimizer for each, and ``train_step`` does one update of both, so Keras supplies the
progress bar, the callbacks and ``tf.distribute``.

One class covers the GANs of notebooks 03 and 04, by three switches:

- ``mismatch``: GAN-CLS (Reed et al. 2016). D also sees real images with the *wrong* caption and must call them
  fake, so it has to read the text. Without it, D can ignore the text and so can G.
- ``interpolate``: GAN-INT. G also learns from captions halfway between two captions of the batch
  (beta = 0.5); D never sees those (it has no real image for them).
- ``loss``: ``"bce"`` (cross-entropy, non-saturating G loss; the default) or ``"hinge"``.

``contrastive_weight`` (optional, > 0) adds a contrastive matching term (XMC-GAN, Zhang et al. 2021) to both
losses. D's projection head scores every image of the batch against every caption of the batch in one matrix
product (the cosine of ``pool(features_i)`` and ``W text_j``, the projection term's two vectors, for all pairs, at
temperature 0.1); D learns to pick each real image's own caption out of the batch, and G to make its fakes pick
theirs. A GAN-CLS D sees one wrong caption per image; this gives it B - 1, among them captions that differ from
the right one in a small detail only.

``ema_decay`` (optional) keeps a second generator, ``generator_ema``, whose weights are an exponential moving
average of the trained one's (Karras et al. 2018; Yazici et al. 2019). GAN training circles around a good
generator rather than settling on it; the average sits nearer the centre of the circle, so its colours are
steadier. It is only sampled from, never trained: ``gan.sampling_generator`` is the one to draw pictures with.

The dataset yields dicts ``{"image", "text", "wrong_text"}`` (``t2ilib.data.make_dataset``); the text is a
cached embedding or token ids, whatever the two networks take.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from t2ilib import losses, models

__all__ = ["ConditionalGAN", "dcgan_adam", "make_gan"]


def dcgan_adam(learning_rate: float = 2e-4, beta_1: float = 0.5) -> keras.optimizers.Adam:
    """Adam as DCGAN trains it: lr 2e-4 and beta_1 0.5 (0.9 makes GAN training oscillate)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


class ConditionalGAN(keras.Model):
    """A generator and a discriminator trained against each other on (image, text) pairs."""

    CONTRASTIVE_TEMPERATURE = 0.1

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, mismatch: bool = True,
                 interpolate: bool = False, interpolation_beta: float = 0.5, loss: str = "bce",
                 ema_decay: float | None = None, contrastive_weight: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if loss not in losses.G_LOSSES:
            raise ValueError(f"loss={loss!r}: choose one of {sorted(losses.G_LOSSES)}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay={ema_decay!r}: use a number between 0 and 1 (e.g. 0.999), or None for no "
                             "average")
        text_dtype = generator.input["text"].dtype
        if interpolate and "int" in str(text_dtype):
            raise ValueError("interpolate=True (GAN-INT) mixes two captions' embeddings; this generator reads "
                             "token ids, which cannot be averaged. Use cached embeddings or interpolate=False")
        self.generator, self.discriminator = generator, discriminator
        self.mismatch, self.interpolate = mismatch, interpolate
        self.interpolation_beta, self.loss_name = interpolation_beta, loss
        self.z_dim = generator.input["z"].shape[-1]
        self.ema_decay = ema_decay
        self.generator_ema = None
        if ema_decay is not None:
            self.generator_ema = keras.models.clone_model(generator)
            self.generator_ema.set_weights(generator.get_weights())
        self.contrastive_weight = contrastive_weight
        self._scorer = self._with_pair_features(discriminator) if contrastive_weight else None
        self.seed_generator = keras.random.SeedGenerator(0)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("d_loss", "g_loss", "d_real", "d_wrong", "d_fake")}
        if not mismatch:
            del self.trackers["d_wrong"]
        if contrastive_weight:
            self.trackers["d_contrastive"] = keras.metrics.Mean(name="d_contrastive")
            self.trackers["g_contrastive"] = keras.metrics.Mean(name="g_contrastive")
        self.built = True  # both networks are built functional models; saving weights needs this flag

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """One optimizer per network (default: DCGAN's Adam for both). Under ``mixed_float16`` each is wrapped in
        a ``LossScaleOptimizer`` so small float16 gradients don't underflow."""
        super().compile(**kwargs)
        self.g_optimizer = self._loss_scaled(g_optimizer or dcgan_adam())
        self.d_optimizer = self._loss_scaled(d_optimizer or dcgan_adam())
        # Create the optimizer slots here, in the strategy scope that compile runs in: made lazily inside the first
        # distributed train step instead, they break MirroredStrategy and TPUStrategy.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @staticmethod
    def _loss_scaled(optimizer):
        if keras.mixed_precision.global_policy().name == "mixed_float16" and not isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer):
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    @property
    def metrics(self):
        # Listed here so that Keras resets them at the start of each epoch.
        return list(self.trackers.values())

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator to draw pictures with: the weight average if there is one, else the trained generator."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def call(self, inputs, training=False):
        """``gan({"z": z, "text": text})`` is the generator's image."""
        return self.generator(inputs, training=training)

    @staticmethod
    def _with_pair_features(discriminator):
        # The same layers (and weights) as D, also returning what each projection term multiplies: the pooled image
        # features and W text. One forward pass then gives the logits and the all-pairs similarity.
        terms = [layer for layer in discriminator.layers if layer.name.startswith("text_image_agreement")]
        if not terms:
            raise ValueError("contrastive_weight needs a discriminator with the projection head "
                             "(models.build_discriminator(..., projection=True))")
        return keras.Model(discriminator.input, [discriminator.output, [term.input for term in terms]],
                           name=f"{discriminator.name}_with_pair_features")

    def _score(self, images, text):
        """D's logits and, with ``contrastive_weight``, the [B, B] similarity of every image with every caption."""
        if self._scorer is None:
            return self.discriminator({"image": images, "text": text}, training=True), None
        logits, pairs = self._scorer({"image": images, "text": text}, training=True)
        unit = lambda x: ops.normalize(ops.cast(x, "float32"), axis=-1)
        # Cosine similarities at XMC-GAN's temperature 0.1: the same scale whatever D's norms are.
        cosines = [ops.matmul(unit(pooled), ops.transpose(unit(weights))) for pooled, weights in pairs]
        return logits, sum(cosines) / (len(cosines) * self.CONTRASTIVE_TEMPERATURE)

    def sample_z(self, batch_size):
        return keras.random.normal((batch_size, self.z_dim), seed=self.seed_generator)

    def train_step(self, data):
        """One update of D and G. ``data`` may also carry the noise ``z`` (else it is drawn here), e.g. to replay a
        run exactly, as the test that compares one device with two does."""
        images, text = data["image"], data["text"]
        batch_size = ops.shape(images)[0]
        d_loss_fn, d_cls_loss_fn = losses.D_LOSSES[self.loss_name]
        g_loss_fn = losses.G_LOSSES[self.loss_name]

        # Both networks update from the same forward pass ("simultaneous" updates, as in the TensorFlow DCGAN
        # tutorial): one generator pass per step instead of two.
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            z = data["z"] if "z" in data else self.sample_z(batch_size)
            fakes = self.generator({"z": z, "text": text}, training=True)
            real_logits, real_similarity = self._score(images, text)
            fake_logits, fake_similarity = self._score(fakes, text)
            if self.mismatch:
                wrong_logits = self.discriminator({"image": images, "text": data["wrong_text"]}, training=True)
                d_loss = d_cls_loss_fn(real_logits, wrong_logits, fake_logits)
            else:
                d_loss = d_loss_fn(real_logits, fake_logits)

            g_loss = g_loss_fn(fake_logits)
            if self.interpolate:
                # Each caption meets its neighbour in the batch: beta * t1 + (1 - beta) * t2.
                beta = self.interpolation_beta
                mixed = beta * text + (1.0 - beta) * ops.roll(text, shift=1, axis=0)
                mixed_fakes = self.generator({"z": self.sample_z(batch_size), "text": mixed}, training=True)
                g_loss += g_loss_fn(self.discriminator({"image": mixed_fakes, "text": mixed}, training=True))
            if self.generator.losses:  # e.g. the KL term of Conditioning Augmentation
                g_loss += ops.cast(ops.sum(self.generator.losses), "float32")
            if self.contrastive_weight:
                d_contrastive = losses.contrastive_matching_loss(real_similarity)
                g_contrastive = losses.contrastive_matching_loss(fake_similarity)
                d_loss += self.contrastive_weight * d_contrastive
                g_loss += self.contrastive_weight * g_contrastive

        self._apply(self.d_optimizer, d_tape, d_loss, self.discriminator.trainable_variables)
        self._apply(self.g_optimizer, g_tape, g_loss, self.generator.trainable_variables)
        if self.generator_ema is not None:
            self._update_average()

        values = {"d_loss": d_loss, "g_loss": g_loss, "d_real": ops.mean(ops.sigmoid(real_logits)),
                  "d_fake": ops.mean(ops.sigmoid(fake_logits))}
        if self.mismatch:
            values["d_wrong"] = ops.mean(ops.sigmoid(wrong_logits))
        if self.contrastive_weight:
            values.update(d_contrastive=d_contrastive, g_contrastive=g_contrastive)
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _update_average(self):
        # The decay ramps up from 0.1 (TensorFlow's ExponentialMovingAverage with num_updates), so early samples
        # are not dominated by the random initial weights. Batch-norm statistics are averaged too.
        step = ops.cast(self.g_optimizer.iterations, "float32")
        decay = ops.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for average, current in zip(self.generator_ema.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * ops.cast(current, average.dtype))

    @staticmethod
    def _apply(optimizer, tape, loss, variables):
        # Backpropagation starts from d loss / d loss = 1; starting from s instead scales every gradient by s,
        # exactly as computing the gradient of s * loss would (the tape has closed, so the loss can't be rescaled).
        # Under tf.distribute each replica's loss is the mean over its slice of the batch and the optimizer sums the
        # replicas' gradients: s = 1 / replicas makes N devices take the step one device takes. Under
        # mixed_float16, s also holds the loss scale, which keeps small float16 gradients from underflowing to zero;
        # the LossScaleOptimizer divides it out again before the update.
        start = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            start = optimizer.scale_loss(start)
        gradients = tape.gradient(loss, variables, output_gradients=ops.cast(start, loss.dtype))
        optimizer.apply_gradients(zip(gradients, variables))


def make_gan(preset, *, embedding_dim: int | None = None, text_encoders=None, sequence_length: int | None = None,
             text_stats=None, mismatch: bool = True, interpolate: bool = False, jit_compile: bool | str = "auto",
             **options) -> ConditionalGAN:
    """Build G and D for ``preset`` and compile them into a ``ConditionalGAN`` with the preset's Adam settings.

    The text is a cached embedding (``embedding_dim``) or token ids read by a pair of trainable encoders
    (``text_encoders=(for_g, for_d)`` + ``sequence_length``): two encoders, because G and D must not share
    weights that both optimizers would pull in opposite directions. ``text_stats`` (cached embeddings only)
    standardises the text inside both networks (see ``t2ilib.models.text_input``). ``options`` go to
    ``ConditionalGAN`` (``loss``, ``ema_decay`` and ``contrastive_weight`` default to the preset's; with
    ``mismatch=False`` the contrastive term is off too, since it pairs images with wrong captions).
    ``jit_compile=True`` compiles the train step with XLA; Keras' ``"auto"`` does so on a GPU only (on this CPU
    XLA measured 1.56x faster at the ``cpu`` preset, see the README's performance section; not every op has an
    XLA kernel on every device).
    """
    g_encoder, d_encoder = text_encoders or (None, None)
    generator = models.build_generator(preset, embedding_dim=embedding_dim, text_encoder=g_encoder,
                                       sequence_length=sequence_length, text_stats=text_stats)
    discriminator = models.build_discriminator(preset, embedding_dim=embedding_dim, text_encoder=d_encoder,
                                               sequence_length=sequence_length, text_stats=text_stats)
    options.setdefault("loss", preset.loss)
    options.setdefault("ema_decay", preset.ema_decay or None)
    # The contrastive term shows D every other caption of the batch as a wrong one: without mismatch, none.
    options.setdefault("contrastive_weight", preset.contrastive_weight if mismatch else 0.0)
    gan = ConditionalGAN(generator, discriminator, mismatch=mismatch, interpolate=interpolate, **options)
    gan.compile(g_optimizer=dcgan_adam(preset.lr_g, preset.beta_1), d_optimizer=dcgan_adam(preset.lr_d, preset.beta_1),
                jit_compile=jit_compile)
    return gan
