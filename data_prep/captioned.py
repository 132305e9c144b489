"""What Oxford-102 and CUB-200 share: images with one caption file each (Reed et al., 2016), class splits.

Both datasets become a list of ``Item``s (image file, caption file, class, split); ``write`` turns the list into
a prepared dataset. Nothing is dropped silently: an unreadable image, a caption file that is missing, empty or
not UTF-8, and a caption file without an image are each counted and named in the summary and in meta.json.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from data_prep import archives, store
from data_prep import download as download_module

REED_SPLIT_FILES = {"train": "trainclasses.txt", "val": "valclasses.txt", "test": "testclasses.txt"}
REED_SPLIT_BY = "Reed et al. (2016) class lists: trainclasses.txt / valclasses.txt / testclasses.txt"


@dataclasses.dataclass
class Item:
    """One image to prepare."""

    name: str  # how reports name it, e.g. "jpg/image_00001.jpg"
    image: Path
    captions: Path
    label: str  # the class, as the caption folders name it
    split: str  # train / val / test: class-disjoint, from the Reed class lists
    extra: dict = dataclasses.field(default_factory=dict)  # more attribute columns (the dataset's own split, ...)
    box: tuple[float, float, float, float] | None = None  # x, y, width, height of the object to crop around


def find_dir(root: Path, name: str, marker: str | None = None) -> Path | None:
    """The shallowest folder called ``name`` under ``root`` (holding the file ``marker``, if given).

    Archives differ in their top folder, and users may have extracted them themselves: search, don't assume.
    """
    matches = [p for p in root.rglob(name)
               if p.is_dir() and not any(part.endswith(store.PARTIAL) for part in p.parts)
               and (marker is None or (p / marker).is_file())]
    return min(matches, key=lambda p: len(p.parts)) if matches else None


def obtain(path: Path, fetch, md5: str | None, download: bool) -> Path:
    """The raw file ``path``: verified if present, else fetched with ``fetch(path)`` unless downloads are off."""
    if path.is_file():
        try:
            download_module.verify(path, md5=md5)
        except download_module.ChecksumError as err:
            raise download_module.ChecksumError(f"{err}: delete it to download it again, or replace it with a "
                                                f"good copy") from None
        return path
    if not download:
        raise FileNotFoundError(f"{path} is missing and --no-download was given: put the file there, or "
                                f"drop --no-download to fetch it")
    return fetch(path)


def unpacked(source: Path, folder: str, archive: str, fetch, md5: str | None, download: bool,
             marker: str | None = None) -> Path:
    """The folder ``folder`` under ``source``: found if already extracted, else extracted from ``archive``."""
    found = find_dir(source, folder, marker)
    if found is not None:
        return found
    path = obtain(source / archive, fetch, md5, download)
    extracted = archives.extract(path, source / archive.split(".")[0])
    found = find_dir(extracted, folder, marker)
    if found is None:
        raise FileNotFoundError(f"{path} holds no {folder}/ folder: is it the right archive?")
    return found


def read_class_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reed_class_splits(folder: Path, normalise) -> tuple[dict[str, str], list[str]]:
    """{class: split} from the Reed class lists beside ``text_c10``, and notes on anything missing.

    Reed et al.'s archives carry trainclasses.txt / valclasses.txt / testclasses.txt (and trainvalclasses.txt)
    next to text_c10/, as the code built on them reads them; we have not seen every release, so with only
    trainvalclasses.txt + testclasses.txt the val split stays empty, and with neither we stop and say so.
    ``normalise`` maps a line of those files to the class name the caption folders use.
    """
    paths = {split: folder / name for split, name in REED_SPLIT_FILES.items()}
    notes = []
    if not paths["val"].is_file() and not paths["train"].is_file() and (folder / "trainvalclasses.txt").is_file():
        paths = {"train": folder / "trainvalclasses.txt", "test": paths["test"]}
        notes.append(f"{folder}: no trainclasses.txt/valclasses.txt, so train = trainvalclasses.txt, val empty")
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"class split files not found: {missing}. They come with the Reed et al. caption archive next to "
            f"text_c10/; use the complete archive (cvpr2016_*.tar.gz) as --source."
        )
    splits = {}
    for split, path in paths.items():
        for line in read_class_list(path):
            splits[normalise(line)] = split
    return splits, notes


def read_captions(path: Path) -> tuple[list[str] | None, str]:
    """The caption lines of one file, or (None, why not)."""
    if not path.is_file():
        return None, f"no caption file {path.name}"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"caption file {path} is not UTF-8 ({err.reason} at byte {err.start})"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None, f"caption file {path} has no captions"
    return lines, ""


def square_crop(image: Image.Image, box=None) -> Image.Image:
    """The centred square (or, given a box, the square of 1.5x the box's larger side around its centre).

    The box margin is StackGAN's: birds cropped this way fill the frame but keep some context.
    """
    width, height = image.size
    if box is None:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return image.crop((left, top, left + side, top + side))
    x, y, w, h = box
    half = max(w, h) * 0.75
    cx, cy = x + w / 2, y + h / 2
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    right, bottom = min(width, int(cx + half)), min(height, int(cy + half))
    return image.crop((left, top, right, bottom))


def load_image(path: Path, sizes, box=None) -> dict[int, np.ndarray]:
    """Decode, crop and resize one image to every size (raises OSError/ValueError if it is corrupt)."""
    with Image.open(path) as image:
        original = image.size
        image.draft("RGB", (2 * max(sizes), 2 * max(sizes)))  # JPEG: decode at a reduced scale, much faster
        scale = image.size[0] / original[0]
        image.load()  # a truncated file fails here, not later
        image = image.convert("RGB")
    if box is not None:
        box = tuple(v * scale for v in box)
    image = square_crop(image, box)
    return {s: np.asarray(image.resize((s, s), Image.LANCZOS, reducing_gap=3.0)) for s in sizes}


def report_orphan_captions(text_root: Path, items: list[Item], summary: store.Summary) -> None:
    """Caption files for which no image is listed: reported, since they point at a broken download."""
    expected = {item.captions for item in items}  # built from the same text_root, so paths compare as they are
    for path in sorted(text_root.rglob("*.txt")):
        if path not in expected:
            summary.skip(str(path.relative_to(text_root.parent)), "caption file without an image")


def write(out: Path, name: str, items: list[Item], sizes, meta: dict, summary: store.Summary,
          progress: bool = True) -> None:
    """Prepare every item that has both a readable image and captions; meta.json last."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    arrays = store.ImageArrays(out, len(items), sizes)
    attributes, captions = [], []
    for item in tqdm(items, desc=f"preparing {name}", unit="img", disable=not progress):
        if not item.image.is_file():
            summary.skip(item.name, "image file missing from the archive")
            continue
        texts, why = read_captions(item.captions)
        if texts is None:
            summary.skip(item.name, why)
            continue
        try:
            images = load_image(item.image, sizes, item.box)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
            summary.skip(item.name, f"corrupt or truncated image ({err})")
            continue
        index = len(attributes)
        arrays[index] = images
        attributes.append({"image_idx": index, "label": item.label, **item.extra, "file": item.name})
        captions += [(index, item.split, text) for text in texts]
    if not attributes:
        raise ValueError(f"{name}: no image could be prepared; the skipped files and reasons were: "
                         f"{summary.skipped[:5]} ...")
    arrays.commit(len(attributes))

    captions = pd.DataFrame(captions, columns=["image_idx", "split", "text"])
    captions.insert(0, "caption_id", np.arange(len(captions)))
    attributes = pd.DataFrame(attributes)
    store.atomic_write_csv(out / "captions.csv", captions)
    store.atomic_write_csv(out / "attributes.csv", attributes)
    image_splits = captions.drop_duplicates("image_idx").split.value_counts()
    summary.counts.update(images=len(attributes), captions=len(captions),
                          **{f"{split}_images": int(n) for split, n in image_splits.items()})
    store.write_meta(out, {
        "name": name,
        "num_images": len(attributes),
        "num_captions": len(captions),
        "sizes": sorted(sizes),
        "attributes": [c for c in attributes.columns if c not in ("image_idx", "file")],
        "mismatch_by": ["label"],
        "splits": {split: int(n) for split, n in image_splits.items()},
        "classes": sorted(attributes.label.unique().tolist()),
        **meta,
        "made_by": {**meta.get("made_by", {}), "seconds": round(time.perf_counter() - start, 1)},
        **summary.as_meta(),
    })


def prepare(out: Path, source: Path, name: str, collect, sources: list[dict], captions_archive: str,
            captions_drive_id: str, crop: str, sizes, download_missing: bool = True,
            progress: bool = True) -> store.Summary:
    """The prepare() of a dataset with Reed et al.'s captions: ``collect`` the items, report orphans, write.

    ``sources`` lists the dataset's own raw files; the caption archive's entry (with the sha256 of the copy
    used, as Reed et al. publish no checksum) is added here.
    """
    summary = store.Summary(name)
    if store.already_prepared(out, name, sizes):
        return summary
    items, text_c10, notes = collect(source, download_missing, progress)
    report_orphan_captions(text_c10, items, summary)
    archive = source / captions_archive
    sources = [*sources, {"file": captions_archive, "url": f"https://drive.google.com/file/d/{captions_drive_id}",
                          "sha256": download_module.file_digest(archive, "sha256") if archive.is_file() else None}]
    write(out, name, items, sizes, {
        "sources": sources,
        "notes": notes,
        "split_by": REED_SPLIT_BY,
        "made_by": {"command": f"python -m data_prep {name}", "crop": crop},
    }, summary, progress)
    return summary


def run_prepare(args, name: str, prepare) -> int:
    """The CLI body the captioned datasets share: default folders under the data dir, timing, the summary.

    A failed run leaves no output folder behind if it made one (the raw files it fetched stay, to resume).
    """
    from t2ilib.config import data_dir

    out = Path(args.out or data_dir() / name)
    source = Path(args.source or data_dir() / "raw" / name)
    if not args.no_download:
        source.mkdir(parents=True, exist_ok=True)
    made_out = not out.exists()
    start = time.perf_counter()
    try:
        summary = prepare(out, source, args.sizes, download_missing=not args.no_download)
    except BaseException:
        if made_out:
            shutil.rmtree(out, ignore_errors=True)
        raise
    summary.counts["seconds"] = round(time.perf_counter() - start, 1)
    summary.report(out)
    return 0
