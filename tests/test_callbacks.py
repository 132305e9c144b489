"""Callbacks: sample grids, loss history, NaN stop, a time budget, and a checkpoint that survives SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from t2ilib import callbacks, config, training

PRESET = config.PRESETS["smoke"]
ROOT = Path(__file__).resolve().parent.parent

# A child process that trains a smoke GAN on random data with a loss history, a sample grid and a checkpoint; each
# step sleeps a little so the parent can kill it mid-run. Run twice with the same arguments, it must continue
# where it was killed. Every epoch sees the same four batches, so a resumed run that restored everything (weights,
# both optimizers, the noise generator's state) logs the same losses as a run that was never killed.
CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np, keras, tensorflow as tf
    from t2ilib import callbacks, config, training
    directory, epochs = sys.argv[1], int(sys.argv[2])
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    data = {"image": rng.uniform(-1, 1, (32, 32, 32, 3)).astype("float32"),
            "text": rng.standard_normal((32, 8)).astype("float32")}
    data["wrong_text"] = np.roll(data["text"], 1, axis=0)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(8).repeat()
    gan = training.make_gan(config.PRESETS["smoke"], embedding_dim=8)
    gan.compile(g_optimizer=training.dcgan_adam(), d_optimizer=training.dcgan_adam(), run_eagerly=True)
    slow = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.1))
    history = callbacks.LossHistory(directory + "/history.csv")
    grid = callbacks.SampleGrid(data["text"][:2], directory + "/samples", per_caption=2, show=False)
    checkpoint = callbacks.Checkpoint(directory + "/checkpoint")
    gan.fit(dataset, epochs=epochs, steps_per_epoch=4, verbose=0, callbacks=[history, grid, slow, checkpoint])
    print("STEPS", callbacks.gan_steps(gan), int(gan.d_optimizer.iterations))
    print("NOISE STATE", keras.ops.convert_to_numpy(gan.seed_generator.state).tolist())
""")


def run_child(directory, epochs, kill_after_epoch=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), str(epochs)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_epoch is not None:
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            if saved_epoch(directory / "checkpoint") >= kill_after_epoch:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def saved_epoch(directory):
    """The epoch of the kit's newest record: Keras writes its own record (the epoch alone) first, the kit's (with the
    step and the noise) replaces it a moment later, so a kill between the two would leave Keras' record."""
    try:
        record = callbacks.Checkpoint(directory).saved() or {}
    except ValueError:  # read while the child writes it
        return 0
    return record["epoch"] if "step" in record else 0


def last_line(out, prefix):
    return [line for line in out.splitlines() if line.startswith(prefix)][-1]


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_with_the_same_step_count(tmp_path):
    epochs = 4
    code, out, err = run_child(tmp_path / "straight", epochs)
    assert code == 0, err[-2000:]
    straight = last_line(out, "STEPS"), last_line(out, "NOISE STATE")

    code, out, _ = run_child(tmp_path / "killed", epochs, kill_after_epoch=2)
    assert code == -signal.SIGKILL, "the child should have been killed mid-run"
    saved = callbacks.Checkpoint(tmp_path / "killed" / "checkpoint").saved()
    assert 2 <= saved["epoch"] < epochs and saved["step"] == 4 * saved["epoch"]

    code, out, err = run_child(tmp_path / "killed", epochs)
    assert code == 0, err[-2000:]
    assert f"Resumed from {tmp_path / 'killed' / 'checkpoint'} at epoch {saved['epoch']}" in out
    assert not (tmp_path / "killed" / "checkpoint").exists()  # finished: the backup is gone
    resumed = last_line(out, "STEPS"), last_line(out, "NOISE STATE")
    assert resumed == straight  # the noise generator's state was restored with the weights
    assert resumed[0] == f"STEPS {4 * epochs} {4 * epochs}"
    history = pd.read_csv(tmp_path / "killed" / "history.csv")
    assert history.epoch.tolist() == list(range(1, epochs + 1))  # one row per epoch, none lost or doubled
    assert history.step.tolist() == [4 * e for e in range(1, epochs + 1)]
    # The resumed epochs continue the curve: the same losses as the run that was never killed.
    never_killed = pd.read_csv(tmp_path / "straight" / "history.csv")
    for column in ("d_loss", "g_loss", "d_real", "d_fake", "d_wrong"):
        np.testing.assert_allclose(history[column], never_killed[column], rtol=1e-4, err_msg=column)
    grids = sorted(p.name for p in (tmp_path / "killed" / "samples").glob("*.png"))
    assert grids == [f"epoch_{e:04d}.png" for e in range(1, epochs + 1)]  # the grids continue too...
    last = [plt.imread(tmp_path / run / "samples" / grids[-1]) for run in ("killed", "straight")]
    assert np.abs(last[0] - last[1]).max() <= 1 / 255  # ...and draw what the run never killed draws


