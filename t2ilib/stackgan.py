"""Models built around Conditioning Augmentation (Zhang et al. 2017): source E's single-stage CUB model and
StackGAN's two stages.

- :data:`SOURCE_E` and :func:`build_source_e_generator` / :func:`build_source_e_discriminator`: exactly the
  64x64 CUB model of source project E (sentence embedding 384 -> CA 128, z 100, a DCGAN decoder from 4x4x1024;
  a D with augmentation on its input and the CA vector tiled at 4x4). It trains with
  ``t2ilib.training.ConditionalGAN``.
- Sizes: :func:`stage_presets` gives Stage I's preset and Stage II's size for a machine's preset (on a CPU 32 ->
  64 px, on a GPU 64 -> 128), :func:`at_size` a preset's networks at another size.
- Stage I is the course's GAN-CLS with CA (``t2ilib.training.make_gan(conditioning="ca")``, the preset's recipe).
  :func:`build_stage2_generator` refines a Stage-I image: encode it to 16x16, join the tiled CA vector, residual
  blocks, upsample to twice the size (or more). :func:`build_stage2_discriminator` is the preset's discriminator
  at Stage II's size, and :func:`make_stage2` compiles both with the preset's recipe and source C's
  reconstruction loss.
- :class:`StageGAN` trains one stage with ``fit()``: Stage I from noise, or Stage II on the images of a *frozen*
  Stage I; with the GAN-CLS cross-entropy or WGAN-GP (gradient penalty, ``n_critic`` critic steps), plus the
  optional reconstruction loss between stages of source C.
- Measurements the notebooks report: :func:`sample_diversity`, :func:`interpolation_jumpiness`,
  :func:`high_frequency_energy`, :func:`compare_stages` (Stage I, its bicubic upsample, Stage II and real images
  side by side), and :func:`conditioning_report`, which puts match rate, diversity and
  smoothness of one model in one row; :func:`caption_walk` draws the frames of a walk between two captions.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

from t2ilib import evaluation, losses, metrics, models
from t2ilib.config import Preset
from t2ilib.data import to_unit_range
from t2ilib.layers import (
    ConditioningAugmentation,
    DiffAugment,
    DownBlock,
    SpatialTile,
    TextProjection,
    UpBlock,
    batch_normalization,
    dcgan_init,
)
from t2ilib.training import ConditionalGAN, compile_gan, layer_losses

__all__ = [
    "SOURCE_E",
    "build_source_e_generator",
    "build_source_e_discriminator",
    "SOURCE_E_SETUPS",
    "build_source_e_gan",
    "ResidualBlock",
    "STAGE1_SIZES",
    "at_size",
    "stage_presets",
    "build_stage2_generator",
    "build_stage2_discriminator",
    "StageGAN",
    "make_stage2",
    "upsample",
    "compare_stages",
    "sample_diversity",
    "interpolation_jumpiness",
    "high_frequency_energy",
    "sample_images",
    "caption_walk",
    "conditioning_report",
]

# Source E, as published: z 100, CA 128, G from 4x4x1024 down to 64 channels at 64x64, D 64..512. D's learning
# rate was set lower than G's; the project does not give the values, so this takes half of DCGAN's 2e-4.
SOURCE_E = Preset(
    name="source_e", image_size=64, z_dim=100, text_dim=128, g_channels=(1024, 512, 256, 128, 64),
    d_channels=(64, 128, 256, 512), batch_size=64, steps=20_000, lr_g=2e-4, lr_d=1e-4,
)


def build_source_e_generator(preset: Preset = SOURCE_E, *, embedding_dim: int = 384, text_stats=None,
                             kl_weight: float = 2.0, name: str = "source_e_generator") -> keras.Model:
    """``(z, text) -> 64x64 image``: CA -> concat z -> Dense (no bias) to 4x4x1024 -> ReLU -> four (transposed
    conv 4x4 stride 2, no bias, BN, ReLU) blocks -> 3x3 conv (no bias) to RGB, tanh. Introduced in notebook 05.

    Exactly source E's summary (14,980,800 parameters at the published sizes): no batch norm between the Dense
    and the first up-block. Two fixes, both off
    in the published model: ``text_stats=(mean, variance)`` standardises the text before CA
    (``models.text_input``), and ``preset.g_norm="conditional"`` lets the CA code set every up-block's batch norm.
    """
    z = keras.Input((preset.z_dim,), name="z")
    text, vector = models.text_input(embedding_dim, text_stats=text_stats)
    code = ConditioningAugmentation(preset.text_dim, kl_weight=kl_weight, name="text_ca")(vector)
    x = layers.Concatenate(name="text_and_z")([code, z])
    x = layers.Dense(4 * 4 * preset.g_channels[0], use_bias=False, kernel_initializer=dcgan_init(),
                     name="project")(x)
    x = layers.ReLU()(layers.Reshape((4, 4, preset.g_channels[0]), name="to_4x4")(x))
    conditional = preset.g_norm == "conditional"
    for i, filters in enumerate(preset.g_channels[1:], start=1):
        block = UpBlock(filters, conditional=conditional, name=f"up{i}")
        x = block((x, code)) if conditional else block(x)
    x = layers.Conv2D(3, 3, padding="same", use_bias=False, kernel_initializer=dcgan_init(), name="to_rgb")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model({"z": z, "text": text}, image, name=name)


def build_source_e_discriminator(preset: Preset = SOURCE_E, *, embedding_dim: int = 384, text_stats=None,
                                 augment: str | None = None, dropout: float = 0.3, text_code: str = "ca",
                                 projection: bool = False, name: str = "source_e_discriminator") -> keras.Model:
    """``(image, text) -> {"logits"}``: augmentation -> four stride-2 conv blocks 64..512 (conv without bias, BN,
    LeakyReLU; source E normalises the first block too) to 4x4 -> concat the text code tiled to 4x4x128 -> 1x1
    conv 512 + BN + LeakyReLU -> flatten -> dropout -> Dense to one logit. Exactly source E's summary (3,195,905
    parameters at the published sizes). Introduced in notebook 05.

    ``augment`` is the :class:`~t2ilib.layers.DiffAugment` policy (``None``: no augmentation, ``""`` keeps
    the layer but does nothing). ``text_stats`` standardises the text first, as in the generator.

    ``text_code="ca"`` is source E's: D has its own CA layer (G and D must not share weights; its KL term is not
    part of D's loss), so in training D reads a *sampled* code, ``mu + sigma * eps`` with ``sigma`` near 1 from the
    start, while a fresh layer's ``mu`` differs between captions by a fraction of that. ``text_code="projection"``
    reads the caption deterministically (``TextProjection``, Dense + LeakyReLU to the same 128), and
    ``projection=True`` adds the projection term ``<W code, pool(features)>`` (Miyato & Koyama 2018) to the logit,
    and D also returns ``"image_features"`` and ``"text_features"`` (``models.projection_head``).
    """
    if text_code not in ("ca", "projection"):
        raise ValueError(f"text_code={text_code!r}: use 'ca' (source E: D's own sampled CA) or 'projection'")
    image = keras.Input((preset.image_size, preset.image_size, 3), name="image")
    text, vector = models.text_input(embedding_dim, text_stats=text_stats)
    x = DiffAugment(augment, name="augment")(image) if augment is not None else image
    for i, filters in enumerate(preset.d_channels, start=1):
        x = DownBlock(filters, name=f"down{i}")(x)
    features = x
    if text_code == "ca":
        code = ConditioningAugmentation(preset.text_dim, kl_weight=0.0, name="text_ca")(vector)
    else:
        code = TextProjection(preset.text_dim, name="text_projection")(vector)
    x = layers.Concatenate(name="image_and_text")([x, SpatialTile(x.shape[1], name="tile_text")(code)])
    x = layers.Conv2D(preset.d_channels[-1], 1, use_bias=False, kernel_initializer=dcgan_init(), name="joint")(x)
    x = layers.LeakyReLU(0.2)(batch_normalization(name="joint_bn")(x))
    x = layers.Dropout(dropout)(layers.Flatten()(x))
    logit = layers.Dense(1, kernel_initializer=dcgan_init(), dtype="float32", name="logit")(x)
    outputs = {}
    if projection:
        outputs = models.projection_head(features, code)
        logit = layers.Add(dtype="float32", name="logit_and_agreement")([logit, outputs.pop("agreement")])
    outputs["logits"] = logit
    return keras.Model({"image": image, "text": text}, outputs, name=name)


# Notebook 05's three source-E setups, knob by knob (tests/benchmarks/source_e.py measures them and one fix undone
# at a time; what each gave: notebook 05 and docs/results.md). All keep StackGAN's KL weight 2: the 0.1 the kit
# used before issue 27 was measured with a summed KL, i.e. 12.8 in StackGAN's (mean) normalisation.
SOURCE_E_SETUPS = {
    "as published": dict(standardise=False, g_norm="batch", kl_weight=2.0, lr_g=2e-4, lr_d=1e-4, mismatch=False,
                         augment=None, text_code="ca", projection=False, contrastive_weight=0.0),
    "balanced": dict(standardise=True, g_norm="conditional", kl_weight=2.0, lr_g=2e-4, lr_d=2e-4, mismatch=True,
                     augment="color,translation,cutout", text_code="ca", projection=False, contrastive_weight=0.0),
    "fixed": dict(standardise=True, g_norm="conditional", kl_weight=2.0, lr_g=2e-4, lr_d=2e-4, mismatch=True,
                  augment="translation", text_code="projection", projection=True, contrastive_weight=1.0),
}


def build_source_e_gan(setup: dict, preset: Preset = SOURCE_E, *, text_stats=None,
                       embedding_dim: int = 384) -> ConditionalGAN:
    """Source E's G and D for one of :data:`SOURCE_E_SETUPS` (or a dict with the same keys), in a compiled
    ``ConditionalGAN``. ``text_stats`` are used only where the setup says ``standardise``. Introduced in notebook 05."""
    stats = text_stats if setup["standardise"] else None
    if setup["standardise"] and text_stats is None:
        raise ValueError("this setup standardises the text: pass text_stats (PreparedDataset.embedding_stats)")
    generator = build_source_e_generator(preset.replace(g_norm=setup["g_norm"]), embedding_dim=embedding_dim,
                                         text_stats=stats, kl_weight=setup["kl_weight"])
    discriminator = build_source_e_discriminator(preset, embedding_dim=embedding_dim, text_stats=stats,
                                                 augment=setup["augment"], text_code=setup["text_code"],
                                                 projection=setup["projection"])
    gan = ConditionalGAN(generator, discriminator, mismatch=setup["mismatch"],
                         contrastive_weight=setup["contrastive_weight"])
    return compile_gan(gan, preset.replace(lr_g=setup["lr_g"], lr_d=setup["lr_d"]))


@keras.saving.register_keras_serializable(package="t2ilib")
class ResidualBlock(layers.Layer):
    """``x + F(x)`` with ``F`` = 3x3 conv, BN, ReLU, 3x3 conv, BN (StackGAN Stage II, after He et al. 2016).

    A residual block can only *add* to what it is given: Stage II starts as an identity on the joint features
    and learns the corrections.
    Introduced in notebook 06.
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        conv = lambda: layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=dcgan_init())
        self.conv1, self.norm1, self.conv2, self.norm2 = conv(), batch_normalization(), conv(), batch_normalization()

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


