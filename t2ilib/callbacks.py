"""Keras callbacks for GAN training: watch it, record it, survive interruptions, stop when it breaks.

- :class:`SampleGrid`: the same captions and the same noise every epoch, so the pictures show learning.
- :class:`LossHistory`: losses and D's outputs per epoch to CSV (and a plot), kept across resumed runs.
- :class:`Checkpoint`: Keras' ``BackupAndRestore`` plus the noise generators' states, no NaN backups and a record of
  the configuration: an interrupted ``fit`` resumes where it was cut, a finished one starts over.
- :class:`StopOnNaN`: stops at the first non-finite loss and says what to try.
- :class:`TimeBudget`: stops ``fit`` cleanly once its minutes are spent (``T2I_MINUTES`` overrides them).

They work with ``t2ilib.training.ConditionalGAN`` (anything with ``generator``, ``g_optimizer`` and
``d_optimizer``) and read the logs it returns (``d_loss``, ``g_loss``, ``d_real``, ``d_fake``, ``d_wrong``).
Introduced in notebook 03.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from t2ilib import config, models, viz

__all__ = ["SampleGrid", "LossHistory", "Checkpoint", "StopOnNaN", "TimeBudget", "stop_after", "gan_steps"]


def gan_steps(gan) -> int:
    """Optimizer steps the generator has taken: the run's progress, whatever the epochs were.
    Introduced in notebook 03."""
    return int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations))


class SampleGrid(keras.callbacks.Callback):
    """At the end of every ``every`` epochs: a grid of G's images, one row per caption, one column per noise.

    The noise is drawn once (from ``seed``), so any change between two grids is the generator learning. Grids go
    to ``out_dir/epoch_NNNN.png``; in a notebook the latest one is also shown inline.
    Introduced in notebook 03.
    """

    def __init__(self, text, out_dir, per_caption: int = 8, seed: int = 0, every: int = 1, show=None):
        super().__init__()
        self.text = np.asarray(text)
        self.out_dir = Path(out_dir)
        self.per_caption, self.every = per_caption, every
        self.seed = seed
        self.show = viz.in_notebook() if show is None else show
        self.z = None
        self.last_path: Path | None = None

    def grid(self) -> np.ndarray:
        """The current grid as a uint8 picture."""
        repeated = np.repeat(self.text, self.per_caption, axis=0)
        if self.z is None:
            width = models.z_dim(self.model.generator)
            self.z = np.random.default_rng(self.seed).standard_normal((len(repeated), width)).astype("float32")
        images = self.model.generator({"z": self.z, "text": repeated}, training=False)
        return viz.image_grid(keras.ops.convert_to_numpy(images), columns=self.per_caption)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        self.last_path = viz.save_png(self.out_dir / f"epoch_{epoch + 1:04d}.png", self.grid())
        if self.show:
            from IPython.display import Image, display

            display(Image(filename=str(self.last_path), width=min(512, 64 * self.per_caption)))


class LossHistory(keras.callbacks.Callback):
    """One row per epoch: epoch, optimizer step, seconds of training so far, and every logged value, as ``frame``.

    With ``csv_path`` the rows also go to that file, rewritten atomically each epoch; a resumed run (see
    :class:`Checkpoint`) keeps the rows of the epochs it does not redo, so the history of a run that was killed twice
    still reads as one run. ``plot_path`` also saves :func:`t2ilib.viz.plot_history` at the end of training.
    Introduced in notebook 03.
    """

    def __init__(self, csv_path=None, plot_path=None):
        super().__init__()
        self.csv_path = None if csv_path is None else Path(csv_path)
        self.plot_path = None if plot_path is None else Path(plot_path)
        self.rows: list[dict] = []

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def on_train_begin(self, logs=None):
        on_disk = self.csv_path is not None and self.csv_path.exists()
        self.rows = pd.read_csv(self.csv_path).to_dict("records") if on_disk else []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._start is None:  # the first epoch of this fit(): forget rows of epochs about to be redone
            self.rows = [row for row in self.rows if row["epoch"] <= epoch]
            self._offset = self.rows[-1]["seconds"] if self.rows else 0.0
            self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "step": gan_steps(self.model),
               "seconds": round(self._offset + time.perf_counter() - self._start, 2)}
        row.update({name: float(value) for name, value in (logs or {}).items()})
        self.rows.append(row)
        if self.csv_path is None:
            return
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.csv_path.with_name(self.csv_path.name + ".partial")
        self.frame.to_csv(partial, index=False)
        os.replace(partial, self.csv_path)

    def on_train_end(self, logs=None):
        if self.plot_path is not None and self.rows:
            import matplotlib.pyplot as plt

            fig = viz.plot_history(self.frame)
            self.plot_path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.plot_path.with_name(self.plot_path.stem + ".partial.png")
            fig.savefig(partial, dpi=100)
            os.replace(partial, self.plot_path)
            plt.close(fig)


class Checkpoint(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` (weights, both optimizers and the epoch, saved every epoch in two generations,
    restored when ``fit`` begins, deleted when it completes), plus what a GAN run needs beyond it: the noise
    generators' states, so a resumed run draws the same noise as one never interrupted; no backup of NaN/inf
    weights; and a record of the run's configuration, so another run's backup is refused, not silently loaded.

    Put it *last* in the callback list, so the other callbacks have written an epoch before it is backed up. Running
    the same ``fit`` cell again after a disconnect continues from the last backup; a finished run is not resumed.
    Give it a directory of its own (Keras deletes the directory when ``fit`` completes).
    Introduced in notebook 03.
    """

    def __init__(self, directory):
        super().__init__(str(directory), double_checkpoint=True)  # a damaged newest backup falls back to the one before
        self.directory = Path(directory)

    def saved(self) -> dict | None:
        """The newest backup's record (epoch, step, noise, configuration), or None when there is none."""
        path = Path(self._training_metadata_path)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def on_train_begin(self, logs=None):
        self.model._initial_epoch = None  # Keras never clears the epoch an earlier resumed fit() set
        try:
            super().on_train_begin(logs)  # on a damaged newest backup, Keras copies the previous one over it
        except OSError as error:
            raise RuntimeError(f"no backup in {self.directory} can be restored ({error}): delete the directory to "
                               "start over, or train into a new one") from error

    def _load_model(self):
        try:
            state = self.saved()
        except ValueError as error:  # cut mid-write, or damaged by something other than the kit
            raise self._damaged(f"{self._training_metadata_path} is unreadable ({error})") from error
        if state is None:
            return  # nothing to resume: a new run
        if not {"step", "noise", "config"} <= state.keys():
            raise self._damaged(f"{self._training_metadata_path} is incomplete (cut mid-save)")
        differences = _differences(state["config"], _fingerprint(self.model))
        if differences:  # not OSError: the previous backup would differ the same way
            raise RuntimeError(f"the backup in {self.directory} was made with another configuration ({differences}): "
                               "train into a new directory, or delete it to start over")
        try:
            super()._load_model()
        except (OSError, ValueError) as error:
            raise self._damaged(f"{self._weights_path} is damaged ({error})") from error
        if gan_steps(self.model) != state["step"]:  # a kill between Keras' two writes: weights newer than the record
            raise self._damaged(f"{self._weights_path} is at step {gan_steps(self.model)}, not {state['step']}")
        for variable, value in zip(_noise_states(self.model), state["noise"]):
            variable.assign(value)
        print(f"Resumed from {self.directory} at epoch {state['epoch']}, step {state['step']}.")

    def _damaged(self, problem: str) -> OSError:
        print(f"{problem}: trying the previous backup.")
        return OSError(problem)

    def _save_model(self):
        bad = _non_finite_weights(self.model)
        if bad:  # never replace a good backup with weights that just turned NaN
            print(f"Not saving epoch {self._current_epoch}: {', '.join(bad)} not finite; the last good backup is kept.")
            return
        super()._save_model()
        # Keras' record holds the epoch; ours adds what resuming a GAN needs, written whole (temp file + rename).
        state = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "step": gan_steps(self.model),
                 "noise": [keras.ops.convert_to_numpy(v).tolist() for v in _noise_states(self.model)],
                 "config": _fingerprint(self.model)}
        partial = self.directory / "partial.json"
        partial.write_text(json.dumps(state), encoding="utf-8")
        os.replace(partial, self._training_metadata_path)

    def on_train_end(self, logs=None):
        bad = _non_finite_weights(self.model)
        if bad and self.saved():  # keep the last good epoch to resume from, with a lower learning rate say
            print(f"{', '.join(bad)} ended with NaN/inf weights: the backup of epoch {self.saved()['epoch']} stays in "
                  f"{self.directory}.")
        elif not bad:
            super().on_train_end(logs)


