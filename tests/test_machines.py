"""What each machine gets: the recipe measured to work by default everywhere, widened on a GPU, and full-mode runs
bounded by the notebooks' minutes. The GPU is faked (device detection monkeypatched): CI has none."""

import ast
import os
import types
from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest

from t2ilib import callbacks, config, device, models, source_e, stackgan

ROOT = Path(__file__).resolve().parent.parent
# Far above any speed the kit has measured or estimated (docs/results.md: 46.7 steps/s for a T4 at the reed2016 widths,
# in mixed precision, as an optimistic bound), so a step cap that outlasts the budget at this rate always does.
FASTEST_STEPS_PER_SECOND = 1_000


@pytest.fixture()
def fake_gpu(monkeypatch):
    monkeypatch.setattr(device, "detect", lambda *args, **kwargs: types.SimpleNamespace(has_gpu=True))


def test_a_gpu_gets_the_improved_recipe_widened(fake_gpu):
    preset = config.get_preset(environ={"T2I_FAST": "0"})
    cpu = config.PRESETS["cpu"]
    assert preset.name == "gpu"
    assert preset.recipe == config.IMPROVED
    assert all(g > c for g, c in zip(preset.size.g_channels, cpu.size.g_channels))
    assert all(g > c for g, c in zip(preset.size.d_channels, cpu.size.d_channels))
    assert preset.size.batch_size > cpu.size.batch_size


def test_reed2016_is_there_by_name_and_never_the_default(monkeypatch):
    for has_gpu in (True, False):
        monkeypatch.setattr(device, "detect", lambda *a, has_gpu=has_gpu, **k: types.SimpleNamespace(has_gpu=has_gpu))
        assert config.get_preset(environ={"T2I_FAST": "0"}).name == ("gpu" if has_gpu else "cpu")
    reed = config.get_preset("reed2016")
    assert reed.recipe == config.REED_ET_AL
    assert reed.size.g_channels == (1024, 512, 256, 128) and config.get_preset("paper") is reed


class RecordedBudget:
    def __init__(self, minutes):
        self.minutes = minutes


def constants(notebook: str, session, monkeypatch) -> dict:
    """The namespace notebook's constants cell (the one reading its MINUTES) leaves, run against ``session``."""
    monkeypatch.setattr(callbacks, "TimeBudget", RecordedBudget, raising=False)
    monkeypatch.delenv("T2I_MINUTES", raising=False)
    monkeypatch.setenv("T2I_FAST", "0")  # full mode: callbacks.stop_after gives the run its TimeBudget
    cells = nbformat.read(ROOT / "notebooks" / notebook, as_version=4).cells
    source = next(c.source for c in cells if c.cell_type == "code" and "MINUTES = config.minutes(" in c.source)
    namespace = {"session": session, "config": config, "callbacks": callbacks, "os": os}
    exec(compile(source, notebook, "exec"), namespace)
    return namespace


def code_statements(notebook: str):
    """Each top-level statement of the notebook's code cells after its constants cell, with its source."""
    cells = [c for c in nbformat.read(ROOT / "notebooks" / notebook, as_version=4).cells if c.cell_type == "code"]
    start = next(i for i, c in enumerate(cells) if "MINUTES = config.minutes(" in c.source) + 1
    for cell in cells[start:]:
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.parse(source).body:
            yield node, ast.get_source_segment(source, node)


def is_preset_derivation(node) -> bool:
    """``preset_x = ...`` (a name with "preset" in it) at the top level of a cell: where a notebook derives a preset."""
    return (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
            and "preset" in node.targets[0].id)


def derive_presets(notebook: str, namespace: dict) -> dict:
    """``namespace`` with every preset the notebook derives after its constants cell, in the notebook's order."""
    namespace.update(source_e=source_e, stackgan=stackgan)
    for node, source in code_statements(notebook):
        if is_preset_derivation(node):
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
    [budget] = callbacks.stop_after(minutes)
    assert isinstance(budget, RecordedBudget) and budget.minutes == minutes
    assert cap / FASTEST_STEPS_PER_SECOND > 60 * minutes, f"{notebook} would stop at {cap} steps before its minutes"


EMBEDDING_DIM = 384  # all-MiniLM-L6-v2's, the full mode's text encoder


def run_a_batch(generator, discriminator, image_size):
    """A batch of two through G and then D: the shapes and the values the notebooks' runs rely on."""
    rng = np.random.default_rng(0)
    z_dim = generator.input["z"].shape[-1]
    text = keras.ops.convert_to_tensor(rng.standard_normal((2, EMBEDDING_DIM)).astype("float32"))
    z = keras.ops.convert_to_tensor(rng.standard_normal((2, z_dim)).astype("float32"))
    images = generator({"z": z, "text": text}, training=False)
    assert images.shape == (2, image_size, image_size, 3), generator.name
    logits = discriminator({"image": images, "text": text}, training=False)["logits"]
    assert np.isfinite(np.asarray(logits)).all(), discriminator.name


def build_and_run(preset, text_stats):
    """G (with CA, as notebooks 05 and 06 build it; notebooks 03, 04 and 07 use the Dense layer) and D of ``preset``."""
    generator = models.build_generator(preset, embedding_dim=EMBEDDING_DIM, text_stats=text_stats, conditioning="ca")
    discriminator = models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM, text_stats=text_stats)
    run_a_batch(generator, discriminator, preset.size.image_size)
    return generator


