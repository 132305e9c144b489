"""cifar10: CIFAR-10 (60,000 photos, 10 classes, 32x32) with captions made from the class name.

Read from cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/) in --source if there, else loaded with
keras.datasets.cifar10 (downloaded once into ~/.keras/datasets). Five captions per image from
templates ("a photo of a cat", "a blurry photo of a cat", ...): the text carries only the class, which is what
source project C trained on. Splits: CIFAR's 10,000 test images are test; of its 50,000 training images a
seeded 5,000 are val, the rest train. Sizes above 32 are upsampled (bicubic) and stay blurry: no detail is added.

  python -m data_prep cifar10 --out data/cifar10 --sizes 32 64
  python -m data_prep cifar10 --source ~/Downloads --out data/cifar10
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from data_prep import archives, captioned, store

NAME = "cifar10"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # what keras.datasets.cifar10 downloads
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TEMPLATES = ("a photo of {a} {name}", "a blurry photo of {a} {name}", "a close-up photo of the {name}",
             "a small {name} in a picture", "a low-resolution photo of {a} {name}")
VAL_IMAGES = 5_000
DEFAULT_SIZES = (32, 64)


ARCHIVE = "cifar-10-python.tar.gz"
BATCHES = "cifar-10-batches-py"


class _ArraysOnly(pickle.Unpickler):
    """CIFAR-10's batches are pickles (the published python layout): read them, but build nothing from the file
    but dicts, lists, bytes, numbers and NumPy arrays, so a tampered batch cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} in a CIFAR-10 batch: not an array; the file is not the "
                                         "published cifar-10-python.tar.gz (download it again)")
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch of the published python layout: b"data" [N, 3072] (RGB planes), b"labels" [N]."""
    with open(path, "rb") as file:
        batch = _ArraysOnly(file, encoding="bytes").load()
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch[b"labels"], dtype=np.int64).reshape(-1, 1)


def load_local(source: Path):
    """The arrays from ``source``'s cifar-10-batches-py/ (extracted from cifar-10-python.tar.gz if needed), or None."""
    folder = captioned.find_dir(source, BATCHES, marker="test_batch")
    if folder is None and (source / ARCHIVE).is_file():
        folder = captioned.find_dir(archives.extract(source / ARCHIVE, source / "cifar-10-python"), BATCHES,
                                    marker="test_batch")
    if folder is None:
        return None
    batches = sorted(folder.glob("data_batch_*"))
    if not batches:
        raise ValueError(f"{folder} has a test_batch but no data_batch_1..5: is it the python version of CIFAR-10?")
    train = [_read_batch(path) for path in batches]
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])), _read_batch(
        folder / "test_batch")


def load_arrays(source: Path | None = None):
    """((x_train, y_train), (x_test, y_test)) as keras.datasets.cifar10 returns them, from ``source`` if there."""
    local = load_local(source) if source is not None and source.is_dir() else None
    if local is not None:
        return local
    import keras

    return keras.datasets.cifar10.load_data()


def captions_for(name: str) -> list[str]:
    article = "an" if name[0] in "aeiou" else "a"
    return [template.format(a=article, name=name) for template in TEMPLATES]


def prepare(out: Path, sizes=DEFAULT_SIZES, seed: int = 0, progress: bool = True,
            source: Path | None = None) -> store.Summary:
    from tqdm.auto import tqdm

    summary = store.Summary(NAME)
    if store.already_prepared(out, NAME, sizes):
        return summary
    (x_train, y_train), (x_test, y_test) = load_arrays(source)
    images = np.concatenate([x_train, x_test])
    labels = np.concatenate([y_train, y_test]).ravel()
    if images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
        raise ValueError(f"keras.datasets.cifar10 returned images {images.shape} and labels {labels.shape}; "
                         f"expected [N, 32, 32, 3] and [N]. Delete ~/.keras/datasets/cifar-10-batches-py and retry")
    split = np.array(["train"] * len(x_train) + ["test"] * len(x_test), dtype=object)
    val = np.random.default_rng(seed).choice(len(x_train), size=min(VAL_IMAGES, len(x_train) // 10), replace=False)
    split[val] = "val"

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    arrays = store.ImageArrays(out, len(images), sizes)
    for index in tqdm(range(len(images)), desc=f"preparing {NAME}", unit="img", disable=not progress):
        image = Image.fromarray(images[index])
        arrays[index] = {s: images[index] if s == 32 else np.asarray(image.resize((s, s), Image.BICUBIC))
                         for s in sizes}
    arrays.commit()

    names = [CLASSES[int(label)] for label in labels]
    texts = {name: captions_for(name) for name in CLASSES}
    captions = pd.DataFrame([(i, split[i], text) for i, name in enumerate(names) for text in texts[name]],
                            columns=["image_idx", "split", "text"])
    captions.insert(0, "caption_id", np.arange(len(captions)))
    cifar_split = ["train"] * len(x_train) + ["test"] * len(x_test)
    attributes = pd.DataFrame({"image_idx": np.arange(len(images)), "label": names, "cifar_split": cifar_split})
    store.atomic_write_csv(out / "captions.csv", captions)
    store.atomic_write_csv(out / "attributes.csv", attributes)
    counts = pd.Series(split).value_counts()
    summary.counts.update(images=len(images), captions=len(captions),
                          **{f"{s}_images": int(n) for s, n in counts.items()})
    store.write_meta(out, {
        "name": NAME, "num_images": len(images), "num_captions": len(captions), "sizes": sorted(sizes),
        "attributes": ["label", "cifar_split"], "mismatch_by": ["label"],
        "splits": {s: int(n) for s, n in counts.items()}, "classes": list(CLASSES),
        "sources": [{"file": "cifar-10-python.tar.gz", "url": URL, "via": "keras.datasets.cifar10"}],
        "made_by": {"command": "python -m data_prep cifar10", "seed": seed, "templates": list(TEMPLATES),
                    "seconds": round(time.perf_counter() - start, 1)},
        **summary.as_meta(),
    })
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    store.add_output_arguments(parser, NAME, DEFAULT_SIZES)
    parser.add_argument("--seed", type=int, default=0, help="seed of the val split drawn from CIFAR's train set")
    parser.add_argument("--source", type=Path, default=None,
                        help=f"folder with {ARCHIVE} or its extracted {BATCHES}/ (default: keras.datasets.cifar10)")


def run(args: argparse.Namespace) -> int:
    from t2ilib.config import data_dir

    out = args.out or data_dir() / NAME
    start = time.perf_counter()
    summary = prepare(out, args.sizes, args.seed, source=args.source)
    summary.counts["seconds"] = round(time.perf_counter() - start, 1)
    summary.report(out)
    return 0
