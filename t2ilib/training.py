"""Text-conditional GAN training as a ``keras.Model``: ``gan.compile()`` then ``gan.fit(dataset)``.
Introduced in notebook 03.

The keras-io pattern (``dcgan_overriding_train_step.py``): the model holds a generator and a discriminator,
``compile`` takes one optimizer for each, and ``train_step`` updates D, then G (d2l's ``update_D`` and ``update_G``),
so Keras supplies the progress bar, the callbacks and ``tf.distribute``. Notebook 03 introduces it; notebook 04
reads the train step phase by phase. Two classes:

- :class:`GANCLS`, one algorithm: GAN-CLS (Reed et al. 2016), where D also sees real images with the *wrong* caption
  and must call them fake, so it has to read the text (``mismatch=False``: the plain conditional GAN), with the
  recipe's loss from ``t2ilib.losses``' tables (``"bce"``, ``"hinge"`` or ``"wgan-gp"``).
- :class:`ConditionalGAN`, the trainer every notebook uses: GAN-CLS plus the course's optional terms, each written
  in one place and off unless asked for: GAN-INT (``interpolate``), WGAN-GP's gradient penalty and ``n_critic``
  critic steps (``recipe.loss="wgan-gp"``), the contrastive term (``recipe.contrastive_weight``, XMC-GAN) and the
  mode-seeking term (``recipe.diversity_weight``, Mao et al. 2019).

Both take a ``config.Recipe`` (``recipe=``, Reed et al.'s by default): its loss, its weights and, in ``compile()``,
its Adam settings. An argument that repeats a recipe field (``loss=``, ``contrastive_weight=``...) is refused.

StackGAN's stage trainer (``t2ilib.stackgan.StageGAN``) is a subclass that changes only :meth:`GANCLS.generate`.
The dataset yields dicts ``{"image", "text", "wrong_text"}`` (``t2ilib.data.make_dataset``), optionally ``"group"``
(captions of one group are not wrong for each other in the contrastive term).
Discriminators return a dict: ``"logits"`` and, with the projection head, ``"image_features"`` and
``"text_features"`` (``t2ilib.models.build_discriminator``).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from t2ilib import config, losses, models

__all__ = ["GANCLS", "ConditionalGAN", "dcgan_adam", "make_gan", "with_loss_scaling", "layer_losses"]


def dcgan_adam(learning_rate: float = 2e-4, beta_1: float = 0.5) -> keras.optimizers.Adam:
    """Adam as DCGAN trains it: lr 2e-4 and beta_1 0.5 (0.9 makes GAN training oscillate). Introduced in notebook 03."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


def with_loss_scaling(optimizer):
    """``optimizer`` in a ``LossScaleOptimizer`` under ``mixed_float16`` (so small float16 gradients don't
    underflow), else itself. Used by training.make_gan (notebook 03)."""
    if keras.mixed_precision.global_policy().name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def layer_losses(generator) -> dict:
    """The losses ``generator``'s layers added in its last call (``add_loss``: CA's weighted KL), as
    ``{"kl": sum}`` or ``{}``. Used by training.make_gan (notebook 03)."""
    return {"kl": ops.cast(ops.sum(generator.losses), "float32")} if generator.losses else {}


