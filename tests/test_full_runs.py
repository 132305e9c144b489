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
    changed["runs"]["GAN-CLS"]["preset"]["loss"] = "bce"
    lines = full_runs.differences(changed, full_runs.recipe_of(name))
    assert len(lines) == 2 and any(".minutes:" in line for line in lines) and any(".loss:" in line for line in lines)


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
    record = viz.show_full_run("04_gan_cls", tmp_path)
    shown = capsys.readouterr().out
    assert "Stored result of the full run (not this run)" in shown and "make full-runs" in shown
    assert f"{record['runs']['GAN-CLS']['steps']} steps" in shown
