"""Stand-in flowers102 and cifar10 datasets: tiny raw files in the published layouts, prepared by data_prep.

    python -m tools.standins --data-dir /tmp/standins        # writes <dir>/raw/<name>, then <dir>/<name>

The Oxford-102 label and split files are the real ones (tests/fixtures/oxford102); the images are a few drawn JPEGs
and the captions Reed-style text_c10/ files, so `python -m data_prep flowers102 --no-download` runs its real code
on them. CIFAR-10 is a cifar-10-python.tar.gz of pickled batches as Toronto publishes it. The tests and
`make test-datasets` run the notebooks on these in fast mode: the real-data path, small enough for CI.
"""

from __future__ import annotations

import argparse
import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.io import loadmat

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "oxford102"
SIZES = (32, 64)  # fast mode trains at 32 px; notebooks 05 and 06 also use 64
FLOWER_CLASSES = 16  # the first classes of imagelabels.mat, split 8 / 4 / 4 between train, val and test
IMAGES_PER_CLASS = 40  # the fewest any Oxford class has; 320 train images fill notebook 04's probe batch of 256
COLOURS = ("red", "yellow", "white", "purple", "pink", "orange", "blue", "green")
CIFAR_TRAIN_PER_BATCH, CIFAR_TEST = 64, 32


def _jpeg(rng: np.random.Generator, colour: str, side: int = 72) -> bytes:
    """A blob of ``colour`` on a noisy green background: enough structure for the image pipeline, no more."""
    background = rng.integers(20, 90, (side, side, 3), dtype=np.uint8)
    background[..., 1] += 60
    image = Image.fromarray(background)
    radius = int(rng.integers(side // 5, side // 3))
    centre = rng.integers(radius, side - radius, 2)
    ImageDraw.Draw(image).ellipse([*(centre - radius), *(centre + radius)], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def write_flowers102_raw(source: Path, seed: int = 0) -> Path:
    """The real .mat files, jpg/ with a few images of the first classes, cvpr2016_flowers/ with text_c10/."""
    rng = np.random.default_rng(seed)
    source.mkdir(parents=True, exist_ok=True)
    for name in ("imagelabels.mat", "setid.mat"):
        shutil.copy(FIXTURES / name, source / name)
    labels = loadmat(FIXTURES / "imagelabels.mat")["labels"].ravel()
    (source / "jpg").mkdir(exist_ok=True)
    reed = source / "cvpr2016_flowers"
    for label in range(1, FLOWER_CLASSES + 1):
        folder = reed / "text_c10" / f"class_{label:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = COLOURS[(label - 1) % len(COLOURS)]
        for number in np.flatnonzero(labels == label)[:IMAGES_PER_CLASS] + 1:
            stem = f"image_{number:05d}"
            (source / "jpg" / f"{stem}.jpg").write_bytes(_jpeg(rng, colour))
            captions = [f"this flower has {colour} petals", f"a {colour} flower with a green stem",
                        f"the petals of this flower are {colour}", f"a round {colour} flower",
                        f"this {colour} flower is seen from above"] * 2  # Reed's ten per image
            (folder / f"{stem}.txt").write_text("\n".join(captions) + "\n", encoding="utf-8")
    # Reed's class lists name all 102 classes; only the first FLOWER_CLASSES have images here.
    split = {c: "train" if c <= FLOWER_CLASSES // 2 else "val" if c <= 3 * FLOWER_CLASSES // 4
             else "test" if c <= FLOWER_CLASSES else ("train", "val", "test")[c % 3] for c in range(1, 103)}
    for name in ("train", "val", "test"):
        lines = [f"class_{c:05d}" for c, s in split.items() if s == name]
        (reed / f"{name}classes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return source


def write_cifar10_raw(source: Path, seed: int = 0) -> Path:
    """cifar-10-python.tar.gz: cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta, pickled."""
    rng = np.random.default_rng(seed)
    source.mkdir(parents=True, exist_ok=True)

    def batch(count: int, name: str) -> bytes:
        labels = [int(i) % 10 for i in range(count)]
        planes = rng.integers(0, 255, (count, 3, 32, 32), dtype=np.uint8)
        for i, label in enumerate(labels):  # a class-coloured square, so classes differ in the images too
            planes[i, label % 3, 8:24, 8:24] = 255
        return pickle.dumps({b"batch_label": name.encode(), b"labels": labels,
                             b"data": planes.reshape(count, 3072), b"filenames": [b"x.png"] * count})

    files = {f"data_batch_{i}": batch(CIFAR_TRAIN_PER_BATCH, f"training batch {i} of 5") for i in range(1, 6)}
    files["test_batch"] = batch(CIFAR_TEST, "testing batch 1 of 1")
    files["batches.meta"] = pickle.dumps({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                                                           b"dog", b"frog", b"horse", b"ship", b"truck"]})
    with tarfile.open(source / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return source


def build(data_dir, datasets=("flowers102", "cifar10")) -> dict[str, Path]:
    """Write the raw stand-ins under ``data_dir``/raw, then prepare each with `python -m data_prep`, offline."""
    from data_prep.__main__ import main

    data_dir = Path(data_dir)
    writers = {"flowers102": write_flowers102_raw, "cifar10": write_cifar10_raw}
    prepared = {}
    for name in datasets:
        source, out = data_dir / "raw" / name, data_dir / name
        writers[name](source)
        sizes = [str(s) for s in SIZES]
        download = ["--no-download"] if name != "cifar10" else []  # cifar10 reads --source when it is there
        main([name, "--out", str(out), "--source", str(source), *download, "--sizes", *sizes])
        prepared[name] = out
    return prepared


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="where raw/<name> and <name> are written")
    parser.add_argument("--datasets", nargs="+", default=["flowers102", "cifar10"], choices=["flowers102", "cifar10"])
    args = parser.parse_args(argv)
    build(args.data_dir, args.datasets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