def tiny_gan(mismatch=True, lr_d=2e-4):
    gan = training.make_gan(PRESET, embedding_dim=8, mismatch=mismatch)
    gan.compile(g_optimizer=training.dcgan_adam(), d_optimizer=training.dcgan_adam(lr_d), run_eagerly=True)
    return gan


def tiny_dataset(count=16, batch=8):
    rng = np.random.default_rng(1)
    data = {"image": rng.uniform(-1, 1, (count, 32, 32, 3)).astype("float32"),
            "text": rng.standard_normal((count, 8)).astype("float32")}
    data["wrong_text"] = np.roll(data["text"], 1, axis=0)
    return tf.data.Dataset.from_tensor_slices(data).batch(batch)


class Disconnected(Exception):
    """What a Colab disconnect or a kill looks like to the code after it: fit() never reaches on_train_end."""


class DisconnectAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Disconnected


def interrupted_fit(gan, directory, epochs, after, dataset=None):
    """fit() for ``epochs`` epochs, cut off after ``after`` of them, once the checkpoint has saved."""
    with pytest.raises(Disconnected):
        gan.fit(dataset or tiny_dataset(), epochs=epochs, verbose=0,
                callbacks=[callbacks.Checkpoint(directory), DisconnectAfter(after)])
    return gan


def restore(checkpoint, gan) -> int:
    """What fit() does first with a Checkpoint: restore the backup into ``gan``; the epoch fit() would continue from."""
    checkpoint.set_model(gan)
    checkpoint.on_train_begin()
    return gan._initial_epoch or 0