class GANCLS(keras.Model):
    """GAN-CLS: a generator and a discriminator trained against each other on (image, text) pairs. Notebook 03."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, recipe: config.Recipe = config.REED_ET_AL,
                 mismatch=True, **kwargs):
        repeated = sorted(set(kwargs) & set(config.RECIPE_FIELDS))
        if repeated:
            raise ValueError(f"{repeated[0]}= is a field of the recipe: pass recipe=recipe.replace({repeated[0]}=...) "
                             "(e.g. config.REED_ET_AL.replace(...)) instead")
        super().__init__(**kwargs)  # ConditionalGAN checks the networks
        self.generator, self.discriminator, self.recipe, self.mismatch = generator, discriminator, recipe, mismatch
        self.z_dim = generator.input["z"].shape[-1] if "z" in generator.input else None
        self.seed_generator = keras.random.SeedGenerator(0)
        self.n_critic = 1  # D steps per G step (ConditionalGAN: five for a WGAN critic)
        # Logs D's belief in each kind of pair; a critic's scores are no probabilities, so it logs its Wasserstein
        # estimate instead
        names = ["d_loss", "g_loss"]
        if recipe.loss == "wgan-gp":
            names.append("wasserstein")
        elif mismatch:
            names += ["d_real", "d_wrong", "d_fake"]
        else:
            names += ["d_real", "d_fake"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True  # both networks are built functional models; saving weights needs this flag

    @property
    def options(self) -> dict:
        """How this trainer trains beyond its recipe, networks and optimizers: what ``callbacks.Checkpoint`` records."""
        return {"mismatch": self.mismatch, "n_critic": self.n_critic}

    @property
    def metrics(self):
        return list(self.trackers.values())  # listed here so that Keras resets them at the start of each epoch

    def fit(self, *args, shuffle=False, **kwargs):  # tf.data shuffles the batches: Keras' shuffle=True would only warn
        return super().fit(*args, shuffle=shuffle, **kwargs)

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """One optimizer per network, loss-scaled under ``mixed_float16``; by default the recipe's Adam for each (its
        ``lr_g`` or ``lr_d``, ``beta_1`` and ``beta_2``)."""
        super().compile(optimizer=None, **kwargs)  # not Keras' default RMSprop: an unused third optimizer to save
        recipe = self.recipe
        if g_optimizer is None:
            g_optimizer = keras.optimizers.Adam(recipe.lr_g, beta_1=recipe.beta_1, beta_2=recipe.beta_2)
        if d_optimizer is None:
            d_optimizer = keras.optimizers.Adam(recipe.lr_d, beta_1=recipe.beta_1, beta_2=recipe.beta_2)
        self.g_optimizer, self.d_optimizer = with_loss_scaling(g_optimizer), with_loss_scaling(d_optimizer)
        # Create the optimizer slots here, in the strategy scope that compile runs in: made lazily inside the first
        # distributed train step instead, they break MirroredStrategy and TPUStrategy.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, inputs, training=False):  # gan({"z": z, "text": text}) is the generator's image
        return self.generator(inputs, training=training)

    def noise(self, data):
        """Fresh z for each row of the batch ``data`` (a test overrides this to replay given noise)."""
        return keras.random.normal((ops.shape(data["image"])[0], self.z_dim), seed=self.seed_generator)

    def generate(self, z, text):
        """G's images in training mode, and the losses G's layers added in this call by name (CA's KL)."""
        images = self.generator({"z": z, "text": text}, training=True)
        return images, layer_losses(self.generator)

    def discriminate(self, images, text):
        return self.discriminator({"image": images, "text": text}, training=True)

    def train_step(self, data):
        """D's update (``n_critic`` times), then G's against the updated D: alternating updates, so that one trainer
        serves WGAN-GP too (why, and the cost per step: notebook 04 section 3, docs/results.md)."""
        for _ in range(self.n_critic):
            d_logs = self.update_discriminator(data)
        logs = {**d_logs, **self.update_generator(data)}
        for name, tracker in self.trackers.items():
            tracker.update_state(logs[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def update_discriminator(self, data):
        """One step of D: real pairs are real; fakes and, for GAN-CLS, real images with the wrong caption are fake."""
        images, text = data["image"], data["text"]
        fakes = ops.stop_gradient(self.generate(self.noise(data), text)[0])  # constants: D's gradients stop here
        plain_loss, cls_loss = losses.D_LOSSES[self.recipe.loss]
        logs = {}
        with tf.GradientTape() as tape:
            real, fake = self.discriminate(images, text), self.discriminate(fakes, text)
            if self.mismatch:
                wrong = self.discriminate(images, data["wrong_text"])
                d_loss = cls_loss(real["logits"], wrong["logits"], fake["logits"])
            else:
                d_loss = plain_loss(real["logits"], fake["logits"])
            d_loss += self.extra_d_loss(data, real, fakes, logs)
            # Each replica holds a slice of the batch and the optimizer sums their gradients: over the replicas, N
            # devices take one device's step. scale_loss: times the loss scale under mixed_float16, else unchanged.
            scaled_loss = self.d_optimizer.scale_loss(d_loss / tf.distribute.get_strategy().num_replicas_in_sync)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))
        pairs = {"d_real": real, "d_fake": fake, **({"d_wrong": wrong} if self.mismatch else {})}
        logs.update({name: ops.mean(ops.sigmoid(outputs["logits"])) for name, outputs in pairs.items()})
        return {**logs, "d_loss": d_loss, "wasserstein": ops.mean(real["logits"]) - ops.mean(fake["logits"])}

    def update_generator(self, data):
        """One step of G: fool the updated D with new images, plus G's layers' own losses (CA's KL)."""
        text, z = data["text"], self.noise(data)
        with tf.GradientTape() as tape:
            fakes, logs = self.generate(z, text)
            scored = self.discriminate(fakes, text)
            g_loss = losses.G_LOSSES[self.recipe.loss](scored["logits"]) + sum(logs.values())
            g_loss += self.extra_g_loss(data, z, fakes, scored, logs)
            scaled_loss = self.g_optimizer.scale_loss(g_loss / tf.distribute.get_strategy().num_replicas_in_sync)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))
        return {**logs, "g_loss": g_loss}

    # The terms other GANs add to D's and G's losses, each logged in `logs`: none here (see ConditionalGAN).
    def extra_d_loss(self, data, real, fakes, logs):
        return 0.0

    def extra_g_loss(self, data, z, fakes, scored, logs):
        return 0.0


