"""Keras callbacks for GAN training: watch it, record it, survive interruptions, stop when it breaks.

- :class:`SampleGrid`: the same captions and the same noise every epoch, so the pictures show learning.
- :class:`LossHistory`: losses and D's outputs per epoch to CSV (and a plot), kept across resumed runs.
- :class:`Checkpoint`: weights, both optimizers and the epoch saved atomically; a restarted ``fit`` continues.
- :class:`StopOnNaN`: stops at the first non-finite loss and says what to try.

They work with ``t2ilib.training.ConditionalGAN`` (anything with ``generator``, ``g_optimizer`` and
``d_optimizer``) and read the logs it returns (``d_loss``, ``g_loss``, ``d_real``, ``d_fake``, ``d_wrong``).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from t2ilib import viz

__all__ = ["SampleGrid", "LossHistory", "Checkpoint", "StopOnNaN", "gan_steps"]


def gan_steps(gan) -> int:
    """Optimizer steps the generator has taken: the run's progress, whatever the epochs were."""
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
            z_dim = self.model.generator.input["z"].shape[-1]
            self.z = np.random.default_rng(self.seed).standard_normal((len(repeated), z_dim)).astype("float32")
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
    """Save everything needed to continue - G, D, both optimizers (Adam's moments and step counts), the epoch -
    every ``every`` epochs, and restore it when training starts again.

    Writes go to a temporary file that is then renamed over the old one, so a process killed mid-save (a Colab
    disconnect) leaves the previous checkpoint intact. Point ``directory`` at a Google Drive folder to survive
    the runtime itself. Run the same ``fit(..., epochs=N)`` again after a crash: it continues at the saved epoch
    and ends at epoch N with the same number of optimizer steps as a run that was never interrupted. A finished
    run's checkpoint is kept, so re-running a finished cell trains nothing more.

    Put it *last* in the callback list: then everything the other callbacks write for an epoch (the loss
    history, the sample grid) is on disk before the checkpoint says that epoch is done.
    """

    WEIGHTS = "gan.weights.h5"
    STATE = "state.json"

    def __init__(self, directory, every: int = 1):
        super().__init__()
        self.directory = Path(directory)
        self.every = every
        self.restored_epoch = 0

    @property
    def weights_path(self) -> Path:
        return self.directory / self.WEIGHTS

    @property
    def state_path(self) -> Path:
        return self.directory / self.STATE

    def on_train_begin(self, logs=None):
        self.restored_epoch = self.restore()

    def restore(self) -> int:
        """Load the last checkpoint into the model, if there is one; returns the epoch it was saved at."""
        if not self.state_path.exists():
            return 0
        state = json.loads(self.state_path.read_text())
        gan = self.model
        # Optimizer slots (Adam's moments) exist only once built; build them so loading has somewhere to go.
        gan.g_optimizer.build(gan.generator.trainable_variables)
        gan.d_optimizer.build(gan.discriminator.trainable_variables)
        try:
            gan.load_weights(self.weights_path)
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"cannot restore the checkpoint in {self.directory}: {error}. If the model or preset changed "
                f"since it was saved, train into a new directory (or delete {self.directory} to start over)."
            ) from error
        # fit() starts its epoch loop at model._initial_epoch when it is set (what keras' BackupAndRestore uses).
        gan._initial_epoch = state["epoch"]
        print(f"Resumed from {self.directory} at epoch {state['epoch']}, step {state['step']}.")
        return state["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or self.model.stop_training and _non_finite(logs):
            return  # never overwrite a good checkpoint with weights that just turned NaN
        self.save(epoch + 1)

    def save(self, epoch: int):
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f"partial.{self.WEIGHTS}"  # keras wants the .weights.h5 suffix
        self.model.save_weights(partial)
        os.replace(partial, self.weights_path)
        state = {"epoch": epoch, "step": gan_steps(self.model)}
        partial_state = self.state_path.with_name(self.STATE + ".partial")
        partial_state.write_text(json.dumps(state))
        os.replace(partial_state, self.state_path)

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None  # a later fit() without this callback starts where it is told


def _non_finite(logs) -> list[str]:
    return [name for name, value in (logs or {}).items() if not math.isfinite(float(value))]


class StopOnNaN(keras.callbacks.Callback):
    """Stop at the first step whose losses are NaN or infinite, and say what usually causes it."""

    def __init__(self):
        super().__init__()
        self.stopped_at: int | None = None

    def on_train_batch_end(self, batch, logs=None):
        bad = _non_finite(logs)
        if bad and self.stopped_at is None:
            self.stopped_at = gan_steps(self.model)
            self.model.stop_training = True
            print(f"\nStopped at step {self.stopped_at}: {', '.join(bad)} became NaN/inf. The last checkpoint "
                  "is untouched. Usual causes: a learning rate too high (try halving both), images not in "
                  "[-1, 1], or float16 overflow (set T2I_PRECISION=float32 and restart).")
