"""What each machine gets: the recipe measured to work by default everywhere, widened on a GPU, and full-mode runs
bounded by the notebooks' minutes. The GPU is faked (device detection monkeypatched): CI has none."""

import os
import types
from pathlib import Path

import nbformat
import pytest

from t2ilib import callbacks, config, device

ROOT = Path(__file__).resolve().parent.parent
# Far above any speed the kit has measured or estimated (README: 46.7 steps/s for a T4 at the reed2016 widths,
# in mixed precision, as an optimistic bound), so a step cap that outlasts the budget at this rate always does.
FASTEST_STEPS_PER_SECOND = 1_000


@pytest.fixture()
def fake_gpu(monkeypatch):
    monkeypatch.setattr(device, "detect", lambda *args, **kwargs: types.SimpleNamespace(has_gpu=True))


def test_a_gpu_gets_the_improved_recipe_widened(fake_gpu):
    preset = config.get_preset(environ={"T2I_FAST": "0"})
    cpu = config.PRESETS["cpu"]
    assert preset.name == "gpu"
    assert {field: getattr(preset, field) for field in config.IMPROVED} == config.IMPROVED
    assert all(g > c for g, c in zip(preset.g_channels, cpu.g_channels))
    assert all(g > c for g, c in zip(preset.d_channels, cpu.d_channels))
    assert preset.batch_size > cpu.batch_size


def test_reed2016_is_there_by_name_and_never_the_default(monkeypatch):
    for has_gpu in (True, False):
        monkeypatch.setattr(device, "detect", lambda *a, has_gpu=has_gpu, **k: types.SimpleNamespace(has_gpu=has_gpu))
        assert config.get_preset(environ={"T2I_FAST": "0"}).name == ("gpu" if has_gpu else "cpu")
    reed = config.get_preset("reed2016")
    assert {field: getattr(reed, field) for field in config.REED_ET_AL} == config.REED_ET_AL
    assert reed.g_channels == (1024, 512, 256, 128) and config.get_preset("paper") is reed


class RecordedBudget:
    def __init__(self, minutes):
        self.minutes = minutes


def constants(notebook: str, session, monkeypatch) -> dict:
    """The namespace notebook's constants cell (the one reading its MINUTES) leaves, run against ``session``."""
    monkeypatch.setattr(callbacks, "TimeBudget", RecordedBudget, raising=False)
    monkeypatch.delenv("T2I_MINUTES", raising=False)
    monkeypatch.setenv("T2I_FAST", "0")  # full mode: callbacks.budget gives the run its TimeBudget
    cells = nbformat.read(ROOT / "notebooks" / notebook, as_version=4).cells
    source = next(c.source for c in cells if c.cell_type == "code" and "MINUTES = config.minutes(" in c.source)
    namespace = {"session": session, "config": config, "callbacks": callbacks, "os": os}
    exec(compile(source, notebook, "exec"), namespace)
    return namespace


# notebook: (the step cap of its first full-mode run, the minutes that run is given), from its constants cell
RUNS = {
    "03_lstm_gan.ipynb": lambda ns: (ns["EPOCHS"] * ns["STEPS_PER_EPOCH"], ns["MINUTES"]),
    "04_gan_cls.ipynb": lambda ns: (ns["EPOCHS"] * ns["STEPS_PER_EPOCH"], ns["MAIN_MINUTES"]),
    "06_stackgan.ipynb": lambda ns: (ns["STEPS1"], ns["STAGE1_MINUTES"]),
    "07_evaluation_and_demo.ipynb": lambda ns: (ns["STEPS"], ns["MINUTES"] / 2),
}


@pytest.mark.parametrize("notebook", sorted(RUNS))
def test_on_a_gpu_the_minutes_not_the_step_cap_end_a_full_mode_run(fake_gpu, monkeypatch, notebook):
    session = types.SimpleNamespace(fast=False, preset=config.get_preset(environ={"T2I_FAST": "0"}))
    namespace = constants(notebook, session, monkeypatch)
    cap, minutes = RUNS[notebook](namespace)
    [budget] = callbacks.budget(minutes)
    assert isinstance(budget, RecordedBudget) and budget.minutes == minutes
    assert cap / FASTEST_STEPS_PER_SECOND > 60 * minutes, f"{notebook} would stop at {cap} steps before its minutes"
