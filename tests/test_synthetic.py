"""The synthetic flowers: attributes, captions, splits, images, and the idempotent, atomic ensure()."""

import re

import numpy as np
import pandas as pd
import pytest

from data_prep import synthetic
from data_prep.synthetic_draw import CENTRE_COLOURS, PETAL_COLOURS, draw_flower
from t2ilib.data import load_prepared


def test_fixture_is_a_valid_prepared_dataset(tiny_flowers):
    prepared = load_prepared(tiny_flowers)
    assert prepared.name == "synthetic_flowers"
    assert prepared.sizes == [32, 64]
    assert prepared.images(64).shape == (300, 64, 64, 3)
    assert len(prepared.captions) == 300 * synthetic.CAPTIONS_PER_IMAGE
    assert list(prepared.attributes.columns) == list(synthetic.ATTRIBUTES)
    assert set(prepared.captions.split) == {"train", "test", "paraphrase", "compositional"}
    assert prepared.meta["captions_version"] == synthetic.CAPTIONS_VERSION


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def template_pattern(template: str) -> re.Pattern:
    """A template as a regex: each {slot} any words, "a " also "an " (the article fix), an optional full stop."""
    body = "(.+?)".join(re.escape(part) for part in re.split(r"\{\w+\}", template))
    return re.compile("^" + re.sub(r"(?<![a-z])a\\ ", r"an?\\ ", body) + r"\.?$")


@pytest.fixture(scope="module")
def many_captions():
    attributes = synthetic.sample_attributes(3000, seed=0)
    captions = synthetic.make_captions(attributes, synthetic.assign_splits(attributes, 0), seed=0)
    return captions.join(attributes.set_index("image_idx"), on="image_idx")


def test_every_caption_names_petal_and_centre_colour(many_captions):
    for row in many_captions.itertuples():
        words = set(words_of(row.text))
        if row.split == "paraphrase":
            colours, centre_words = synthetic.PARAPHRASE_COLOUR_WORDS, synthetic.PARAPHRASE_CENTRE_WORDS
        else:
            colours, centre_words = synthetic.COLOUR_WORDS, synthetic.CENTRE_WORDS
        assert set(colours[row.petal_colour]) & words and set(colours[row.centre_colour]) & words, row.text
        assert set(centre_words) & words, row.text
        assert not re.search(r"\ba [aeiou]", row.text), row.text


def test_captions_vary_in_wording(many_captions):
    assert len(synthetic.TEMPLATES) >= 30
    per_image = many_captions.groupby("image_idx").text.nunique()
    assert (per_image == synthetic.CAPTIONS_PER_IMAGE).all()
    train = many_captions[many_captions.split == "train"]
    words = set(words_of(" ".join(train.text)))
    assert {"center", "centre", "middle", "disk", "pointy", "pointed", "florets", "bloom"} <= words
    for name, synonyms in synthetic.COLOUR_WORDS.items():
        assert len(synonyms) >= 3 and set(synonyms) <= words, f"{name}: not every synonym of {synonyms} is used"
    used = {t for t in synthetic.TEMPLATES if any(template_pattern(t).match(c) for c in train.text.head(2000))}
    assert len(used) == len(synthetic.TEMPLATES), f"templates never used: {set(synthetic.TEMPLATES) - used}"


def paraphrase_only_words() -> set[str]:
    tables = (synthetic.PARAPHRASE_COLOUR_WORDS, synthetic.PARAPHRASE_SHAPE_WORDS, synthetic.PARAPHRASE_SIZE_WORDS)
    words = {w for table in tables for synonyms in table.values() for w in synonyms}
    words |= set(synthetic.PARAPHRASE_CENTRE_WORDS) | set(synthetic.PARAPHRASE_PETAL_WORDS)
    words |= set(synthetic.PARAPHRASE_FLOWER_WORDS) | set(synthetic.PARAPHRASE_COUNT_WORDS.values())
    return words


