"""DF-GAN's generator (deep text-image fusion blocks, no batch norm) and one-way discriminator (residual blocks and a
head that reads the text once), built as drop-in replacements for ``t2ilib.models.build_generator`` and
``build_discriminator`` for the realism benchmark of issue 28; no notebook uses them. After Tao et al., "DF-GAN: A
Simple and Effective Baseline for Text-to-Image Synthesis", CVPR 2022 (github.com/tobran/DF-GAN,
``code/models/GAN.py``), at the kit's widths and with its text code.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from t2ilib.layers import SpatialTile, TextProjection, spectral
from t2ilib.models import projection_head, text_input

__all__ = ["Affine", "DFBlock", "GBlock", "DBlock", "build_dfgan_generator", "build_dfgan_discriminator"]

_PACKAGE = "t2ilib_dfgan"


def pytorch_init():
    """PyTorch's default for Linear and Conv2d (kaiming_uniform, a=sqrt(5): U(+-1/sqrt(fan_in))), which DF-GAN keeps.
    Its G has no normalisation to undo a small start: with the kit's N(0, 0.02) the signal shrinks ~6x per block
    and the first images (cpu preset) have a standard deviation of ~2e-4; with this, ~0.04."""
    return keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Affine(layers.Layer):
    """``(x, cond) -> x * gamma(cond) + beta(cond)`` per channel, gamma and beta each an MLP cond -> C -> ReLU -> C.

    Like conditional batch norm without the normalisation. The last linear of each MLP starts at zero weights and
    bias 1 (gamma) or 0 (beta), so the block starts as the identity.
    """

    def build(self, input_shape):
        feature_shape, cond_shape = input_shape
        channels = feature_shape[-1]
        self.gamma_hidden = layers.Dense(channels, activation="relu", kernel_initializer=pytorch_init(),
                                         name="gamma_hidden")
        self.gamma = layers.Dense(channels, kernel_initializer="zeros", bias_initializer="ones", name="gamma")
        self.beta_hidden = layers.Dense(channels, activation="relu", kernel_initializer=pytorch_init(),
                                        name="beta_hidden")
        self.beta = layers.Dense(channels, kernel_initializer="zeros", name="beta")
        for hidden, last in ((self.gamma_hidden, self.gamma), (self.beta_hidden, self.beta)):
            hidden.build(cond_shape)
            last.build(hidden.compute_output_shape(cond_shape))
        self.built = True

    def call(self, inputs):
        x, cond = inputs
        gamma = ops.cast(self.gamma(self.gamma_hidden(cond)), x.dtype)[:, None, None, :]
        beta = ops.cast(self.beta(self.beta_hidden(cond)), x.dtype)[:, None, None, :]
        return x * gamma + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DFBlock(layers.Layer):
    """DF-GAN's DFBLK: affine(cond) -> LeakyReLU(0.2) -> affine(cond) -> LeakyReLU(0.2). Two stacked affines make
    the text's effect on the features nonlinear, which one (conditional batch norm's) cannot."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.affine0, self.affine1 = Affine(name="affine0"), Affine(name="affine1")
        self.activation = layers.LeakyReLU(0.2)

    def build(self, input_shape):
        self.affine0.build(input_shape)
        self.affine1.build(input_shape)
        self.built = True

    def call(self, inputs):
        x, cond = inputs
        x = self.activation(self.affine0((x, cond)))
        return self.activation(self.affine1((x, cond)))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PaddedConv(layers.Layer):
    """A 3x3 conv that keeps the size, padded with zeros or (``padding="reflect"``) the feature map's mirror image,
    as the kit's ``UpBlock`` pads."""

    def __init__(self, filters: int, padding: str = "zero", **kwargs):
        super().__init__(**kwargs)
        if padding not in ("zero", "reflect"):
            raise ValueError(f"padding={padding!r}: use 'zero' or 'reflect'")
        self.filters, self.padding = filters, padding
        self.conv = layers.Conv2D(filters, 3, padding="same" if padding == "zero" else "valid",
                                  kernel_initializer=pytorch_init())

    def build(self, input_shape):
        batch, height, width, channels = input_shape
        if self.padding == "reflect":
            height, width = (None if n is None else n + 2 for n in (height, width))
        self.conv.build((batch, height, width, channels))
        self.built = True

    def call(self, x):
        if self.padding == "reflect":
            x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        return self.conv(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "padding": self.padding}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GBlock(layers.Layer):
    """DF-GAN's G_Block: ``(x, cond)`` -> nearest upsample x2 -> DFBlock -> 3x3 conv -> DFBlock -> 3x3 conv, plus
    the upsampled input (through a 1x1 conv when the width changes). No batch norm: the text sets every block's
    features through the affines alone."""

    def __init__(self, filters: int, padding: str = "zero", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.padding = filters, padding
        self.resize = layers.UpSampling2D(2, interpolation="nearest")
        self.fuse1, self.fuse2 = DFBlock(name="fuse1"), DFBlock(name="fuse2")
        self.conv1 = PaddedConv(filters, padding, name="conv1")
        self.conv2 = PaddedConv(filters, padding, name="conv2")
        self.shortcut = None

    def build(self, input_shape):
        shape, cond_shape = input_shape
        shape = self.resize.compute_output_shape(shape)
        out_shape = (*shape[:-1], self.filters)
        self.fuse1.build((shape, cond_shape))
        self.conv1.build(shape)
        self.fuse2.build((out_shape, cond_shape))
        self.conv2.build(out_shape)
        if shape[-1] != self.filters:
            self.shortcut = layers.Conv2D(self.filters, 1, kernel_initializer=pytorch_init(), name="shortcut")
            self.shortcut.build(shape)
        self.built = True

    def call(self, inputs):
        x, cond = inputs
        x = self.resize(x)
        residual = self.conv2(self.fuse2((self.conv1(self.fuse1((x, cond))), cond)))
        return (x if self.shortcut is None else self.shortcut(x)) + residual

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape[0]
        return (batch, None if height is None else 2 * height, None if width is None else 2 * width, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "padding": self.padding}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DBlock(layers.Layer):
    """DF-GAN's resD: halve the size; ``shortcut(x) + gamma * residual(x)`` with residual = 4x4 conv, stride 2 ->
    LeakyReLU(0.2) -> 3x3 conv -> LeakyReLU(0.2), shortcut = 2x2 average pool (then a 1x1 conv when the width
    changes) and a learnable scalar ``gamma`` that starts at 0, so D starts as its shortcuts and lets the residuals
    in as it learns. ``spectral_norm`` normalises the three convs."""

    def __init__(self, filters: int, spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.spectral_norm = filters, spectral_norm
        self.conv1 = spectral(layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False,
                                            kernel_initializer=pytorch_init()), spectral_norm)
        self.conv2 = spectral(layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                            kernel_initializer=pytorch_init()), spectral_norm)
        self.activation = layers.LeakyReLU(0.2)
        self.pool = layers.AveragePooling2D(2)
        self.shortcut = None

    def build(self, input_shape):
        self.conv1.build(input_shape)
        pooled = self.pool.compute_output_shape(input_shape)
        self.conv2.build((*pooled[:-1], self.filters))
        if input_shape[-1] != self.filters:  # pooling first: the same linear map as DF-GAN's conv-then-pool, 4x cheaper
            self.shortcut = spectral(layers.Conv2D(self.filters, 1, kernel_initializer=pytorch_init()),
                                     self.spectral_norm)
            self.shortcut.build(pooled)
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")
        self.built = True

    def call(self, x, training=None):
        residual = self.activation(self.conv1(x, training=training))
        residual = self.activation(self.conv2(residual, training=training))
        x = self.pool(x)
        if self.shortcut is not None:
            x = self.shortcut(x, training=training)
        return x + ops.cast(self.gamma, residual.dtype) * residual

    def compute_output_shape(self, input_shape):
        return self.pool.compute_output_shape((*input_shape[:-1], self.filters))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "spectral_norm": self.spectral_norm}


