"""cub200: Caltech-UCSD Birds-200-2011 (11,788 images, 200 species) with Reed et al.'s ten captions per image.

Raw files, downloaded into --source unless already there (as archives or extracted):
  CUB_200_2011.tgz          images + images.txt, classes.txt, image_class_labels.txt, bounding_boxes.txt,
                            train_test_split.txt (Caltech data repository, md5-checked)
  cvpr2016_cub.tar.gz       Reed et al. (CVPR 2016) captions, from Google Drive
Each bird is cropped around its bounding box (a square of 1.5x the box's larger side, as StackGAN does) before
resizing: birds fill only a small part of most photos. Splits: Reed et al.'s class-disjoint train / val / test
species in captions.csv; CUB's own image split is kept in attributes.csv as cub_split.

  python -m data_prep cub200 --out data/cub200 --sizes 64 128
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_prep import captioned, download, store

NAME = "cub200"
CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_ARCHIVE = "CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"  # as published with the dataset; checked before extraction
CAPTIONS_ARCHIVE = "cvpr2016_cub.tar.gz"
CAPTIONS_DRIVE_ID = "0B0ywwgffWnLLZW9uVHNjb2JmNlE"
CAPTIONS_MD5 = None  # Reed et al. publish no checksum; meta.json records the sha256 of the archive used
DEFAULT_SIZES = (64, 128)


def _table(path: Path) -> dict[int, list[str]]:
    """CUB's metadata files: "<image id> <value> ..." per line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the CUB_200_2011 folder is incomplete; extract the archive again")
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            key, *values = line.split()
            rows[int(key)] = values
    return rows


def collect(source: Path, download_missing: bool = True, progress: bool = True):
    """The items to prepare (one per line of images.txt), the caption root and notes."""
    root = captioned.unpacked(
        source, "CUB_200_2011", CUB_ARCHIVE,
        lambda path: download.fetch(CUB_URL, path, md5=CUB_MD5, progress=progress), CUB_MD5, download_missing,
        marker="images.txt")
    images = root / "images"
    text_c10 = captioned.unpacked(
        source, "text_c10", CAPTIONS_ARCHIVE,
        lambda path: download.fetch_google_drive(CAPTIONS_DRIVE_ID, path, progress=progress),
        CAPTIONS_MD5, download_missing)
    class_split, notes = captioned.reed_class_splits(text_c10.parent, str.strip)

    files = _table(root / "images.txt")
    boxes = _table(root / "bounding_boxes.txt")
    cub_split = _table(root / "train_test_split.txt")
    items = []
    for image_id, (relative,) in files.items():
        label = relative.split("/")[0]
        if label not in class_split:
            raise ValueError(f"{label} (of {relative}) is in none of the class lists beside {text_c10}")
        items.append(captioned.Item(
            name=f"images/{relative}", image=images / relative,
            captions=text_c10 / Path(relative).with_suffix(".txt"),
            label=label, split=class_split[label],
            extra={"cub_split": "train" if cub_split[image_id][0] == "1" else "test"},
            box=tuple(float(v) for v in boxes[image_id]),
        ))
    return items, text_c10, notes


def prepare(out: Path, source: Path, sizes=DEFAULT_SIZES, download_missing: bool = True,
            progress: bool = True) -> store.Summary:
    return captioned.prepare(out, source, NAME, collect, [{"file": CUB_ARCHIVE, "url": CUB_URL, "md5": CUB_MD5}],
                             CAPTIONS_ARCHIVE, CAPTIONS_DRIVE_ID, crop="bounding box, 1.5x its larger side",
                             sizes=sizes, download_missing=download_missing, progress=progress)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    store.add_output_arguments(parser, NAME, DEFAULT_SIZES)
    store.add_source_arguments(parser, "CUB_200_2011.tgz, cvpr2016_cub.tar.gz")


def run(args: argparse.Namespace) -> int:
    return captioned.run_prepare(args, NAME, prepare)
