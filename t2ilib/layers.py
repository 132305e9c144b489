"""The building blocks of the conditional generators and discriminators.
Introduced in notebook 05.

Each block is one idea from the papers the course rebuilds:

- :class:`TextProjection`: compress a text embedding to a short code (Reed et al.: Dense + LeakyReLU to 128).
- :class:`SpatialTile`: copy that code to every position of D's 4x4 feature map, to concatenate in depth.
- :class:`ConditionalBatchNormalization`: batch norm whose scale and offset come from the text code, so every
  generator block reads the caption (de Vries et al. 2017).
- :class:`UpBlock` / :class:`DownBlock`: the DCGAN rules (Radford et al. 2016) - strided (transposed)
  convolutions, batch norm, ReLU in G and LeakyReLU(0.2) in D - with two named improvements as options:
  nearest-neighbour upsampling + conv against checkerboard artefacts (Odena et al. 2016) and spectral
  normalisation of D's weights (Miyato et al. 2018).
- :class:`ConditioningAugmentation`: StackGAN's Gaussian around the text code, sampled with the
  reparameterisation trick; its KL term is added with ``add_loss``.
- :class:`DiffAugment`: differentiable augmentation at D's input (Zhao et al. 2020), the same random
  translation, colour jitter and cutout for real and fake images, so D cannot memorise a small dataset.

All are serialisable Keras layers, so a saved model reloads without this module's source in sight.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from t2ilib import losses

__all__ = [
    "dcgan_init",
    "batch_normalization",
    "spectral",
    "TextProjection",
    "SpatialTile",
    "UpBlock",
    "ConditionalBatchNormalization",
    "DownBlock",
    "ConditioningAugmentation",
    "DiffAugment",
]

_PACKAGE = "t2ilib"


def dcgan_init():
    """The DCGAN weight initialiser: N(0, 0.02). Used by training.make_gan (notebook 03)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def batch_normalization(**kwargs) -> layers.BatchNormalization:
    """``BatchNormalization`` that averages over the *global* batch when training on several replicas.

    Under ``tf.distribute`` each device sees only its slice of the batch; normalising each slice by its own
    statistics would make N devices train a different model than one does. Keras' ``synchronized=True``
    all-reduces the statistics across replicas; on one device this is the plain layer.

    The momentum is DCGAN's 0.9: with Keras' default 0.99 the moving statistics that inference uses lag hundreds
    of steps behind a GAN's fast-changing activations, and samples drawn with ``training=False`` (the sample
    grids, the metrics) come out flat grey for the first few hundred steps.
    Used by training.make_gan (notebook 03).
    """
    import tensorflow as tf  # Keras 3 distributes the TensorFlow backend through tf.distribute

    kwargs.setdefault("momentum", 0.9)
    return layers.BatchNormalization(synchronized=tf.distribute.get_strategy().num_replicas_in_sync > 1, **kwargs)


