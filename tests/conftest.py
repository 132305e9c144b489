"""Fixtures shared by the unit tests."""

import pytest


@pytest.fixture(scope="session")
def tiny_flowers(tmp_path_factory):
    """A small prepared synthetic_flowers dataset (300 images at 32 and 64 px), made once per test session."""
    from data_prep import synthetic

    return synthetic.ensure(tmp_path_factory.mktemp("data"), 300, sizes=(32, 64))