class ConditionalGAN(GANCLS):
    """GAN-CLS plus the course's optional terms, each off by default and written in one place below.
    Used by training.make_gan (notebook 03), which every notebook builds it through; GAN-INT and the contrastive and
    mode-seeking terms are notebook 04's, WGAN-GP notebook 06's)."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *,
                 recipe: config.Recipe = config.REED_ET_AL, mismatch: bool = True, interpolate: bool = False,
                 interpolation_beta: float = 0.5, n_critic: int | None = None, gp_weight: float = 10.0, **kwargs):
        wanted = {"logits", "image_features", "text_features"} if recipe.contrastive_weight else {"logits"}
        if not isinstance(discriminator.output, dict) or not wanted <= set(discriminator.output):
            raise ValueError(f"discriminator {discriminator.name!r} must return a dict with {sorted(wanted)}: build "
                             "it with t2ilib.models.build_discriminator (the contrastive term needs projection=True)")
        super().__init__(generator, discriminator, recipe=recipe, mismatch=mismatch, **kwargs)
        loss = recipe.loss
        mixes_captions = interpolate or (loss == "wgan-gp" and mismatch)
        if mixes_captions and keras.backend.is_int_dtype(generator.input["text"].dtype):
            raise ValueError("interpolate=True (GAN-INT) and WGAN-GP's penalty between right and wrong captions mix "
                             "two captions' embeddings; this generator reads token ids, which cannot be averaged. "
                             "Use cached embeddings")
        if n_critic is None:
            n_critic = 5 if loss == "wgan-gp" else 1  # WGAN-GP's paper: 5
        if n_critic < 1:
            raise ValueError(f"n_critic={n_critic!r}: D takes at least one step per G step")
        self.interpolate, self.interpolation_beta, self.n_critic = interpolate, interpolation_beta, n_critic
        self.gp_weight = gp_weight if loss == "wgan-gp" else 0.0
        standardize = {layer.name: layer for layer in discriminator.layers}.get("standardize_text")
        # the matching-aware penalty measures D's slope in the standardised text D reads (models.text_input)
        self.text_scale = None if standardize is None else ops.sqrt(ops.reshape(standardize.variance, (-1,)))
        for name, weight in [("gp", self.gp_weight), ("ma_gp", recipe.ma_gp_weight),
                             ("d_contrastive", recipe.contrastive_weight),
                             ("g_contrastive", recipe.contrastive_weight), ("diversity", recipe.diversity_weight)]:
            if weight:
                self.trackers[name] = keras.metrics.Mean(name=name)

    @property
    def options(self) -> dict:
        return {**super().options, "interpolate": self.interpolate, "interpolation_beta": self.interpolation_beta,
                "gp_weight": self.gp_weight}

    def update_generator(self, data):
        if self.recipe.diversity_weight:  # the mode-seeking term's pairs: the first half's captions twice, other z
            # a caption and its copy are not wrong for each other in the contrastive term: one group
            groups = data["group"] if "group" in data else ops.arange(ops.shape(data["text"])[0])
            data = {**data, "text": paired(data["text"]), "group": paired(groups)}
        return super().update_generator(data)

    def extra_d_loss(self, data, real, fakes, logs):
        extra = 0.0
        if self.recipe.ma_gp_weight:  # DF-GAN: D flat around the real images with their own captions
            logs["ma_gp"] = losses.matching_aware_gradient_penalty(
                lambda images, text: self.discriminate(images, text)["logits"], data["image"], data["text"],
                text_scale=self.text_scale)
            extra += self.recipe.ma_gp_weight * logs["ma_gp"]
        if self.gp_weight:  # WGAN-GP: gradient norm 1 between real and fake images (and wrong captions)
            logs["gp"] = losses.conditional_gradient_penalty(
                lambda images, text: self.discriminate(images, text)["logits"], data["image"], data["text"], fakes,
                data["wrong_text"] if self.mismatch else None, seed=self.seed_generator)
            extra += self.gp_weight * logs["gp"]
        if self.recipe.contrastive_weight:  # each real image picks its own caption among the batch's
            logs["d_contrastive"] = losses.contrastive_loss(real["image_features"], real["text_features"],
                                                             data.get("group"))
            extra += self.recipe.contrastive_weight * logs["d_contrastive"]
        return extra

    def extra_g_loss(self, data, z, fakes, scored, logs):
        extra, text, recipe = 0.0, data["text"], self.recipe
        if self.interpolate:  # GAN-INT: captions between two of the batch (D has no real image for them)
            mixed = self.interpolation_beta * text + (1.0 - self.interpolation_beta) * ops.roll(text, 1, axis=0)
            extra += losses.G_LOSSES[recipe.loss](self.discriminate(self.generate(z, mixed)[0], mixed)["logits"])
        if recipe.contrastive_weight:  # each fake picks its own caption among the batch's
            logs["g_contrastive"] = losses.contrastive_loss(scored["image_features"], scored["text_features"],
                                                             data.get("group"))
            extra += recipe.contrastive_weight * logs["g_contrastive"]
        if recipe.diversity_weight:  # mode seeking: the same captions with other z must give other images
            (first, second), (z1, z2) = halves(ops.cast(fakes, "float32")), halves(z)  # see update_generator
            difference = first - second
            if recipe.diversity_pool > 1:  # unlike in shapes and colours, not in pixel noise G could paint instead
                difference = ops.average_pool(difference, recipe.diversity_pool, recipe.diversity_pool)
            logs["diversity"] = ops.mean(ops.abs(difference)) / ops.mean(ops.abs(z1 - z2))
            extra += recipe.diversity_weight / (logs["diversity"] + 1e-5)
        return extra


def paired(rows):
    """``rows`` with its first half repeated over its second: row i + half is row i (an odd last row stays).
    Used by ConditionalGAN's mode-seeking term (notebook 04)."""
    first, _ = halves(rows)
    return ops.concatenate([first, first, rows[2 * ops.shape(first)[0]:]])