def spectral(layer, spectral_norm: bool = True):
    """``layer`` wrapped in spectral normalisation when ``spectral_norm`` is true, else ``layer`` itself (the one
    place D's weights get wrapped; introduced in notebook 04)."""
    return layers.SpectralNormalization(layer) if spectral_norm else layer


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TextProjection(layers.Layer):
    """Dense + LeakyReLU(0.2): a sentence embedding (e.g. 384-d) becomes a short code (128-d in Reed et al.).

    Both G and D own one. Compressing first keeps the text from swamping the 100-d noise in G and keeps D's
    depth concatenation at 4x4 cheap.
    Used by training.make_gan (notebook 03).
    """

    def __init__(self, units: int = 128, spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.spectral_norm = spectral_norm
        self.dense = spectral(layers.Dense(units, kernel_initializer=dcgan_init()), spectral_norm)
        self.activation = layers.LeakyReLU(0.2)

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def call(self, embedding, training=None):
        return self.activation(self.dense(embedding, training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "spectral_norm": self.spectral_norm}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialTile(layers.Layer):
    """``[B, D] -> [B, size, size, D]``: the same text code at every spatial position.
    Used by training.make_gan (notebook 03)."""

    def __init__(self, size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, code):
        return ops.tile(code[:, None, None, :], (1, self.size, self.size, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UpBlock(layers.Layer):
    """Double the resolution: 4x4 transposed conv, stride 2 (DCGAN), then batch norm and ReLU.

    ``upsample="nearest"`` swaps the transposed conv for nearest-neighbour upsampling + a 3x3 conv, which cannot
    paint the checkerboard pattern a stride-2 transposed conv tends to (Odena et al. 2016).
    ``batch_norm=False`` with ``activation="tanh"`` makes G's output block (the DCGAN rules: no BN there).
    ``padding="reflect"`` (with ``"nearest"``) pads the 3x3 conv with the feature map's mirror image instead of zeros.
    ``noise=True`` adds a map of Gaussian noise, one value per pixel, after the conv, scaled per channel by a learned
    strength that starts at 0 (StyleGAN's noise injection); new noise in training, one fixed map at inference.
    Used by training.make_gan (notebook 03).
    """

    def __init__(self, filters: int, upsample: str = "transpose", batch_norm: bool = True,
                 activation: str = "relu", conditional: bool = False, padding: str = "zero", noise: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.noise = noise
        self.noise_seed = keras.random.SeedGenerator() if noise else None
        if upsample not in ("transpose", "nearest"):
            raise ValueError(f"upsample={upsample!r}: use 'transpose' (DCGAN) or 'nearest' (upsample + conv)")
        if conditional and not batch_norm:
            raise ValueError("conditional=True makes the batch norm text-conditional: it needs batch_norm=True")
        self.filters, self.upsample, self.batch_norm, self.activation_name = filters, upsample, batch_norm, activation
        if padding not in ("zero", "reflect") or (padding == "reflect" and upsample != "nearest"):
            raise ValueError(f"padding={padding!r} with upsample={upsample!r}: use 'zero', or 'reflect' with 'nearest'")
        self.conditional, self.padding = conditional, padding
        # A bias before batch norm is wasted: BN subtracts the mean and adds its own offset.
        if upsample == "transpose":
            self.resize = None
            self.conv = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=not batch_norm,
                                               kernel_initializer=dcgan_init())
        else:
            self.resize = layers.UpSampling2D(2, interpolation="nearest")
            self.conv = layers.Conv2D(filters, 3, padding="same" if padding == "zero" else "valid",
                                      use_bias=not batch_norm, kernel_initializer=dcgan_init())
        if conditional:
            self.norm = ConditionalBatchNormalization()
        else:
            self.norm = batch_normalization() if batch_norm else None
        # The output activation runs in float32 so that a mixed-precision G still returns float32 pixels.
        self.activation = layers.Activation(activation, dtype="float32" if activation == "tanh" else None)

    def build(self, input_shape):
        shape, code_shape = input_shape if self.conditional else (input_shape, None)
        if self.resize is not None:
            self.resize.build(shape)
            shape = self.resize.compute_output_shape(shape)
        if self.padding == "reflect":
            shape = (shape[0], None if shape[1] is None else shape[1] + 2, None if shape[2] is None else shape[2] + 2,
                     shape[3])
        self.conv.build(shape)
        if self.noise:  # per channel, from zero: G decides how much texture each channel gets
            self.noise_strength = self.add_weight(shape=(self.filters,), initializer="zeros", name="noise_strength")
            # inference reads one fixed noise map (StyleGAN2's noise_mode="const"): the same z, the same picture
            height, width = self.conv.compute_output_shape(shape)[1:3]
            self.fixed_noise = self.add_weight(shape=(height, width, 1), initializer=keras.initializers.RandomNormal(
                seed=0), trainable=False, name="fixed_noise")
        if self.conditional:
            self.norm.build((self.conv.compute_output_shape(shape), code_shape))
        elif self.norm is not None:
            self.norm.build(self.conv.compute_output_shape(shape))
        self.built = True

    def call(self, inputs, training=None):
        """``inputs`` is the feature map, or ``(feature map, text code)`` for a ``conditional`` block."""
        x, code = inputs if self.conditional else (inputs, None)
        if self.resize is not None:
            x = self.resize(x)
        if self.padding == "reflect":  # the border continues the picture: nothing for G to paint a frame with
            x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        x = self.conv(x)
        if self.noise:
            shape = ops.shape(x)
            pixels = (keras.random.normal((shape[0], shape[1], shape[2], 1), seed=self.noise_seed, dtype=x.dtype)
                      if training else ops.cast(self.fixed_noise, x.dtype)[None])
            x = x + ops.cast(self.noise_strength, x.dtype) * pixels
        if self.conditional:
            x = self.norm((x, code), training=training)
        elif self.norm is not None:
            x = self.norm(x, training=training)
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape[0] if self.conditional else input_shape
        return (batch, None if height is None else 2 * height, None if width is None else 2 * width, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "upsample": self.upsample,
                "batch_norm": self.batch_norm, "activation": self.activation_name, "conditional": self.conditional,
                "padding": self.padding, "noise": self.noise}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConditionalBatchNormalization(layers.Layer):
    """Batch norm whose scale and offset are predicted from the text code: ``(x, code) -> gamma(code) * x_hat +
    beta(code)`` (de Vries et al. 2017; the conditional generators of Miyato & Koyama 2018 and BigGAN).

    Reed et al. feed the text to G once, beside z, and every later layer must carry it along. Here every up-block
    reads it again: the caption sets the per-channel scale and offset of each block's features, which is how a
    colour word reaches the pixels in a few hundred steps instead of thousands. ``gamma`` starts at 1 and ``beta``
    at 0 (plain batch norm) and learns from there.
    Used by training.make_gan (notebook 03).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = batch_normalization(center=False, scale=False)
        self.gamma = self.beta = None

    def build(self, input_shape):
        feature_shape, code_shape = input_shape
        channels = feature_shape[-1]
        self.norm.build(feature_shape)
        self.gamma = layers.Dense(channels, kernel_initializer=dcgan_init(), bias_initializer="ones", name="gamma")
        self.beta = layers.Dense(channels, kernel_initializer=dcgan_init(), name="beta")
        self.gamma.build(code_shape)
        self.beta.build(code_shape)
        self.built = True

    def call(self, inputs, training=None):
        x, code = inputs
        x = self.norm(x, training=training)
        gamma = ops.cast(self.gamma(code), x.dtype)[:, None, None, :]
        beta = ops.cast(self.beta(code), x.dtype)[:, None, None, :]
        return x * gamma + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DownBlock(layers.Layer):
    """Halve the resolution: 4x4 conv, stride 2, then batch norm and LeakyReLU(0.2) (the DCGAN discriminator).

    ``batch_norm=False`` for D's first block (the DCGAN rules), and for a spectrally normalised D, where spectral
    norm alone keeps D smooth and batch statistics would mix the real and fake halves of a batch.
    Used by training.make_gan (notebook 03).
    """

    def __init__(self, filters: int, batch_norm: bool = True, spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.batch_norm, self.spectral_norm = filters, batch_norm, spectral_norm
        conv = layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=not batch_norm,
                             kernel_initializer=dcgan_init())
        self.conv = spectral(conv, spectral_norm)
        self.norm = batch_normalization() if batch_norm else None
        self.activation = layers.LeakyReLU(0.2)

    def build(self, input_shape):
        self.conv.build(input_shape)
        if self.norm is not None:
            self.norm.build(self.compute_output_shape(input_shape))
        self.built = True

    def call(self, x, training=None):
        x = self.conv(x, training=training)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        height = None if height is None else (height + 1) // 2  # stride 2, "same" padding
        width = None if width is None else (width + 1) // 2
        return (batch, height, width, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "batch_norm": self.batch_norm,
                "spectral_norm": self.spectral_norm}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConditioningAugmentation(layers.Layer):
    """StackGAN's Conditioning Augmentation: ``c = mu(e) + sigma(e) * eps`` with ``eps ~ N(0, I)``.

    A Dense layer maps the text embedding ``e`` to the mean and log-variance of a ``units``-d Gaussian. Sampling
    (during training; at inference too unless ``sample=False`` is passed) gives G many nearby codes per caption,
    which smooths the text manifold. ``kl_weight * losses.kl_loss`` (the KL to N(0, I) per code dimension, StackGAN's
    normalisation) is added with ``add_loss`` so the generator's training step includes it.

    ``sample_at_inference=False`` (settable on a built model, e.g. ``g.get_layer("text_ca")``) makes inference
    return the mean, for walks between captions that should change only with the caption.
    Introduced in notebook 05.
    """

    def __init__(self, units: int = 128, kl_weight: float = 2.0, sample_at_inference: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.kl_weight = units, kl_weight
        self.sample_at_inference = sample_at_inference
        self.dense = layers.Dense(2 * units, kernel_initializer=dcgan_init())
        self.activation = layers.LeakyReLU(0.2)
        self.seed = keras.random.SeedGenerator()

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def call(self, embedding, training=None, sample=None):
        sample = self.sample_at_inference if sample is None else sample
        stats = ops.cast(self.activation(self.dense(embedding)), "float32")
        # the second half is log sigma^2, as in StackGAN's PyTorch code (its TF code outputs log sigma)
        mean, log_var = stats[:, : self.units], stats[:, self.units :]
        if training:
            self.add_loss(self.kl_weight * losses.kl_loss(mean, log_var))
        if not (training or sample):
            return ops.cast(mean, self.compute_dtype)
        noise = keras.random.normal(ops.shape(mean), seed=self.seed)
        return ops.cast(mean + ops.exp(0.5 * log_var) * noise, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "kl_weight": self.kl_weight,
                "sample_at_inference": self.sample_at_inference}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiffAugment(layers.Layer):
    """Differentiable augmentation (Zhao et al. 2020) as the first layer of a discriminator.

    In training, every image that reaches D - real or fake - is colour-jittered, shifted by up to
    ``translation`` of its size (zeros fill in) and has a square of ``cutout`` of its size blanked. Because the
    same random ops are applied to both kinds and they are differentiable, G's gradient still flows through
    them, and D cannot win by memorising the real images. At inference the layer does nothing.
    ``policy`` picks the ops: any of ``"color"``, ``"translation"``, ``"cutout"``, comma-separated.
    Used by source_e.build_source_e_discriminator (notebook 05).
    """

    OPS = ("color", "translation", "cutout")

    def __init__(self, policy: str = "color,translation,cutout", translation: float = 0.125, cutout: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        chosen = [op.strip() for op in policy.split(",") if op.strip()]
        unknown = sorted(set(chosen) - set(self.OPS))
        if unknown:
            raise ValueError(f"DiffAugment policy {policy!r}: unknown ops {unknown}; use some of {self.OPS}")
        self.policy, self.ops_used = policy, chosen
        self.translation, self.cutout = translation, cutout
        self.seed = keras.random.SeedGenerator()

    def _uniform(self, shape):
        return keras.random.uniform(shape, seed=self.seed)

    def _color(self, x):
        batch = ops.shape(x)[0]
        x = x + (self._uniform((batch, 1, 1, 1)) - 0.5)  # brightness
        mean = ops.mean(x, axis=-1, keepdims=True)
        x = (x - mean) * (2.0 * self._uniform((batch, 1, 1, 1))) + mean  # saturation
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) * (self._uniform((batch, 1, 1, 1)) + 0.5) + mean  # contrast

    def _shift(self, x, axis, max_shift):
        # Gather rows (or columns) i + shift from a copy padded with one zero line each side; indices that
        # fall outside land on the padding, so the image moves and zeros fill in, per sample.
        batch, length = ops.shape(x)[0], ops.shape(x)[axis]
        shift = ops.cast(ops.floor(self._uniform((batch, 1)) * (2 * max_shift + 1)), "int32") - max_shift
        index = ops.clip(ops.arange(length)[None, :] + shift + 1, 0, length + 1)
        pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
        pad[axis] = [1, 1]
        padded = ops.pad(x, pad)
        index = ops.expand_dims(ops.expand_dims(index, -1), -1)  # [B, L, 1, 1]
        if axis == 2:
            index = ops.transpose(index, (0, 2, 1, 3))  # [B, 1, L, 1]
        target = list(ops.shape(padded))
        target[axis] = length
        return ops.take_along_axis(padded, ops.broadcast_to(index, target), axis=axis)

    def _translation(self, x):
        height, width = x.shape[1], x.shape[2]
        x = self._shift(x, 1, int(height * self.translation + 0.5))
        return self._shift(x, 2, int(width * self.translation + 0.5))

    def _cutout(self, x):
        batch, height, width = ops.shape(x)[0], x.shape[1], x.shape[2]
        half_h, half_w = int(height * self.cutout + 0.5) / 2, int(width * self.cutout + 0.5) / 2
        centre = self._uniform((batch, 2)) * ops.convert_to_tensor([height, width], "float32")
        rows = ops.arange(height, dtype="float32")[None, :] + 0.5
        cols = ops.arange(width, dtype="float32")[None, :] + 0.5
        inside_rows = ops.abs(rows - centre[:, :1]) < half_h  # [B, H]
        inside_cols = ops.abs(cols - centre[:, 1:]) < half_w  # [B, W]
        hole = ops.logical_and(inside_rows[:, :, None], inside_cols[:, None, :])
        return x * ops.cast(ops.logical_not(hole), x.dtype)[..., None]

    def call(self, images, training=None):
        if not training:
            return images
        x = images
        for op in self.ops_used:
            x = getattr(self, f"_{op}")(x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "policy": self.policy, "translation": self.translation,
                "cutout": self.cutout}
