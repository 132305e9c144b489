"""Text for the GANs: token ids for encoders trained with the GAN, cached vectors from pretrained ones.
Introduced in notebook 01.

Two kinds of text encoder feed the generator and the discriminator (notebook 02 compares them):

- **trained with the GAN**: ``make_vectorizer`` turns captions into token ids and ``LSTMTextEncoder``
  (Embedding + LSTM) turns the ids into a vector; its weights learn with the rest of the model (notebook 03).
- **pretrained and frozen** (Word2Vec, GloVe, sentence-transformers, CLIP): they run once, in
  ``python -m data_prep embed``, which stores ``embeddings/<encoder>.npy`` (one row per caption, in
  ``captions.csv`` order) and ``embeddings/<encoder>.json`` (model, dim, a hash of the captions).
  ``load_cached_embeddings`` reads them back and refuses a cache made for other captions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

__all__ = ["caption_hash", "cache_paths", "read_cache_info", "load_cached_embeddings", "make_vectorizer",
           "LSTMTextEncoder"]


def caption_hash(texts: Sequence[str]) -> str:
    """A SHA-256 of the caption texts in order: a cache made for other captions (or another order) differs.
    Used by load_cached_embeddings (notebook 02)."""
    digest = hashlib.sha256()
    for text in texts:
        encoded = str(text).encode("utf-8")
        # The length prefix keeps ["ab", "c"] and ["a", "bc"] apart.
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def cache_paths(dataset_dir, encoder: str) -> tuple[Path, Path]:
    """Where the cached vectors of ``encoder`` live: ``(embeddings/<encoder>.npy, embeddings/<encoder>.json)``.
    Used by load_cached_embeddings (notebook 02)."""
    folder = Path(dataset_dir) / "embeddings"
    return folder / f"{encoder}.npy", folder / f"{encoder}.json"


def _rebuild_hint(dataset_dir, encoder: str) -> str:
    return f"rebuild it with: python -m data_prep embed --dataset {dataset_dir} --encoder {encoder}"


def read_cache_info(dataset_dir, encoder: str) -> dict | None:
    """The ``.json`` describing a cache, or None when there is no readable one. Introduced in notebook 02."""
    _, info_path = cache_paths(dataset_dir, encoder)
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_cached_embeddings(dataset_dir, encoder: str, texts: Sequence[str]) -> np.ndarray:
    """The cached ``float32 [len(texts), dim]`` vectors of ``encoder``, checked against ``texts``.

    The cache must have been made from exactly these captions (same hash); a missing or stale cache is an error
    that names the file and the command that rebuilds it, never a silent mismatch between captions and vectors.
    Introduced in notebook 02.
    """
    vectors_path, info_path = cache_paths(dataset_dir, encoder)
    hint = _rebuild_hint(dataset_dir, encoder)
    info = read_cache_info(dataset_dir, encoder)
    if info is None or not vectors_path.is_file():
        missing = info_path if info is None else vectors_path
        raise FileNotFoundError(f"no usable embedding cache for '{encoder}': {missing} is missing or unreadable; "
                                f"{hint}")
    if info.get("caption_hash") != caption_hash(texts):
        raise ValueError(f"{info_path} was made for other captions (caption hash differs): the cache is stale; "
                         f"{hint}")
    try:
        vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:  # truncated, or not a plain .npy array
        raise ValueError(f"{vectors_path} is unreadable as a .npy array ({err}); {hint}") from err
    expected = (len(texts), info.get("dim"))
    if vectors.dtype != np.float32 or vectors.shape != expected:
        raise ValueError(f"{vectors_path} holds {vectors.dtype} {vectors.shape}, expected float32 {expected}; {hint}")
    return vectors


def make_vectorizer(texts: Sequence[str], max_tokens: int = 5000,
                    sequence_length: int = 24) -> keras.layers.TextVectorization:
    """A ``TextVectorization`` whose vocabulary is learned from ``texts`` (use the training captions only).

    It lower-cases, strips punctuation and splits on spaces; id 0 pads every caption to ``sequence_length``
    (so ``Embedding(mask_zero=True)`` can ignore it) and id 1 stands for any word not in the vocabulary.
    Introduced in notebook 01.
    """
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("make_vectorizer needs at least one caption to learn a vocabulary from")
    vectorizer = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode="int",
                                                output_sequence_length=sequence_length)
    vectorizer.adapt(np.array(texts, dtype=object))
    return vectorizer


@keras.saving.register_keras_serializable(package="t2ilib")
class LSTMTextEncoder(keras.layers.Layer):
    """Token ids ``int [B, L]`` -> caption vector ``float [B, units]``: Embedding, then an LSTM's last state.

    The LSTM reads the caption word by word and keeps a summary in its state; padding (id 0) is masked, so a
    short caption's vector does not depend on how much padding follows it. With ``bidirectional=True`` a
    second LSTM reads the caption backwards and the two halves (``units // 2`` each) are concatenated.
    Introduced in notebook 02.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, units: int = 128, bidirectional: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if bidirectional and units % 2:
            raise ValueError(f"units={units} must be even with bidirectional=True (each direction gets units // 2)")
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.units = units
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.embedding = keras.layers.Embedding(vocab_size, embed_dim, mask_zero=True, name="embedding")
        if bidirectional:
            self.rnn = keras.layers.Bidirectional(keras.layers.LSTM(units // 2, dropout=dropout), name="bilstm")
        else:
            self.rnn = keras.layers.LSTM(units, dropout=dropout, name="lstm")

    def build(self, input_shape):
        # Build the sublayers now so that saved weights can be loaded into a freshly deserialised layer.
        self.embedding.build(input_shape)
        self.rnn.build(tuple(input_shape) + (self.embed_dim,))
        self.built = True

    def call(self, token_ids, training=None):
        words = self.embedding(token_ids)
        return self.rnn(words, mask=self.embedding.compute_mask(token_ids), training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, embed_dim=self.embed_dim, units=self.units,
                      bidirectional=self.bidirectional, dropout=self.dropout)
        return config