def test_the_paraphrase_split_never_shares_a_word_or_template_with_training(many_captions):
    """Its synonyms and templates occur in no train, test or compositional caption, and it uses none of their
    colour words: a model that scores well on it reads meanings, not the kit's vocabulary."""
    paraphrase = many_captions[many_captions.split == "paraphrase"]
    others = many_captions[many_captions.split != "paraphrase"]
    assert len(paraphrase) > 1000 and set(others.split) == {"train", "test", "compositional"}
    other_words = set(words_of(" ".join(others.text)))
    paraphrase_words = set(words_of(" ".join(paraphrase.text)))
    only = paraphrase_only_words()
    assert only <= paraphrase_words, f"paraphrase words never used: {only - paraphrase_words}"
    assert not only & other_words, f"paraphrase-only words in training captions: {only & other_words}"
    training_colours = {w for synonyms in synthetic.COLOUR_WORDS.values() for w in synonyms}
    assert not training_colours & paraphrase_words, training_colours & paraphrase_words
    patterns = [template_pattern(t) for t in synthetic.PARAPHRASE_TEMPLATES]
    assert not set(synthetic.PARAPHRASE_TEMPLATES) & set(synthetic.TEMPLATES)
    assert all(any(p.match(text) for p in patterns) for text in paraphrase.text)
    for text in others.text:
        assert not any(p.match(text) for p in patterns), f"a training caption fits a paraphrase template: {text}"


def test_compositional_pairs_never_in_train_or_test():
    attributes = synthetic.sample_attributes(3000, seed=3)
    split = synthetic.assign_splits(attributes, seed=3)
    pairs = list(zip(attributes.petal_colour, attributes.centre_colour))
    held = set(synthetic.COMPOSITIONAL_PAIRS)
    assert all((pair in held) == (s == "compositional") for pair, s in zip(pairs, split))
    train_pairs = {p for p, s in zip(pairs, split) if s == "train"}
    # Every colour is still seen in training, only the held-out combinations are not.
    assert {p for p, _ in train_pairs} == set(PETAL_COLOURS)
    assert {c for _, c in train_pairs} == set(CENTRE_COLOURS)
    assert 0.05 < np.mean(split == "test") < 0.15
    assert 0.05 < np.mean(split == "paraphrase") < 0.15
    # The paraphrase split has the training pairs, and every one of them.
    assert {p for p, s in zip(pairs, split) if s == "paraphrase"} == train_pairs


def test_stale_captions_are_rewritten_and_the_images_kept(tmp_path):
    """A dataset an older data_prep made (no paraphrase split, no captions_version) gets today's captions."""
    import json

    path = synthetic.ensure(tmp_path, 60, sizes=(32,))
    meta = json.loads((path / "meta.json").read_text())
    old = synthetic.make_captions(synthetic.sample_attributes(60, 0), np.full(60, "train", dtype=object), 0)
    old.to_csv(path / "captions.csv", index=False)
    del meta["captions_version"]
    (path / "meta.json").write_text(json.dumps(meta))
    stamp = (path / "images_32.npy").stat().st_mtime_ns
    synthetic.ensure(tmp_path, 60, sizes=(32,))
    prepared = load_prepared(path)
    assert prepared.meta["captions_version"] == synthetic.CAPTIONS_VERSION
    assert "paraphrase" in set(prepared.captions.split)
    assert (path / "images_32.npy").stat().st_mtime_ns == stamp, "the images do not depend on the captions"


def test_rewriting_captions_refuses_flowers_of_another_seed(tmp_path):
    import json

    path = synthetic.ensure(tmp_path, 40, sizes=(32,))
    synthetic.sample_attributes(40, seed=5).to_csv(path / "attributes.csv", index=False)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "captions_version": 1}))
    with pytest.raises(ValueError, match="attributes.csv.*Delete"):
        synthetic.ensure(tmp_path, 40, sizes=(32,))


def test_same_seed_same_dataset_other_seed_differs():
    a = synthetic.sample_attributes(100, seed=1)
    pd.testing.assert_frame_equal(a, synthetic.sample_attributes(100, seed=1))
    assert not a.equals(synthetic.sample_attributes(100, seed=2))
    one = draw_flower(np.random.default_rng([1, 7]), "red", "yellow", 5, "round", "medium", sizes=(32,))
    two = draw_flower(np.random.default_rng([1, 7]), "red", "yellow", 5, "round", "medium", sizes=(32,))
    np.testing.assert_array_equal(one[32], two[32])


