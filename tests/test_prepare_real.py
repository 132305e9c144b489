"""Oxford-102, CUB-200 and CIFAR-10 preparation on tiny archives in the real layouts (no network).

The Oxford-102 archive is built around the dataset's real imagelabels.mat and setid.mat (tests/fixtures), so the
classes and Oxford splits checked here are the real ones; the Reed class lists are made up in the real format.
"""

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from data_prep import captioned, cifar10, cub200, flowers102
from t2ilib.data import load_prepared

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "oxford102"


def _jpeg(rng, width, height) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _tar(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _class_lists(classes, prefix=""):
    """Reed-style class lists (one class per line): a third each to train, val and test."""
    split = {c: "val" if i % 3 == 1 else "test" if i % 3 == 2 else "train" for i, c in enumerate(classes)}
    files = {f"{prefix}{s}classes.txt": ("\n".join(c for c in classes if split[c] == s) + "\n").encode()
             for s in ("train", "val", "test")}
    files[f"{prefix}trainvalclasses.txt"] = ("\n".join(c for c in classes if split[c] != "test") + "\n").encode()
    return split, files


# Oxford-102 -----------------------------------------------------------------------------------------------------
LABELS = loadmat(FIXTURES / "imagelabels.mat")["labels"].ravel()
GOOD, CORRUPT, BAD_ENCODING, EMPTY, UNCAPTIONED = [1, 2, 3, 100, 2000, 5000, 8189], 10, 11, 12, 13


@pytest.fixture()
def oxford_source(tmp_path, monkeypatch):
    """102flowers.tgz + cvpr2016_flowers.tar.gz (a few images, the real layouts) and the real .mat files."""
    monkeypatch.setitem(flowers102.OXFORD_FILES, "102flowers.tgz", None)  # the tiny archive is not the real one
    rng = np.random.default_rng(0)
    source = tmp_path / "raw"
    source.mkdir()
    for name in ("imagelabels.mat", "setid.mat"):
        shutil.copy(FIXTURES / name, source / name)
    images = {f"jpg/image_{i:05d}.jpg": _jpeg(rng, 50 + i % 40, 60)
              for i in GOOD + [BAD_ENCODING, EMPTY, UNCAPTIONED]}
    images[f"jpg/image_{CORRUPT:05d}.jpg"] = _jpeg(rng, 80, 60)[:300]  # truncated
    _tar(source / "102flowers.tgz", images)

    classes = [f"class_{c:05d}" for c in range(1, 103)]
    _, lists = _class_lists(classes, "cvpr2016_flowers/")
    captions = {f"cvpr2016_flowers/text_c10/class_{LABELS[i - 1]:05d}/image_{i:05d}.txt":
                "".join(f"caption {k} of flower {i}\n" for k in range(10)).encode() for i in GOOD + [CORRUPT]}
    captions[f"cvpr2016_flowers/text_c10/class_{LABELS[BAD_ENCODING - 1]:05d}/image_{BAD_ENCODING:05d}.txt"] = \
        b"caf\xe9 latin-1, not utf-8\n"
    captions[f"cvpr2016_flowers/text_c10/class_{LABELS[EMPTY - 1]:05d}/image_{EMPTY:05d}.txt"] = b"\n  \n"
    captions["cvpr2016_flowers/text_c10/class_00001/image_09999.txt"] = b"an image that does not exist\n"
    _tar(source / "cvpr2016_flowers.tar.gz", {**captions, **lists})
    return source


def test_oxford_yields_the_right_classes_splits_and_caption_counts(oxford_source, tmp_path):
    summary = flowers102.prepare(tmp_path / "out", oxford_source, sizes=(32, 64), download_missing=False,
                                 progress=False)
    prepared = load_prepared(tmp_path / "out")
    assert prepared.num_images == len(GOOD) and prepared.sizes == [32, 64]
    files = prepared.attributes.file.tolist()
    assert files == [f"jpg/image_{i:05d}.jpg" for i in GOOD]
    assert prepared.attributes.label.tolist() == [f"class_{LABELS[i - 1]:05d}" for i in GOOD]

    setid = loadmat(FIXTURES / "setid.mat")
    oxford = {int(i): s for key, s in (("trnid", "train"), ("valid", "val"), ("tstid", "test"))
              for i in setid[key].ravel()}
    assert prepared.attributes.oxford_split.tolist() == [oxford[i] for i in GOOD]

    reed = {}
    for split in ("train", "val", "test"):
        path = captioned.find_dir(oxford_source, "text_c10").parent / f"{split}classes.txt"
        reed.update({c: split for c in path.read_text().split()})
    per_image = prepared.captions.groupby("image_idx")
    assert (per_image.size() == 10).all()
    assert per_image.split.first().tolist() == [reed[label] for label in prepared.attributes.label]
    assert prepared.captions.text[prepared.captions.image_idx == 0].iloc[3] == "caption 3 of flower 1"
    assert summary.counts["images"] == len(GOOD) and summary.counts["captions"] == 10 * len(GOOD)


def test_oxford_reports_every_file_it_could_not_use(oxford_source, tmp_path, capsys):
    summary = flowers102.prepare(tmp_path / "out", oxford_source, sizes=(32,), download_missing=False,
                                 progress=False)
    reasons = dict(summary.skipped)
    assert "corrupt or truncated" in reasons[f"jpg/image_{CORRUPT:05d}.jpg"]
    assert "not UTF-8" in reasons[f"jpg/image_{BAD_ENCODING:05d}.jpg"]
    assert f"image_{BAD_ENCODING:05d}.txt" in reasons[f"jpg/image_{BAD_ENCODING:05d}.jpg"]
    assert "has no captions" in reasons[f"jpg/image_{EMPTY:05d}.jpg"]
    assert reasons[f"jpg/image_{UNCAPTIONED:05d}.jpg"] == f"no caption file image_{UNCAPTIONED:05d}.txt"
    assert reasons["text_c10/class_00001/image_09999.txt"] == "caption file without an image"
    missing = [item for item, why in summary.skipped if why == "image file missing from the archive"]
    assert len(missing) == len(LABELS) - len(GOOD) - 4  # the real .mat lists 8,189 images; the archive holds 11
    text = summary.report(tmp_path / "out")
    assert f"image_{CORRUPT:05d}.jpg" in text and "skipped" in text
    meta = load_prepared(tmp_path / "out").meta
    assert meta["num_skipped"] == len(summary.skipped)


def test_oxford_rerun_is_a_no_op_and_a_killed_run_leaves_no_complete_looking_output(oxford_source, tmp_path,
                                                                                    monkeypatch):
    calls = []
    real_load = captioned.load_image

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_load(*args, **kwargs)

    monkeypatch.setattr(captioned, "load_image", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        flowers102.prepare(tmp_path / "out", oxford_source, sizes=(32,), download_missing=False, progress=False)
    assert not (tmp_path / "out" / "meta.json").exists()
    assert not list((tmp_path / "out").glob("*.npy"))
    monkeypatch.undo()

    flowers102.prepare(tmp_path / "out", oxford_source, sizes=(32,), download_missing=False, progress=False)
    stamp = (tmp_path / "out" / "meta.json").stat().st_mtime_ns
    flowers102.prepare(tmp_path / "out", oxford_source, sizes=(32,), download_missing=False, progress=False)
    assert (tmp_path / "out" / "meta.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="left untouched"):
        flowers102.prepare(tmp_path / "out", oxford_source, sizes=(32, 64), download_missing=False, progress=False)


def test_oxford_cli_prints_a_summary(oxford_source, tmp_path, capsys):
    from data_prep.__main__ import main

    out = tmp_path / "out"
    assert main(["flowers102", "--out", str(out), "--source", str(oxford_source), "--no-download",
                 "--sizes", "32"]) == 0
    printed = capsys.readouterr().out
    assert f"images: {len(GOOD)}" in printed and f"captions: {10 * len(GOOD)}" in printed
    assert f"image_{CORRUPT:05d}.jpg: corrupt or truncated image" in printed
    assert load_prepared(out).sizes == [32]


def test_oxford_missing_files_without_download_are_named(oxford_source, tmp_path):
    (oxford_source / "cvpr2016_flowers.tar.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"cvpr2016_flowers\.tar\.gz is missing and --no-download"):
        flowers102.prepare(tmp_path / "out", oxford_source, sizes=(32,), download_missing=False, progress=False)


def test_oxford_wrong_checksum_of_a_supplied_file_is_named(oxford_source, tmp_path):
    (oxford_source / "setid.mat").write_bytes(b"not the real file")
    with pytest.raises(Exception, match=r"setid\.mat.*a5357ecc9cb78c4bef273ce3793fc85c"):
        flowers102.prepare(tmp_path / "out", oxford_source, sizes=(32,), download_missing=False, progress=False)


def _cli_error(capsys, argv, out):
    """Run the CLI; its error must be one line naming the problem, exit 2, and leave no output folder."""
    from data_prep.__main__ import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    return err


def _oxford_argv(source, out, *more):
    return ["flowers102", "--out", str(out), "--source", str(source), "--no-download", "--sizes", "32", *more]


def test_oxford_cli_wrong_checksum_is_one_line(oxford_source, tmp_path, capsys):
    (oxford_source / "setid.mat").write_bytes(b"not the real file")
    err = _cli_error(capsys, _oxford_argv(oxford_source, tmp_path / "out"), tmp_path / "out")
    assert "setid.mat" in err and "a5357ecc9cb78c4bef273ce3793fc85c" in err and "delete it" in err


def test_oxford_cli_missing_raw_file_without_download_is_one_line(oxford_source, tmp_path, capsys):
    (oxford_source / "cvpr2016_flowers.tar.gz").unlink()
    err = _cli_error(capsys, _oxford_argv(oxford_source, tmp_path / "out"), tmp_path / "out")
    assert "cvpr2016_flowers.tar.gz is missing and --no-download" in err and "put the file there" in err


def test_oxford_cli_unsafe_archive_is_one_line(oxford_source, tmp_path, capsys):
    _tar(oxford_source / "cvpr2016_flowers.tar.gz", {"cvpr2016_flowers/../../evil.txt": b"x"})
    err = _cli_error(capsys, _oxford_argv(oxford_source, tmp_path / "out"), tmp_path / "out")
    assert "cvpr2016_flowers.tar.gz" in err and "'..'" in err and "use a copy from the dataset's own site" in err
    assert not (tmp_path / "evil.txt").exists()


def test_oxford_cli_missing_reed_class_lists_is_one_line(oxford_source, tmp_path, capsys):
    with tarfile.open(oxford_source / "cvpr2016_flowers.tar.gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()
                 if m.isfile() and not m.name.endswith("classes.txt")}
    _tar(oxford_source / "cvpr2016_flowers.tar.gz", files)
    err = _cli_error(capsys, _oxford_argv(oxford_source, tmp_path / "out"), tmp_path / "out")
    assert "class split files not found" in err and "cvpr2016_*.tar.gz" in err


def test_cli_debug_shows_the_traceback(oxford_source, tmp_path, monkeypatch):
    from data_prep.__main__ import main

    (oxford_source / "setid.mat").write_bytes(b"not the real file")
    with pytest.raises(RuntimeError, match="setid.mat"):
        main(_oxford_argv(oxford_source, tmp_path / "out", "--debug"))
    monkeypatch.setenv("T2I_DEBUG", "1")
    with pytest.raises(RuntimeError, match="setid.mat"):
        main(_oxford_argv(oxford_source, tmp_path / "out"))


def test_cli_bad_value_is_one_line(tmp_path, capsys):
    err = _cli_error(capsys, ["synthetic_flowers", "--num-images", "0", "--out", str(tmp_path / "out")],
                     tmp_path / "out")
    assert "--num-images must be >= 1" in err


# CUB-200 --------------------------------------------------------------------------------------------------------
CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]


@pytest.fixture()
def cub_source(tmp_path):
    """CUB_200_2011.tgz and cvpr2016_cub.tar.gz in their real layouts, two birds per species."""
    files, captions, lines = {}, {}, {k: [] for k in ("images", "boxes", "split", "labels")}
    image_id = 0
    for c, cls in enumerate(CUB_CLASSES, start=1):
        for k in range(2):
            image_id += 1
            relative = f"{cls}/{cls.split('.')[1]}_{k:04d}_{image_id}.jpg"
            image = np.full((120, 200, 3), 30, np.uint8)
            image[40:80, 100:160] = (250, 10, 10)  # the "bird": a red box at x 100..160, y 40..80
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "JPEG", quality=95)
            files[f"CUB_200_2011/images/{relative}"] = buffer.getvalue()
            lines["images"].append(f"{image_id} {relative}")
            lines["boxes"].append(f"{image_id} 100.0 40.0 60.0 40.0")
            lines["split"].append(f"{image_id} {k % 2}")
            lines["labels"].append(f"{image_id} {c}")
            captions[f"cvpr2016_cub/text_c10/{Path(relative).with_suffix('.txt')}"] = \
                "".join(f"bird {image_id} caption {j}\n" for j in range(10)).encode()
    for name, key in (("images.txt", "images"), ("bounding_boxes.txt", "boxes"),
                      ("train_test_split.txt", "split"), ("image_class_labels.txt", "labels")):
        files[f"CUB_200_2011/{name}"] = ("\n".join(lines[key]) + "\n").encode()
    files["CUB_200_2011/classes.txt"] = "".join(f"{i} {c}\n" for i, c in enumerate(CUB_CLASSES, 1)).encode()
    _, lists = _class_lists(CUB_CLASSES, "cvpr2016_cub/")
    source = tmp_path / "raw"
    source.mkdir()
    _tar(source / "CUB_200_2011.tgz", files)
    _tar(source / "cvpr2016_cub.tar.gz", {**captions, **lists})
    return source


def test_cub_crops_birds_and_keeps_classes_and_splits(cub_source, tmp_path, monkeypatch):
    monkeypatch.setattr(cub200, "CUB_MD5", None)  # the tiny archive is not the published one
    cub200.prepare(tmp_path / "out", cub_source, sizes=(32,), download_missing=False, progress=False)
    prepared = load_prepared(tmp_path / "out")
    assert prepared.num_images == 6
    assert prepared.attributes.label.tolist() == [c for c in CUB_CLASSES for _ in range(2)]
    assert prepared.attributes.cub_split.tolist() == ["test", "train"] * 3
    assert (prepared.captions.groupby("image_idx").size() == 10).all()
    assert set(prepared.captions.split) == {"train", "val", "test"}
    # Cropped around the box, the red bird fills the middle instead of a corner of a wide photo.
    images = prepared.images(32).astype(int)
    centre = images[:, 12:20, 12:20]
    assert (centre[..., 0] > 200).all() and (centre[..., 1] < 60).all()


# CIFAR-10 -------------------------------------------------------------------------------------------------------
def test_cifar10_captions_from_class_names(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    train = (rng.integers(0, 255, (60, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, (60, 1)))
    test = (rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, (20, 1)))
    monkeypatch.setattr(cifar10, "load_arrays", lambda source=None: (train, test))
    cifar10.prepare(tmp_path / "out", sizes=(32, 64), progress=False)
    prepared = load_prepared(tmp_path / "out")
    assert prepared.num_images == 80
    np.testing.assert_array_equal(prepared.images(32)[:60], train[0])
    labels = [cifar10.CLASSES[i] for i in np.concatenate([train[1], test[1]]).ravel()]
    assert prepared.attributes.label.tolist() == labels
    first = prepared.captions[prepared.captions.image_idx == 0].text.tolist()
    assert first == cifar10.captions_for(labels[0]) and labels[0] in first[0]
    assert cifar10.captions_for("airplane")[0] == "a photo of an airplane"
    splits = prepared.captions.drop_duplicates("image_idx").split.value_counts()
    assert splits["test"] == 20 and splits["val"] == 6 and splits["train"] == 54


def test_cifar10_batches_are_read_as_arrays_and_nothing_else(tmp_path):
    import pickle

    images = (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072)
    (tmp_path / "good").write_bytes(pickle.dumps({b"data": images, b"labels": [3, 7]}))
    read, labels = cifar10._read_batch(tmp_path / "good")
    assert read.shape == (2, 32, 32, 3) and labels.ravel().tolist() == [3, 7]
    assert read[1, 0, 1].tolist() == images[1, [1, 1025, 2049]].tolist()  # R, G, B planes -> one pixel

    class Payload:  # what a tampered batch could smuggle in: a call made while unpickling
        def __reduce__(self):
            return (print, ("this ran",))

    (tmp_path / "bad").write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print in a CIFAR-10 batch: not an array"):
        cifar10._read_batch(tmp_path / "bad")
