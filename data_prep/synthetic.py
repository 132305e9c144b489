"""synthetic_flowers: procedurally drawn flowers with known attributes and Oxford-style captions (no download).

Every image has a petal colour, a centre colour, a petal count, a petal shape and a size; five captions per
image describe it in varied words and orders, always naming the petal and centre colours. Because the
attributes are known, whether a generated image matches its caption can be measured. Splits: ``train``,
``test``, ``paraphrase`` (test-like images whose captions use templates and synonyms that never occur in training)
and ``compositional`` (petal/centre colour pairs that never occur in training).

    python -m data_prep synthetic_flowers --out data/synthetic_flowers            # 10,000 images, 32/64/128 px
    data_prep.synthetic.ensure(session.data_dir, session.preset.size.num_images)      # from a notebook
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep import store
from data_prep.synthetic_draw import (
    CENTRE_COLOURS,
    FLOWER_SIZES,
    PETAL_COLOURS,
    PETAL_COUNTS,
    PETAL_SHAPES,
    render_chunk,
)

NAME = "synthetic_flowers"
DEFAULT_IMAGES = 10_000
DEFAULT_SIZES = (32, 64, 128)
CAPTIONS_PER_IMAGE = 5
TEST_FRACTION = 0.1
PARAPHRASE_FRACTION = 0.1
# Bumped whenever the captions, splits or what meta.json says of them change: ensure() rewrites the captions of an
# older dataset (the images depend only on the seed, so they stay). 3: meta.json's attribute_words.
CAPTIONS_VERSION = 3
ATTRIBUTES = ("petal_colour", "centre_colour", "petal_count", "petal_shape", "flower_size")
# (petal colour, centre colour) pairs kept out of train and test: the compositional split. Each colour is held
# out at most once, so the model sees every colour in training, just never these combinations.
COMPOSITIONAL_PAIRS = (("red", "black"), ("orange", "green"), ("yellow", "brown"),
                       ("pink", "white"), ("purple", "yellow"), ("blue", "orange"))

# Words the captions use for each attribute value, to vary the wording like human captions do. A caption names
# a colour by its plain name two times in three, else by a synonym: the GAN has to read words, not match tokens.
COLOUR_WORDS = {
    "red": ("red", "scarlet", "ruby"), "orange": ("orange", "tangerine", "ginger"),
    "yellow": ("yellow", "canary", "buttercup"), "white": ("white", "snowy", "pearl"),
    "pink": ("pink", "rose", "blush"), "purple": ("purple", "violet", "mauve"),
    "blue": ("blue", "azure", "sapphire"), "green": ("green", "lime", "leafy"),
    "brown": ("brown", "chocolate", "chestnut"), "black": ("black", "jet", "ebony"),
}
CENTRE_WORDS = ("center", "centre", "middle", "disk")
PETAL_WORDS = ("petals", "florets")
FLOWER_WORDS = ("flower", "bloom")
SHAPE_WORDS = {"round": ("round", "rounded", "oval"), "pointed": ("pointed", "pointy", "sharp")}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "medium": ("medium-sized", "medium", "mid-sized"),
              "large": ("large", "big")}
COUNT_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
# Every template names {petal} and {centre}: the GANs are scored on those two.
TEMPLATES = (
    "this {flower} has {count} {shape} {petal} {petals} and a {centre} {center}",
    "a {petal} {flower} with a {centre} {center}",
    "the {petals} of this {flower} are {petal} and the {center} is {centre}",
    "this {size} {flower} has {shape} {petals} that are {petal} and a {centre} {center}",
    "a {size} {petal} {flower} with {count} {petals} and a {centre} {center}",
    "{count} {petal} {petals} surround a {centre} {center}",
    "this {flower} is {petal} in color, with {shape} {petals} and a {centre} {center}",
    "the {flower} has {petal} {petals} with {shape} tips and a {centre} colored {center}",
    "the {center} of this {flower} is {centre} and it is surrounded by {count} {petal} {petals}",
    "a {centre} {center} sits among {shape} {petal} {petals} on this {size} {flower}",
    "this {flower} has {petal} {petals} and a {center} that is {centre}",
    "{shape} {petal} {petals} with a {centre} {center}",
    "a {size} {flower} with {count} {petal} {petals} that are {shape} and a {centre} {center}",
    "this {petal} {flower} has {count} {petals}, {shape} at the tips, and a {centre} {center}",
    "{petal} {petals} and a {centre} {center} make up this {flower}",
    "the {flower} shown has {petal} {petals} around a {centre} {center}",
    "this is a {petal} {flower} whose {center} is {centre}",
    "there is a {centre} {center} in this {flower} with {petal} {petals}",
    "{count} {shape} {petals} in {petal} and a {centre} {center}",
    "this {size} {flower} is {petal} with a {centre} {center}",
    "the {petals} are {petal} and {shape}, the {center} is {centre}",
    "a {flower} that has {petal} {petals} and a {centre} {center}",
    "{petal} is the color of the {petals}, and {centre} is the color of the {center}",
    "this {flower} features {count} {petal} {petals} around a {centre} {center}",
    "the {flower} is mostly {petal}, with a {centre} {center}",
    "{petal} {petals} radiate from a {centre} {center}",
    "this {flower} has a {centre} {center} and {count} {shape} {petal} {petals}",
    "a {centre} {center} is ringed by {petal} {petals}",
    "the {size} {flower} has {petal} {petals} and its {center} is {centre}",
    "{count} {petals}, all {petal}, circle a {centre} {center}",
    "this {flower} has {shape} {petal} {petals} that spread out from a {centre} {center}",
    "look at this {petal} {flower} with a {centre} {center}",
    "a {petal} {flower} with {count} {shape} {petals} and a {centre} {center}",
    "{petal} {petals} on a {size} {flower}, and a {centre} {center}",
)

# The paraphrase split: captions in other words. None of these words, and none of these templates, ever occurs
# in a train, test or compositional caption (tests/test_synthetic.py checks), so a GAN that scores as well here as
# on the test split reads the meaning of a caption, not the kit's vocabulary.
PARAPHRASE_COLOUR_WORDS = {
    "red": ("crimson", "cherry"), "orange": ("apricot", "pumpkin"), "yellow": ("lemon", "golden"),
    "white": ("ivory", "alabaster"), "pink": ("flamingo", "carnation"), "purple": ("lavender", "plum"),
    "blue": ("cobalt", "ultramarine"), "green": ("emerald", "jade"), "brown": ("coffee", "hazel"),
    "black": ("dark", "inky"),
}
PARAPHRASE_CENTRE_WORDS = ("heart", "eye", "core")
PARAPHRASE_PETAL_WORDS = ("rays", "lobes")
PARAPHRASE_FLOWER_WORDS = ("blossom", "wildflower")
PARAPHRASE_SHAPE_WORDS = {"round": ("blunt", "circular"), "pointed": ("spiky", "tapered")}
PARAPHRASE_SIZE_WORDS = {"small": ("petite", "miniature"), "medium": ("average", "modest"),
                         "large": ("huge", "giant")}
PARAPHRASE_COUNT_WORDS = {n: str(n) for n in COUNT_WORDS}  # digits: the training captions spell numbers out
PARAPHRASE_TEMPLATES = (
    "pictured is a {petal} {flower} with a {centre} {center}",
    "{petals} of {petal} encircle its {centre} {center}",
    "a {size} {petal} {flower} whose {center} looks {centre}",
    "{count} {shape} {petals}, each one {petal}, around a {centre} {center}",
    "you can see a {petal} {flower} with a {centre} {center}",
    "its {petals} are {petal} while its {center} is {centre}",
    "{petal} {petals} framing a {centre} {center}",
    "a {flower} in {petal}, {centre} at the {center}",
    "this {size} {flower} shows {count} {petal} {petals} and a {centre} {center}",
    "a {centre} {center} inside a {petal} {flower}",
    "{petal} all over, except for a {centre} {center}",
    "the {flower}'s {petals} look {petal}; the {center} is a deep {centre}",
)


def default_dirname(num_images: int = DEFAULT_IMAGES, seed: int = 0) -> str:
    """``synthetic_flowers`` for the default set, ``synthetic_flowers_<N>[_seed<S>]`` otherwise."""
    name = NAME if num_images == DEFAULT_IMAGES else f"{NAME}_{num_images}"
    return name if seed == 0 else f"{name}_seed{seed}"


def sample_attributes(num_images: int, seed: int) -> pd.DataFrame:
    """One row of attributes per image; the colour pair is uniform over pairs whose two colours differ."""
    rng = np.random.default_rng([seed, 0])
    pairs = [(p, c) for p in PETAL_COLOURS for c in CENTRE_COLOURS if p != c]
    chosen = rng.integers(len(pairs), size=num_images)
    return pd.DataFrame({
        "image_idx": np.arange(num_images),
        "petal_colour": [pairs[i][0] for i in chosen],
        "centre_colour": [pairs[i][1] for i in chosen],
        "petal_count": rng.choice(PETAL_COUNTS, size=num_images),
        "petal_shape": rng.choice(PETAL_SHAPES, size=num_images),
        "flower_size": rng.choice(list(FLOWER_SIZES), size=num_images),
    })


def assign_splits(attributes: pd.DataFrame, seed: int) -> np.ndarray:
    """``compositional`` for the held-out colour pairs; the rest ``train`` / ``test`` / ``paraphrase`` at random."""
    rng = np.random.default_rng([seed, 1])
    pairs = set(COMPOSITIONAL_PAIRS)
    held_out = np.array([(p, c) in pairs for p, c in zip(attributes.petal_colour, attributes.centre_colour)])
    split = np.where(held_out, "compositional", "train").astype(object)
    test = (rng.random(len(attributes)) < TEST_FRACTION) & ~held_out
    split[test] = "test"
    # A stream of its own, so the test images are the same as before the paraphrase split existed.
    paraphrase = (np.random.default_rng([seed, 3]).random(len(attributes)) < PARAPHRASE_FRACTION) & (split == "train")
    split[paraphrase] = "paraphrase"
    return split


def _words(split: str) -> dict:
    """The templates and word lists the captions of ``split`` are written with."""
    if split == "paraphrase":
        return {"templates": PARAPHRASE_TEMPLATES, "colour": PARAPHRASE_COLOUR_WORDS,
                "center": PARAPHRASE_CENTRE_WORDS, "petals": PARAPHRASE_PETAL_WORDS,
                "flower": PARAPHRASE_FLOWER_WORDS, "shape": PARAPHRASE_SHAPE_WORDS,
                "size": PARAPHRASE_SIZE_WORDS, "count": PARAPHRASE_COUNT_WORDS, "plain_share": 0.0}
    return {"templates": TEMPLATES, "colour": COLOUR_WORDS, "center": CENTRE_WORDS, "petals": PETAL_WORDS,
            "flower": FLOWER_WORDS, "shape": SHAPE_WORDS, "size": SIZE_WORDS, "count": COUNT_WORDS,
            "plain_share": 0.5}


def _colour_word(rng: np.random.Generator, words: dict, colour: str) -> str:
    """The plain name (with probability ``plain_share``) or any of the colour's words."""
    synonyms = words["colour"][colour]
    return synonyms[0] if rng.random() < words["plain_share"] else str(rng.choice(synonyms))


