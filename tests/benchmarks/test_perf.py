"""The performance benchmark (``perf.py``).

``make test`` runs it at toy size: the smoke preset, one timed step, no timing assertions; it proves the code
runs and checks the FLOP counter against hand counts. ``make bench`` (``--bench-full``) runs it at the ``cpu``
preset on ``data/synthetic_flowers`` and writes ``build/bench.md``; run that on a quiet machine.
"""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from t2ilib import config, data
from tests.benchmarks import perf


@pytest.fixture
def full(request):
    return request.config.getoption("--bench-full")


def test_flop_count_matches_a_hand_count():
    image = tf.random.normal([2, 8, 8, 4])
    kernel = tf.Variable(tf.random.normal([3, 3, 4, 5]))
    weights = tf.Variable(tf.random.normal([5, 6]))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            features = tf.reduce_mean(tf.nn.conv2d(x, kernel, 1, "SAME"), axis=[1, 2])  # [2, 5]
            loss = tf.reduce_sum(tf.matmul(features, weights))  # [2, 5] x [5, 6]
        return tape.gradient(loss, [x, kernel, weights])

    conv = 2 * 8 * 8 * 3 * 3 * 4 * 5  # output positions x kernel area x in x out channels
    matmul = 2 * 5 * 6
    # Forward conv + its input and filter gradients; forward matmul + its weight gradient (the features' gradient
    # is another matmul of the same size).
    expected = 2 * (3 * conv + 3 * matmul)
    assert perf.step_flops(step.get_concrete_function(image)) == expected


def test_loops_count_once_per_trip():
    weights = tf.random.normal([4, 4])

    @tf.function
    def loop(x):
        return tf.while_loop(lambda i, h: i < 7, lambda i, h: (i + 1, tf.matmul(h, weights)), (0, x))[1]

    one_trip = 2 * 3 * 4 * 4
    concrete = loop.get_concrete_function(tf.TensorSpec([3, 4]))
    assert perf.step_flops(concrete, loop_trips=7) == 7 * one_trip


def test_t4_estimate_is_flops_over_assumed_throughput():
    rows = perf.t4_estimate({"m": 1e12}, batch_size=64, efficiency=0.5)
    fp32 = next(r for r in rows if r["precision"] == "float32")
    assert fp32["steps_per_s"] == pytest.approx(0.5 * 8.1)
    assert fp32["epoch_minutes"] == pytest.approx(128 / (0.5 * 8.1) / 60)  # 8189 images = 128 batches of 64


def test_toy_benchmark_measures_every_figure(tiny_flowers, tmp_path, full):
    if full:
        pytest.skip("--bench-full: the full run below replaces the toy run")
    path = shutil.copytree(tiny_flowers, tmp_path / "flowers")  # the embeddings go into a copy
    from data_prep import embed

    embed.ensure(path, "word2vec", dim=16, epochs=1)
    # One model and no variants keep `make test` quick (every model costs three traces); make bench does it all.
    results = perf.run(data.load_prepared(path), config.PRESETS["smoke"], ("gan_cls",), encoder="word2vec",
                       steps=1, warmup=1, matmul_n=256, variants=False, estimate=False, log=lambda _: None)
    assert results["peak_gflops"] > 0
    [row] = results["models"]
    assert row["model"] == "gan_cls"
    for key in ("fit_ms", "fit_memory_ms", "eager_ms", "function_ms", "step_gflop", "peak_rss_mb"):
        assert np.isfinite(row[key]) and row[key] > 0, key
    results["variants"] = {"xla": {"ms": row["fit_memory_ms"] / 2, "load": 0.0}}  # the table's variant rows
    table = perf.report(results)
    assert "| gan_cls | 16 |" in table and "| xla | " in table and "| 2.00x |" in table


def test_full_benchmark_writes_the_table(full, tmp_path):
    if not full:
        pytest.skip("timings only mean something at full size on a quiet machine: make bench (--bench-full)")
    out = perf.ROOT / "build" / "bench.md"
    assert perf.main(["--out", str(out)]) == 0
    table = out.read_text()
    for name in perf.MODELS:
        assert f"| {name} |" in table
