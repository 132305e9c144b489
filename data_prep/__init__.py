"""data_prep: download, verify and prepare datasets into the kit's prepared format (see docs/data_format.md).

Run ``python -m data_prep --help``. ``t2ilib`` never imports this package: the prepared directory is the contract.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# What each downloaded dataset needs in <data dir>/raw/<name> when it cannot be downloaded (see each module).
RAW_FILES = {
    "flowers102": "102flowers.tgz, imagelabels.mat, setid.mat (https://www.robots.ox.ac.uk/~vgg/data/flowers/102/) "
                  "and Reed et al.'s cvpr2016_flowers.tar.gz",
    "cub200": "CUB_200_2011.tgz (https://data.caltech.edu/records/65de6-vp158) and Reed et al.'s cvpr2016_cub.tar.gz",
    "cifar10": "cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)",
}
MODULES = {"synthetic_flowers": "data_prep.synthetic", "flowers102": "data_prep.flowers102",
           "cub200": "data_prep.cub200", "cifar10": "data_prep.cifar10"}


def ensure(dataset: str, data_dir, num_images: int | None = None, sizes=None) -> Path:
    """The prepared ``dataset`` under ``data_dir``: found if there, else prepared once (downloading what is missing).

    ``num_images`` only sizes the synthetic flowers; a real dataset is whole. Raw files are looked for in
    ``<data_dir>/raw/<dataset>``; where they cannot be downloaded the error names the files to put there.
    """
    from data_prep import store

    if dataset not in MODULES:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(MODULES)}")
    module = importlib.import_module(MODULES[dataset])
    sizes = tuple(sizes or module.DEFAULT_SIZES)
    if dataset == "synthetic_flowers":
        return module.ensure(data_dir, num_images or module.DEFAULT_IMAGES, sizes)
    out = Path(data_dir) / dataset
    meta = store.read_meta(out)
    if meta is not None and meta.get("name") == dataset:
        return out  # prepared before, at whatever sizes: PreparedDataset.images() resizes down and names a missing one
    source = Path(data_dir) / "raw" / dataset
    source.mkdir(parents=True, exist_ok=True)
    try:
        if dataset == "cifar10":
            module.prepare(out, sizes, source=source)
        else:
            module.prepare(out, source, sizes)
    except (FileExistsError, ValueError):
        raise
    except Exception as err:  # no network, a refused download, keras' "URL fetch failure": the fix is the same
        raise RuntimeError(f"could not prepare {dataset} ({type(err).__name__}: {err}); download "
                           f"{RAW_FILES[dataset]} into {source} and run this cell again") from err
    return out
