"""synthetic_flowers: procedurally drawn flowers with known attributes and Oxford-style captions (no download).

Every image has a petal colour, a centre colour, a petal count, a petal shape and a size; five captions per
image describe it in varied words and orders, always naming the petal and centre colours. Because the
attributes are known, whether a generated image matches its caption can be measured. Splits: ``train``,
``test`` and ``compositional`` (petal/centre colour pairs that never occur in training).

    python -m data_prep synthetic_flowers --out data/synthetic_flowers            # 10,000 images, 32/64/128 px
    data_prep.synthetic.ensure(session.data_dir, session.preset.num_images)      # from a notebook
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
ATTRIBUTES = ("petal_colour", "centre_colour", "petal_count", "petal_shape", "flower_size")
# (petal colour, centre colour) pairs kept out of train and test: the compositional split. Each colour is held
# out at most once, so the model sees every colour in training, just never these combinations.
COMPOSITIONAL_PAIRS = (("red", "black"), ("orange", "green"), ("yellow", "brown"),
                       ("pink", "white"), ("purple", "yellow"), ("blue", "orange"))

# Words the captions use for each attribute value, to vary the wording like human captions do.
CENTRE_WORDS = ("center", "centre", "middle")
SHAPE_WORDS = {"round": ("round", "rounded", "oval"), "pointed": ("pointed", "pointy", "sharp")}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "medium": ("medium-sized", "medium", "mid-sized"),
              "large": ("large", "big")}
COUNT_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
# Every template names {petal} and {centre}: the GANs are scored on those two.
TEMPLATES = (
    "this flower has {count} {shape} {petal} petals and a {centre} {center}",
    "a {petal} flower with a {centre} {center}",
    "the petals of this flower are {petal} and the {center} is {centre}",
    "this {size} flower has {shape} petals that are {petal} and a {centre} {center}",
    "a {size} {petal} flower with {count} petals and a {centre} {center}",
    "{count} {petal} petals surround a {centre} {center}",
    "this flower is {petal} in color, with {shape} petals and a {centre} {center}",
    "the flower has {petal} petals with {shape} tips and a {centre} colored {center}",
    "the {center} of this flower is {centre} and it is surrounded by {count} {petal} petals",
    "a {centre} {center} sits among {shape} {petal} petals on this {size} flower",
    "this flower has {petal} petals and a {center} that is {centre}",
    "{shape} {petal} petals with a {centre} {center}",
    "a {size} flower with {count} {petal} petals that are {shape} and a {centre} {center}",
    "this {petal} flower has {count} petals, {shape} at the tips, and a {centre} {center}",
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
    """``compositional`` for the held-out colour pairs; the rest ``train`` / ``test`` at random."""
    rng = np.random.default_rng([seed, 1])
    pairs = set(COMPOSITIONAL_PAIRS)
    held_out = np.array([(p, c) in pairs for p, c in zip(attributes.petal_colour, attributes.centre_colour)])
    split = np.where(held_out, "compositional", "train").astype(object)
    test = (rng.random(len(attributes)) < TEST_FRACTION) & ~held_out
    split[test] = "test"
    return split


def make_captions(attributes: pd.DataFrame, splits: np.ndarray, seed: int) -> pd.DataFrame:
    """``CAPTIONS_PER_IMAGE`` captions per image from distinct templates with varied synonyms."""
    rng = np.random.default_rng([seed, 2])
    rows = []
    for row, split in zip(attributes.itertuples(index=False), splits):
        for template in rng.choice(TEMPLATES, size=CAPTIONS_PER_IMAGE, replace=False):
            text = template.format(
                petal=row.petal_colour, centre=row.centre_colour, center=rng.choice(CENTRE_WORDS),
                count=COUNT_WORDS[int(row.petal_count)], shape=rng.choice(SHAPE_WORDS[row.petal_shape]),
                size=rng.choice(SIZE_WORDS[row.flower_size]),
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
        "sizes": list(sizes),
        "attributes": list(ATTRIBUTES),
        "attribute_values": {
            "petal_colour": list(PETAL_COLOURS), "centre_colour": list(CENTRE_COLOURS),
            "petal_count": [str(n) for n in PETAL_COUNTS], "petal_shape": list(PETAL_SHAPES),
            "flower_size": list(FLOWER_SIZES),
        },
        "mismatch_by": ["petal_colour", "centre_colour"],
        "splits": {split: int(n) for split, n in split_counts.items()},
        "compositional_pairs": [list(p) for p in COMPOSITIONAL_PAIRS],
        "sources": [],
        "made_by": {"command": "python -m data_prep synthetic_flowers", "seed": seed,
                    "captions_per_image": CAPTIONS_PER_IMAGE, "seconds": round(time.perf_counter() - start, 1)},
        **summary.as_meta(),
    })
    return summary


def ensure(data_dir, num_images: int, sizes=DEFAULT_SIZES, seed: int = 0) -> Path:
    """The prepared dataset of ``num_images`` flowers under ``data_dir``, made if missing (idempotent).

    Different sizes and seeds live in different directories (see ``default_dirname``), so they never
    overwrite each other; the default 10,000-image set is ``<data_dir>/synthetic_flowers``.
    """
    out = Path(data_dir) / default_dirname(num_images, seed)
    meta = store.read_meta(out)
    if meta is not None:
        _check_same_dataset(out, meta, num_images, seed)  # e.g. 1,200 flowers written where 10,000 belong
    if meta is None or not set(sizes) <= set(meta["sizes"]):
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
