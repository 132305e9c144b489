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
           "LSTMTextEncoder", "JoinedTextEncoder"]


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


class JoinedTextEncoder:
    """Captions -> MiniLM's vector joined to a frozen LSTM's, each half standardised over the training captions:
    what a generator whose card says ``text_encoder: "sentence+lstm"`` reads (the shipped one).

    ``vectorizer`` maps words to ids (the training captions' words, then GloVe's most frequent ones), ``lstm`` is an
    ``LSTMTextEncoder`` that reads them in order, its word vectors GloVe's; ``stats`` are the ``(mean, std)`` of the
    MiniLM half and of the LSTM half. :meth:`fit` measures them, :meth:`save` / :meth:`load` keep all of it in one
    ``.npz`` (numbers and words, no pickles; the word vectors as float16, half the size: the benchmark rounds them so
    before the LSTM is trained, so the file gives the vectors the generator was trained on).
    Used by load_text_encoder (notebook 07).
    """

    def __init__(self, vectorizer: keras.layers.TextVectorization, lstm: LSTMTextEncoder, stats: dict):
        self.vectorizer, self.lstm = vectorizer, lstm
        self.stats = {name: tuple(np.asarray(value, "float32") for value in pair) for name, pair in stats.items()}

    @classmethod
    def fit(cls, vectorizer, lstm, sentence_vectors: np.ndarray, texts: Sequence[str]) -> JoinedTextEncoder:
        """Measure each half's mean and spread on ``texts`` (the training captions) and their MiniLM vectors."""
        joined = cls(vectorizer, lstm, {"sentence": (0.0, 1.0), "lstm": (0.0, 1.0)})
        lstm_vectors = joined.lstm_vectors(texts)
        joined.stats = {name: (vectors.mean(axis=0), vectors.std(axis=0) + 1e-6) for name, vectors in
                        (("sentence", np.asarray(sentence_vectors, "float32")), ("lstm", lstm_vectors))}
        return joined

    def lstm_vectors(self, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        """The LSTM's raw vector of each text, ``float32 [len(texts), units]``."""
        texts = [str(text) for text in texts]
        parts = [keras.ops.convert_to_numpy(self.lstm(np.asarray(self.vectorizer(texts[start:start + batch_size]),
                                                                 np.int32)))
                 for start in range(0, len(texts), batch_size)]
        return np.concatenate(parts).astype("float32") if parts else np.zeros((0, self.lstm.units), "float32")

    def __call__(self, sentence_vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``float32 [len(texts), sentence dim + units]``: row i joins text i's MiniLM vector (``sentence_vectors[i]``)
        and its LSTM vector, each standardised."""
        sentence_vectors = np.asarray(sentence_vectors, "float32")
        if len(sentence_vectors) != len(texts):
            raise ValueError(f"{len(sentence_vectors)} MiniLM vectors for {len(texts)} texts: pass one per text")
        halves = []
        for name, vectors in (("sentence", sentence_vectors), ("lstm", self.lstm_vectors(texts))):
            mean, std = self.stats[name]
            halves.append((vectors - mean) / std)
        return np.concatenate(halves, axis=1).astype("float32")

    def save(self, path) -> Path:
        """Write vocabulary, word vectors, the LSTM's weights and the statistics to ``path`` (``.npz``), atomically."""
        path = Path(path)
        kernel, recurrent, bias = (keras.ops.convert_to_numpy(w) for w in self.lstm.rnn.weights)
        words = "\n".join(self.vectorizer.get_vocabulary()[2:])  # after the padding and the unknown word
        arrays = {"vocabulary": np.frombuffer(words.encode("utf-8"), np.uint8),  # UTF-8: a quarter of numpy's str
                  "sequence_length": np.asarray(self.vectorizer(["x"]).shape[-1]),
                  "word_vectors": keras.ops.convert_to_numpy(self.lstm.embedding.embeddings).astype("float16"),
                  "kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}
        for name, (mean, std) in self.stats.items():
            arrays[f"{name}_mean"], arrays[f"{name}_std"] = mean, std
        temp = path.with_name(f".{path.stem}.partial.npz")
        np.savez_compressed(temp, **arrays)
        temp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> JoinedTextEncoder:
        """The encoder :meth:`save` wrote; a file that is not one is a one-line error naming it."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as file:
                arrays = {name: file[name] for name in file.files}
            vocabulary = arrays["vocabulary"].tobytes().decode("utf-8").split("\n")
            word_vectors = arrays["word_vectors"].astype("float32")
            vectorizer = keras.layers.TextVectorization(vocabulary=vocabulary,
                                                        output_sequence_length=int(arrays["sequence_length"]))
            lstm = LSTMTextEncoder(len(word_vectors), word_vectors.shape[1], units=arrays["recurrent_kernel"].shape[0])
            lstm.build((None, int(arrays["sequence_length"])))
            lstm.embedding.embeddings.assign(word_vectors)
            lstm.rnn.set_weights([arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"]])
            stats = {name: (arrays[f"{name}_mean"], arrays[f"{name}_std"]) for name in ("sentence", "lstm")}
        except (OSError, KeyError, ValueError, UnicodeDecodeError) as error:
            first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
            raise ValueError(f"{path}: not a joined text encoder ({first}): copy it again from where the generator "
                             "beside it was saved") from None
        lstm.trainable = False
        return cls(vectorizer, lstm, stats)