class CountSteps(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


def test_checkpoint_restores_weights_and_both_optimizers(tmp_path):
    gan = interrupted_fit(tiny_gan(), tmp_path, epochs=3, after=1)
    fresh = tiny_gan()
    assert restore(callbacks.Checkpoint(tmp_path), fresh) == 1
    for a, b in zip(gan.generator.weights, fresh.generator.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(fresh.g_optimizer.iterations) == int(fresh.d_optimizer.iterations) == 2
    adam_moments = [v for v in fresh.d_optimizer.variables if "momentum" in v.path]
    assert adam_moments and any(np.abs(np.asarray(v)).sum() > 0 for v in adam_moments)


def test_checkpoint_from_another_model_fails_with_the_directory_named(tmp_path):
    interrupted_fit(tiny_gan(), tmp_path, epochs=3, after=1)
    other = training.make_gan(PRESET.replace(g_channels=(16, 8, 8)), embedding_dim=8)
    with pytest.raises(RuntimeError, match=f"{tmp_path} .*size.g_channels"):
        restore(callbacks.Checkpoint(tmp_path), other)


def test_an_interrupted_run_resumes_to_the_same_weights_bit_for_bit(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    straight = tiny_gan()
    straight.fit(tiny_dataset(), epochs=3, verbose=0)
    keras.utils.set_random_seed(0)
    interrupted_fit(tiny_gan(), tmp_path, epochs=3, after=1)
    resumed, checkpoint, counter = tiny_gan(), callbacks.Checkpoint(tmp_path), CountSteps()
    resumed.fit(tiny_dataset(), epochs=3, verbose=0,  # fit() resumes by itself
                callbacks=[counter, callbacks.TimeBudget(None), checkpoint])
    out = capsys.readouterr().out
    assert f"Resumed from {tmp_path} at epoch 1, step 2." in out and "Trained 4 steps (step 6)" in out
    assert counter.steps == 4 and callbacks.gan_steps(resumed) == 6  # only the two epochs the first run missed
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


def test_a_finished_run_drops_its_backup_and_is_not_resumed(tmp_path, capsys):
    def run():
        gan, counter = tiny_gan(), CountSteps()
        history = callbacks.LossHistory(tmp_path / "history.csv")
        checkpoint = callbacks.Checkpoint(tmp_path / "ckpt")
        gan.fit(tiny_dataset(), epochs=2, verbose=0, callbacks=[counter, history, checkpoint])
        return gan, counter, history

    run()
    assert not (tmp_path / "ckpt").exists()  # the backup exists to survive an interruption; fit() completed
    capsys.readouterr()
    again, counter, history = run()
    assert counter.steps == 4 and callbacks.gan_steps(again) == 4  # trained again from the start
    assert "Resumed" not in capsys.readouterr().out
    assert history.frame.epoch.tolist() == [1, 2]  # one history, the new run's


@pytest.mark.slow  # the kit's own fallback logic, the same at any pins: make test runs it, not colab's or floors'
def test_a_backup_from_another_configuration_is_refused_naming_what_differs(tmp_path):
    interrupted_fit(tiny_gan(), tmp_path, epochs=3, after=1)
    assert restore(callbacks.Checkpoint(tmp_path), tiny_gan()) == 1  # the same configuration resumes
    for other, differs in ((tiny_gan(mismatch=False), "mismatch: True -> False"),
                           (tiny_gan(lr_d=1e-4), "d_optimizer.learning_rate: 0.0002 -> 0.0001")):
        with pytest.raises(RuntimeError, match=f"another configuration .*{differs}.*delete it to start over"):
            restore(callbacks.Checkpoint(tmp_path), other)


def test_time_budget_stops_fit_and_the_other_callbacks_still_record_the_cut_epoch(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("T2I_MINUTES", raising=False)
    now = [0.0]

    def clock():  # each call is 20 s later: the budget of one minute is spent at the third step
        now[0] += 20.0
        return now[0]

    gan, budget = tiny_gan(), callbacks.TimeBudget(1, clock=clock)
    history, checkpoint = callbacks.LossHistory(tmp_path / "history.csv"), callbacks.Checkpoint(tmp_path / "ckpt")
    gan.fit(tiny_dataset(), epochs=10, verbose=0, callbacks=[budget, history, checkpoint])
    assert budget.stopped_at == budget.steps == callbacks.gan_steps(gan) == 3
    assert "Trained 3 steps (step 3) in" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "history.csv").step.tolist() == [2, 3]  # the cut epoch has its row
    assert not (tmp_path / "ckpt").exists()  # a budget ends fit() as completed: nothing left to resume


def test_t2i_minutes_overrides_the_budget_and_bad_values_are_named(monkeypatch):
    assert config.minutes(10, environ={}) == 10.0
    assert config.minutes(10, environ={"T2I_MINUTES": "0.5"}) == 0.5
    for bad in ("ten", "0", "-3"):
        with pytest.raises(ValueError, match=f"T2I_MINUTES='{bad}': set it to a positive number of minutes"):
            config.minutes(10, environ={"T2I_MINUTES": bad})
    with pytest.raises(ValueError, match="minutes=0: a time budget must be a positive number"):
        callbacks.TimeBudget(0)


def test_a_laptop_gets_its_own_budget_a_gpu_the_full_one_and_t2i_minutes_beats_both(monkeypatch):
    from t2ilib import device

    for has_gpu, expected in ((False, 3.0), (True, 10.0)):
        monkeypatch.setattr(device, "detect", lambda *a, has_gpu=has_gpu, **k: types.SimpleNamespace(has_gpu=has_gpu))
        assert config.minutes(10, laptop=3, environ={}) == expected
        assert config.minutes(10, environ={}) == 10.0  # no laptop budget: the full one everywhere
        assert config.minutes(10, laptop=3, environ={"T2I_MINUTES": "7"}) == 7.0


def test_fast_mode_has_no_budget_and_full_mode_one(monkeypatch):
    monkeypatch.setenv("T2I_FAST", "1")
    assert callbacks.stop_after(5) == []
    monkeypatch.setenv("T2I_FAST", "0")
    [only] = callbacks.stop_after(5)
    assert isinstance(only, callbacks.TimeBudget) and only.minutes == 5


def test_without_a_budget_fit_runs_all_its_epochs(monkeypatch):
    monkeypatch.delenv("T2I_MINUTES", raising=False)
    gan, budget = tiny_gan(), callbacks.TimeBudget(None, clock=iter(range(0, 10**6, 3600)).__next__)
    gan.fit(tiny_dataset(), epochs=2, verbose=0, callbacks=[budget])
    assert budget.stopped_at is None and budget.steps == 4


def test_sample_grid_saves_the_same_noise_every_epoch(tmp_path):
    gan = tiny_gan()
    text = np.random.default_rng(2).standard_normal((3, 8)).astype("float32")
    grid = callbacks.SampleGrid(text, tmp_path, per_caption=4, show=False)
    gan.fit(tiny_dataset(), epochs=2, verbose=0, callbacks=[grid])
    files = sorted(tmp_path.glob("epoch_*.png"))
    assert [f.name for f in files] == ["epoch_0001.png", "epoch_0002.png"]
    first_z = grid.z.copy()
    picture = grid.grid()
    np.testing.assert_array_equal(grid.z, first_z)
    assert picture.shape == (3 * 34 + 2, 4 * 34 + 2, 3)  # 3 captions x 4 noises of 32 px with 2 px borders


def test_loss_history_writes_one_row_per_epoch_and_a_plot(tmp_path):
    history = callbacks.LossHistory(tmp_path / "history.csv", plot_path=tmp_path / "history.png")
    tiny_gan().fit(tiny_dataset(), epochs=3, verbose=0, callbacks=[history])
    frame = pd.read_csv(tmp_path / "history.csv")
    assert frame.epoch.tolist() == [1, 2, 3] and frame.step.tolist() == [2, 4, 6]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_wrong", "seconds"} <= set(frame.columns)
    assert frame.seconds.is_monotonic_increasing
    assert (tmp_path / "history.png").stat().st_size > 1000


def test_loss_history_without_a_file_keeps_its_rows_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gan, history = tiny_gan(), callbacks.LossHistory()
    gan.fit(tiny_dataset(), epochs=2, verbose=0, callbacks=[history])
    assert history.frame.step.tolist() == [2, 4] and history.frame.d_loss.notna().all()
    assert list(tmp_path.iterdir()) == []


def test_stop_on_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    gan = interrupted_fit(tiny_gan(), tmp_path, epochs=3, after=1)
    saved = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    broken = tiny_dataset().map(lambda batch: {**batch, "image": batch["image"] * np.nan})
    stop = callbacks.StopOnNaN()
    gan.fit(broken, epochs=3, verbose=0, callbacks=[stop, callbacks.Checkpoint(tmp_path)])
    assert stop.stopped_at == 3  # 2 good steps from the first fit, then the first NaN step
    out = capsys.readouterr().out
    assert "Stopped at optimizer step 3" in out and "became NaN" in out and "learning rate" in out
    assert "Not saving epoch 2" in out and "the backup of epoch 1 stays" in out
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == saved


@pytest.mark.slow  # the kit's own fallback logic, the same at any pins: make test runs it, not colab's or floors'
def test_checkpoint_never_saves_nan_weights_even_without_stop_on_nan(tmp_path, capsys):
    gan = interrupted_fit(tiny_gan(), tmp_path, epochs=3, after=1)
    saved = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    broken = tiny_dataset().map(lambda batch: {**batch, "image": batch["image"] * np.nan})
    gan.fit(broken, epochs=3, verbose=0, callbacks=[callbacks.Checkpoint(tmp_path)])  # trains on, NaN and all
    assert "Not saving epoch 3" in capsys.readouterr().out
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == saved


def test_checkpoint_keeps_two_generations_and_falls_back_from_a_damaged_one(tmp_path, capsys):
    interrupted_fit(tiny_gan(), tmp_path, epochs=4, after=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json", "training_metadata.json.bkp"]
    newest = tmp_path / "latest.weights.h5"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated, as by a full disk
    fresh = tiny_gan()
    assert restore(callbacks.Checkpoint(tmp_path), fresh) == 2
    assert f"{newest} is damaged" in capsys.readouterr().out
    assert int(fresh.g_optimizer.iterations) == 4


@pytest.mark.slow  # the kit's own fallback logic, the same at any pins: make test runs it, not colab's or floors'
def test_weights_newer_than_their_record_fall_back(tmp_path, capsys):
    # A kill between Keras' two writes leaves epoch 3's weights beside epoch 2's record: resuming them as epoch 2
    # would train one epoch twice, so the step in the record must match the weights'.
    interrupted_fit(tiny_gan(), tmp_path, epochs=4, after=3)
    (tmp_path / "training_metadata.json").write_bytes((tmp_path / "training_metadata.json.bkp").read_bytes())
    fresh = tiny_gan()
    assert restore(callbacks.Checkpoint(tmp_path), fresh) == 2
    assert "latest.weights.h5 is at step 6, not 4: trying the previous backup" in capsys.readouterr().out
    assert int(fresh.g_optimizer.iterations) == 4


@pytest.mark.slow  # the kit's own fallback logic, the same at any pins: make test runs it, not colab's or floors'
def test_a_damaged_record_falls_back_and_all_damaged_is_an_error(tmp_path, capsys):
    interrupted_fit(tiny_gan(), tmp_path, epochs=3, after=2)
    record = tmp_path / "training_metadata.json"
    record.write_text('{"epoch": 2, "st')  # cut mid-write by something other than the kit
    assert restore(callbacks.Checkpoint(tmp_path), tiny_gan()) == 1
    assert f"{record} is unreadable" in capsys.readouterr().out
    for path in (record, tmp_path / "training_metadata.json.bkp"):
        path.write_text('{"epoch": 1, "batch": 0}')  # Keras' half of the record: killed before the kit's half
    with pytest.raises(RuntimeError, match=f"no backup in {tmp_path} can be restored"):
        restore(callbacks.Checkpoint(tmp_path), tiny_gan())
    assert "is incomplete (cut mid-save)" in capsys.readouterr().out
