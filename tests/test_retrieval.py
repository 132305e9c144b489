"""R-precision and the contrastive dual encoder of t2ilib.retrieval."""

import shutil

import numpy as np
import pytest

from t2ilib import data, retrieval


class Identity:
    """A 'matcher' whose image and text spaces are the inputs themselves (already unit vectors)."""

    def encode_images(self, x):
        return np.asarray(x, "float32")

    def encode_texts(self, x):
        return np.asarray(x, "float32")


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_r_precision_is_one_for_perfect_matches_and_near_chance_for_noise():
    rng = np.random.default_rng(0)
    texts = _unit(rng.normal(size=(300, 16)))
    perfect = retrieval.r_precision(Identity(), texts[:100], texts[:100], texts[100:], candidates=100)
    assert perfect.mean == 1.0 and perfect.n == 100 and perfect.runs == 3
    noise = retrieval.r_precision(Identity(), _unit(rng.normal(size=(200, 16))), texts[:200], texts,
                                  candidates=10, runs=5)
    assert abs(noise.mean - 0.1) < 0.06 and noise.std > 0  # chance is 1 / candidates


def test_r_precision_never_draws_a_caption_of_the_same_group():
    rng = np.random.default_rng(1)
    images = _unit(rng.normal(size=(20, 8)))
    pool = np.concatenate([images, _unit(rng.normal(size=(40, 8)))])
    # Each image's exact duplicate sits in the pool; excluded by its group, the image always wins.
    groups = np.arange(20)
    pool_groups = np.concatenate([groups, np.full(40, -1)])
    score = retrieval.r_precision(Identity(), images, images, pool, pool_groups, groups, candidates=30)
    assert score.mean == 1.0
    with pytest.raises(ValueError, match="wrong ones are needed"):
        retrieval.r_precision(Identity(), images, images, pool[:5], candidates=30)


def test_dual_encoder_trains_on_a_prepared_dataset_and_scores_it(tiny_flowers, tmp_path):
    from data_prep import embed

    path = shutil.copytree(tiny_flowers, tmp_path / "flowers")
    embed.ensure(path, "word2vec")
    prepared = data.load_prepared(path)
    model = retrieval.train_dual_encoder(prepared, "word2vec", epochs=6, batch_size=32, learning_rate=3e-3)
    losses = model.history.history["loss"]
    assert losses[-1] < losses[0]  # 200 pairs of near-identical template captions: it learns, slowly
    captions = prepared.captions.reset_index(drop=True)
    first = captions[captions.split == "train"].groupby("image_idx").head(1)
    vectors = prepared.embeddings("word2vec")
    images = prepared.images(32)[first.image_idx.to_numpy()]
    score = retrieval.r_precision(model, images, vectors[first.index], vectors[first.index], candidates=10)
    assert score.n == len(first) and score.runs == 3
    untrained = retrieval.train_dual_encoder(prepared, "word2vec", epochs=0, batch_size=32)
    before = retrieval.r_precision(untrained, images, vectors[first.index], vectors[first.index], candidates=10)
    # 1 in 10 by chance, which the untrained encoder scores; six epochs lift it by several of its stds.
    assert abs(before.mean - 0.1) < 0.03 and score.mean > before.mean + 0.02


def test_dual_encoder_teaches_an_lstm_to_read_token_ids(tiny_flowers):
    from t2ilib import text

    prepared = data.load_prepared(tiny_flowers)
    vectorizer = text.make_vectorizer(prepared.captions.text[prepared.captions.split == "train"].tolist())
    encoder = text.LSTMTextEncoder(vectorizer.vocabulary_size(), embed_dim=16, units=24)
    model = retrieval.train_dual_encoder(prepared, "tokens", epochs=4, batch_size=32, learning_rate=3e-3,
                                         text_encoder=encoder, vectorizer=vectorizer)
    losses = model.history.history["loss"]
    assert losses[-1] < losses[0]
    assert model.embedding_dim == 24 and model.text_encoder is encoder
    token_ids = vectorizer(prepared.captions.text.head(5).tolist())
    vectors = np.asarray(model.encode_texts(token_ids))
    assert vectors.shape == (5, model.dim) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    clone = retrieval.DualEncoder.from_config(model.get_config())
    assert isinstance(clone.text_encoder, text.LSTMTextEncoder) and clone.text_encoder.units == 24


def test_train_dual_encoder_names_what_token_ids_need(tiny_flowers):
    prepared = data.load_prepared(tiny_flowers)
    with pytest.raises(ValueError, match="token ids need both text_encoder and vectorizer"):
        retrieval.train_dual_encoder(prepared, "tokens", epochs=0)