def _fingerprint(gan) -> dict:
    """What makes two runs one run, as JSON values: the size the networks were built at (``make_gan`` keeps it), the
    trainer's recipe and other options, and each optimizer's settings."""
    size = getattr(gan, "size", None)
    record = {} if size is None else {
        f"size.{name}": value for name, value in dataclasses.asdict(size).items()
        if name not in ("steps", "num_images")}  # how long and on how much data, not what is trained
    recipe = getattr(gan, "recipe", None)
    if recipe is not None:
        record.update({f"recipe.{name}": value for name, value in dataclasses.asdict(recipe).items()})
    record.update(getattr(gan, "options", {}))
    for name in ("g_optimizer", "d_optimizer"):
        optimizer = getattr(gan, name)
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # inside a LossScaleOptimizer
        record.update({f"{name}.{key}": value for key, value in optimizer.get_config().items() if key != "name"})
    return json.loads(json.dumps(record))  # tuples become lists, as they come back from the file


def _differences(saved: dict, current: dict, show: int = 3) -> str:
    """The settings that differ, "name: saved -> now", the first ``show`` of them; "" when none."""
    def readable(value):
        return f"{value:.6g}" if isinstance(value, float) else value

    names = [name for name in sorted(saved.keys() | current.keys()) if saved.get(name) != current.get(name)]
    shown = [f"{name}: {readable(saved.get(name, 'absent'))} -> {readable(current.get(name, 'absent'))}"
             for name in names[:show]]
    return "; ".join(shown) + (f", and {len(names) - show} more" if len(names) > show else "")


