"""Keras callbacks for GAN training: watch it, record it, survive interruptions, stop when it breaks.
Introduced in notebook 03.

- :class:`SampleGrid`: the same captions and the same noise every epoch, so the pictures show learning.
- :class:`LossHistory`: losses and D's outputs per epoch to CSV (and a plot), kept across resumed runs.
- :class:`Checkpoint`: a backup of weights, both optimizers and the epoch, saved atomically in two generations, that
  an interrupted ``fit`` resumes; removed when ``fit`` completes, which saves the finished model instead.
- :class:`StopOnNaN`: stops at the first non-finite loss and says what to try.
- :class:`TimeBudget`: stops ``fit`` cleanly once its minutes are spent (``T2I_MINUTES`` overrides them).

They work with ``t2ilib.training.ConditionalGAN`` (anything with ``generator``, ``g_optimizer`` and
``d_optimizer``) and read the logs it returns (``d_loss``, ``g_loss``, ``d_real``, ``d_fake``, ``d_wrong``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from t2ilib import config, models, viz

__all__ = ["SampleGrid", "LossHistory", "Checkpoint", "StopOnNaN", "TimeBudget", "budget", "configuration", "gan_steps"]


def gan_steps(gan) -> int:
    """Optimizer steps the generator has taken: the run's progress, whatever the epochs were.
    Introduced in notebook 03."""
    return int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations))


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


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
        self.show = _in_notebook() if show is None else show
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
    """One CSV row per epoch: epoch, optimizer step, seconds of training so far, and every logged value.

    The file is rewritten atomically each epoch. A resumed run (see :class:`Checkpoint`) keeps the rows of the
    epochs it does not redo, so the history of a run that was killed twice still reads as one run.
    ``plot_path`` also saves :func:`t2ilib.viz.plot_history` at the end of training.
    Introduced in notebook 03.
    """

    def __init__(self, csv_path, plot_path=None):
        super().__init__()
        self.csv_path = Path(csv_path)
        self.plot_path = None if plot_path is None else Path(plot_path)
        self.rows: list[dict] = []

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def on_train_begin(self, logs=None):
        self.rows = pd.read_csv(self.csv_path).to_dict("records") if self.csv_path.exists() else []
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


class Checkpoint(keras.callbacks.Callback):
    """A backup that survives an interruption, in the sense of ``keras.callbacks.BackupAndRestore``: G, D, both
    optimizers (Adam's moments and step counts), the noise generators' states and the epoch, saved every ``every``
    epochs while ``fit`` runs, and removed when ``fit`` completes; the finished model is saved separately, as
    ``finished.weights.h5`` and ``finished.json``.

    Continue an interrupted run by passing the epoch it reached to ``fit``::

        checkpoint = callbacks.Checkpoint(run_dir / "checkpoint")
        gan.fit(dataset, epochs=N, initial_epoch=checkpoint.resume(gan), callbacks=[..., checkpoint])

    It then ends at epoch N with the same optimizer steps as a run never interrupted. A finished run is not
    resumed: fit trains again from the start (and says so). A backup made by another configuration (other
    widths, learning rates, GAN options) is refused with a message naming what differs.

    Each save is one generation: ``epoch-NNNN.weights.h5`` and then ``epoch-NNNN.json`` (the epoch, the step, the
    noise states, the configuration and the SHA-256 of the weights file), each written to a temporary file and
    renamed, the json last, so a process killed mid-save (a Colab disconnect) leaves the earlier generations
    intact. The last ``keep`` generations stay on disk: if the newest one is damaged (a truncated file, a full
    disk, a half-synced Drive folder), :meth:`restore` says which file is broken and uses the one before. An epoch
    whose losses or weights are NaN/inf is never saved, and a run that ends with NaN weights keeps its backup (the
    last good epoch) instead of saving a finished model.

    Put it *last* in the callback list: then everything the other callbacks write for an epoch (the loss
    history, the sample grid) is on disk before the checkpoint says that epoch is done.
    Introduced in notebook 03.
    """

    FINISHED = "finished"

    def __init__(self, directory, every: int = 1, keep: int = 2):
        super().__init__()
        if keep < 2:
            raise ValueError(f"keep={keep}: keep at least 2 generations, so a damaged one has a fallback")
        self.directory = Path(directory)
        self.every, self.keep = every, keep
        self.restored_epoch = 0
        self._resumed = False

    def state_path(self, epoch: int) -> Path:
        return self.directory / f"epoch-{epoch:04d}.json"

    def weights_path(self, epoch: int) -> Path:
        return self.directory / f"epoch-{epoch:04d}.weights.h5"  # keras wants the .weights.h5 suffix

    @property
    def finished_weights_path(self) -> Path:
        return self.directory / f"{self.FINISHED}.weights.h5"

    @property
    def finished_state_path(self) -> Path:
        return self.directory / f"{self.FINISHED}.json"

    def saved_epochs(self) -> list[int]:
        """Epochs with a state file on disk, newest first (whether or not their files are intact)."""
        epochs = []
        for path in self.directory.glob("epoch-*.json"):
            number = path.stem.removeprefix("epoch-")
            if number.isdigit():
                epochs.append(int(number))
        return sorted(epochs, reverse=True)

    def resume(self, gan) -> int:
        """Restore the newest intact backup into ``gan``; the epoch to pass to ``fit(initial_epoch=...)``
        (0 when there is nothing to resume)."""
        self.set_model(gan)
        self.restored_epoch = self.restore()
        self._resumed = True
        return self.restored_epoch

    def on_train_begin(self, logs=None):
        self._epochs_done = None
        self._first_epoch = None
        if not self._resumed:
            self.restored_epoch = 0
        if not self.restored_epoch and not self.saved_epochs() and self.finished_state_path.is_file():
            finished = json.loads(self.finished_state_path.read_text(encoding="utf-8"))
            print(f"{self.directory} holds a finished run (epoch {finished['epoch']}, step {finished['step']}); "
                  "training from the start (its finished weights are replaced at the end).")

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is not None:
            return
        self._first_epoch = epoch
        if self._resumed or not self.saved_epochs():
            return
        # A backup, and fit() was not told where it stopped: resuming here would redo the epochs it already did.
        newest = self.saved_epochs()[0]
        if epoch != newest:
            raise RuntimeError(
                f"{self.directory} holds the backup of an interrupted run at epoch {newest}: continue it with "
                "gan.fit(..., initial_epoch=checkpoint.resume(gan)), or delete the directory to start over")
        self.resume(self.model)

    def restore(self) -> int:
        """Load the newest intact checkpoint into the model, if there is one; returns the epoch it was saved at."""
        gan = self.model
        for epoch in self.saved_epochs():
            state, problem = self._read_state(epoch)
            if problem:
                print(f"Checkpoint {problem}; it is left on disk and the previous checkpoint is used instead.")
                continue
            differences = _differences(state.get("config"), configuration(gan))
            if differences:  # intact, but another model: a fallback would differ the same way
                raise RuntimeError(
                    f"the checkpoint in {self.directory} was made with another configuration ({differences}): "
                    "train into a new directory, or delete it to start over")
            # Optimizer slots (Adam's moments) exist only once built; build them so loading has somewhere to go.
            gan.g_optimizer.build(gan.generator.trainable_variables)
            gan.d_optimizer.build(gan.discriminator.trainable_variables)
            try:
                gan.load_weights(self.weights_path(epoch))
            except (OSError, ValueError) as error:
                raise RuntimeError(
                    f"cannot restore the checkpoint {self.weights_path(epoch)}: {error}. If the model or preset "
                    f"changed since it was saved, train into a new directory (or delete {self.directory} to start "
                    "over)."
                ) from error
            for variable, value in zip(_noise_states(gan), state["noise"]):
                variable.assign(value)
            print(f"Resumed from {self.directory} at epoch {state['epoch']}, step {state['step']}.")
            return state["epoch"]
        if self.saved_epochs():
            raise RuntimeError(f"every checkpoint in {self.directory} is damaged (see above): delete the directory "
                               "to start over, or train into a new one")
        return 0

    def _read_state(self, epoch: int) -> tuple[dict | None, str | None]:
        """The state of one generation, or a message naming what is wrong with it."""
        state_path, weights_path = self.state_path(epoch), self.weights_path(epoch)
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            expected = state["sha256"], state["epoch"], state["step"], state["noise"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            return None, f"{state_path} is unreadable ({type(error).__name__}: {error})"
        if not weights_path.is_file():
            return None, f"{weights_path} is missing"
        if _sha256(weights_path) != expected[0]:
            return None, f"{weights_path} is damaged (its SHA-256 differs from the one in {state_path.name})"
        return state, None

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_done = epoch + 1
        if (epoch + 1) % self.every:
            return
        bad = _non_finite(logs) or _non_finite_weights(self.model)
        if bad:  # never replace a good checkpoint with weights that just turned NaN
            print(f"Not saving epoch {epoch + 1}: {', '.join(bad)} not finite; the last good checkpoint is kept.")
            return
        self.save(epoch + 1)

    def save(self, epoch: int):
        """Write generation ``epoch`` atomically, then drop the generations older than the last ``keep``."""
        weights_path, state_path = self.weights_path(epoch), self.state_path(epoch)
        self._write(weights_path, state_path, epoch)
        for old in self.saved_epochs()[self.keep:]:
            self.state_path(old).unlink()  # the state first: a kill in between leaves no state without weights
            self.weights_path(old).unlink(missing_ok=True)

    def _write(self, weights_path: Path, state_path: Path, epoch: int):
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f"partial.{weights_path.name}"
        self.model.save_weights(partial)
        state = {"epoch": epoch, "step": gan_steps(self.model), "sha256": _sha256(partial),
                 "noise": [keras.ops.convert_to_numpy(v).tolist() for v in _noise_states(self.model)],
                 "config": configuration(self.model)}
        os.replace(partial, weights_path)
        partial_state = self.directory / f"partial.{state_path.name}"
        partial_state.write_text(json.dumps(state), encoding="utf-8")
        os.replace(partial_state, state_path)

    def on_train_end(self, logs=None):
        self._resumed = False  # the next fit() with this callback looks at the disk again
        bad = _non_finite_weights(self.model)
        if bad:
            if self.saved_epochs():
                print(f"{', '.join(bad)} ended with NaN/inf weights: no finished model is saved, and the backup "
                      f"of epoch {self.saved_epochs()[0]} stays in {self.directory}.")
            return
        epoch = self._epochs_done if self._epochs_done is not None else self.restored_epoch
        # The finished model first, then the backup goes: a kill in between leaves a backup to resume, not nothing.
        self._write(self.finished_weights_path, self.finished_state_path, epoch)
        for old in self.saved_epochs():
            self.state_path(old).unlink()
            self.weights_path(old).unlink(missing_ok=True)


def configuration(gan) -> dict:
    """What makes two runs the same run, as flat JSON values: the GAN's own options, each optimizer's settings
    and each network's layers (class and config, names left out: Keras numbers them per session).
    Used by Checkpoint (notebook 03)."""
    config = {"class": type(gan).__name__}
    for name, value in vars(gan).items():
        if name not in _keras_attributes() and isinstance(value, (bool, int, float, str, type(None))):
            config[name] = value
        elif isinstance(value, keras.Model):
            for index, layer in enumerate(value.layers):
                config[f"{name} layer {index} ({type(layer).__name__})"] = _without_names(layer.get_config())
    for name in ("g_optimizer", "d_optimizer"):
        optimizer = getattr(gan, name, None)
        if optimizer is not None:
            config[name] = _without_names(optimizer.get_config())
    return _flat(json.loads(json.dumps(config, default=str)))


def _keras_attributes() -> set[str]:
    """The scalar attributes every compiled keras.Model has (its name, flags, fit() state): not the run's config."""
    global _KERAS_ATTRIBUTES
    if _KERAS_ATTRIBUTES is None:
        plain = keras.Model()
        plain.compile()
        _KERAS_ATTRIBUTES = set(vars(plain)) | {"stop_training"}
    return _KERAS_ATTRIBUTES


_KERAS_ATTRIBUTES = None


def _without_names(value):
    if isinstance(value, dict):
        return {key: _without_names(item) for key, item in value.items() if key != "name"}
    if isinstance(value, (list, tuple)):
        return [_without_names(item) for item in value]
    return value


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"[{index}]", item) for index, item in enumerate(value))
    else:
        return {prefix: value}
    flat = {}
    for key, item in items:
        flat.update(_flat(item, f"{prefix}{'' if key.startswith('[') or not prefix else '.'}{key}"))
    return flat


