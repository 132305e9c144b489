"""Source E's text-to-image model exactly as published: the single-stage 64x64 CUB GAN with Conditioning
Augmentation (Zhang et al. 2017), and the three setups notebook 05 trains it with. Introduced in notebook 05.

- :data:`SOURCE_E` and :func:`build_source_e_generator` / :func:`build_source_e_discriminator`: sentence embedding
  384 -> CA 128, z 100, a DCGAN decoder from 4x4x1024; a D with augmentation on its input and the CA vector tiled
  at 4x4.
- :data:`SOURCE_E_SETUPS` ("as published", "balanced", "fixed"), knob by knob, and :func:`build_source_e_gan`,
  which builds and compiles one of them as a ``t2ilib.training.ConditionalGAN``.
"""

from __future__ import annotations

import keras
from keras import layers

from t2ilib import models
from t2ilib.config import Preset
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
from t2ilib.training import ConditionalGAN, compile_gan

__all__ = ["SOURCE_E", "build_source_e_generator", "build_source_e_discriminator", "SOURCE_E_SETUPS",
           "build_source_e_gan"]

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
