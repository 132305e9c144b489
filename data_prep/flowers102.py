"""flowers102: Oxford-102 Flowers (8,189 images, 102 classes) with Reed et al.'s ten captions per image.

Raw files, downloaded into --source unless already there (as archives or extracted):
  102flowers.tgz, imagelabels.mat, setid.mat   from the Oxford VGG site (md5-checked)
  cvpr2016_flowers.tar.gz                      Reed et al. (CVPR 2016) captions, from Google Drive
Splits: captions.csv uses Reed et al.'s class-disjoint train / val / test classes (the text-to-image
literature's split); the Oxford image split (setid.mat) is kept per image in attributes.csv as oxford_split.
Images are centre-cropped to a square, then resized.

  python -m data_prep flowers102 --out data/flowers102 --sizes 64 128
  python -m data_prep flowers102 --source ~/Downloads/flowers --no-download
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scipy.io import loadmat

from data_prep import captioned, download, store

NAME = "flowers102"
OXFORD_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
OXFORD_FILES = {  # published md5s (see docs/data_format.md)
    "102flowers.tgz": "52808999861908f626f3c1f4e79d11fa",
    "imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
    "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c",
}
CAPTIONS_ARCHIVE = "cvpr2016_flowers.tar.gz"
CAPTIONS_DRIVE_ID = "0B0ywwgffWnLLcms2WWJQRFNSWXM"
CAPTIONS_RESOURCE_KEY = "0-Av8zFbeDDvNcF1sSjDR32w"
CAPTIONS_MD5 = None  # Reed et al. publish no checksum; meta.json records the sha256 of the archive used
OXFORD_SPLITS = {"trnid": "train", "valid": "val", "tstid": "test"}
DEFAULT_SIZES = (64, 128)


def class_name(value) -> str:
    """Reed's folder name of a class, from "class_00007", "7" or 7."""
    text = str(value).strip()
    return text if text.startswith("class_") else f"class_{int(text):05d}"


def _fetch_oxford(name: str, progress: bool):
    return lambda path: download.fetch(OXFORD_URL + name, path, md5=OXFORD_FILES[name], progress=progress)


def _fetch_captions(progress: bool):
    return lambda path: download.fetch_google_drive(CAPTIONS_DRIVE_ID, path, resource_key=CAPTIONS_RESOURCE_KEY,
                                                    progress=progress)


def collect(source: Path, download_missing: bool = True, progress: bool = True):
    """The items to prepare (one per image listed in imagelabels.mat), the caption root and notes."""
    labels_path, setid_path = (
        captioned.obtain(source / name, _fetch_oxford(name, progress), OXFORD_FILES[name], download_missing)
        for name in ("imagelabels.mat", "setid.mat")
    )
    jpg = captioned.unpacked(source, "jpg", "102flowers.tgz", _fetch_oxford("102flowers.tgz", progress),
                             OXFORD_FILES["102flowers.tgz"], download_missing)
    text_c10 = captioned.unpacked(source, "text_c10", CAPTIONS_ARCHIVE, _fetch_captions(progress),
                                  CAPTIONS_MD5, download_missing)
    class_split, notes = captioned.reed_class_splits(text_c10.parent, class_name)

    labels = loadmat(labels_path)["labels"].ravel()
    setid = loadmat(setid_path)
    oxford_split = {int(i): split for key, split in OXFORD_SPLITS.items() for i in setid[key].ravel()}
    items = []
    for number, label in enumerate(labels, start=1):
        label = class_name(label)
        stem = f"image_{number:05d}"
        if label not in class_split:
            raise ValueError(f"{label} (of {stem}.jpg) is in none of the class lists beside {text_c10}")
        items.append(captioned.Item(
            name=f"jpg/{stem}.jpg", image=jpg / f"{stem}.jpg", captions=text_c10 / label / f"{stem}.txt",
            label=label, split=class_split[label], extra={"oxford_split": oxford_split.get(number, "none")},
        ))
    return items, text_c10, notes


def prepare(out: Path, source: Path, sizes=DEFAULT_SIZES, download_missing: bool = True,
            progress: bool = True) -> store.Summary:
    oxford = [{"file": name, "url": OXFORD_URL + name, "md5": md5} for name, md5 in OXFORD_FILES.items()]
    return captioned.prepare(out, source, NAME, collect, oxford, CAPTIONS_ARCHIVE, CAPTIONS_DRIVE_ID,
                             crop="centre square", sizes=sizes, download_missing=download_missing, progress=progress)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    store.add_output_arguments(parser, NAME, DEFAULT_SIZES)
    store.add_source_arguments(parser, "102flowers.tgz, imagelabels.mat, setid.mat, cvpr2016_flowers.tar.gz")


def run(args: argparse.Namespace) -> int:
    return captioned.run_prepare(args, NAME, prepare)
