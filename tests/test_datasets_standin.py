"""The real-data path: stand-in flowers102, cub200 and cifar10 in the published raw layouts, prepared by data_prep's own
code (tools/standins.py), chosen by T2I_DATASET and trained on by the notebooks in fast mode."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data_prep
import t2ilib
from data_prep import download
from t2ilib.data import load_prepared
from tools import standins

ROOT = Path(__file__).resolve().parent.parent
# The notebooks whose every cell runs on a dataset without attributes (02 compares text encoders on the flowers).
NOTEBOOKS_ON_REAL_DATA = ["01_data_preprocessing.ipynb", "03_lstm_gan.ipynb", "04_gan_cls.ipynb",
                          "05_conditioning_augmentation.ipynb", "06_stackgan.ipynb", "07_evaluation_and_demo.ipynb"]


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("standins")
    standins.build(data_dir)
    return data_dir


def test_standins_are_prepared_through_the_real_layouts(standin_dir):
    flowers = load_prepared(standin_dir / "flowers102")
    assert flowers.num_images == standins.FLOWER_CLASSES * standins.IMAGES_PER_CLASS
    classes = [f"class_{c:05d}" for c in range(1, standins.FLOWER_CLASSES + 1)]
    assert sorted(flowers.attributes.label.unique()) == classes
    assert set(flowers.captions.split) == {"train", "val", "test"}
    cifar = load_prepared(standin_dir / "cifar10")
    assert cifar.num_images == 5 * standins.CIFAR_TRAIN_PER_BATCH + standins.CIFAR_TEST
    assert cifar.images(32).shape == (cifar.num_images, 32, 32, 3)
    # The pickled planes were decoded to channels-last: the class-coloured square is where it was drawn.
    first_label = cifar.attributes.label.iloc[0]
    assert first_label == "airplane" and (cifar.images(32)[0, 8:24, 8:24, 0] == 255).all()
    assert flowers.attribute_values is None and cifar.attribute_values is None


def test_cub_standin_is_read_from_the_real_archive_layout_and_cropped_around_its_birds(standin_dir):
    birds = load_prepared(standin_dir / "cub200")
    assert birds.num_images == len(standins.CUB_CLASSES) * standins.BIRDS_PER_CLASS
    assert birds.attributes.label.unique().tolist() == list(standins.CUB_CLASSES)
    assert birds.attributes.cub_split.value_counts().to_dict() == {"train": birds.num_images // 2,
                                                                   "test": birds.num_images // 2}
    assert (birds.captions.groupby("image_idx").size() == 10).all()
    per_class = birds.captions.drop_duplicates("image_idx").groupby("split").size().to_dict()
    assert per_class == {"train": 8 * standins.BIRDS_PER_CLASS, "val": 4 * standins.BIRDS_PER_CLASS,
                         "test": 4 * standins.BIRDS_PER_CLASS}
    assert birds.meta["made_by"]["crop"].startswith("bounding box") and birds.attribute_values is None
    # Cropped around its box, every bird covers the centre, where the uncropped photo mostly shows sky.
    images = birds.images(32).astype(int)
    assert (np.abs(images[:, 16, 16] - images[:, 1, 1]).sum(axis=1) > 60).all()


def test_ensure_finds_a_prepared_dataset_and_names_the_raw_files_it_cannot_get(standin_dir, tmp_path, monkeypatch):
    assert data_prep.ensure("flowers102", standin_dir) == standin_dir / "flowers102"

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(download, "fetch", offline)
    with pytest.raises(RuntimeError, match=r"download 102flowers.tgz.*into .*raw/flowers102"):
        data_prep.ensure("flowers102", tmp_path)


def test_setup_takes_the_dataset_from_its_argument_or_t2i_dataset(monkeypatch):
    monkeypatch.setenv("T2I_DATASET", "cifar10")
    assert t2ilib.setup(quiet=True).dataset == "cifar10"
    assert t2ilib.setup(quiet=True, dataset="flowers102").dataset == "flowers102"
    monkeypatch.delenv("T2I_DATASET")
    assert t2ilib.setup(quiet=True).dataset == "synthetic_flowers"
    monkeypatch.setenv("T2I_DATASET", "imagenet")
    with pytest.raises(ValueError, match="T2I_DATASET='imagenet'.*choose one of synthetic_flowers"):
        t2ilib.setup(quiet=True)


# make test: every stand-in prepared and read by a notebook (01 on flowers102), and the GANs trained on the other two:
# 04 and 07 on cifar10, 05 on CUB (source E's data). Once prepared, every dataset is the same format to 03-07, so
# 03 and 06 and every other pair are left to `make test-datasets`, for .ci/run's 40 minutes (docs/results.md).
PAIRS = [("01_data_preprocessing.ipynb", "flowers102"), ("04_gan_cls.ipynb", "cifar10"),
         ("05_conditioning_augmentation.ipynb", "cub200"), ("07_evaluation_and_demo.ipynb", "cifar10")]
ALL_PAIRS = [(notebook, dataset) for notebook in NOTEBOOKS_ON_REAL_DATA for dataset in standins.DATASETS]


@pytest.mark.slow  # make test runs them; .ci/run's floors and colab jobs leave them out
@pytest.mark.parametrize("dataset", standins.DATASETS)
def test_notebooks_run_on_the_standin(standin_dir, tmp_path, dataset):
    # One pytest process per stand-in runs its notebooks (each in its own kernel with its own runs directory, as
    # before), so the process start, TensorFlow's import and the collection are paid once per stand-in, not per pair.
    notebooks = [str(ROOT / "notebooks" / notebook)
                 for notebook, paired in (ALL_PAIRS if os.environ.get("T2I_ALL_STANDINS") else PAIRS)
                 if paired == dataset]
    env = {**os.environ, "T2I_FAST": "1", "T2I_DATASET": dataset, "T2I_DATA_DIR": str(standin_dir),
           "T2I_RUNS_DIR": str(tmp_path / "runs"), "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    # --nbval-lax: the checked outputs were stored from the synthetic flowers; here every cell must just run.
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "tests.runs_per_notebook", "--nbval-lax",
                             "--nbval-current-env", "--nbval-cell-timeout=900", *notebooks],
                            env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
