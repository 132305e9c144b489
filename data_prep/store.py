"""Writing a prepared dataset directory safely (the format is described in docs/data_format.md).

Every file is written under a temporary name and renamed into place (``os.replace`` is atomic), and
``meta.json`` is written last: a directory without ``meta.json`` is unfinished, whatever else it holds, so a run
killed half-way never leaves something that looks complete. ``Summary`` collects what a run did and skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from t2ilib.data import FORMAT_VERSION

PARTIAL = ".partial"


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + PARTIAL)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(path.name + PARTIAL)
    frame.to_csv(tmp, index=False, encoding="utf-8")
    os.replace(tmp, path)


def read_meta(out: Path) -> dict | None:
    """The finished dataset's meta.json, or None if the directory holds no finished dataset."""
    path = out / "meta.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_meta(out: Path, meta: dict) -> None:
    """Write meta.json last: it is what marks the directory as complete."""
    meta = {"format_version": FORMAT_VERSION, **meta}
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2, sort_keys=False) + "\n")


class ImageArrays:
    """``images_<size>.npy`` files filled image by image (or by workers) and renamed into place on ``commit``.

    The arrays are memory-mapped while being filled, so a 10,000-image set at 128 px never sits in RAM twice.
    """

    def __init__(self, out: Path, num_images: int, sizes):
        self.out = Path(out)
        self.sizes = tuple(sizes)
        self.partial = {s: self.out / f"images_{s}.npy{PARTIAL}" for s in self.sizes}
        self.arrays = {
            s: np.lib.format.open_memmap(self.partial[s], mode="w+", dtype=np.uint8, shape=(num_images, s, s, 3))
            for s in self.sizes
        }

    def __setitem__(self, index: int, images: dict[int, np.ndarray]) -> None:
        for size in self.sizes:
            self.arrays[size][index] = images[size]

    def commit(self, num_images: int | None = None) -> None:
        """Rename the files into place, keeping only the first ``num_images`` rows if some were skipped."""
        for size in self.sizes:
            array = self.arrays.pop(size)
            array.flush()
            if num_images is not None and num_images < len(array):
                array = self._shrink(size, array, num_images)
            del array  # close the memmap before the rename
            os.replace(self.partial[size], self.out / f"images_{size}.npy")

    def _shrink(self, size: int, array: np.ndarray, num_images: int) -> np.ndarray:
        """Copy the first rows into a smaller file (a .npy header fixes the row count), chunk by chunk."""
        path = self.partial[size].with_name(f"images_{size}.npy.shrink{PARTIAL}")
        smaller = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(num_images, size, size, 3))
        for start in range(0, num_images, 1024):
            smaller[start:start + 1024] = array[start:min(start + 1024, num_images)]
        smaller.flush()
        os.replace(path, self.partial[size])
        return smaller


@dataclasses.dataclass
class Summary:
    """What a preparation did: counts and every skipped item with its reason, printed at the end."""

    name: str
    counts: Counter = dataclasses.field(default_factory=Counter)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def skip(self, item: str, reason: str) -> None:
        self.skipped.append((str(item), reason))

    def report(self, out: Path, stream=None) -> str:
        lines = [f"{self.name}: prepared in {out}"]
        lines += [f"  {key}: {value}" for key, value in self.counts.items()]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)}:")
            shown = self.skipped[:20]
            lines += [f"    {item}: {reason}" for item, reason in shown]
            if len(self.skipped) > len(shown):
                lines.append(f"    ... and {len(self.skipped) - len(shown)} more (listed in meta.json)")
        else:
            lines.append("  nothing skipped")
        text = "\n".join(lines)
        print(text, file=stream or sys.stdout)
        return text

    def as_meta(self, limit: int = 1000) -> dict:
        """Counts and the first ``limit`` skipped items, for meta.json."""
        return {"counts": dict(self.counts), "num_skipped": len(self.skipped),
                "skipped": [{"item": i, "reason": r} for i, r in self.skipped[:limit]]}


def already_prepared(out: Path, name: str, sizes) -> bool:
    """True if ``out`` holds the finished dataset ``name`` with every size asked for (a re-run does nothing).

    A different dataset there, or the same at other sizes, is never overwritten: the error says what to do.
    """
    meta = read_meta(out)
    if meta is None:
        return False
    if meta.get("name") != name or not set(sizes) <= set(meta.get("sizes", [])):
        raise FileExistsError(
            f"{out} already holds {meta.get('name')} at sizes {meta.get('sizes')}; it is left untouched. "
            f"Choose another --out, or delete that directory to prepare {name} at sizes {sorted(sizes)}."
        )
    print(f"{out} already holds {name} at sizes {meta['sizes']}: nothing to do")
    return True


def add_output_arguments(parser, name: str, sizes) -> None:
    """--out and --sizes, the same for every dataset."""
    parser.add_argument("--out", type=Path, default=None,
                        help=f"directory to write the prepared dataset to (default: <data dir>/{name})")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(sizes),
                        help=f"square image sizes in pixels to write (default: {' '.join(map(str, sizes))})")


def add_source_arguments(parser, files: str) -> None:
    """--source and --no-download, for the datasets that are downloaded."""
    parser.add_argument("--source", type=Path, default=None,
                        help=f"folder with the raw files ({files}), as archives or already extracted; missing ones "
                             f"are downloaded into it (default: <data dir>/raw/<dataset>)")
    parser.add_argument("--no-download", action="store_true",
                        help="never download: stop with a message naming the missing files instead")