def _differences(saved: dict | None, current: dict, show: int = 3) -> str:
    """The settings that differ, "name: saved -> now", the first ``show`` of them; "" when none (or no record)."""
    if saved is None:  # a checkpoint from before configurations were recorded
        return ""
    names = [name for name in sorted(saved.keys() | current.keys()) if saved.get(name) != current.get(name)]
    def readable(value):
        return f"{value:.6g}" if isinstance(value, float) else value

    shown = [f"{name}: {readable(saved.get(name, 'absent'))} -> {readable(current.get(name, 'absent'))}"
             for name in names[:show]]
    more = f", and {len(names) - show} more" if len(names) > show else ""
    return "; ".join(shown) + more


def _noise_states(gan) -> list:
    """The state variables of the model's ``keras.random.SeedGenerator``s (G's noise, CA's sampling, dropout), in
    model order: ``save_weights`` leaves them out, so the checkpoint's json carries them."""
    return [v for v in gan.variables if v.path.endswith("seed_generator_state")]


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


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
    Used by budget (notebook 03).
    """

    def __init__(self, minutes: float | None, clock=time.monotonic):
        super().__init__()
        if minutes is not None and not minutes > 0:
            raise ValueError(f"minutes={minutes!r}: a time budget must be a positive number of minutes (or None)")
        self.minutes, self.clock = minutes, clock
        self.stopped_at: int | None = None
        self.steps: int | None = None

    def on_train_begin(self, logs=None):
        self.stopped_at, self._start = None, self.clock()
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


def budget(minutes: float) -> list:
    """The callbacks that bound a full-mode ``fit`` to ``minutes`` (notebook 03): none in fast mode, whose fixed
    tiny step counts keep CI deterministic.
    Introduced in notebook 03."""
    return [] if config.is_fast() else [TimeBudget(minutes)]
