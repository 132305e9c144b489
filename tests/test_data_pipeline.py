"""t2ilib.data: checking a prepared dataset, and the tf.data pipeline of (image, text, wrong text)."""

import copy
import json
import re
import shutil

import numpy as np
import pytest

from t2ilib.data import _captions_naming, load_prepared, make_dataset


class FakeVectorizer:
    """Token id = the caption text's number in a fixed list: lets a test map ids back to caption texts exactly.

    Short captions ("a red flower with a yellow center") recur across images, so a text maps to a set of images.
    """

    def __init__(self, texts):
        self.index = {t: i for i, t in enumerate(dict.fromkeys(texts))}

    def __call__(self, texts):
        return np.array([[self.index[t], 0] for t in texts], np.int32)


@pytest.fixture(scope="module")
def prepared(tiny_flowers):
    return load_prepared(tiny_flowers)


@pytest.fixture()
def tokens(prepared):
    vectorizer = FakeVectorizer(prepared.captions.text)
    by_id = {i: t for t, i in vectorizer.index.items()}
    return vectorizer, by_id


def test_batches_have_the_contract_shapes_and_ranges(prepared, tokens):
    vectorizer, _ = tokens
    batch = next(iter(make_dataset(prepared, image_size=64, text="tokens", vectorizer=vectorizer, batch_size=8)))
    assert batch["image"].shape == (8, 64, 64, 3) and batch["image"].dtype.name == "float32"
    assert float(np.min(batch["image"])) >= -1.0 and float(np.max(batch["image"])) <= 1.0
    assert float(np.max(batch["image"])) > 0.5 and float(np.min(batch["image"])) < -0.5
    assert batch["text"].shape == (8, 2) and batch["text"].dtype.name == "int32"
    assert batch["wrong_text"].shape == (8, 2)


def _owners(prepared):
    return prepared.captions.groupby("text").image_idx.apply(set).to_dict()


def _matching_image(image, candidates, images):
    """The one candidate image equal to `image` (scaled to [-1, 1]), or None."""
    found = [i for i in candidates if np.allclose(image, images[i] / 127.5 - 1.0, atol=1e-6)]
    return found[0] if len(found) == 1 else None


def test_text_belongs_to_the_image_and_wrong_text_to_another_colour_pair(prepared, tokens):
    vectorizer, by_id = tokens
    owners = _owners(prepared)
    pair = prepared.attributes.petal_colour + "/" + prepared.attributes.centre_colour
    images = prepared.images(32)
    ds = make_dataset(prepared, image_size=32, text="tokens", vectorizer=vectorizer, batch_size=16, flip=False)
    pairs_of_group = {}
    for batch in ds.take(5):
        for image, text, wrong, group in zip(batch["image"].numpy(), batch["text"].numpy(),
                                             batch["wrong_text"].numpy(), batch["group"].numpy()):
            owner = _matching_image(image, owners[by_id[text[0]]], images)
            assert owner is not None, "the caption must describe the image it comes with"
            pairs_of_group.setdefault(int(group), set()).add(pair[owner])
            # Images sharing a text share its colour pair (the text names both colours).
            wrong_pairs = {pair[i] for i in owners[by_id[wrong[0]]]}
            assert len(wrong_pairs) == 1 and pair[owner] not in wrong_pairs
    # The batch's group is the image's colour pair: one pair per group, another pair in each other group.
    assert len(pairs_of_group) > 1 and all(len(pairs) == 1 for pairs in pairs_of_group.values())
    assert len(set.union(*pairs_of_group.values())) == len(pairs_of_group)


def test_split_is_respected_and_one_epoch_sees_each_image_once(prepared, tokens):
    vectorizer, by_id = tokens
    owners = _owners(prepared)
    images = prepared.images(32)
    test_images = set(prepared.split_images("test"))
    ds = make_dataset(prepared, "test", image_size=32, text="tokens", vectorizer=vectorizer, batch_size=4,
                      drop_remainder=False)
    seen = [_matching_image(image, owners[by_id[text[0]]] & test_images, images)
            for b in ds for image, text in zip(b["image"].numpy(), b["text"].numpy())]
    assert sorted(seen) == sorted(test_images)
    for b in ds.take(1):
        for wrong in b["wrong_text"].numpy():  # mismatched captions come from the same split
            assert owners[by_id[wrong[0]]] & test_images


