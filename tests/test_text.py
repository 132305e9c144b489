"""t2ilib.text: caption hashes, the embedding cache check, the vectorizer and the LSTM text encoder."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2ilib import text

CAPTIONS = ["a flower with red petals", "this flower has five round yellow petals", "a small blue flower"]


def test_caption_hash_depends_on_content_order_and_boundaries():
    base = text.caption_hash(CAPTIONS)
    assert base == text.caption_hash(list(CAPTIONS))
    assert base != text.caption_hash(CAPTIONS[::-1])
    assert base != text.caption_hash(CAPTIONS[:-1])
    assert text.caption_hash(["ab", "c"]) != text.caption_hash(["a", "bc"])


def _write_cache(dataset_dir, encoder, vectors, texts, **extra):
    vectors_path, info_path = text.cache_paths(dataset_dir, encoder)
    vectors_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(vectors_path, vectors)
    info = {"encoder": encoder, "dim": vectors.shape[1], "caption_hash": text.caption_hash(texts), **extra}
    info_path.write_text(json.dumps(info))


def test_load_cached_embeddings_returns_the_rows(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    _write_cache(tmp_path, "sentence", vectors, CAPTIONS)
    loaded = text.load_cached_embeddings(tmp_path, "sentence", CAPTIONS)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, vectors)


def test_missing_cache_names_the_file_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"word2vec\.json.*python -m data_prep embed .*--encoder word2vec"):
        text.load_cached_embeddings(tmp_path, "word2vec", CAPTIONS)


def test_stale_cache_is_refused(tmp_path):
    _write_cache(tmp_path, "sentence", np.zeros((3, 4), np.float32), CAPTIONS)
    changed = CAPTIONS[:2] + ["a small green flower"]
    with pytest.raises(ValueError, match=r"sentence\.json.*stale.*--encoder sentence"):
        text.load_cached_embeddings(tmp_path, "sentence", changed)


def test_cache_with_wrong_shape_or_dtype_is_refused(tmp_path):
    _write_cache(tmp_path, "glove", np.zeros((3, 4), np.float64), CAPTIONS)
    with pytest.raises(ValueError, match=r"glove\.npy holds float64"):
        text.load_cached_embeddings(tmp_path, "glove", CAPTIONS)


def test_vectorizer_pads_with_zero_and_marks_unknown_words_with_one():
    vectorizer = text.make_vectorizer(CAPTIONS, sequence_length=8)
    ids = vectorizer(tf.constant(["A RED flower!", "a purple flower"])).numpy()
    assert ids.shape == (2, 8)
    vocab = vectorizer.get_vocabulary()
    assert [vocab[i] for i in ids[0, :3]] == ["a", "red", "flower"]  # lower-cased, punctuation stripped
    assert ids[1, 1] == 1  # "purple" was never seen: the OOV id
    assert (ids[:, 3:] == 0).all()  # padding


def test_vectorizer_needs_captions():
    with pytest.raises(ValueError, match="at least one caption"):
        text.make_vectorizer([])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_encoder_shape_and_padding_does_not_matter(bidirectional):
    keras.utils.set_random_seed(0)
    encoder = text.LSTMTextEncoder(vocab_size=20, embed_dim=8, units=6, bidirectional=bidirectional)
    short = np.array([[5, 7, 9, 0, 0]], np.int32)
    longer = np.array([[5, 7, 9, 0, 0, 0, 0, 0]], np.int32)
    other = np.array([[5, 7, 3, 0, 0]], np.int32)
    out = encoder(short)
    assert tuple(out.shape) == (1, 6)
    np.testing.assert_allclose(out, encoder(longer), atol=1e-6)
    assert not np.allclose(out, encoder(other))  # a different word gives a different vector


def test_bidirectional_needs_even_units():
    with pytest.raises(ValueError, match="units=5 must be even"):
        text.LSTMTextEncoder(vocab_size=10, units=5, bidirectional=True)


def test_lstm_encoder_learns_and_round_trips_through_a_saved_model(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), dtype="int32")
    outputs = keras.layers.Dense(1)(text.LSTMTextEncoder(vocab_size=12, embed_dim=4, units=4,
                                                         bidirectional=True)(inputs))
    model = keras.Model(inputs, outputs)
    ids = np.random.default_rng(0).integers(0, 12, size=(32, 6)).astype("int32")
    target = (ids[:, :1] % 2).astype("float32")  # a property of the first word: the LSTM must read it
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    history = model.fit(ids, target, epochs=15, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=1e-5)
    layer = next(lay for lay in restored.layers if isinstance(lay, text.LSTMTextEncoder))
    assert layer.get_config()["bidirectional"] is True


def _joined_encoder(captions):
    keras.utils.set_random_seed(0)
    vectorizer = text.make_vectorizer(captions, sequence_length=8)
    lstm = text.LSTMTextEncoder(vectorizer.vocabulary_size(), embed_dim=5, units=6)
    lstm.build((None, 8))
    words = keras.ops.convert_to_numpy(lstm.embedding.embeddings)
    lstm.embedding.embeddings.assign(words.astype("float16").astype("float32"))  # as saved: the benchmark does this
    minilm = np.random.default_rng(0).normal(3.0, 0.5, (len(captions), 4)).astype("float32")
    return text.JoinedTextEncoder.fit(vectorizer, lstm, minilm, captions), minilm


def test_joined_vectors_standardise_each_half_read_word_order_and_round_trip(tmp_path):
    captions = ["a red flower with a white centre", "a white flower with a red centre", "a blue flower",
                "a flower with a yellow centre and white petals", "red petals", "a pink flower"]
    joined, minilm = _joined_encoder(captions)
    vectors = joined(minilm, captions)
    assert vectors.shape == (6, 4 + 6) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors.mean(axis=0), 0.0, atol=1e-4)  # over the captions it was fitted on
    np.testing.assert_allclose(vectors[:, :4], (minilm - minilm.mean(0)) / minilm.std(0), rtol=1e-3, atol=1e-3)
    assert np.abs(vectors[0, 4:] - vectors[1, 4:]).max() > 1e-4  # the same words in another order
    unknown = joined(minilm[:2], ["a zxqv flower", "a blorp flower"])  # unknown words: one id, one vector
    np.testing.assert_allclose(unknown[0, 4:], unknown[1, 4:], atol=1e-6)

    reloaded = text.JoinedTextEncoder.load(joined.save(tmp_path / "g.text.npz"))
    np.testing.assert_array_equal(reloaded(minilm, captions), vectors)
    assert reloaded.vectorizer.get_vocabulary() == joined.vectorizer.get_vocabulary()
    assert not list(tmp_path.glob(".*"))  # no partial file left behind


def test_joined_vectors_refuse_a_count_mismatch_and_a_file_that_is_not_one(tmp_path):
    joined, minilm = _joined_encoder(["a red flower", "a white flower"])
    with pytest.raises(ValueError, match="2 MiniLM vectors for 1 texts"):
        joined(minilm, ["a red flower"])
    bad = tmp_path / "g.text.npz"
    np.savez(bad, vocabulary=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"g\.text\.npz: not a joined text encoder .*copy it again"):
        text.JoinedTextEncoder.load(bad)
