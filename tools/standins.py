"""Stand-in flowers102, cub200 and cifar10 datasets: tiny raw files in the published layouts, prepared by data_prep.

    python -m tools.standins --data-dir /tmp/standins        # writes <dir>/raw/<name>, then <dir>/<name>

The Oxford-102 label and split files are the real ones (tests/fixtures/oxford102); the images are a few drawn JPEGs
and the captions Reed-style text_c10/ files, so `python -m data_prep flowers102 --no-download` runs its real code
on them. CUB-200 is a CUB_200_2011.tgz with the real archive's files (images/, the id tables, bounding boxes,
attributes) and a cvpr2016_cub.tar.gz of Reed's text_c10/ and class lists; each bird is a small blob somewhere in a
wider photo, so the bounding-box crop is what centres it. CIFAR-10 is a cifar-10-python.tar.gz of pickled batches
as Toronto publishes it. The tests and `make test-datasets` run the notebooks on these in fast mode: the real-data
path, small enough for CI.
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

from data_prep import archives

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "oxford102"
SIZES = (32, 64)  # fast mode trains at 32 px; notebooks 05 and 06 also use 64
FLOWER_CLASSES = 16  # the first classes of imagelabels.mat, split 8 / 4 / 4 between train, val and test
IMAGES_PER_CLASS = 40  # the fewest any Oxford class has; 320 train images fill notebook 04's probe batch of 256
COLOURS = ("red", "yellow", "white", "purple", "pink", "orange", "blue", "green")
CIFAR_TRAIN_PER_BATCH, CIFAR_TEST = 64, 32
# The first CUB species as classes.txt names them, split 8 / 4 / 4 between Reed's train, val and test class lists.
CUB_CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross", "004.Groove_billed_Ani",
               "005.Crested_Auklet", "006.Least_Auklet", "007.Parakeet_Auklet", "008.Rhinoceros_Auklet",
               "009.Brewer_Blackbird", "010.Red_winged_Blackbird", "011.Rusty_Blackbird",
               "012.Yellow_headed_Blackbird", "013.Bobolink", "014.Indigo_Bunting", "015.Lazuli_Bunting",
               "016.Painted_Bunting")
BIRDS_PER_CLASS = 40  # as the flowers: 320 train images fill notebook 04's probe batch of 256
# One of CUB's 28 attribute groups (has_primary_color, its 15 values) stands in for all 312 attributes.
CUB_COLOURS = ("blue", "brown", "iridescent", "purple", "rufous", "grey", "yellow", "olive", "green", "pink",
               "orange", "black", "white", "red", "buff")
CUB_PAINT = {"iridescent": "teal", "rufous": "sienna", "olive": "olive", "buff": "wheat", "grey": "grey"}


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


def _bird_photo(rng: np.random.Generator, colour: str, width: int = 120, height: int = 90):
    """A small bird (body, head, beak) of ``colour`` somewhere on a sky-and-foliage photo, and its bounding box."""
    sky = np.zeros((height, width, 3), np.uint8)
    sky[...] = (rng.integers(90, 140), rng.integers(140, 190), rng.integers(190, 240))
    sky = np.clip(sky.astype(int) + rng.integers(-20, 20, sky.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(sky)
    draw = ImageDraw.Draw(image)
    w, h = int(rng.integers(26, 36)), int(rng.integers(18, 26))
    margin = 30  # > 0.75 x the box's larger side: data_prep's 1.5x square crop stays inside the photo
    x = int(rng.integers(margin, width - margin)) - (w + 4) // 2
    y = int(rng.integers(margin, height - margin)) - h // 2
    paint = CUB_PAINT.get(colour, colour)
    draw.ellipse([x, y + h // 3, x + w, y + h], fill=paint)                                  # body
    draw.ellipse([x + w - h // 2, y, x + w, y + h // 2], fill=paint)                        # head
    draw.polygon([(x + w, y + h // 5), (x + w + 4, y + h // 4), (x + w, y + h // 3)], fill="black")   # beak
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue(), (float(x), float(y), float(w + 4), float(h))


def write_cub200_raw(source: Path, seed: int = 0) -> Path:
    """CUB_200_2011.tgz (images/, images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt,
    classes.txt, attributes/ and the top-level attributes.txt beside CUB_200_2011/, as the real archive has them)
    and cvpr2016_cub.tar.gz (Reed's text_c10/<class>/<image>.txt and the class lists)."""
    rng = np.random.default_rng(seed)
    source.mkdir(parents=True, exist_ok=True)
    cub, reed = {}, {}
    tables = {name: [] for name in ("images", "image_class_labels", "train_test_split", "bounding_boxes")}
    labels, image_id = [], 0
    for class_id, name in enumerate(CUB_CLASSES, start=1):
        colour = CUB_COLOURS[(class_id - 1) % len(CUB_COLOURS)]
        species = name.split(".", 1)[1]
        for k in range(BIRDS_PER_CLASS):
            image_id += 1
            relative = f"{name}/{species}_{k + 1:04d}_{100 + image_id}.jpg"  # CUB's <species>_<nr>_<photo id>.jpg
            cub[f"CUB_200_2011/images/{relative}"], box = _bird_photo(rng, colour)
            tables["images"].append(f"{image_id} {relative}")
            tables["image_class_labels"].append(f"{image_id} {class_id}")
            tables["train_test_split"].append(f"{image_id} {int(k % 2 == 0)}")
            tables["bounding_boxes"].append(f"{image_id} " + " ".join(f"{v:.1f}" for v in box))
            labels.append((image_id, colour))
            captions = [f"this bird has a {colour} body and a short pointed beak", f"a small {colour} bird",
                        f"this bird is mostly {colour} with a black bill", f"a {colour} bird with a round head",
                        f"the wings and crown of this bird are {colour}"] * 2  # Reed's ten per image
            reed[f"cvpr2016_cub/text_c10/{Path(relative).with_suffix('.txt')}"] = ("\n".join(captions) + "\n").encode()
    for name, lines in tables.items():
        cub[f"CUB_200_2011/{name}.txt"] = ("\n".join(lines) + "\n").encode()
    cub["CUB_200_2011/classes.txt"] = "".join(f"{i} {c}\n" for i, c in enumerate(CUB_CLASSES, 1)).encode()
    # The attribute files: names in attributes.txt (outside CUB_200_2011/), per-image MTurk labels
    # <image> <attribute> <is_present> <certainty> <seconds>, certainties, per-class percentages.
    cub["attributes.txt"] = "".join(f"{i} has_primary_color::{c}\n" for i, c in enumerate(CUB_COLOURS, 1)).encode()
    cub["CUB_200_2011/attributes/certainties.txt"] = b"1 not visible\n2 guessing\n3 probably\n4 definitely\n"
    cub["CUB_200_2011/attributes/image_attribute_labels.txt"] = "".join(
        f"{i} {a} {int(c == colour)} {4 if c == colour else 3} {rng.uniform(1, 9):.3f}\n"
        for i, colour in labels for a, c in enumerate(CUB_COLOURS, 1)).encode()
    cub["CUB_200_2011/attributes/class_attribute_labels_continuous.txt"] = "".join(
        " ".join("100.000000000000" if c == CUB_COLOURS[(k - 1) % len(CUB_COLOURS)] else "0.000000000000"
                 for c in CUB_COLOURS) + "\n" for k in range(1, len(CUB_CLASSES) + 1)).encode()
    cub["CUB_200_2011/README"] = b"The Caltech-UCSD Birds-200-2011 Dataset (a stand-in: tools/standins.py)\n"
    quarter = len(CUB_CLASSES) // 4
    lists = {"train": CUB_CLASSES[: 2 * quarter], "val": CUB_CLASSES[2 * quarter : 3 * quarter],
             "test": CUB_CLASSES[3 * quarter :]}
    lists["trainval"], lists["all"] = lists["train"] + lists["val"], CUB_CLASSES
    for split, classes in lists.items():
        reed[f"cvpr2016_cub/{split}classes.txt"] = ("\n".join(classes) + "\n").encode()
    _tar(source / "CUB_200_2011.tgz", cub)
    _tar(source / "cvpr2016_cub.tar.gz", reed)
    # data_prep checks CUB_200_2011.tgz against Caltech's md5, which no stand-in can match: it is extracted here, by
    # data_prep's own safe extractor into the folder data_prep would use, as a student who extracted it would.
    archives.extract(source / "CUB_200_2011.tgz", source / "CUB_200_2011")
    return source


def _tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


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
    _tar(source / "cifar-10-python.tar.gz", {f"cifar-10-batches-py/{name}": data for name, data in files.items()})
    return source


DATASETS = ("flowers102", "cub200", "cifar10")


def build(data_dir, datasets=DATASETS) -> dict[str, Path]:
    """Write the raw stand-ins under ``data_dir``/raw, then prepare each with `python -m data_prep`, offline."""
    from data_prep.__main__ import main

    data_dir = Path(data_dir)
    writers = {"flowers102": write_flowers102_raw, "cub200": write_cub200_raw, "cifar10": write_cifar10_raw}
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
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    args = parser.parse_args(argv)
    build(args.data_dir, args.datasets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
