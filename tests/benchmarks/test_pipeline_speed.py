"""The input pipeline's speed, moved here from the unit tests: a timing measures the machine's load as much as
the code, so it is asserted only under ``make bench`` (``--bench-full``), on a quiet machine.

A 64x64 GAN train step at batch 64 takes ~0.3 s on a CPU: the pipeline must be at least 5x faster.
"""

import time

import pytest

from t2ilib.data import load_prepared, make_dataset
from tests.test_data_pipeline import FakeVectorizer


@pytest.fixture
def full(request):
    return request.config.getoption("--bench-full")


def test_pipeline_outpaces_a_64px_train_step(tiny_flowers, full):
    prepared = load_prepared(tiny_flowers)
    vectorizer = FakeVectorizer(prepared.captions.text)
    batches = iter(make_dataset(prepared, image_size=64, text="tokens", vectorizer=vectorizer, batch_size=64,
                                flip=True, repeat=True))
    first = next(batches)  # building the graph is a one-off
    assert first["image"].shape == (64, 64, 64, 3)
    start = time.perf_counter()
    for _ in range(30 if full else 3):
        next(batches)
    per_batch = (time.perf_counter() - start) / (30 if full else 3)
    print(f"input pipeline: {per_batch * 1000:.0f} ms per batch of 64 at 64 px")
    if full:
        assert per_batch < 0.3 / 5, f"{per_batch * 1000:.0f} ms per batch"
