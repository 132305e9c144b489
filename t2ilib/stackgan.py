"""StackGAN's two stages (Zhang et al. 2017): Stage I sketches at low resolution, Stage II refines it to twice the
size. Introduced in notebook 06.

- Sizes: :func:`stage_presets` gives Stage I's preset and Stage II's size for a machine's preset (on a CPU 32 ->
  64 px, on a GPU 64 -> 128), :func:`at_size` a preset's networks at another size.
- Stage I is the course's GAN-CLS with CA (``t2ilib.training.make_gan(conditioning="ca")``, the preset's recipe).
  :func:`build_stage2_generator` refines a Stage-I image: encode it to 16x16, join the tiled CA vector, residual
  blocks (:class:`ResidualBlock`), upsample to twice the size (or more). :func:`build_stage2_discriminator` is the
  preset's discriminator at Stage II's size, and :func:`make_stage2` compiles both with the preset's recipe and
  source C's reconstruction loss.
- :class:`StageGAN` trains one stage with ``fit()``: Stage I from noise, or Stage II on the images of a *frozen*
  Stage I; with the GAN-CLS cross-entropy or WGAN-GP (gradient penalty, ``n_critic`` critic steps), plus the
  optional reconstruction loss between stages of source C.

Notebook 06's measurements (``compare_stages``, ``high_frequency_energy``) are in ``t2ilib.evaluation``; the
caption walks and ``ca_at_mean`` in ``t2ilib.conditioning``; source E's single-stage CA model in
``t2ilib.source_e``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from t2ilib import losses, models
from t2ilib.config import Preset
from t2ilib.layers import (
    ConditioningAugmentation,
    DownBlock,
    SpatialTile,
    UpBlock,
    batch_normalization,
    dcgan_init,
)
from t2ilib.training import ConditionalGAN, layer_losses

__all__ = ["ResidualBlock", "STAGE1_SIZES", "STAGE2_CHANNELS", "at_size", "stage_presets", "build_stage2_generator",
           "build_stage2_discriminator", "StageGAN", "make_stage2"]


def _conv3x3(filters: int) -> layers.Conv2D:
    return layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=dcgan_init())


@keras.saving.register_keras_serializable(package="t2ilib")
class ResidualBlock(layers.Layer):
    """``x + F(x)`` with ``F`` = 3x3 conv, BN, ReLU, 3x3 conv, BN (StackGAN Stage II, after He et al. 2016).

    A residual block can only *add* to what it is given: Stage II starts as an identity on the joint features
    and learns the corrections.
    Used by make_stage2 (notebook 06).
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv1, self.norm1 = _conv3x3(filters), batch_normalization()
        self.conv2, self.norm2 = _conv3x3(filters), batch_normalization()

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(f"ResidualBlock({self.filters}) got {input_shape[-1]} channels: x + F(x) needs "
                             f"the same width in and out")
        for layer in (self.conv1, self.norm1, self.conv2, self.norm2):
            layer.build(input_shape)
        self.built = True

    def call(self, x, training=None):
        y = ops.relu(self.norm1(self.conv1(x), training=training))
        return ops.relu(x + self.norm2(self.conv2(y), training=training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


# Stage I's size on the presets for machines that cannot afford it at the preset's own: on a CPU, Stage II at 64 px
# costs about what GAN-CLS does at 64 px (5.5 s a step at 128 px left a 30-minute notebook 120 Stage-II steps).
STAGE1_SIZES = {"smoke": 32, "cpu": 32}
# Stage II's width at 16x16 where the default (twice Stage I's last width) is too dear: on a CPU, half of it makes
# about 65% more steps in notebook 06's minutes, and with the recipe's D it was the best Stage II there
# (docs/results.md, issue 28).
STAGE2_CHANNELS = {"cpu": 32}


def at_size(preset: Preset, image_size: int) -> Preset:
    """``preset`` at ``image_size`` px, each network keeping its width at every resolution both sizes have: G loses
    (or gains, halving the width) blocks at the output end, D at the input end. Used by make_stage2 (notebook 06)."""
    blocks = int(np.log2(max(image_size, 1) // 4))
    if image_size < 8 or 4 * 2**blocks != image_size:
        raise ValueError(f"image_size={image_size}: G starts at 4x4 and doubles, so use 8, 16, 32, 64, 128 or 256")
    g, d = list(preset.size.g_channels), list(preset.size.d_channels)
    while len(g) < blocks:
        g.append(max(g[-1] // 2, 8))
    while len(d) < blocks:
        d.insert(0, max(d[0] // 2, 8))
    return preset.replace(image_size=image_size, g_channels=tuple(g[:blocks]), d_channels=tuple(d[len(d) - blocks:]))


def stage_presets(preset: Preset) -> tuple[Preset, int]:
    """Stage I's preset and Stage II's image size for the machine ``preset`` is sized for: Stage I at
    :data:`STAGE1_SIZES` (32 px for ``smoke`` and ``cpu``) or else the preset's own size, Stage II at twice that
    (64 -> 128 px on a GPU; pass ``image_size=256`` to :func:`make_stage2` where the dataset has 256 px images).
    Introduced in notebook 06."""
    stage1 = at_size(preset, STAGE1_SIZES.get(preset.name, preset.size.image_size))
    return stage1, 2 * stage1.size.image_size


def build_stage2_generator(preset: Preset, *, embedding_dim: int, text_stats=None, image_size: int = 128,
                           channels: int = 128, residual_blocks: int = 2, kl_weight: float = 2.0,
                           name: str = "stage2_generator") -> keras.Model:
    """``(Stage-I image, text) -> image_size`` image (128, or 256 for a T4 run). Used by make_stage2 (notebook 06).

    The Stage-I image (``preset.size.image_size``) is encoded down to 16x16 x ``channels``; the text (standardised
    first when ``text_stats`` is given, see ``models.text_input``) gets its own CA vector, tiled there and joined
    in depth; residual blocks mix the two; nearest upsample + conv blocks (halving the width each time) climb to
    ``image_size``; a 3x3 conv and tanh give RGB. With ``recipe.g_norm="conditional"`` the CA code also sets the
    batch norm of every up-block, as in Stage I.
    """
    low = preset.size.image_size
    if low % 16 or image_size % 16 or image_size <= low:
        raise ValueError(f"Stage II refines {low}px to {image_size}px: both must be multiples of 16 and the "
                         f"output larger than the input")
    stage1_image = keras.Input((low, low, 3), name="image")
    text, vector = models.text_input(embedding_dim, text_stats=text_stats)
    x = layers.Conv2D(channels // 2, 3, padding="same", kernel_initializer=dcgan_init(), name="read")(stage1_image)
    x = layers.ReLU()(x)
    size = low
    while size > 16:
        x = DownBlock(channels, name=f"encode{size // 2}")(x)  # LeakyReLU: the encoder reads like a D
        size //= 2
    code = ConditioningAugmentation(preset.size.text_dim, kl_weight=kl_weight, name="text_ca")(vector)
    x = layers.Concatenate(name="image_and_text")([x, SpatialTile(16, name="tile_text")(code)])
    x = layers.Conv2D(channels, 3, padding="same", use_bias=False, kernel_initializer=dcgan_init(), name="joint")(x)
    x = layers.ReLU()(batch_normalization(name="joint_bn")(x))
    for i in range(residual_blocks):
        x = ResidualBlock(channels, name=f"residual{i + 1}")(x)
    width, conditional = channels, preset.recipe.g_norm == "conditional"
    while size < image_size:
        width = max(width // 2, 16)
        size *= 2
        block = UpBlock(width, upsample="nearest", conditional=conditional, padding=preset.recipe.padding,
                        noise=preset.recipe.noise_injection != "none", name=f"up{size}")
        x = block((x, code)) if conditional else block(x)
    x = layers.Conv2D(3, 3, padding="same", kernel_initializer=dcgan_init(), name="to_rgb")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model({"image": stage1_image, "text": text}, image, name=name)


def build_stage2_discriminator(preset: Preset, *, embedding_dim: int, text_stats=None, image_size: int = 128,
                               name: str = "stage2_discriminator") -> keras.Model:
    """The discriminator of ``t2ilib.models`` for ``preset`` at ``image_size`` (:func:`at_size`: one more
    down-block per doubling, at the input end), the text head at 4x4, with the recipe's named improvements
    (``projection``, ``d_norm="spectral"``; ``"none"`` for WGAN-GP, whose penalty is per sample and must not see
    batch statistics). Used by make_stage2 (notebook 06)."""
    return models.build_discriminator(at_size(preset, image_size), embedding_dim=embedding_dim,
                                      text_stats=text_stats, name=name)


class StageGAN(ConditionalGAN):
    """``ConditionalGAN`` for one StackGAN stage, on ``{"image", "text", "wrong_text"}`` batches. Introduced in
    notebook 06.

    - Stage I: ``generator`` maps ``{"z", "text"}`` to an image; this is ``ConditionalGAN`` itself.
    - Stage II: pass the trained Stage-I generator as ``stage1``; it is frozen (not trainable, run in inference
      mode) and ``generator`` maps ``{"image": Stage-I image, "text"}`` to the larger image. The dataset's images
      must be the larger size. ``reconstruction_weight`` > 0 adds source C's loss between stages: the Stage-II
      image, shrunk, should stay close to the Stage-I image.

    Everything else (GAN-CLS, ``recipe.loss="wgan-gp"`` with ``gp_weight`` and ``n_critic``, the CA layers' KL terms) is
    ``ConditionalGAN``'s: this class changes only how images are drawn (:meth:`generate`).
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, stage1: keras.Model | None = None,
                 reconstruction_weight: float = 0.0, **kwargs):
        if reconstruction_weight and stage1 is None:
            raise ValueError("reconstruction_weight compares Stage II with Stage I: also pass stage1")
        super().__init__(generator, discriminator, **kwargs)
        self.stage1, self.reconstruction_weight = stage1, reconstruction_weight
        if stage1 is not None:
            stage1.trainable = False
            self.z_dim = stage1.input["z"].shape[-1]
        if reconstruction_weight:
            self.trackers["reconstruction"] = keras.metrics.Mean(name="reconstruction")

    def call(self, inputs, training=False):
        """``{"z", "text"}`` -> this stage's image (through the frozen Stage I for Stage II)."""
        if self.stage1 is None:
            return self.generator(inputs, training=training)
        low = self.stage1(inputs, training=False)
        return self.generator({"image": low, "text": inputs["text"]}, training=training)

    def generate(self, z, text):
        """This stage's images in training mode and G's own loss terms: CA's KL and, for Stage II, the weighted
        reconstruction loss against the frozen Stage I's images."""
        if self.stage1 is None:
            return super().generate(z, text)
        low = self.stage1({"z": z, "text": text}, training=False)
        images = self.generator({"image": low, "text": text}, training=True)
        terms = layer_losses(self.generator)
        if self.reconstruction_weight:
            terms["reconstruction"] = self.reconstruction_weight * losses.reconstruction_loss(images, low)
        return images, terms


def make_stage2(stage1: keras.Model, preset: Preset, *, embedding_dim: int, text_stats=None,
                image_size: int | None = None, channels: int | None = None, residual_blocks: int = 2,
                kl_weight: float = 2.0, reconstruction_weight: float = 1.0, mismatch: bool = True,
                jit_compile: bool | str = "auto", **options) -> StageGAN:
    """Stage II on the frozen Stage-I generator ``stage1`` (built for ``preset``), compiled with the preset's recipe
    as ``training.make_gan`` compiles Stage I. Introduced in notebook 06.

    G: :func:`build_stage2_generator` to ``image_size`` (twice Stage I's by default), ``channels`` wide at 16x16
    (by default the preset's :data:`STAGE2_CHANNELS`, else twice Stage I's last width); D:
    :func:`build_stage2_discriminator`. The trainer takes the preset's recipe (its contrastive term off without
    ``mismatch``) plus source C's ``reconstruction_weight``; ``options`` go to ``StageGAN``.
    """
    image_size = image_size or 2 * preset.size.image_size
    channels = channels or STAGE2_CHANNELS.get(preset.name, 2 * preset.size.g_channels[-1])
    generator = build_stage2_generator(preset, embedding_dim=embedding_dim, text_stats=text_stats,
                                       image_size=image_size, channels=channels, residual_blocks=residual_blocks,
                                       kl_weight=kl_weight)
    discriminator = build_stage2_discriminator(preset, embedding_dim=embedding_dim, text_stats=text_stats,
                                               image_size=image_size)
    recipe = preset.recipe if mismatch else preset.recipe.replace(contrastive_weight=0.0)
    gan = StageGAN(generator, discriminator, stage1=stage1, reconstruction_weight=reconstruction_weight,
                   recipe=recipe, mismatch=mismatch, **options)
    gan.compile(jit_compile=jit_compile)
    return gan