def test_seeded_and_a_new_caption_each_epoch(prepared, tokens):
    vectorizer, _ = tokens

    def epochs(seed):
        ds = make_dataset(prepared, image_size=32, text="tokens", vectorizer=vectorizer, batch_size=32, seed=seed)
        return [np.concatenate([b["text"].numpy()[:, 0] for b in ds]) for _ in range(2)]

    first, second = epochs(0)
    again_first, again_second = epochs(0)
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, second), "the order and captions must change between epochs"
    assert not np.array_equal(first, epochs(1)[0])


def test_each_epoch_draws_new_captions_for_the_same_images(prepared, tokens):
    vectorizer, _ = tokens
    ds = make_dataset(prepared, image_size=32, text="tokens", vectorizer=vectorizer, batch_size=32, shuffle=False)
    epochs = [[(b["image"].numpy(), b["text"].numpy()[:, 0]) for b in ds] for _ in range(2)]
    (images_1, first), (images_2, second) = ([np.concatenate(part) for part in zip(*epoch)] for epoch in epochs)
    np.testing.assert_array_equal(images_1, images_2)  # same images in the same order
    # Five captions per image: about one in five draws repeats (a bit more, as short captions recur).
    assert 0.1 < np.mean(first == second) < 0.5


def test_flip_mirrors_some_images(prepared, tokens):
    vectorizer, by_id = tokens
    owners = _owners(prepared)
    images = prepared.images(32)
    batch = next(iter(make_dataset(prepared, image_size=32, text="tokens", vectorizer=vectorizer,
                                   batch_size=64, flip=True)))
    flipped = 0
    for image, text in zip(batch["image"].numpy(), batch["text"].numpy()):
        candidates = owners[by_id[text[0]]]
        if _matching_image(image, candidates, images) is None:
            assert _matching_image(image[:, ::-1], candidates, images) is not None
            flipped += 1
    assert 10 < flipped < 54


def test_crop_zooms_into_a_random_window_of_8_9_of_each_side(tiny_flowers, tmp_path, tokens):
    """On ramp images (red = x, green = y), a crop spans 8/9 of each ramp, starting at a random offset."""
    path = _copy(tiny_flowers, tmp_path)
    ramp = np.round(np.linspace(0, 255, 32)).astype(np.uint8)
    images = np.zeros((300, 32, 32, 3), np.uint8)
    images[..., 0], images[..., 1] = ramp[None, None, :], ramp[None, :, None]
    np.save(path / "images_32.npy", images)
    vectorizer, _ = tokens
    plain, cropped = (next(iter(make_dataset(path, image_size=32, text="tokens", vectorizer=vectorizer,
                                             batch_size=16, crop=crop)))["image"].numpy() for crop in (False, True))
    np.testing.assert_allclose(plain[..., 0].max((1, 2)) - plain[..., 0].min((1, 2)), 2.0, atol=1e-5)
    for channel in (0, 1):
        span = cropped[..., channel].max((1, 2)) - cropped[..., channel].min((1, 2))
        np.testing.assert_allclose(span, 2.0 * 8 / 9, atol=0.02)
        start = cropped[..., channel].min((1, 2)) + 1.0  # where the window begins, in [0, 2/9]
        assert (start > -0.01).all() and (start < 2 / 9 + 0.01).all()
        assert np.ptp(start) > 0.05, "each image gets its own window"


def test_unprepared_size_is_resized_from_a_larger_one(prepared):
    small = prepared.images(16)
    assert small.shape == (300, 16, 16, 3) and small.dtype == np.uint8
    reference = prepared.images(32).reshape(300, 16, 2, 16, 2, 3).mean((2, 4))
    assert np.abs(small - reference).mean() < 12
    with pytest.raises(ValueError, match="--sizes"):
        prepared.images(128)


def test_tokens_need_a_vectorizer_and_unknown_split_is_named(prepared):
    with pytest.raises(ValueError, match="make_vectorizer"):
        make_dataset(prepared, text="tokens")
    with pytest.raises(ValueError, match="'val'.*compositional"):
        make_dataset(prepared, "val", text="tokens", vectorizer=FakeVectorizer(["x"]))