def at_size(preset: Preset, image_size: int) -> Preset:
    """``preset`` at ``image_size`` px, each network keeping its width at every resolution both sizes have: G loses
    (or gains, halving the width) blocks at the output end, D at the input end. Introduced in notebook 06."""
    blocks = int(np.log2(max(image_size, 1) // 4))
    if image_size < 8 or 4 * 2**blocks != image_size:
        raise ValueError(f"image_size={image_size}: G starts at 4x4 and doubles, so use 8, 16, 32, 64, 128 or 256")
    g, d = list(preset.g_channels), list(preset.d_channels)
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
    stage1 = at_size(preset, STAGE1_SIZES.get(preset.name, preset.image_size))
    return stage1, 2 * stage1.image_size


def build_stage2_generator(preset: Preset, *, embedding_dim: int, text_stats=None, image_size: int = 128,
                           channels: int = 128, residual_blocks: int = 2, kl_weight: float = 2.0,
                           name: str = "stage2_generator") -> keras.Model:
    """``(Stage-I image, text) -> image_size`` image (128, or 256 for a T4 run). Introduced in notebook 06.

    The Stage-I image (``preset.image_size``) is encoded down to 16x16 x ``channels``; the text (standardised
    first when ``text_stats`` is given, see ``models.text_input``) gets its own CA vector, tiled there and joined
    in depth; residual blocks mix the two; nearest upsample + conv blocks (halving the width each time) climb to
    ``image_size``; a 3x3 conv and tanh give RGB. With ``preset.g_norm="conditional"`` the CA code also sets the
    batch norm of every up-block, as in Stage I.
    """
    low = preset.image_size
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
    code = ConditioningAugmentation(preset.text_dim, kl_weight=kl_weight, name="text_ca")(vector)
    x = layers.Concatenate(name="image_and_text")([x, SpatialTile(16, name="tile_text")(code)])
    x = layers.Conv2D(channels, 3, padding="same", use_bias=False, kernel_initializer=dcgan_init(), name="joint")(x)
    x = layers.ReLU()(batch_normalization(name="joint_bn")(x))
    for i in range(residual_blocks):
        x = ResidualBlock(channels, name=f"residual{i + 1}")(x)
    width, conditional = channels, preset.g_norm == "conditional"
    while size < image_size:
        width = max(width // 2, 16)
        size *= 2
        block = UpBlock(width, upsample="nearest", conditional=conditional, name=f"up{size}")
        x = block((x, code)) if conditional else block(x)
    x = layers.Conv2D(3, 3, padding="same", kernel_initializer=dcgan_init(), name="to_rgb")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model({"image": stage1_image, "text": text}, image, name=name)


def build_stage2_discriminator(preset: Preset, *, embedding_dim: int, text_stats=None, image_size: int = 128,
                               name: str = "stage2_discriminator") -> keras.Model:
    """The discriminator of ``t2ilib.models`` for ``preset`` at ``image_size`` (:func:`at_size`: one more
    down-block per doubling, at the input end), the text head at 4x4, with the preset's named improvements
    (``projection``, ``d_norm="spectral"``; ``"none"`` for WGAN-GP, whose penalty is per sample and must not see
    batch statistics). Introduced in notebook 06."""
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

    Everything else (GAN-CLS, ``loss="wgan-gp"`` with ``gp_weight`` and ``n_critic``, the CA layers' KL terms) is
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
    (twice Stage I's last width by default); D: :func:`build_stage2_discriminator`. The trainer takes
    ``preset.loss``, ``preset.contrastive_weight`` (off without ``mismatch``) and the learning rates, plus source
    C's ``reconstruction_weight``; ``options`` go to ``StageGAN``.
    """
    image_size = image_size or 2 * preset.image_size
    generator = build_stage2_generator(preset, embedding_dim=embedding_dim, text_stats=text_stats,
                                       image_size=image_size, channels=channels or 2 * preset.g_channels[-1],
                                       residual_blocks=residual_blocks, kl_weight=kl_weight)
    discriminator = build_stage2_discriminator(preset, embedding_dim=embedding_dim, text_stats=text_stats,
                                               image_size=image_size)
    options = {"loss": preset.loss, "contrastive_weight": preset.contrastive_weight if mismatch else 0.0, **options}
    gan = StageGAN(generator, discriminator, stage1=stage1, reconstruction_weight=reconstruction_weight,
                   mismatch=mismatch, **options)
    return compile_gan(gan, preset, jit_compile=jit_compile)


# --- Measurements ---------------------------------------------------------------------------------------------

def sample_diversity(features) -> float:
    """Mean pairwise Euclidean distance between the feature vectors of samples for *one* caption.

    0 means every noise vector gives the same picture (mode collapse for that caption); compare models on the
    same features (e.g. the attribute classifier's). Computed by :func:`t2ilib.evaluation.mean_pairwise_distance`.
    Introduced in notebook 05.
    """
    return evaluation.mean_pairwise_distance(features)


def interpolation_jumpiness(features) -> float:
    """How unevenly a walk between two captions changes the picture: the largest step between consecutive
    frames divided by the whole path length (features of frames in order).

    With ``n`` steps a perfectly smooth walk scores ``1/n``; a walk that jumps once and otherwise stands still
    scores 1.
    Introduced in notebook 06.
    """
    features = np.asarray(features, "float64")
    steps = np.sqrt((np.diff(features, axis=0) ** 2).sum(-1))
    return float(steps.max() / max(steps.sum(), 1e-12))


def high_frequency_energy(images, cutoff: float = 0.25) -> float:
    """Share of the images' spectral energy above ``cutoff`` of the sampling frequency (grey level, mean over
    images). A bicubic upsample cannot add any: a refining stage that raises it adds detail (or noise, which
    the attribute match and a look at the pictures tell apart). Introduced in notebook 06."""
    spectrum = evaluation.power_spectrum(images)  # a share of the energy: the same for any scale of the pixels
    fy = np.fft.fftfreq(spectrum.shape[1])[:, None]
    fx = np.fft.fftfreq(spectrum.shape[2])[None, :]
    high = np.sqrt(fx ** 2 + fy ** 2) > cutoff
    return float(np.mean(spectrum[:, high].sum(-1) / np.maximum(spectrum.sum(axis=(1, 2)), 1e-12)))


def upsample(images, size: int, method: str = "bicubic") -> np.ndarray:
    """``images`` in [-1, 1] resized to ``size`` px: ``"bicubic"`` (clipped back to [-1, 1]: bicubic overshoots at
    edges) or ``"nearest"`` (each pixel repeated). Introduced in notebook 06."""
    resized = tf.image.resize(np.asarray(images, "float32"), (size, size), method=method)
    return np.clip(ops.convert_to_numpy(resized), -1.0, 1.0).astype("float32")


def compare_stages(stage1, stage2, real, *, features, classifier=None, attributes: pd.DataFrame | None = None,
                   columns=("petal_colour", "centre_colour")) -> pd.DataFrame:
    """Notebook 06's table: Stage I's and Stage II's images for the same captions and z, beside the bicubic
    upsample of Stage I and ``real`` (the captions' own images, at Stage II's size). Introduced in notebook 06.

    Columns ``"Stage I"`` (its pixels repeated to Stage II's size, which is what a judge at that size reads of it),
    ``"Stage I, bicubic"``, ``"Stage II"``, ``"real"``. Rows:

    - ``match_<attribute>`` (with ``classifier`` and ``attributes``, the captions' attributes): the share of images
      whose attribute the classifier reads as the caption's; the real column is the classifier's own ceiling here;
    - ``fid_ratio``: ``evaluation.frechet_ratio`` on ``features`` (1.0: as close to real as real is);
    - ``high_frequency_ratio`` and ``checkerboard_ratio``: :func:`high_frequency_energy` and
      ``evaluation.checkerboard_energy`` over the real images' (not for Stage I: they would measure the repeat);
    - ``distance_to_stage1``: ``losses.reconstruction_loss`` (mean ``|avgpool(x) - Stage I|``), how far each set
      strays from the sketch.
    """
    size = stage2.shape[1]
    real = np.asarray(to_unit_range(real), "float32")
    if real.shape[1] != size or len(real) != len(stage1) or len(stage2) != len(stage1):
        raise ValueError(f"compare_stages needs as many Stage-I, Stage-II and real images, the real ones at Stage II's "
                         f"{size} px: got {len(stage1)}, {len(stage2)} and {len(real)} at {real.shape[1]} px")
    sets = {"Stage I": upsample(stage1, size, "nearest"), "Stage I, bicubic": upsample(stage1, size),
            "Stage II": np.asarray(stage2, "float32"), "real": real}
    table = {}
    for name, images in sets.items():
        row = {}
        if classifier is not None and attributes is not None:
            rates = metrics.match_rates(classifier.predict(images), attributes[list(columns)])
            row.update({f"match_{c}": rate for c, rate in rates.items()})
        row["fid_ratio"] = evaluation.frechet_ratio(features, images, real)["ratio"]
        spectral = name != "Stage I"
        row["high_frequency_ratio"] = (evaluation.ratio_to_real(high_frequency_energy(images),
                                                                high_frequency_energy(real), "high-frequency energy")
                                       if spectral else np.nan)
        row["checkerboard_ratio"] = evaluation.checkerboard_ratio(images, real) if spectral else np.nan
        row["distance_to_stage1"] = float(losses.reconstruction_loss(images, stage1))
        table[name] = row
    return pd.DataFrame(table)


def sample_images(model, text, z=None, seed: int = 0, batch_size: int = 128) -> np.ndarray:
    """Images in [-1, 1] from a generator or a :class:`StageGAN` (anything called on ``{"z", "text"}``).
    Introduced in notebook 05."""
    return models.generate(model, np.asarray(text, "float32"), z=z, seed=seed, batch_size=batch_size)


@contextlib.contextmanager
def ca_at_mean(model):
    """Within the block, every Conditioning Augmentation layer of ``model`` (and of a StageGAN's networks)
    returns its mean at inference, so only the caption and z change a picture. Introduced in notebook 05."""
    networks = [m for m in (model, getattr(model, "generator", None), getattr(model, "stage1", None))
                if isinstance(m, keras.Model) and hasattr(m, "layers")]
    found = [layer for m in networks for layer in m.layers if isinstance(layer, ConditioningAugmentation)]
    saved = [layer.sample_at_inference for layer in found]
    for layer in found:
        layer.sample_at_inference = False
    try:
        yield
    finally:
        for layer, value in zip(found, saved):
            layer.sample_at_inference = value


def caption_walk(model, text_a, text_b, frames: int = 9, seed: int = 0) -> np.ndarray:
    """``frames`` images along ``(1 - t) text_a + t text_b`` with one fixed z and the CA at its mean.
    Introduced in notebook 05."""
    t = np.linspace(0.0, 1.0, frames, dtype="float32")[:, None]
    text = (1.0 - t) * np.asarray(text_a, "float32")[None] + t * np.asarray(text_b, "float32")[None]
    z = np.repeat(np.random.default_rng(seed).standard_normal((1, models.z_dim(model))), frames, 0).astype("float32")
    with ca_at_mean(model):
        return sample_images(model, text, z=z)


def conditioning_report(model, classifier, text, attributes: pd.DataFrame | None = None, *, features=None,
                        columns=("petal_colour", "centre_colour"), captions: int = 6, per_caption: int = 16,
                        frames: int = 9, image_size: int | None = None, seed: int = 0) -> pd.Series:
    """One row for a table comparing generators on the same captions:

    - ``match_<attribute>``: share of images (one per caption in ``text``) whose attribute, as the classifier
      reads it, is the one in ``attributes`` (the caption's); left out without ``attributes``;
    - ``diversity``: :func:`sample_diversity` of ``per_caption`` samples for each of the first ``captions``
      captions, averaged, on classifier features;
    - ``jumpiness``: :func:`interpolation_jumpiness` of walks between captions ``i`` and ``i + captions``
      (lower is smoother, ``1 / (frames - 1)`` is perfectly even).

    Images are shrunk (area) to the classifier's ``image_size`` when it differs. ``features`` (images -> vectors,
    e.g. a dual encoder's image tower) replaces the classifier's for diversity and jumpiness: a dataset whose
    captions name no attributes has no classifier (``classifier=None``, no ``attributes``).
    Introduced in notebook 05.
    """

    if classifier is None and (attributes is not None or features is None):
        raise ValueError("conditioning_report without a classifier measures no match rates: pass features= "
                         "(e.g. a dual encoder's image tower) and no attributes")
    size = image_size or (classifier.model.input_shape[1] if classifier is not None else None)
    fit = lambda images: images if size is None or images.shape[1] == size else ops.convert_to_numpy(
        tf.image.resize(images, (size, size), method="area"))
    features = features or classifier.features
    text = np.asarray(text, "float32")
    row = {}
    if attributes is not None:
        predicted = classifier.predict(fit(sample_images(model, text, seed=seed)))
        row.update({f"match_{c}": v for c, v in metrics.match_rates(predicted, attributes[list(columns)]).items()})
    row["diversity"] = float(np.mean([
        sample_diversity(features(fit(sample_images(model, np.repeat(text[i : i + 1], per_caption, 0),
                                                    seed=seed + i))))
        for i in range(captions)]))
    row["jumpiness"] = float(np.mean([
        interpolation_jumpiness(features(fit(caption_walk(model, text[i], text[i + captions], frames,
                                                          seed=seed + i))))
        for i in range(captions)]))
    return pd.Series(row)
