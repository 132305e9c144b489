"""Fixtures shared by the unit tests."""

import pytest


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Each test ends with Keras' global precision policy back at float32: a benchmark or precision test that sets
    mixed_bfloat16 (device.choose_precision picks it where bfloat16 measures faster) must not change the next
    test's layers."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def tiny_flowers(tmp_path_factory):
    """A small prepared synthetic_flowers dataset (300 images at 32 and 64 px), made once per test session."""
    from data_prep import synthetic

    return synthetic.ensure(tmp_path_factory.mktemp("data"), 300, sizes=(32, 64))
