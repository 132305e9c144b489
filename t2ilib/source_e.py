"""Source E's text-to-image model exactly as published: the single-stage 64x64 CUB GAN with Conditioning
Augmentation (Zhang et al. 2017), and the three setups notebook 05 trains it with. Introduced in notebook 05.

- :data:`SOURCE_E` and :func:`build_source_e_generator` / :func:`build_source_e_discriminator`: sentence embedding
  384 -> CA 128, z 100, a DCGAN decoder from 4x4x1024; a D with augmentation on its input and the CA vector tiled
  at 4x4. :func:`scaled_to` is the same model at a machine preset's widths.
- :data:`SOURCE_E_SETUPS` ("as published", "balanced", "fixed"), each a :class:`SourceESetup` (its knobs and its
  recipe), and :func:`build_source_e_gan`, which builds and compiles one of them as a
  ``t2ilib.training.ConditionalGAN``.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers

from t2ilib import models
from t2ilib.config import RECIPE_FIELDS, REED_ET_AL, Preset, Recipe, Size
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
from t2ilib.training import ConditionalGAN

__all__ = ["SOURCE_E", "scaled_to", "build_source_e_generator", "build_source_e_discriminator", "SourceESetup",
           "SOURCE_E_SETUPS", "build_source_e_gan"]

# Source E, as published: z 100, CA 128, G from 4x4x1024 down to 64 channels at 64x64, D 64..512. D's learning
# rate was set lower than G's; the project does not give the values, so this takes half of DCGAN's 2e-4.
SOURCE_E = Preset("source_e", Size(image_size=64, z_dim=100, text_dim=128, g_channels=(1024, 512, 256, 128, 64),
                                   d_channels=(64, 128, 256, 512), batch_size=64, steps=20_000),
                  REED_ET_AL.replace(lr_d=1e-4))


def scaled_to(preset: Preset) -> Preset:
    """:data:`SOURCE_E` at ``preset``'s widths against Reed et al.'s (G's first 1024; exact with ``reed2016``, 1/8
    with ``cpu``), 8 channels at the least, with twice the preset's batch (the narrowed model fits it) up to source
    E's 64. Introduced in notebook 05."""
    scale = preset.size.g_channels[0] / 1024

    def scaled(channels):
        return tuple(max(8, int(width * scale)) for width in channels)

    return SOURCE_E.replace(g_channels=scaled(SOURCE_E.size.g_channels), d_channels=scaled(SOURCE_E.size.d_channels),
                            batch_size=min(2 * preset.size.batch_size, SOURCE_E.size.batch_size))


def build_source_e_generator(preset: Preset = SOURCE_E, *, embedding_dim: int = 384, text_stats=None,
                             kl_weight: float = 2.0, name: str = "source_e_generator") -> keras.Model:
    """``(z, text) -> 64x64 image``: CA -> concat z -> Dense (no bias) to 4x4x1024 -> ReLU -> four (transposed
    conv 4x4 stride 2, no bias, BN, ReLU) blocks -> 3x3 conv (no bias) to RGB, tanh. Introduced in notebook 05.

    Exactly source E's summary (14,980,800 parameters at the published sizes): no batch norm between the Dense
    and the first up-block. Two fixes, both off
    in the published model: ``text_stats=(mean, variance)`` standardises the text before CA
    (``models.text_input``), and ``recipe.g_norm="conditional"`` lets the CA code set every up-block's batch norm.
    """
    size = preset.size
    z = keras.Input((size.z_dim,), name="z")
    text, vector = models.text_input(embedding_dim, text_stats=text_stats)
    code = ConditioningAugmentation(size.text_dim, kl_weight=kl_weight, name="text_ca")(vector)
    x = layers.Concatenate(name="text_and_z")([code, z])
    x = layers.Dense(4 * 4 * size.g_channels[0], use_bias=False, kernel_initializer=dcgan_init(),
                     name="project")(x)
    x = layers.ReLU()(layers.Reshape((4, 4, size.g_channels[0]), name="to_4x4")(x))
    conditional = preset.recipe.g_norm == "conditional"
    for i, filters in enumerate(size.g_channels[1:], start=1):
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
    size = preset.size
    image = keras.Input((size.image_size, size.image_size, 3), name="image")
    text, vector = models.text_input(embedding_dim, text_stats=text_stats)
    x = DiffAugment(augment, name="augment")(image) if augment is not None else image
    for i, filters in enumerate(size.d_channels, start=1):
        x = DownBlock(filters, name=f"down{i}")(x)
    features = x
    if text_code == "ca":
        code = ConditioningAugmentation(size.text_dim, kl_weight=0.0, name="text_ca")(vector)
    else:
        code = TextProjection(size.text_dim, name="text_projection")(vector)
    x = layers.Concatenate(name="image_and_text")([x, SpatialTile(x.shape[1], name="tile_text")(code)])
    x = layers.Conv2D(size.d_channels[-1], 1, use_bias=False, kernel_initializer=dcgan_init(), name="joint")(x)
    x = layers.LeakyReLU(0.2)(batch_normalization(name="joint_bn")(x))
    x = layers.Dropout(dropout)(layers.Flatten()(x))
    logit = layers.Dense(1, kernel_initializer=dcgan_init(), dtype="float32", name="logit")(x)
    outputs = {}
    if projection:
        outputs = models.projection_head(features, code)
        logit = layers.Add(dtype="float32", name="logit_and_agreement")([logit, outputs.pop("agreement")])
    outputs["logits"] = logit
    return keras.Model({"image": image, "text": text}, outputs, name=name)