def test_embeddings_are_gathered_by_caption_row(prepared, tmp_path, monkeypatch):
    """With text=<encoder>, each caption's embedding row is delivered (here: a row whose value is its index)."""
    import t2ilib.data

    table = np.arange(len(prepared.captions), dtype=np.float32)[:, None] + np.array([0.0, 0.25, 0.5], np.float32)
    monkeypatch.setattr(t2ilib.data.PreparedDataset, "embeddings", lambda self, encoder: table)
    batch = next(iter(make_dataset(prepared, image_size=32, text="sentence", batch_size=8)))
    rows = batch["text"].numpy()[:, 0].astype(int)
    np.testing.assert_array_equal(batch["text"].numpy(), table[rows])  # whole rows, not mixed columns
    assert set(prepared.captions.split.iloc[rows]) == {"train"}
    # Each caption row belongs to the image it comes with: the image of that caption, not another one's.
    owners = prepared.captions.image_idx.iloc[rows].to_numpy()
    np.testing.assert_allclose(batch["image"].numpy(), prepared.images(32)[owners] / 127.5 - 1.0, atol=1e-5)
    wrong = batch["wrong_text"].numpy()[:, 0].astype(int)
    assert (prepared.captions.image_idx.iloc[wrong].to_numpy() != owners).all()  # wrong: another image's caption


def _copy(tiny_flowers, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tiny_flowers, target)
    return target


def test_missing_meta_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m data_prep"):
        load_prepared(tmp_path)