def build_dfgan_generator(preset, *, embedding_dim: int, text_stats=None, name: str = "generator") -> keras.Model:
    """``{"z", "text"} -> image`` in [-1, 1], like ``models.build_generator`` with cached embeddings.

    cond = [z, text code] -> Dense to 4x4 x ``g_channels[0]`` -> one ``GBlock`` per doubling to
    ``preset.size.image_size`` (the widths of ``g_channels[1:]``, the last repeated if a doubling is left) ->
    LeakyReLU(0.2) -> 3x3 conv to RGB -> tanh. Every block reads cond; of the recipe only ``padding`` applies.
    DF-GAN's first Dense reads z alone; this one reads cond, as the kit's does, so that only the blocks differ.
    """
    size = preset.size
    doublings = math.log2(size.image_size / 4)
    widths = list(size.g_channels[1:])
    if not doublings.is_integer() or len(widths) > doublings:
        raise ValueError(f"preset {preset.name!r}: {size.image_size}px is not 4px doubled, or g_channels "
                         f"{size.g_channels} have more widths than its {doublings:g} doublings")
    widths += [size.g_channels[-1]] * (int(doublings) - len(widths))
    z = keras.Input((size.z_dim,), name="z")
    text, vector = text_input(embedding_dim, text_stats=text_stats)
    code = TextProjection(size.text_dim, name="text_projection")(vector)
    cond = layers.Concatenate(name="z_and_text")([z, code])
    x = layers.Dense(4 * 4 * size.g_channels[0], kernel_initializer=pytorch_init(), name="project")(cond)
    x = layers.Reshape((4, 4, size.g_channels[0]), name="to_4x4")(x)
    for i, filters in enumerate(widths, start=1):
        x = GBlock(filters, padding=preset.recipe.padding, name=f"up{i}")((x, cond))
    x = PaddedConv(3, padding=preset.recipe.padding, name="to_rgb")(layers.LeakyReLU(0.2)(x))
    # tanh in float32, so that a mixed-precision G still returns float32 pixels (as UpBlock does)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model({"z": z, "text": text}, image, name=name)