@dataclasses.dataclass(frozen=True)
class SourceESetup:
    """One way notebook 05 trains source E's model: the knobs beside its recipe. Used by build_source_e_gan
    (notebook 05)."""

    standardise: bool  # the text standardised before CA (models.text_input; needs text_stats)
    mismatch: bool  # GAN-CLS's wrong captions for D
    augment: str | None  # D's DiffAugment policy; None: no augmentation
    text_code: str  # how D reads the caption: "ca" (its own sampled CA, source E's) or "projection"
    kl_weight: float = 2.0  # CA's KL term in G's loss (StackGAN's weight, StackGAN's averaged KL)
    recipe: Recipe = REED_ET_AL  # read here: g_norm, projection, contrastive_weight, lr_g, lr_d

    def replace(self, **changes) -> SourceESetup:
        """This setup with knobs or recipe fields changed: ``setup.replace(augment=None, projection=False)``."""
        recipe = self.recipe.replace(**{name: changes.pop(name) for name in list(changes) if name in RECIPE_FIELDS})
        return dataclasses.replace(self, recipe=recipe, **changes)

    def knobs(self) -> dict:
        """Every knob by name, the recipe's fields source E's builders read among them (a table's row)."""
        recipe = {name: getattr(self.recipe, name) for name in ("g_norm", "projection", "contrastive_weight",
                                                                  "lr_g", "lr_d")}
        return {**{field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                   if field.name != "recipe"}, **recipe}


# Notebook 05's three source-E setups, knob by knob (tests/benchmarks/source_e.py measures them and one fix undone
# at a time; what each gave: notebook 05 and docs/results.md). All keep StackGAN's KL weight 2: the 0.1 the kit
# used before issue 27 was measured with a summed KL, i.e. 12.8 in StackGAN's (mean) normalisation.
SOURCE_E_SETUPS = {
    "as published": SourceESetup(standardise=False, mismatch=False, augment=None, text_code="ca",
                                 recipe=REED_ET_AL.replace(lr_d=1e-4)),
    "balanced": SourceESetup(standardise=True, mismatch=True, augment="color,translation,cutout", text_code="ca",
                             recipe=REED_ET_AL.replace(g_norm="conditional")),
    "fixed": SourceESetup(standardise=True, mismatch=True, augment="translation", text_code="projection",
                          recipe=REED_ET_AL.replace(g_norm="conditional", projection=True, contrastive_weight=1.0)),
}


def build_source_e_gan(setup: SourceESetup, preset: Preset = SOURCE_E, *, text_stats=None,
                       embedding_dim: int = 384) -> ConditionalGAN:
    """Source E's G and D at ``preset``'s size for one of :data:`SOURCE_E_SETUPS` (or another
    :class:`SourceESetup`), in a ``ConditionalGAN`` compiled with the setup's recipe. ``text_stats`` are used only
    where the setup says ``standardise``. Introduced in notebook 05."""
    if setup.standardise and text_stats is None:
        raise ValueError("this setup standardises the text: pass text_stats (PreparedDataset.embedding_stats)")
    stats = text_stats if setup.standardise else None
    preset = preset.replace(recipe=setup.recipe)
    generator = build_source_e_generator(preset, embedding_dim=embedding_dim, text_stats=stats,
                                         kl_weight=setup.kl_weight)
    discriminator = build_source_e_discriminator(preset, embedding_dim=embedding_dim, text_stats=stats,
                                                 augment=setup.augment, text_code=setup.text_code,
                                                 projection=setup.recipe.projection)
    gan = ConditionalGAN(generator, discriminator, recipe=setup.recipe, mismatch=setup.mismatch)
    gan.compile()
    return gan
