"""Text-conditional GAN training as a ``keras.Model``: ``gan.compile(...)`` then ``gan.fit(dataset)``.

The keras-io pattern (``dcgan_overriding_train_step.py``): the model holds a generator and a discriminator,
``compile`` takes one optimizer for each, and ``train_step`` updates D, then G, so Keras supplies the progress
bar, the callbacks and ``tf.distribute``. Notebook 03 introduces it; notebook 04 reads the train step phase by
phase. One class trains every GAN of the course, by switches:

- ``mismatch``: GAN-CLS (Reed et al. 2016). D also sees real images with the *wrong* caption and must call them
  fake, so it has to read the text.
- ``interpolate``: GAN-INT. G also learns from captions halfway between two captions of the batch.
- ``loss``: an entry of ``t2ilib.losses``' tables, ``"bce"`` (the default), ``"hinge"`` or ``"wgan-gp"`` (the
  Wasserstein critic with its gradient penalty as a D term and ``n_critic`` D steps per G step).
- ``contrastive_weight`` (> 0; 0 is off): D's projection head matches each image with its caption among all the
  batch's (XMC-GAN, Zhang et al. 2021), for D on real images and for G on its fakes.
- ``diversity_weight`` (> 0; 0 is off): the mode-seeking term (Mao et al. 2019): G draws each caption with two z
  and is penalised when the two images differ less than the two z do.

StackGAN's stage trainer (``t2ilib.stackgan.StageGAN``) is a subclass that changes only :meth:`draw`.
The dataset yields dicts ``{"image", "text", "wrong_text"}`` (``t2ilib.data.make_dataset``), optionally ``"z"`` and
``"group"`` (captions of one group are not wrong for each other in the contrastive term).
Discriminators return a dict: ``"logits"`` and, with the projection head, ``"image_features"`` and
``"text_features"`` (``t2ilib.models.build_discriminator``).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from t2ilib import losses, models

__all__ = ["ConditionalGAN", "dcgan_adam", "make_gan", "loss_scaled", "apply_gradients"]


def dcgan_adam(learning_rate: float = 2e-4, beta_1: float = 0.5) -> keras.optimizers.Adam:
    """Adam as DCGAN trains it: lr 2e-4 and beta_1 0.5 (0.9 makes GAN training oscillate). Introduced in notebook 03."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