def test_wrong_format_version_is_named(tiny_flowers, tmp_path):
    path = _copy(tiny_flowers, tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        load_prepared(path)


def test_missing_image_file_is_named(tiny_flowers, tmp_path):
    path = _copy(tiny_flowers, tmp_path)
    (path / "images_64.npy").unlink()
    with pytest.raises(ValueError, match="images_64.npy"):
        load_prepared(path)


def test_truncated_captions_are_detected(tiny_flowers, tmp_path):
    path = _copy(tiny_flowers, tmp_path)
    lines = (path / "captions.csv").read_text().splitlines()
    (path / "captions.csv").write_text("\n".join(lines[:-10]) + "\n")
    with pytest.raises(ValueError, match="captions.csv.*meta.json says 1500"):
        load_prepared(path)


def test_images_of_wrong_shape_are_detected(tiny_flowers, tmp_path):
    path = _copy(tiny_flowers, tmp_path)
    np.save(path / "images_32.npy", np.zeros((10, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"images_32.npy.*\(300, 32, 32, 3\)"):
        load_prepared(path)


@pytest.mark.parametrize("near_miss", [0.0, 1.0])
def test_near_miss_wrong_captions_differ_in_exactly_one_colour(prepared, tokens, near_miss):
    vectorizer, by_id = tokens
    owners = _owners(prepared)
    attributes = prepared.attributes
    images = prepared.images(32)
    ds = make_dataset(prepared, image_size=32, text="tokens", vectorizer=vectorizer, batch_size=16,
                      near_miss=near_miss)
    differing = []
    for batch in ds.take(6):
        for image, text, wrong in zip(batch["image"].numpy(), batch["text"].numpy(), batch["wrong_text"].numpy()):
            owner = _matching_image(image, owners[by_id[text[0]]], images)
            other = next(iter(owners[by_id[wrong[0]]]))
            differing.append(int((attributes.loc[owner, ["petal_colour", "centre_colour"]]
                                  != attributes.loc[other, ["petal_colour", "centre_colour"]]).sum()))
    differing = np.array(differing)
    assert (differing >= 1).all()  # always a wrong caption
    if near_miss == 1.0:  # near misses wherever the image has one (the tiny set lacks a few)
        assert (differing == 1).mean() > 0.8
    else:  # drawn from any other pair: mostly both colours differ
        assert (differing == 2).mean() > 0.6


def test_a_near_miss_in_the_shape_takes_a_caption_that_names_the_other_shape(prepared, tokens):
    from data_prep.synthetic import SHAPE_WORDS

    vectorizer, by_id = tokens
    owners = _owners(prepared)
    attributes, images = prepared.attributes, prepared.images(32)
    shaped = copy.copy(prepared)
    shaped.meta = {**prepared.meta, "near_miss_by": ["petal_colour", "centre_colour", "petal_shape"]}
    ds = make_dataset(shaped, image_size=32, text="tokens", vectorizer=vectorizer, batch_size=16, near_miss=1.0)
    same_colours = 0
    for batch in ds.take(6):
        for image, text, wrong in zip(batch["image"].numpy(), batch["text"].numpy(), batch["wrong_text"].numpy()):
            owner = _matching_image(image, owners[by_id[text[0]]], images)
            wrong_text = by_id[wrong[0]]
            others = attributes.loc[sorted(owners[wrong_text])]
            if (others[["petal_colour", "centre_colour"]] == attributes.loc[owner, ["petal_colour", "centre_colour"]]
                    ).all(axis=None):  # the same colours: a near miss in the shape
                same_colours += 1
                other_shape = "round" if attributes.loc[owner, "petal_shape"] == "pointed" else "pointed"
                assert (others.petal_shape == other_shape).all()
                assert set(SHAPE_WORDS[other_shape]) & set(re.findall(r"[a-z]+", wrong_text.lower())), wrong_text
    assert same_colours >= 10  # about a third of 96, where the tiny set has a flower of the other shape


def test_captions_name_an_attribute_by_its_words_and_every_caption_names_one_without_words(prepared):
    texts = ["A red flower with POINTED petals", "a red flower", "rounded, pink petals", "sharpness is not a shape",
             "spiky petals around a black centre"]
    assert _captions_naming(prepared, texts, "petal_shape").tolist() == [True, False, True, False, True]
    assert _captions_naming(prepared, texts, "petal_colour").all()


def test_near_miss_share_is_checked(prepared, tokens):
    with pytest.raises(ValueError, match="near_miss=1.5"):
        make_dataset(prepared, text="tokens", vectorizer=tokens[0], near_miss=1.5)


def test_embedding_stats_are_the_split_captions_mean_and_variance(prepared, monkeypatch):
    import t2ilib.data

    table = np.random.default_rng(0).standard_normal((len(prepared.captions), 4)).astype(np.float32)
    monkeypatch.setattr(t2ilib.data.PreparedDataset, "embeddings", lambda self, encoder: table)
    mean, variance = prepared.embedding_stats("sentence")
    train = table[(prepared.captions.split == "train").to_numpy()]
    np.testing.assert_allclose(mean, train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(variance, train.var(0), rtol=1e-6)
    with pytest.raises(ValueError, match="no captions in split 'nope'"):
        prepared.embedding_stats("sentence", split="nope")


def test_label_text_is_the_images_colour_pair_one_hot_and_the_wrong_label_another(prepared):
    from t2ilib.data import image_labels

    labels, names = image_labels(prepared)
    pair = (prepared.attributes.petal_colour + "/" + prepared.attributes.centre_colour).to_numpy()
    assert len(labels) == prepared.num_images and names == sorted(set(pair))
    assert [names[label] for label in labels] == list(pair)
    images = prepared.images(32)
    batch = next(iter(make_dataset(prepared, image_size=32, text="label", batch_size=16, flip=False)))
    text, wrong = batch["text"].numpy(), batch["wrong_text"].numpy()
    assert text.shape == (16, len(names)) and text.dtype == np.float32
    assert (text.sum(axis=1) == 1).all() and (wrong.sum(axis=1) == 1).all()  # one-hot
    for image, label, wrong_label in zip(batch["image"].numpy(), text.argmax(axis=1), wrong.argmax(axis=1)):
        owner = _matching_image(image, np.flatnonzero(labels == label), images)
        assert owner is not None, "the label must be the label of the image it comes with"
        assert wrong_label != label


def test_labels_need_attributes_and_say_so(prepared, tmp_path):
    from t2ilib.data import PreparedDataset, image_labels

    bare = PreparedDataset(path=tmp_path, meta={**prepared.meta, "mismatch_by": []}, captions=prepared.captions,
                           attributes=prepared.attributes)
    with pytest.raises(ValueError, match="mismatch_by"):
        image_labels(bare)