def make_captions(attributes: pd.DataFrame, splits: np.ndarray, seed: int) -> pd.DataFrame:
    """``CAPTIONS_PER_IMAGE`` captions per image from distinct templates with varied synonyms (the paraphrase
    split's from its own templates and words)."""
    rng = np.random.default_rng([seed, 2])
    rows = []
    for row, split in zip(attributes.itertuples(index=False), splits):
        words = _words(split)
        for template in rng.choice(words["templates"], size=CAPTIONS_PER_IMAGE, replace=False):
            text = template.format(
                petal=_colour_word(rng, words, row.petal_colour), centre=_colour_word(rng, words, row.centre_colour),
                center=rng.choice(words["center"]), petals=rng.choice(words["petals"]),
                flower=rng.choice(words["flower"]), count=words["count"][int(row.petal_count)],
                shape=rng.choice(words["shape"][row.petal_shape]), size=rng.choice(words["size"][row.flower_size]),
            )
            text = re.sub(r"\ba (?=[aeiou])", "an ", text)  # "an orange centre"
            rows.append((row.image_idx, split, text + ("." if rng.random() < 0.5 else "")))
    captions = pd.DataFrame(rows, columns=["image_idx", "split", "text"])
    captions.insert(0, "caption_id", np.arange(len(captions)))
    return captions