class ConditionalGAN(keras.Model):
    """A generator and a discriminator trained against each other on (image, text) pairs. Introduced in notebook 03."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, mismatch: bool = True,
                 interpolate: bool = False, interpolation_beta: float = 0.5, loss: str = "bce",
                 n_critic: int | None = None, gp_weight: float = 10.0, contrastive_weight: float = 0.0,
                 diversity_weight: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if loss not in losses.G_LOSSES:
            raise ValueError(f"loss={loss!r}: choose one of {sorted(losses.G_LOSSES)}")
        wanted = {"logits", "image_features", "text_features"} if contrastive_weight else {"logits"}
        if not isinstance(discriminator.output, dict) or not wanted <= set(discriminator.output):
            raise ValueError(f"discriminator {discriminator.name!r} must return a dict with {sorted(wanted)}: build "
                             "it with t2ilib.models.build_discriminator (the contrastive term needs projection=True)")
        if (interpolate or loss == "wgan-gp" and mismatch) and "int" in str(generator.input["text"].dtype):
            raise ValueError("interpolate=True (GAN-INT) and WGAN-GP's penalty between right and wrong captions mix "
                             "two captions' embeddings; this generator reads token ids, which cannot be averaged. "
                             "Use cached embeddings")
        n_critic = (5 if loss == "wgan-gp" else 1) if n_critic is None else n_critic  # WGAN-GP's paper: 5
        if n_critic < 1:
            raise ValueError(f"n_critic={n_critic!r}: D takes at least one step per G step")
        self.generator, self.discriminator = generator, discriminator
        self.mismatch, self.interpolate, self.interpolation_beta = mismatch, interpolate, interpolation_beta
        self.loss_name, self.n_critic, self.contrastive_weight = loss, n_critic, contrastive_weight
        self.diversity_weight = diversity_weight
        self.gp_weight = gp_weight if loss == "wgan-gp" else 0.0
        self.z_dim = generator.input["z"].shape[-1] if "z" in generator.input else None
        self.seed_generator = keras.random.SeedGenerator(0)
        names = ["d_loss", "g_loss"] + (["wasserstein"] + ["gp"] * bool(self.gp_weight) if loss == "wgan-gp" else
                                        ["d_real", "d_wrong", "d_fake"] if mismatch else ["d_real", "d_fake"])
        names += ["d_contrastive", "g_contrastive"] if contrastive_weight else []
        names += ["diversity"] if diversity_weight else []
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True  # both networks are built functional models; saving weights needs this flag

    def fit(self, *args, shuffle=False, **kwargs):
        # Batches come shuffled from tf.data (make_dataset): Keras' default shuffle=True would only warn.
        return super().fit(*args, shuffle=shuffle, **kwargs)

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """One optimizer per network (default: DCGAN's Adam for both), loss-scaled under ``mixed_float16``."""
        super().compile(**kwargs)
        self.g_optimizer = loss_scaled(g_optimizer or dcgan_adam())
        self.d_optimizer = loss_scaled(d_optimizer or dcgan_adam())
        # Create the optimizer slots here, in the strategy scope that compile runs in: made lazily inside the first
        # distributed train step instead, they break MirroredStrategy and TPUStrategy.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        # Listed here so that Keras resets them at the start of each epoch.
        return list(self.trackers.values())

    @property
    def text_spec(self):
        """The ``text`` input the generator declares (``models.generate`` checks captions against it)."""
        return self.generator.input["text"]

    def call(self, inputs, training=False):
        """``gan({"z": z, "text": text})`` is the generator's image."""
        return self.generator(inputs, training=training)

    def draw(self, z, text):
        """G's images for ``(z, text)`` in training mode, and G's extra loss terms by name (CA's KL)."""
        return self.generator({"z": z, "text": text}, training=True), self.generator_terms()

    def generator_terms(self):
        """The losses G's layers added in its last call (``add_loss``: CA's KL), as ``{"kl": sum}`` or ``{}``."""
        return {"kl": ops.cast(ops.sum(self.generator.losses), "float32")} if self.generator.losses else {}

    def score(self, images, text):
        return self.discriminator({"image": images, "text": text}, training=True)

    def train_step(self, data):
        """D's update (``n_critic`` times), then G's against the updated D: alternating updates, so that one trainer
        serves WGAN-GP too (why, and the cost per step: notebook 04 section 3, docs/results.md)."""
        images, text = data["image"], data["text"]
        given = data.get("z")  # replays a run exactly when given (the two-replica test), else drawn for each update
        noise = lambda: keras.random.normal((ops.shape(images)[0], self.z_dim), seed=self.seed_generator)
        d_loss_of, d_cls_loss_of = losses.D_LOSSES[self.loss_name]
        g_loss_of = losses.G_LOSSES[self.loss_name]
        logs = {}

        # 1. D: real pairs are real; fakes (constants here: D's gradients stop at them) and, for GAN-CLS, real images
        #    with the wrong caption are fake. A WGAN critic takes n_critic steps to stay near its optimum.
        for _ in range(self.n_critic):
            fakes = ops.stop_gradient(self.draw(noise() if given is None else given, text)[0])
            with tf.GradientTape() as tape:
                real, fake = self.score(images, text), self.score(fakes, text)
                if self.mismatch:
                    wrong = self.score(images, data["wrong_text"])
                    d_loss = d_cls_loss_of(real["logits"], wrong["logits"], fake["logits"])
                else:
                    d_loss = d_loss_of(real["logits"], fake["logits"])
                if self.gp_weight:  # WGAN-GP: gradient norm 1 between real and fake images (and wrong captions)
                    logs["gp"] = losses.conditional_gradient_penalty(
                        lambda x, t: self.score(x, t)["logits"], images, text, fakes,
                        data["wrong_text"] if self.mismatch else None, seed=self.seed_generator)
                    d_loss += self.gp_weight * logs["gp"]
                if self.contrastive_weight:  # each real image picks its own caption among the batch's
                    logs["d_contrastive"] = losses.contrastive_loss(real["image_features"], real["text_features"],
                                                                 data.get("group"))
                    d_loss += self.contrastive_weight * logs["d_contrastive"]
            apply_gradients(self.d_optimizer, tape, d_loss, self.discriminator.trainable_variables)

        # 2. G: fool the updated D with new images, plus G's own terms (CA's KL, Stage II's reconstruction).
        z = noise() if given is None else given
        with tf.GradientTape() as tape:
            fakes, g_terms = self.draw(z, text)
            scored = self.score(fakes, text)
            g_loss = g_loss_of(scored["logits"]) + sum(g_terms.values())
            if self.interpolate:  # GAN-INT: captions between two of the batch (D has no real image for them)
                mixed = self.interpolation_beta * text + (1.0 - self.interpolation_beta) * ops.roll(text, 1, axis=0)
                g_loss += g_loss_of(self.score(self.draw(z, mixed)[0], mixed)["logits"])
            if self.contrastive_weight:  # each fake picks its own caption among the batch's
                logs["g_contrastive"] = losses.contrastive_loss(scored["image_features"], scored["text_features"],
                                                                 data.get("group"))
                g_loss += self.contrastive_weight * logs["g_contrastive"]
            if self.diversity_weight:  # mode seeking: the same captions with other z must give other images
                other_z = noise() if given is None else ops.roll(given, 1, axis=0)
                others = self.draw(other_z, text)[0]
                logs["diversity"] = ops.mean(ops.abs(ops.cast(fakes, "float32") - ops.cast(others, "float32"))) / (
                    ops.mean(ops.abs(z - other_z)))
                g_loss += self.diversity_weight / (logs["diversity"] + 1e-5)
        apply_gradients(self.g_optimizer, tape, g_loss, self.generator.trainable_variables)

        # 3. Logs: D's mean belief in each kind of pair, or the critic's Wasserstein estimate.
        probability = lambda outputs: ops.mean(ops.sigmoid(outputs["logits"]))
        logs.update(g_terms, d_loss=d_loss, g_loss=g_loss, d_real=probability(real), d_fake=probability(fake),
                    wasserstein=ops.mean(real["logits"]) - ops.mean(fake["logits"]))
        if self.mismatch:
            logs["d_wrong"] = probability(wrong)
        for name, tracker in self.trackers.items():
            tracker.update_state(logs[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def loss_scaled(optimizer):
    """``optimizer`` in a ``LossScaleOptimizer`` under ``mixed_float16`` (so small float16 gradients don't
    underflow), else itself. Introduced in notebook 03."""
    if keras.mixed_precision.global_policy().name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def apply_gradients(optimizer, tape, loss, variables):
    """One update of ``variables`` down the gradient of ``loss``, scaled for replicas and the loss scale.
    Introduced in notebook 03."""
    # Backpropagation starts from d loss / d loss = 1; starting from s instead scales every gradient by s, exactly
    # as computing the gradient of s * loss would (the tape has closed). Under tf.distribute each replica's loss is
    # the mean over its slice of the batch and the optimizer sums the replicas' gradients: s = 1 / replicas makes N
    # devices take the step one device takes. Under mixed_float16, s also holds the loss scale, which the
    # LossScaleOptimizer divides out again before the update.
    start = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        start = optimizer.scale_loss(start)
    gradients = tape.gradient(loss, variables, output_gradients=ops.cast(start, loss.dtype))
    optimizer.apply_gradients(zip(gradients, variables))


def make_gan(preset, *, embedding_dim: int | None = None, text_encoders=None, sequence_length: int | None = None,
             text_stats=None, mismatch: bool = True, interpolate: bool = False, jit_compile: bool | str = "auto",
             conditioning: str = "dense", kl_weight: float = 2.0, **options) -> ConditionalGAN:
    """Build G and D for ``preset`` and compile them into a ``ConditionalGAN`` with the preset's Adam settings.
    Introduced in notebook 03.

    The text is a cached embedding (``embedding_dim``) or token ids read by a pair of trainable encoders
    (``text_encoders=(for_g, for_d)`` + ``sequence_length``): two encoders, because G and D must not share
    weights that both optimizers would pull in opposite directions. ``text_stats`` (cached embeddings only)
    standardises the text inside both networks (see ``t2ilib.models.text_input``); ``conditioning="ca"`` gives G
    Conditioning Augmentation instead of a Dense text layer, its KL term weighted by ``kl_weight``
    (``models.build_generator``). ``options`` go to ``ConditionalGAN``; ``loss``, ``contrastive_weight`` and
    ``diversity_weight`` are the preset's (with ``mismatch=False`` the contrastive term is off, since it pairs
    images with wrong captions). ``jit_compile=True`` compiles the train step with XLA; Keras' ``"auto"`` does so
    on a GPU only (the README's performance section has the CPU numbers).
    """
    g_encoder, d_encoder = text_encoders or (None, None)
    generator = models.build_generator(preset, embedding_dim=embedding_dim, text_encoder=g_encoder,
                                       sequence_length=sequence_length, text_stats=text_stats,
                                       conditioning=conditioning, kl_weight=kl_weight)
    discriminator = models.build_discriminator(preset, embedding_dim=embedding_dim, text_encoder=d_encoder,
                                               sequence_length=sequence_length, text_stats=text_stats)
    options = {"loss": preset.loss, "contrastive_weight": preset.contrastive_weight if mismatch else 0.0,
               "diversity_weight": preset.diversity_weight, **options}
    gan = ConditionalGAN(generator, discriminator, mismatch=mismatch, interpolate=interpolate, **options)
    gan.compile(g_optimizer=dcgan_adam(preset.lr_g, preset.beta_1), d_optimizer=dcgan_adam(preset.lr_d, preset.beta_1),
                jit_compile=jit_compile)
    return gan