def build_dfgan_discriminator(preset, *, embedding_dim: int, text_stats=None,
                              name: str = "discriminator") -> keras.Model:
    """``{"image", "text"} -> {"logits", "image_features", "text_features"}``, like ``models.build_discriminator``.

    image -> 3x3 conv to ``d_channels[0]`` -> one ``DBlock`` per width of ``d_channels`` down to 4x4. The one-way
    head (DF-GAN's NetC): [features, text code tiled to 4x4] -> 3x3 conv (``d_channels[-1]`` wide like the kit's
    1x1 conv; DF-GAN's is a quarter of that) -> LeakyReLU(0.2) -> 4x4 conv -> the logit. ``image_features`` and
    ``text_features`` are the projection head's two vectors, for ``ConditionalGAN``'s contrastive term; their
    agreement is not added to the logit. ``recipe.d_norm="spectral"`` normalises every conv and dense;
    ``projection`` does not apply.
    """
    size = preset.size
    spectral_norm = preset.recipe.d_norm == "spectral"
    if size.image_size // 2 ** len(size.d_channels) != 4:
        raise ValueError(f"preset {preset.name!r}: {len(size.d_channels)} down-blocks take "
                         f"{size.image_size}px to {size.image_size // 2 ** len(size.d_channels)}px, not 4px")
    image = keras.Input((size.image_size, size.image_size, 3), name="image")
    text, vector = text_input(embedding_dim, text_stats=text_stats)

    x = spectral(layers.Conv2D(size.d_channels[0], 3, padding="same", kernel_initializer=pytorch_init(),
                               name="from_rgb"), spectral_norm)(image)
    for i, filters in enumerate(size.d_channels, start=1):
        x = DBlock(filters, spectral_norm=spectral_norm, name=f"down{i}")(x)
    features = x  # [B, 4, 4, d_channels[-1]]

    code = TextProjection(size.text_dim, spectral_norm=spectral_norm, name="text_projection")(vector)
    joint = layers.Concatenate(name="image_and_text")([features, SpatialTile(4, name="tile_text")(code)])
    joint = spectral(layers.Conv2D(size.d_channels[-1], 3, padding="same", use_bias=False,
                                   kernel_initializer=pytorch_init(), name="joint_conv"), spectral_norm)(joint)
    joint = layers.LeakyReLU(0.2)(joint)
    logit = spectral(layers.Conv2D(1, 4, padding="valid", use_bias=False, kernel_initializer=pytorch_init(),
                                   name="to_logit"), spectral_norm)(joint)
    outputs = projection_head(features, code, spectral_norm=spectral_norm)
    del outputs["agreement"]  # the logit comes from the one-way head alone
    # Logits leave in float32 whatever the precision policy: the losses need the range.
    outputs["logits"] = layers.Activation("linear", dtype="float32", name="logit")(layers.Flatten()(logit))
    return keras.Model({"image": image, "text": text}, outputs, name=name)
