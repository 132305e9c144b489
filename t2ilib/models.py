"""Generator and discriminator builders: the conditional DCGAN of Reed et al. (2016), sized by a preset.
Introduced in notebook 03.

``build_generator`` and ``build_discriminator`` return functional ``keras.Model``s with two inputs, ``z`` and
``text`` (G) or ``image`` and ``text`` (D). The text is either a cached sentence embedding (``embedding_dim``)
or token ids that a trainable ``text_encoder`` (e.g. ``t2ilib.text.LSTMTextEncoder``) reads inside the model,
as in the LSTM-GAN.

A preset's ``size`` gives the widths; its ``recipe`` the design. ``config.REED_ET_AL`` is the architecture the
notebooks teach (the DCGAN rules); the other values are named improvements from later papers, which every preset but
``reed2016`` turns on to learn fast on a laptop: ``recipe.g_norm="conditional"`` (text-conditional batch norm in
every G block, de Vries et al. 2017), ``recipe.d_norm="spectral"`` and ``recipe.projection`` (Miyato et al. 2018),
``recipe.upsample="nearest"`` (Odena et al. 2016); beside them ``text_stats`` (the text standardised inside the
model) and ``conditioning="ca"`` (StackGAN's Conditioning Augmentation).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers, ops

from t2ilib.layers import (
    ConditioningAugmentation,
    DownBlock,
    SpatialTile,
    TextProjection,
    UpBlock,
    batch_normalization,
    dcgan_init,
    spectral,
)

__all__ = ["build_generator", "build_discriminator", "projection_head", "text_input", "z_dim", "generate"]


def text_input(embedding_dim: int | None = None, text_encoder=None, sequence_length: int | None = None,
               text_stats=None):
    """The ``text`` input of G or D, and the text vector it becomes inside the model.
    Used by training.make_gan (notebook 03).

    Either ``embedding_dim`` (a cached embedding arrives) or ``text_encoder`` + ``sequence_length`` (token ids
    arrive and the encoder, trained with the GAN or frozen, turns them into a vector).

    ``text_stats=(mean, variance)`` of the training captions' vectors (``PreparedDataset.embedding_stats``)
    standardises each dimension first, inside the model (why: notebook 04, section 3): for cached embeddings and a
    frozen encoder's vectors, whose scale is fixed; a trainable encoder learns its own.
    """
    if (embedding_dim is None) == (text_encoder is None):
        raise ValueError("give either embedding_dim (cached embeddings) or text_encoder + sequence_length "
                         "(token ids), not both or neither")
    if text_encoder is None:
        inputs = keras.Input((embedding_dim,), name="text")
        vector = inputs
    else:
        if text_stats is not None and text_encoder.trainable:
            raise ValueError("text_stats standardise fixed vectors: cached embeddings or a frozen text_encoder "
                             "(text_encoder.trainable = False); a trainable text_encoder learns its own scale")
        if not sequence_length:
            raise ValueError("a text_encoder reads token ids: also give sequence_length (the vectorizer's length)")
        inputs = keras.Input((sequence_length,), dtype="int32", name="text")
        vector = text_encoder(inputs)
    if text_stats is None:
        return inputs, vector
    mean, variance = (np.asarray(stat, "float32").reshape(-1) for stat in text_stats)
    width = vector.shape[-1]
    if mean.shape != (width,) or variance.shape != (width,):
        raise ValueError(f"text_stats hold {mean.shape[0]}-d statistics for {width}-d text vectors: compute them "
                         "from the same vectors (PreparedDataset.embedding_stats)")
    return inputs, layers.Normalization(mean=mean, variance=variance, name="standardize_text")(vector)


def build_generator(preset, *, embedding_dim: int | None = None, text_encoder=None,
                    sequence_length: int | None = None, text_stats=None, conditioning: str = "dense",
                    kl_weight: float = 2.0, name: str = "generator") -> keras.Model:
    """``(z, text) -> image`` in [-1, 1], ``preset.size.image_size`` square. Introduced in notebook 06.

    text -> code (``TextProjection`` to ``size.text_dim``, or Conditioning Augmentation) -> concatenated with z
    -> Dense to 4x4 x ``size.g_channels[0]`` -> one ``UpBlock`` per further width -> a last up-block to 3 channels
    with tanh and no batch norm, upsampling as ``recipe.upsample`` says (``"transpose"``: DCGAN). With
    ``recipe.g_norm="conditional"`` the code also sets the batch-norm scale and offset of every up-block, and with
    ``recipe.z_every_block`` z does too.
    ``kl_weight`` weighs CA's KL term (``losses.kl_loss``, StackGAN's normalisation) in G's loss: StackGAN's 2 by
    default. A generator that reads cached embeddings keeps these arguments as ``builder_arguments`` (plain
    values): ``t2ilib.pretrained`` saves them beside its weights and rebuilds it from them.
    """
    size, recipe = preset.size, preset.recipe
    upsample = recipe.upsample
    if conditioning not in ("dense", "ca"):
        raise ValueError(f"conditioning={conditioning!r}: use 'dense' (Reed et al.) or 'ca' (StackGAN)")
    z = keras.Input((size.z_dim,), name="z")
    text, vector = text_input(embedding_dim, text_encoder, sequence_length, text_stats)
    if conditioning == "ca":
        code = ConditioningAugmentation(size.text_dim, kl_weight=kl_weight, name="text_ca")(vector)
    else:
        code = TextProjection(size.text_dim, name="text_projection")(vector)
    x = layers.Concatenate(name="z_and_text")([z, code])
    x = layers.Dense(4 * 4 * size.g_channels[0], use_bias=False, kernel_initializer=dcgan_init(),
                     name="project")(x)
    x = layers.Reshape((4, 4, size.g_channels[0]), name="to_4x4")(x)
    x = layers.ReLU()(batch_normalization()(x))
    conditional = recipe.g_norm == "conditional"
    if recipe.z_every_block:  # each block's scale and offset also depend on z, not only the 4x4 start
        code = layers.Concatenate(name="z_and_text_for_blocks")([z, code])
    for i, filters in enumerate(size.g_channels[1:], start=1):
        block = UpBlock(filters, upsample=upsample, conditional=conditional, padding=recipe.padding,
                        noise=recipe.noise_injection != "none", name=f"up{i}")
        x = block((x, code)) if conditional else block(x)
    image = UpBlock(3, upsample=upsample, batch_norm=False, activation="tanh", padding=recipe.padding,
                    noise=recipe.noise_injection == "all", name="to_rgb")(x)
    generator = keras.Model({"z": z, "text": text}, image, name=name)
    if text_encoder is None:  # what t2ilib.pretrained saves beside the weights, to rebuild this model on any Keras
        stats = None if text_stats is None else [np.asarray(s, "float32").reshape(-1).tolist() for s in text_stats]
        generator.builder_arguments = {
            "preset": preset.name, "size": dataclasses.asdict(size), "recipe": dataclasses.asdict(recipe),
            "embedding_dim": int(embedding_dim), "conditioning": conditioning,
            "kl_weight": float(kl_weight), "name": name,
            "text_stats": None if stats is None else {"mean": stats[0], "variance": stats[1]}}
    return generator


def build_discriminator(preset, *, embedding_dim: int | None = None, text_encoder=None,
                        sequence_length: int | None = None, text_stats=None,
                        name: str = "discriminator") -> keras.Model:
    """``(image, text) -> {"logits": one logit per pair}``: is this a real image that matches this text?
    Introduced in notebook 06.

    image -> one ``DownBlock`` per width of ``preset.size.d_channels`` (no batch norm on the first) down to 4x4;
    text -> ``TextProjection`` -> tiled at 4x4 and concatenated in depth -> 1x1 conv + BN + LeakyReLU -> a 4x4
    conv to one logit (Reed et al. 2016). ``recipe.d_norm`` normalises D: ``"batch"`` (DCGAN), ``"spectral"``
    (Miyato et al. 2018, every conv/dense weight) or ``"none"`` (WGAN-GP, whose penalty is per sample).

    ``recipe.projection`` adds Miyato & Koyama's (2018) projection term (:func:`projection_head`) to the logit,
    and D also returns the term's two vectors as ``"image_features"`` and ``"text_features"`` (what
    ``ConditionalGAN``'s contrastive term compares).
    """
    size, recipe = preset.size, preset.recipe
    spectral_norm, batch_norm = recipe.d_norm == "spectral", recipe.d_norm == "batch"
    if size.image_size // 2 ** len(size.d_channels) != 4:
        raise ValueError(f"preset {preset.name!r}: {len(size.d_channels)} down-blocks take "
                         f"{size.image_size}px to {size.image_size // 2 ** len(size.d_channels)}px, not 4px")
    image = keras.Input((size.image_size, size.image_size, 3), name="image")
    text, vector = text_input(embedding_dim, text_encoder, sequence_length, text_stats)

    x = image
    for i, filters in enumerate(size.d_channels):
        x = DownBlock(filters, batch_norm=batch_norm and i > 0, spectral_norm=spectral_norm, name=f"down{i + 1}")(x)
    features = x  # [B, 4, 4, d_channels[-1]]

    code = TextProjection(size.text_dim, spectral_norm=spectral_norm, name="text_projection")(vector)
    joint = layers.Concatenate(name="image_and_text")([features, SpatialTile(4, name="tile_text")(code)])
    joint = spectral(layers.Conv2D(size.d_channels[-1], 1, use_bias=not batch_norm,
                                   kernel_initializer=dcgan_init()), spectral_norm)(joint)
    if batch_norm:
        joint = batch_normalization()(joint)
    joint = layers.LeakyReLU(0.2)(joint)
    logit = spectral(layers.Conv2D(1, 4, padding="valid", kernel_initializer=dcgan_init()), spectral_norm)(joint)
    logit = layers.Flatten()(logit)  # [B, 1]

    outputs = {}
    if recipe.projection:
        outputs = projection_head(features, code, spectral_norm=spectral_norm)
        logit = layers.Add()([logit, outputs.pop("agreement")])
    # Logits leave in float32 whatever the precision policy: the losses need the range.
    outputs["logits"] = layers.Activation("linear", dtype="float32", name="logit")(logit)
    return keras.Model({"image": image, "text": text}, outputs, name=name)


def projection_head(features, code, *, spectral_norm: bool = False) -> dict:
    """Miyato & Koyama's projection term ``<W code, pool(features)>``, one number per pair ``[B, 1]``, as
    ``{"agreement", "image_features": pool(features), "text_features": W code}``.
    Used by training.make_gan (notebook 03).

    The layers are named ``pool_image``, ``projection`` (``W``, spectrally normalised with ``spectral_norm``)
    and ``text_image_agreement``.
    """
    pooled = layers.GlobalAveragePooling2D(name="pool_image")(features)
    dense = layers.Dense(pooled.shape[-1], use_bias=False, kernel_initializer=dcgan_init(), name="projection")
    text_weights = spectral(dense, spectral_norm)(code)
    agreement = layers.Dot(axes=1, name="text_image_agreement")([pooled, text_weights])
    return {"agreement": agreement, "image_features": pooled, "text_features": text_weights}


def _text_spec(generator):
    """The ``text`` input a generator (or a GAN's generator) declares, or None if it has none."""
    try:
        return getattr(generator, "generator", generator).input["text"]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _checked_text(generator, text) -> np.ndarray:
    """``text`` as an array the generator reads, or a ValueError/TypeError that says what is wrong and what to do."""
    spec = _text_spec(generator)
    reads_ids = spec is not None and keras.backend.is_int_dtype(spec.dtype)
    wanted = "token ids [N, L] from the vectorizer" if reads_ids else "text embeddings [N, D]"
    text = np.asarray(text)
    if text.dtype.kind in "USO":
        raise TypeError(f"generate() got caption strings ({str(text.tolist())[:60]}): the generator reads {wanted}. "
                        "Turn the captions into those first (t2ilib.widgets.CaptionEncoder for embeddings)")
    if text.ndim != 2 or len(text) == 0:
        raise ValueError(f"text of shape {text.shape}: pass {wanted} with at least one row (one row per image)")
    if reads_ids and text.dtype.kind not in "iu":
        raise TypeError(f"the generator reads integer token ids but got {text.dtype}: use the vectorizer's output")
    if not reads_ids and text.dtype.kind != "f":
        raise TypeError(f"the generator reads float text embeddings but got {text.dtype}: pass the embeddings")
    if spec is not None and text.shape[1] != spec.shape[-1]:
        if reads_ids:
            raise ValueError(f"the generator reads {spec.shape[-1]} token ids per caption but got {text.shape[1]}: "
                             "use the vectorizer it was trained with")
        raise ValueError(f"the generator reads {spec.shape[-1]}-d text embeddings but got {text.shape[1]}-d: embed "
                         "the caption with the encoder the model was trained with (see its card)")
    if not reads_ids and not np.isfinite(text).all():
        rows = np.flatnonzero(~np.isfinite(text).all(axis=1))
        raise ValueError(f"text rows {rows[:10].tolist()} hold NaN/inf: re-embed those captions (a NaN in gives "
                         "a NaN image out)")
    return text


def z_dim(generator) -> int:
    """The width of the noise ``z`` a generator (or a GAN class with ``z_dim``) reads. Introduced in notebook 07."""
    return getattr(generator, "z_dim", None) or generator.input["z"].shape[-1]


def generate(generator: keras.Model, text, z=None, seed: int = 0, batch_size: int = 256):
    """Images (float32 in [-1, 1]) for a batch of text inputs; ``z`` is drawn from N(0, I) with ``seed`` if absent.
    Introduced in notebook 03.

    ``generator`` is a generator model or anything called on ``{"z", "text"}`` that has a ``z_dim`` (a GAN class).
    ``text`` is what it reads, one row per image: float embeddings ``[N, D]`` or integer token ids ``[N, L]``.
    Bad input never reaches Keras: strings, zero rows, the wrong width or dtype, NaN/inf embeddings and a ``z``
    of the wrong shape are refused with a ``ValueError``/``TypeError`` that names the value and the fix.
    """
    text = _checked_text(generator, text)
    count = len(text)
    width = z_dim(generator)
    if z is None:
        z = np.random.default_rng(seed).standard_normal((count, width)).astype("float32")
    elif np.shape(z) != (count, width):
        raise ValueError(f"z has shape {np.shape(z)}, expected {(count, width)}: one {width}-d noise row per text row")
    images = [generator({"z": z[i : i + batch_size], "text": text[i : i + batch_size]}, training=False)
              for i in range(0, count, batch_size)]
    return ops.convert_to_numpy(ops.concatenate(images, axis=0)).astype("float32")