def test_colours_are_drawn_where_expected():
    """The petal colour dominates a ring around the centre, the centre colour the middle of the disk."""
    images = draw_flower(np.random.default_rng(0), "blue", "yellow", 8, "round", "large", sizes=(64,))
    image = images[64].astype(float)
    # Locate the flower: the pixels closest to pure blue.
    blue = np.linalg.norm(image - PETAL_COLOURS["blue"], axis=-1) < 60
    assert blue.mean() > 0.15, "blue petals should cover a large part of a large flower"
    yellow = np.linalg.norm(image - CENTRE_COLOURS["yellow"], axis=-1) < 60
    assert yellow.sum() > 20, "the yellow centre should be visible at 64 px"
    # The centre lies inside the petals: the yellow centroid is near the blue centroid.
    cy, cx = np.argwhere(yellow).mean(0)
    by, bx = np.argwhere(blue).mean(0)
    assert abs(cy - by) < 8 and abs(cx - bx) < 8


def test_images_are_antialiased_not_binary(tiny_flowers):
    images = load_prepared(tiny_flowers).images(64)[:20]
    # Antialiased edges and shaded backgrounds give many distinct colours per image.
    assert all(len(np.unique(img.reshape(-1, 3), axis=0)) > 300 for img in images)


def test_ensure_is_idempotent_and_separates_sizes(tmp_path):
    first = synthetic.ensure(tmp_path, 40, sizes=(32,))
    stamp = (first / "images_32.npy").stat().st_mtime_ns
    assert synthetic.ensure(tmp_path, 40, sizes=(32,)) == first
    assert (first / "images_32.npy").stat().st_mtime_ns == stamp, "a finished dataset must not be rewritten"
    other = synthetic.ensure(tmp_path, 50, sizes=(32,))
    assert other != first and load_prepared(other).num_images == 50
    assert synthetic.default_dirname(10_000) == "synthetic_flowers"


def test_ensure_adds_a_missing_size_without_touching_the_rest(tmp_path):
    path = synthetic.ensure(tmp_path, 30, sizes=(32,))
    before = np.load(path / "images_32.npy").copy()
    captions = (path / "captions.csv").read_bytes()
    synthetic.ensure(tmp_path, 30, sizes=(32, 64))
    prepared = load_prepared(path)
    assert prepared.sizes == [32, 64]
    np.testing.assert_array_equal(np.load(path / "images_32.npy"), before)
    assert (path / "captions.csv").read_bytes() == captions
    # Same flowers at the new size: the 64 px image downsampled looks like the 32 px one.
    small = prepared.images(64)[:, ::2, ::2].astype(float)
    assert np.abs(small - before).mean() < 25


def test_refuses_to_overwrite_a_different_dataset(tmp_path):
    synthetic.build(tmp_path / "d", 20, sizes=(32,), progress=False)
    with pytest.raises(FileExistsError, match="left untouched"):
        synthetic.build(tmp_path / "d", 25, sizes=(32,), progress=False)


def test_ensure_never_returns_a_dataset_of_another_size(tmp_path):
    synthetic.build(tmp_path / synthetic.default_dirname(10_000), 20, sizes=(32,), progress=False)
    with pytest.raises(FileExistsError, match="20 images"):
        synthetic.ensure(tmp_path, 10_000, sizes=(32,))


def test_a_killed_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic.store.ImageArrays, "commit", die)
    with pytest.raises(KeyboardInterrupt):
        synthetic.build(tmp_path, 20, sizes=(32,), progress=False)
    assert not (tmp_path / "meta.json").exists()
    assert not (tmp_path / "images_32.npy").exists()
    with pytest.raises(FileNotFoundError, match="meta.json"):
        load_prepared(tmp_path)
    monkeypatch.undo()
    synthetic.build(tmp_path, 20, sizes=(32,), progress=False)  # a re-run finishes the job
    assert load_prepared(tmp_path).num_images == 20


def test_cli_makes_a_dataset_and_a_rerun_is_a_no_op(tmp_path, capsys):
    from data_prep.__main__ import main

    out = tmp_path / "flowers"
    assert main(["synthetic_flowers", "--out", str(out), "--num-images", "24", "--sizes", "32"]) == 0
    assert "images: 24" in capsys.readouterr().out
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert main(["synthetic_flowers", "--out", str(out), "--num-images", "24", "--sizes", "32"]) == 0
    assert (out / "meta.json").stat().st_mtime_ns == stamp


def test_parallel_drawing_gives_the_same_images(tmp_path):
    serial = synthetic.build(tmp_path / "a", 60, sizes=(32,), workers=1, progress=False)
    parallel = synthetic.build(tmp_path / "b", 60, sizes=(32,), workers=2, progress=False)
    assert serial.counts["images"] == parallel.counts["images"] == 60
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "images_32.npy"), np.load(tmp_path / "b" / "images_32.npy"))
