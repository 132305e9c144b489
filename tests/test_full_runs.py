"""The stored results of the notebooks' full runs (t2ilib/assets/full_runs, made by `make full-runs`, shown by
viz.show_full_run) are there, readable, and still what each notebook's recipe would train: a notebook whose preset,
budget, step cap, judge or model-building call changes fails here until `make full-runs` stores it again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

from t2ilib import viz
from tools import full_runs

NAMES = sorted(full_runs.RUNS)
MAX_GRID_BYTES = 400_000  # small files in the repository


@pytest.mark.parametrize("name", NAMES)
def test_stored_run_is_there_and_readable(name):
    from PIL import Image

    record = viz.load_full_run(name)
    assert record["made_by"]["command"] == "make full-runs"
    for run_name, run in record["runs"].items():
        assert run["steps"] > 0 and run["seconds"] > 0, (name, run_name)
        assert run["load_average"]["during_mean_1min"] >= 0, (name, run_name)
        assert all(np.isfinite(value) for value in run["numbers"].values()), (name, run_name, run["numbers"])
        if run.get("grid"):
            path = Path(record["directory"]) / run["grid"]
            assert path.stat().st_size < MAX_GRID_BYTES, f"{path}: {path.stat().st_size} bytes"
            assert Image.open(path).size[0] > 64
    assert any(run.get("grid") for run in record["runs"].values()), f"{name}: no sample grid stored"


@pytest.mark.parametrize("name", NAMES)
def test_stored_recipe_is_the_notebooks(name):
    stored = viz.load_full_run(name)["recipe"]
    changed = full_runs.differences(stored, full_runs.recipe_of(name))
    assert not changed, (f"{name}'s stored full run no longer matches the notebook: run "
                         f"`make full-runs FULL_RUNS=\"--notebook {name[:2]}\"`\n" + "\n".join(changed))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_still_makes_the_calls_the_full_run_made(name):
    assert full_runs.missing_builds(name) == [], f"notebooks/{name}.ipynb changed a call tools/full_runs.py makes"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_shows_its_stored_run(name):
    code = "\n".join(cell.source for cell in nbformat.read(full_runs.NOTEBOOKS / f"{name}.ipynb", 4).cells
                     if cell.cell_type == "code")
    assert f'viz.show_full_run("{name}")' in code


def test_a_changed_recipe_is_found(tmp_path):
    name = "04_gan_cls"
    stored = viz.load_full_run(name)["recipe"]
    changed = json.loads(json.dumps(stored))
    changed["runs"]["GAN-CLS"]["minutes"] += 1
    changed["runs"]["GAN-CLS"]["recipe"]["loss"] = "bce"
    changed["runs"]["GAN-CLS"]["size"]["batch_size"] *= 2
    lines = full_runs.differences(changed, full_runs.recipe_of(name))
    assert len(lines) == 3 and [line.split(":")[0] for line in lines] == [
        "recipe.runs.GAN-CLS.minutes", "recipe.runs.GAN-CLS.recipe.loss", "recipe.runs.GAN-CLS.size.batch_size"]


# An edit to a scratch copy of a notebook (old text -> new text) and the difference the stored run must then show:
# in the constants cell, in a name defined in a section cell (tools/full_runs.ELSEWHERE), or in a call it makes.
EDITS = [
    ("03_lstm_gan", "MINUTES * 3 / 16, MINUTES * 3 / 16   #", "MINUTES * 3 / 16, MINUTES * 4 / 16   #",
     "recipe.runs.GAN-CLS with LSTMs.minutes: stored 2.625, notebook now 3.5"),
    ("05_conditioning_augmentation", "g_channels=preset.size.g_channels[:3]", "g_channels=preset.size.g_channels[1:]",
     "recipe.runs.Dense.size.g_channels: stored [128, 64, 32], notebook now [64, 32, 16]"),
    ("06_stackgan", "RECONSTRUCTION_WEIGHT = 1.0", "RECONSTRUCTION_WEIGHT = 0.5",
     "recipe.judge.reconstruction_weight: stored 1.0, notebook now 0.5"),
    ("06_stackgan", "JUDGE_EPOCHS = 1 if session.fast else 6", "JUDGE_EPOCHS = 1 if session.fast else 4",
     "recipe.judge.epochs: stored 6, notebook now 4"),
]


@pytest.mark.parametrize("name, old, new, expected", EDITS, ids=[f"{e[0][:2]}-{e[3].split(':')[0]}" for e in EDITS])
def test_a_changed_notebook_is_found(tmp_path, monkeypatch, name, old, new, expected):
    notebook = nbformat.read(full_runs.NOTEBOOKS / f"{name}.ipynb", 4)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code" and old in cell.source]
    assert len(cells) == 1, f"notebooks/{name}.ipynb: {old!r} is in {len(cells)} code cells; update EDITS"
    cells[0].source = cells[0].source.replace(old, new)
    nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    monkeypatch.setattr(full_runs, "NOTEBOOKS", tmp_path)
    lines = full_runs.differences(viz.load_full_run(name)["recipe"], full_runs.recipe_of(name))
    assert expected in lines, lines


def test_a_changed_call_is_found(tmp_path, monkeypatch):
    name = "03_lstm_gan"
    notebook = nbformat.read(full_runs.NOTEBOOKS / f"{name}.ipynb", 4)
    cell = next(cell for cell in notebook.cells if "lstm_cls = training.make_gan(" in cell.source)
    cell.source = cell.source.replace("recipe=config.REED_ET_AL", "recipe=config.IMPROVED")
    nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    monkeypatch.setattr(full_runs, "NOTEBOOKS", tmp_path)
    assert full_runs.missing_builds(name) == [full_runs.BUILDS[name]["gan_cls"]]


def test_a_name_defined_twice_or_nowhere_is_named(tmp_path, monkeypatch):
    name = "06_stackgan"
    notebook = nbformat.read(full_runs.NOTEBOOKS / f"{name}.ipynb", 4)
    notebook.cells.append(nbformat.v4.new_code_cell("RECONSTRUCTION_WEIGHT = 2.0"))
    nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    monkeypatch.setattr(full_runs, "NOTEBOOKS", tmp_path)
    with pytest.raises(ValueError, match=r"06_stackgan\.ipynb.*one top-level assignment to 'RECONSTRUCTION_WEIGHT'"
                                         r", found 2.*ELSEWHERE"):
        full_runs.recipe_of(name)
    monkeypatch.setitem(full_runs.ELSEWHERE, name, ("NO_SUCH_NAME",))
    with pytest.raises(ValueError, match="found 0"):
        full_runs.constants(name)


def test_missing_or_unreadable_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"04_gan_cls\.json.*make full-runs"):
        viz.load_full_run("04_gan_cls", tmp_path)
    (tmp_path / "04_gan_cls.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"04_gan_cls\.json.*JSONDecodeError"):
        viz.load_full_run("04_gan_cls", tmp_path)
    (tmp_path / "04_gan_cls.json").write_text(json.dumps({"runs": {"GAN-CLS": {"steps": 10}}}))
    with pytest.raises(ValueError, match="KeyError"):
        viz.load_full_run("04_gan_cls", tmp_path)


def test_show_full_run_labels_it(tmp_path, capsys):
    for path in viz.FULL_RUNS.glob("04_gan_cls*"):
        shutil.copy(path, tmp_path)
    assert viz.show_full_run("04_gan_cls", tmp_path) is None   # nothing for a notebook cell to print as a dict
    shown = capsys.readouterr().out
    record = viz.load_full_run("04_gan_cls", tmp_path)
    assert "Stored result of the full run (not this run)" in shown and "make full-runs" in shown
    assert f"{record['runs']['GAN-CLS']['steps']} steps" in shown


def test_a_recipe_field_added_later_counts_as_its_default_in_an_older_record():
    import dataclasses

    from t2ilib import config

    recipe = dataclasses.asdict(config.IMPROVED.replace(padding="zero"))
    older = {"runs": {"GAN-CLS": {"recipe": {k: v for k, v in recipe.items() if k != "padding"}}}}  # before `padding`
    assert full_runs.differences(older, {"runs": {"GAN-CLS": {"recipe": recipe}}}) == []
    now = {"runs": {"GAN-CLS": {"recipe": {**recipe, "padding": "reflect"}}}}
    assert full_runs.differences(older, now) == [
        "recipe.runs.GAN-CLS.recipe.padding: stored 'zero', notebook now 'reflect'"]
