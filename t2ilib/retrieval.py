"""R-precision: does a generated image retrieve its own caption among 100? And the dual encoder that judges it.
Introduced in notebook 03 (the dual encoder; R-precision in notebook 05).

AttnGAN (Xu et al. 2018) scores text-image agreement with a separately trained image-text matcher (DAMSM): for
each generated image, rank its caption against 99 captions of other images by cosine similarity in the
matcher's shared space; R-precision is how often the true caption comes first (chance: 1/100).

The matcher here is a small dual encoder trained contrastively on the prepared dataset's *real* pairs:

- image tower: three conv blocks -> global pooling -> a vector; text tower: the cached caption embedding (or a
  trainable ``text_encoder``'s vector of the caption's token ids) -> MLP; both end in unit-length ``dim``-vectors,
  so their dot product is the cosine similarity.
- loss: the symmetric InfoNCE of CLIP / DAMSM's sentence loss: in a batch of B pairs, image i must pick caption i
  among the B captions (and caption i image i), a B-way softmax over ``scale * cosine``.

Its R-precision on *real* test images is the ceiling a generator can be scored at. With a ``text_encoder`` it is
also how Reed et al. (2016) pretrained their text encoder before the GAN (notebook 03, section 5c).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from t2ilib.data import to_tanh_range
from t2ilib.evaluation import Score

__all__ = ["DualEncoder", "train_dual_encoder", "r_precision"]


@keras.saving.register_keras_serializable(package="t2ilib")
class DualEncoder(keras.Model):
    """Image tower and text tower into one ``dim``-d unit sphere, trained with the symmetric InfoNCE loss; the text
    is a cached embedding, or token ids that ``text_encoder`` (e.g. an ``LSTMTextEncoder``) reads and learns with
    the towers. Used by train_dual_encoder (notebook 03)."""

    def __init__(self, image_size: int = 32, embedding_dim: int = 384, dim: int = 64, width: int = 32,
                 scale: float = 10.0, text_encoder: layers.Layer | None = None, **kwargs):
        super().__init__(**kwargs)
        if text_encoder is not None:
            embedding_dim = text_encoder.compute_output_shape((None, None))[-1]
        self.image_size, self.embedding_dim, self.dim, self.width, self.scale = (
            image_size, embedding_dim, dim, width, scale)
        self.text_encoder = text_encoder
        convs = []
        for filters in (width, 2 * width, 4 * width):
            convs += [layers.Conv2D(filters, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                      layers.ReLU(), layers.MaxPooling2D(2)]
        self.image_tower = keras.Sequential(
            [keras.Input((image_size, image_size, 3)), *convs, layers.GlobalAveragePooling2D(), layers.Dense(dim)],
            name="image_tower")
        self.text_tower = keras.Sequential(
            [keras.Input((embedding_dim,)), layers.Dense(2 * dim, activation="relu"), layers.Dense(dim)],
            name="text_tower")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def encode_images(self, images, training=False):
        """Images (uint8 or [-1, 1], any size) -> unit vectors ``[N, dim]``."""
        images = ops.convert_to_tensor(to_tanh_range(images) if isinstance(images, np.ndarray) else images)
        if images.shape[1] != self.image_size:
            images = ops.image.resize(images, (self.image_size, self.image_size))
        return ops.normalize(self.image_tower(images, training=training), axis=-1)

    def encode_texts(self, texts, training=False):
        """Cached caption embeddings ``[N, embedding_dim]`` (or token ids ``[N, L]`` with a ``text_encoder``) -> unit
        vectors ``[N, dim]``."""
        texts = ops.convert_to_tensor(texts)
        if self.text_encoder is not None:
            texts = self.text_encoder(texts, training=training)
        return ops.normalize(self.text_tower(texts, training=training), axis=-1)

    def call(self, inputs, training=False):
        """Similarity logits ``[B, B]``: image i against every caption of the batch."""
        image_vectors = self.encode_images(inputs["image"], training)
        text_vectors = self.encode_texts(inputs["text"], training)
        return self.scale * ops.matmul(image_vectors, ops.transpose(text_vectors))

    def train_step(self, data):
        with tf.GradientTape() as tape:
            logits = self(data, training=True)
            labels = ops.arange(ops.shape(logits)[0])
            # Symmetric: each image picks its caption (rows) and each caption its image (columns).
            loss = 0.5 * (ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
                          + ops.mean(keras.losses.sparse_categorical_crossentropy(
                              labels, ops.transpose(logits), from_logits=True)))
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "embedding_dim": self.embedding_dim,
                "dim": self.dim, "width": self.width, "scale": self.scale,
                "text_encoder": keras.saving.serialize_keras_object(self.text_encoder)}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "text_encoder": keras.saving.deserialize_keras_object(config.get("text_encoder"))})


def train_dual_encoder(prepared, encoder: str = "sentence", image_size: int = 32, epochs: int = 3,
                       batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0, verbose: int = 0,
                       text_encoder: layers.Layer | None = None, vectorizer=None) -> DualEncoder:
    """Fit a :class:`DualEncoder` on the training pairs of a prepared dataset (a random caption per image per epoch):
    on the cached ``encoder`` embeddings, or with ``encoder="tokens"`` on ``vectorizer``'s token ids, which
    ``text_encoder`` learns to read. Introduced in notebook 03."""
    from t2ilib import data

    if (encoder == "tokens") != (text_encoder is not None and vectorizer is not None):
        raise ValueError(f"encoder={encoder!r}: token ids need both text_encoder and vectorizer, cached embeddings "
                         f"neither (encoder='tokens' with text_encoder=LSTMTextEncoder(...), vectorizer=...)")
    keras.utils.set_random_seed(seed)
    dataset = data.make_dataset(prepared, "train", image_size=image_size, text=encoder, vectorizer=vectorizer,
                                batch_size=batch_size, seed=seed, flip=True)
    dataset = dataset.map(lambda batch: {"image": batch["image"], "text": batch["text"]})
    if text_encoder is None:
        model = DualEncoder(image_size=image_size, embedding_dim=int(prepared.embeddings(encoder).shape[1]))
    else:
        model = DualEncoder(image_size=image_size, text_encoder=text_encoder)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    model.fit(dataset, epochs=epochs, verbose=verbose, shuffle=False)  # tf.data shuffles
    return model


def r_precision(model: DualEncoder, images, true_text, candidate_pool, candidate_groups=None, groups=None,
                candidates: int = 100, runs: int = 3, seed: int = 0) -> Score:
    """How often image i ranks its caption ``true_text[i]`` first among it and ``candidates - 1`` others.

    The others are drawn from ``candidate_pool`` (caption embeddings, e.g. every test caption); with ``groups``
    (one label per image, e.g. its attribute combination) and ``candidate_groups`` (one per pool row), a caption
    of the image's own group is never drawn as a wrong one. ``runs`` repeats the draw with other seeds: the Score's
    std is the spread from that draw alone.
    Introduced in notebook 05.
    """
    images_v = ops.convert_to_numpy(model.encode_images(images))
    true_v = ops.convert_to_numpy(model.encode_texts(np.asarray(true_text, "float32")))
    pool_v = ops.convert_to_numpy(model.encode_texts(np.asarray(candidate_pool, "float32")))
    if len(images_v) != len(true_v):
        raise ValueError(f"{len(images_v)} images but {len(true_v)} true captions: give one caption per image")
    if len(pool_v) < candidates - 1:
        raise ValueError(f"the candidate pool has {len(pool_v)} captions; {candidates - 1} wrong ones are needed")
    true_scores = (images_v * true_v).sum(axis=1)
    results = []
    for run in range(runs):
        rng = np.random.default_rng(seed + run)
        hits = np.empty(len(images_v), bool)
        for i, vector in enumerate(images_v):
            allowed = (np.flatnonzero(np.asarray(candidate_groups) != groups[i]) if groups is not None
                       else np.arange(len(pool_v)))
            wrong = rng.choice(allowed, candidates - 1, replace=False)
            hits[i] = true_scores[i] > (pool_v[wrong] @ vector).max()
        results.append(hits.mean())
    return Score(float(np.mean(results)), float(np.std(results)), len(images_v), runs)