def _noise_states(gan) -> list:
    """The state variables of the model's ``keras.random.SeedGenerator``s (G's noise, CA's sampling, dropout), in
    model order: ``save_weights`` leaves them out, so the checkpoint's record carries them."""
    return [v for v in gan.variables if v.path.endswith("seed_generator_state")]


def _non_finite(logs) -> list[str]:
    return [name for name, value in (logs or {}).items() if not math.isfinite(float(value))]


def _non_finite_weights(gan) -> list[str]:
    """The networks of ``gan`` holding a NaN/inf weight: a step can break the weights before any loss shows it."""
    return [network.name for network in (gan.generator, gan.discriminator)
            if not all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in network.weights)]


class StopOnNaN(keras.callbacks.Callback):
    """Stop at the first step whose losses are NaN or infinite, name the step, and say what usually causes it.
    Introduced in notebook 03."""

    def __init__(self):
        super().__init__()
        self.stopped_at: int | None = None

    def on_train_batch_end(self, batch, logs=None):
        bad = _non_finite(logs)
        if bad and self.stopped_at is None:
            self.stopped_at = gan_steps(self.model)
            self.model.stop_training = True
            print(f"\nStopped at optimizer step {self.stopped_at} (batch {batch + 1} of this epoch): "
                  f"{', '.join(bad)} became NaN/inf. A Checkpoint keeps the last good epoch (it never saves NaN "
                  "weights). Usual causes: a learning rate too high (halve both), D overpowering G (lower D's "
                  "learning rate, or use the hinge loss), input images with NaN or not in [-1, 1] (check the "
                  "dataset), or float16 overflow (set T2I_PRECISION=float32 and restart).")


class TimeBudget(keras.callbacks.Callback):
    """Stop ``fit`` at the end of the first step after ``minutes`` of training, and report the steps reached.

    The epoch that is cut short still ends as usual, so the loss history, the sample grid and the checkpoint
    record it. ``minutes=None`` means no budget. ``clock`` returns seconds (tests pass a fake one).
    Used by stop_after (notebook 03).
    """

    def __init__(self, minutes: float | None, clock=time.monotonic):
        super().__init__()
        if minutes is not None and not minutes > 0:
            raise ValueError(f"minutes={minutes!r}: a time budget must be a positive number of minutes (or None)")
        self.minutes, self.clock = minutes, clock
        self.stopped_at: int | None = None
        self.steps: int | None = None

    def on_train_begin(self, logs=None):
        self.stopped_at, self._start, self._first_step = None, self.clock(), None

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_step is None:  # here, not at train begin: a Checkpoint later in the list restores steps then
            self._first_step = gan_steps(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if self.minutes is not None and self.clock() - self._start >= 60 * self.minutes:
            self.stopped_at = gan_steps(self.model)
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.steps = gan_steps(self.model)
        minutes = (self.clock() - self._start) / 60
        if self.stopped_at is not None:
            why = f"the budget of {self.minutes:g} min is spent"
        else:
            why = "all the epochs fit() was given" + (f", within {self.minutes:g} min" if self.minutes else "")
        print(f"Trained {self.steps - self._first_step} steps (step {self.steps}) in {minutes:.1f} min: {why}.")


def stop_after(minutes: float) -> list:
    """The callbacks that stop a full-mode ``fit`` after ``minutes``: ``[TimeBudget(minutes)]``, and none in fast
    mode, whose fixed tiny step counts keep CI deterministic. Introduced in notebook 03."""
    return [] if config.is_fast() else [TimeBudget(minutes)]