def halves(rows):
    """The first and second half of ``rows`` (without an odd last row): the pairs :func:`paired` makes alike.
    Used by ConditionalGAN's mode-seeking term (notebook 04)."""
    half = ops.shape(rows)[0] // 2
    return rows[:half], rows[half:2 * half]


def make_gan(preset, *, recipe: config.Recipe | None = None, embedding_dim: int | None = None, text_encoders=None,
             sequence_length: int | None = None, text_stats=None, mismatch: bool = True, interpolate: bool = False,
             jit_compile: bool | str = "auto", conditioning: str = "dense", kl_weight: float = 2.0,
             **options) -> ConditionalGAN:
    """Build G and D for ``preset`` and compile them into a ``ConditionalGAN`` with the recipe's Adam settings.
    Introduced in notebook 03.

    ``recipe`` (default ``preset.recipe``) is the design and the losses: ``recipe=config.REED_ET_AL`` trains Reed et
    al.'s at the preset's size. With ``mismatch=False`` the recipe's contrastive term is off, since it pairs images
    with wrong captions. The text is a cached embedding (``embedding_dim``) or token ids read by a pair of trainable
    encoders (``text_encoders=(for_g, for_d)`` + ``sequence_length``): two encoders, because G and D must not share
    weights that both optimizers would pull in opposite directions (one frozen encoder may serve both: notebook 03's
    pretrained LSTM). ``text_stats`` (cached embeddings or a frozen encoder's vectors)
    standardises the text inside both networks (see ``t2ilib.models.text_input``); ``conditioning="ca"`` gives G
    Conditioning Augmentation instead of a Dense text layer, its KL term weighted by ``kl_weight``
    (``models.build_generator``). ``options`` go to ``ConditionalGAN``. ``jit_compile=True`` compiles the train
    step with XLA; Keras' ``"auto"`` does so on a GPU only (docs/results.md has the CPU numbers).
    """
    recipe = recipe or preset.recipe
    if not mismatch:
        recipe = recipe.replace(contrastive_weight=0.0)
    preset = preset.replace(recipe=recipe)
    g_encoder, d_encoder = text_encoders or (None, None)
    generator = models.build_generator(preset, embedding_dim=embedding_dim, text_encoder=g_encoder,
                                       sequence_length=sequence_length, text_stats=text_stats,
                                       conditioning=conditioning, kl_weight=kl_weight)
    discriminator = models.build_discriminator(preset, embedding_dim=embedding_dim, text_encoder=d_encoder,
                                               sequence_length=sequence_length, text_stats=text_stats)
    gan = ConditionalGAN(generator, discriminator, recipe=recipe, mismatch=mismatch, interpolate=interpolate,
                         **options)
    gan.size = preset.size  # what the networks were built at: callbacks.Checkpoint records it
    gan.compile(jit_compile=jit_compile)
    return gan