def build_source_e_setups(namespace, generators, text_stats):  # notebook 05, section 4: source E's G and D
    for setup in source_e.SOURCE_E_SETUPS.values():
        gan = source_e.build_source_e_gan(setup, namespace["preset_e"], text_stats=text_stats)
        run_a_batch(gan.generator, gan.discriminator, 64)


def build_stage2(namespace, generators, text_stats):  # notebook 06, section 4: Stage II on Stage I's generator
    gan = stackgan.make_stage2(generators["preset1"], namespace["preset1"], embedding_dim=EMBEDDING_DIM,
                               text_stats=text_stats, image_size=namespace["HIGH"])
    assert gan.generator.output.shape[1] == namespace["HIGH"]


def build_reed_et_al(namespace, generators, text_stats):  # notebooks 03 and 04 pass make_gan Reed et al.'s recipe
    build_and_run(namespace["preset"].replace(recipe=config.REED_ET_AL), text_stats)


# What a notebook builds beyond G and D of each preset it derives
OTHER_BUILDS = {"03_lstm_gan.ipynb": build_reed_et_al, "04_gan_cls.ipynb": build_reed_et_al,
                "05_conditioning_augmentation.ipynb": build_source_e_setups, "06_stackgan.ipynb": build_stage2}
TRAINING_NOTEBOOKS = ["03_lstm_gan.ipynb", "04_gan_cls.ipynb", "05_conditioning_augmentation.ipynb",
                      "06_stackgan.ipynb", "07_evaluation_and_demo.ipynb"]


@pytest.mark.parametrize("machine", ["cpu", "gpu"])
@pytest.mark.parametrize("notebook", TRAINING_NOTEBOOKS)
def test_every_full_mode_preset_of_a_notebook_builds_and_runs(monkeypatch, notebook, machine):
    # Fast mode trains only `smoke`: a preset a notebook derives in full mode is checked nowhere else (notebook 05's
    # batch-norm preset raised in full mode once the recipe gained z in every block).
    monkeypatch.setattr(device, "detect", lambda *args, **kwargs: types.SimpleNamespace(has_gpu=machine == "gpu"))
    session = types.SimpleNamespace(fast=False, preset=config.get_preset(environ={"T2I_FAST": "0"}))
    assert session.preset.name == machine
    # raises where the notebook derives an invalid preset
    namespace = derive_presets(notebook, constants(notebook, session, monkeypatch))
    # SOURCE_E is imported as published; notebook 05 trains preset_e, its copy at this machine's widths, with source
    # E's own builders (build_source_e_setups)
    presets = {name: value for name, value in namespace.items()
               if isinstance(value, config.Preset) and value is not source_e.SOURCE_E and name != "preset_e"}
    assert presets, f"{notebook} derives no preset"
    text_stats = (np.zeros(EMBEDDING_DIM, "float32"), np.ones(EMBEDDING_DIM, "float32"))
    generators = {name: build_and_run(preset, text_stats) for name, preset in presets.items()}
    if notebook in OTHER_BUILDS:
        OTHER_BUILDS[notebook](namespace, generators, text_stats)


def test_every_preset_a_notebook_trains_is_derived_where_the_test_above_finds_it():
    # What the test above relies on: a variant of a preset (`.replace(`) is made only in a top-level `preset_x = ...`
    for notebook in TRAINING_NOTEBOOKS:
        for node, source in code_statements(notebook):
            if not is_preset_derivation(node):
                assert ".replace(" not in source.replace("str.replace(", ""), f"{notebook}: {source[:80]}"


@pytest.mark.parametrize("notebook", TRAINING_NOTEBOOKS)
def test_a_laptop_gets_a_shorter_budget_than_a_gpu_and_fast_mode_stays_explicit(monkeypatch, notebook):
    # A student who runs a notebook on a laptop, nothing set, trains in full mode for the laptop's minutes.
    budgets = {}
    for machine in ("cpu", "gpu"):
        monkeypatch.setattr(device, "detect", lambda *a, machine=machine, **k: types.SimpleNamespace(
            has_gpu=machine == "gpu"))
        assert not config.is_fast(environ={})
        session = types.SimpleNamespace(fast=False, preset=config.get_preset(environ={}))
        budgets[machine] = constants(notebook, session, monkeypatch)["MINUTES"]
    assert 0 < budgets["cpu"] < budgets["gpu"], budgets


# make course's 45 minutes on a 2-core laptop: the training budgets of 03-06 plus the fixed costs (install, data,
# caption encodings, the judges' first training, evaluations): 26 + 14.5 minutes in a first make course from a fresh
# clone (docs/results.md, 2026-12-05: 40.5 minutes in all). Notebook 03's section 5c (2026-12-06) added 2 minutes
# of budget and about half a minute of pretraining: about 43, not yet measured end to end.
# Notebook 07 trains only when the student has no generator saved, and make course runs 04, which saves one, first.
LAPTOP_TRAINING_MINUTES = 28


def test_the_laptop_budgets_fit_make_courses_45_minutes(monkeypatch):
    monkeypatch.setattr(device, "detect", lambda *a, **k: types.SimpleNamespace(has_gpu=False))
    session = types.SimpleNamespace(fast=False, preset=config.get_preset(environ={}))
    budgets = {notebook: constants(notebook, session, monkeypatch)["MINUTES"] for notebook in TRAINING_NOTEBOOKS
               if not notebook.startswith("07")}
    assert sum(budgets.values()) <= LAPTOP_TRAINING_MINUTES, f"the laptop budgets {budgets} break make course's 45"