def _render(out: Path, attributes: pd.DataFrame, sizes, seed: int, workers: int, progress: bool) -> None:
    """Draw every image at every size into ``images_<size>.npy`` (atomically, in parallel chunks)."""
    from tqdm.auto import tqdm

    arrays = store.ImageArrays(out, len(attributes), sizes)
    rows = list(attributes[list(ATTRIBUTES)].itertuples(index=False, name=None))
    paths = {size: str(path) for size, path in arrays.partial.items()}
    chunk = max(1, min(250, -(-len(rows) // (4 * workers))))  # several chunks per worker, to share the load
    tasks = [(paths, start, min(start + chunk, len(rows)), rows[start:start + chunk], seed)
             for start in range(0, len(rows), chunk)]
    bar = tqdm(total=len(rows), desc=f"drawing {NAME}", unit="img", disable=not progress)
    if workers > 1:
        # spawn, not fork: the parent may have TensorFlow loaded, whose threads do not survive a fork.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for done in pool.imap_unordered(render_chunk, tasks):
                bar.update(done)
    else:
        for task in tasks:
            bar.update(render_chunk(task))
    bar.close()
    arrays.commit()


def _check_same_dataset(out: Path, meta: dict, num_images: int, seed: int) -> None:
    made = meta.get("made_by", {})
    if meta.get("name") != NAME or meta.get("num_images") != num_images or made.get("seed") != seed:
        raise FileExistsError(
            f"{out} already holds a different prepared dataset ({meta.get('name')}, "
            f"{meta.get('num_images')} images, seed {made.get('seed')}); it is left untouched. "
            f"Choose another --out, or delete that directory to rebuild it."
        )


def build(out, num_images: int = DEFAULT_IMAGES, sizes=DEFAULT_SIZES, seed: int = 0, workers: int | None = None,
          progress: bool = True) -> store.Summary:
    """Make (or complete) the dataset in ``out``. A finished dataset with every size asked for is left as is."""
    out = Path(out)
    sizes = tuple(sorted({int(s) for s in sizes}))
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if num_images >= 2_000 else 1
    summary = store.Summary(NAME)
    meta = store.read_meta(out)
    if meta is not None:
        _check_same_dataset(out, meta, num_images, seed)
        missing = tuple(s for s in sizes if s not in meta["sizes"])
        if meta.get("captions_version") != CAPTIONS_VERSION:
            meta = _rewrite_captions(out, meta, seed)
            summary.counts.update(captions_rewritten=meta["num_captions"])
        summary.counts.update(images=num_images, captions=meta["num_captions"], sizes_added=len(missing))
        if missing:  # same seed, same flowers: draw only the new sizes
            attributes = pd.read_csv(out / "attributes.csv")
            _render(out, attributes, missing, seed, workers, progress)
            store.write_meta(out, {**meta, "sizes": sorted(set(meta["sizes"]) | set(missing))})
        return summary

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    attributes = sample_attributes(num_images, seed)
    splits = assign_splits(attributes, seed)
    captions = make_captions(attributes, splits, seed)
    _render(out, attributes, sizes, seed, workers, progress)
    store.atomic_write_csv(out / "captions.csv", captions)
    store.atomic_write_csv(out / "attributes.csv", attributes)
    split_counts = pd.Series(splits).value_counts()
    summary.counts.update(images=num_images, captions=len(captions),
                          **{f"{split}_images": int(n) for split, n in split_counts.items()})
    store.write_meta(out, {
        "name": NAME,
        "num_images": num_images,
        "num_captions": len(captions),
        "captions_version": CAPTIONS_VERSION,
        "sizes": list(sizes),
        "attributes": list(ATTRIBUTES),
        "attribute_values": {
            "petal_colour": list(PETAL_COLOURS), "centre_colour": list(CENTRE_COLOURS),
            "petal_count": [str(n) for n in PETAL_COUNTS], "petal_shape": list(PETAL_SHAPES),
            "flower_size": list(FLOWER_SIZES),
        },
        "mismatch_by": ["petal_colour", "centre_colour"],
        "attribute_words": attribute_words(),
        "splits": {split: int(n) for split, n in split_counts.items()},
        "compositional_pairs": [list(p) for p in COMPOSITIONAL_PAIRS],
        "sources": [],
        "made_by": {"command": "python -m data_prep synthetic_flowers", "seed": seed,
                    "captions_per_image": CAPTIONS_PER_IMAGE, "templates": _template_counts(),
                    "seconds": round(time.perf_counter() - start, 1)},
        **summary.as_meta(),
    })
    return summary


def attribute_words() -> dict:
    """The words by which a caption names each attribute that not every caption names (meta.json's
    ``attribute_words``): a GAN-CLS near miss in the petal shape takes a caption that says the shape."""
    tables = {"petal_count": (COUNT_WORDS, PARAPHRASE_COUNT_WORDS),
              "petal_shape": (SHAPE_WORDS, PARAPHRASE_SHAPE_WORDS), "flower_size": (SIZE_WORDS, PARAPHRASE_SIZE_WORDS)}
    return {attribute: sorted({word for table in pair for words in table.values()
                               for word in ((words,) if isinstance(words, str) else words)})
            for attribute, pair in tables.items()}


def _template_counts() -> dict:
    return {"train_test_compositional": len(TEMPLATES), "paraphrase": len(PARAPHRASE_TEMPLATES)}


def _rewrite_captions(out: Path, meta: dict, seed: int) -> dict:
    """Bring the captions and splits of a dataset made by an older ``data_prep`` up to ``CAPTIONS_VERSION``.

    The images and attributes depend only on the seed, so they are kept; ``meta.json`` is written last, so a run
    killed in between is redone next time. Cached embeddings of the old captions are detected as stale by their
    caption hash (``python -m data_prep embed`` makes them again).
    """
    attributes = sample_attributes(int(meta["num_images"]), seed)
    on_disk = pd.read_csv(out / "attributes.csv")
    if not on_disk[list(ATTRIBUTES)].astype(str).equals(attributes[list(ATTRIBUTES)].astype(str)):
        raise ValueError(f"{out / 'attributes.csv'} does not match the flowers of seed {seed}: the captions cannot "
                         f"be rewritten. Delete {out} and run `python -m data_prep {NAME}` to rebuild it.")
    splits = assign_splits(attributes, seed)
    captions = make_captions(attributes, splits, seed)
    store.atomic_write_csv(out / "captions.csv", captions)
    meta = {**meta, "num_captions": len(captions), "captions_version": CAPTIONS_VERSION,
            "attribute_words": attribute_words(),
            "splits": {split: int(n) for split, n in pd.Series(splits).value_counts().items()},
            "made_by": {**meta.get("made_by", {}), "templates": _template_counts()}}
    store.write_meta(out, meta)
    return meta


def ensure(data_dir, num_images: int, sizes=DEFAULT_SIZES, seed: int = 0) -> Path:
    """The prepared dataset of ``num_images`` flowers under ``data_dir``, made if missing (idempotent).

    Different sizes and seeds live in different directories (see ``default_dirname``), so they never
    overwrite each other; the default 10,000-image set is ``<data_dir>/synthetic_flowers``. A dataset whose
    captions an older ``data_prep`` wrote (``captions_version`` in meta.json) gets the current captions.
    """
    out = Path(data_dir) / default_dirname(num_images, seed)
    meta = store.read_meta(out)
    if meta is not None:
        _check_same_dataset(out, meta, num_images, seed)  # e.g. 1,200 flowers written where 10,000 belong
    if meta is None or not set(sizes) <= set(meta["sizes"]) or meta.get("captions_version") != CAPTIONS_VERSION:
        build(out, num_images, sizes, seed, progress=num_images >= 2_000)
    return out


def _discard_partial(out: Path) -> None:
    """Remove temporary files a killed run left behind (they are never mistaken for data: see store)."""
    for path in out.glob(f"*{store.PARTIAL}"):
        path.unlink()
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="directory to write (default: <data dir>/synthetic_flowers, or "
                             "synthetic_flowers_<N> for another --num-images)")
    parser.add_argument("--num-images", type=int, default=DEFAULT_IMAGES, help="how many flowers (default 10000)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="square image sizes in pixels to write (default 32 64 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same dataset (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="drawing processes (default: 2 for large sets, 1 for small)")


def run(args: argparse.Namespace) -> int:
    from t2ilib.config import data_dir

    if args.num_images < 1 or any(s < 8 for s in args.sizes):
        raise ValueError(f"--num-images must be >= 1 and --sizes >= 8 (got {args.num_images}, {args.sizes}): "
                         f"pass a positive count and sizes of 8 pixels or more")
    out = args.out or data_dir() / default_dirname(args.num_images, args.seed)
    start = time.perf_counter()
    try:
        summary = build(out, args.num_images, args.sizes, args.seed, workers=args.workers)
    except BaseException:
        _discard_partial(Path(out))
        raise
    summary.counts["seconds"] = round(time.perf_counter() - start, 1)
    summary.report(Path(out))
    return 0
