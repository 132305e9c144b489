"""The notebook-07 demo: its callback and its bad-input behaviour, without a browser."""

import numpy as np
import pytest

from t2ilib import config, models, widgets

DIM = 8


class CountingEncoder:
    """A stand-in for MiniLM: a fixed vector per text, and a count of the texts it was asked to encode."""

    def __init__(self, dim=DIM):
        self.dim, self.seen = dim, []

    def __call__(self, texts):
        self.seen.extend(texts)
        return np.stack([np.random.default_rng(sum(map(ord, t))).standard_normal(self.dim) for t in texts])


@pytest.fixture(scope="module")
def generator():
    return models.build_generator(config.get_preset("smoke"), embedding_dim=DIM)


def test_encoder_caches_each_text_and_cleans_whitespace():
    stub = CountingEncoder()
    encoder = widgets.CaptionEncoder(stub)
    first = encoder(["a red  flower", "a blue flower"])
    again = encoder(["a red flower"])
    assert first.shape == (2, DIM) and first.dtype == np.float32
    assert np.array_equal(first[0], again[0])
    assert sorted(stub.seen) == ["a blue flower", "a red flower"]  # each distinct text encoded once


def test_encoder_rejects_empty_input_and_cuts_very_long_captions():
    encoder = widgets.CaptionEncoder(CountingEncoder())
    with pytest.raises(ValueError, match="caption is empty"):
        encoder(["   "])
    with pytest.raises(ValueError, match="no captions"):
        encoder([])
    with pytest.raises(TypeError, match="string"):
        encoder([None])
    with pytest.warns(UserWarning, match=f"first {widgets.MAX_WORDS}"):
        long = encoder(["red " * 1000])
    assert np.array_equal(long, encoder([" ".join(["red"] * widgets.MAX_WORDS)]))
    assert encoder(["une fleur à pétales rouges 🌸"]).shape == (1, DIM)  # any Unicode is encoded


def test_callback_draws_a_seeded_grid(generator):
    state = widgets.Demo({"smoke": generator}, widgets.CaptionEncoder(CountingEncoder()), count=4)
    grid = state.generate("a red flower", "smoke", seed=3, truncation=0.5)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and state.last_error is None
    assert np.array_equal(grid, state.generate("a red flower", "smoke", seed=3, truncation=0.5))
    assert not np.array_equal(grid, state.generate("a red flower", "smoke", seed=4, truncation=0.5))


def test_callback_turns_bad_input_into_a_message(generator):
    state = widgets.Demo({"smoke": generator}, widgets.CaptionEncoder(CountingEncoder(dim=5)))
    assert state.generate("a red flower", "smoke") is None
    assert "reads 8-d text embeddings but got 5-d" in state.last_error
    assert state.generate("", "smoke") is None and "empty" in state.last_error
    assert state.generate("a red flower", "nope") is None and "unknown model" in state.last_error


def test_widgets_button_calls_the_callback(generator):
    pytest.importorskip("ipywidgets", reason="the widget front needs ipywidgets")
    state, box = widgets.demo({"smoke": generator}, widgets.CaptionEncoder(CountingEncoder()), show=False)
    text, (_, button), (seed, truncation) = box.children[0], box.children[1].children, box.children[2].children
    text.value, seed.value, truncation.value = "a white flower", 7, 0.7
    button.click()
    assert state.last_error is None
    assert np.array_equal(state.last_grid, widgets.Demo({"smoke": generator},
                                                        widgets.CaptionEncoder(CountingEncoder())).generate(
        "a white flower", "smoke", 7, 0.7))


def test_demo_is_shown_once_by_the_cell_that_ends_with_it(generator, monkeypatch):
    pytest.importorskip("ipywidgets", reason="the widget front needs ipywidgets")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects, **_: shown.extend(objects))
    result = widgets.demo({"smoke": generator}, widgets.CaptionEncoder(CountingEncoder()))
    assert shown == []  # building it displays nothing: the cell's value does
    assert result.state.last_grid is not None  # it opens on a grid of its caption, never blank
    result._ipython_display_()
    assert shown == [result.box]


def test_generators_save_and_load_safely_with_their_card(generator, tmp_path):
    from t2ilib import pretrained

    path = pretrained.save_generator(generator, tmp_path / "g.keras", {"text_encoder": "test"})
    loaded, card = pretrained.load_generator(path)
    assert card["text_encoder"] == "test" and card["embedding_dim"] == DIM and card["image_size"] == 32
    text = np.ones((2, DIM), "float32")
    assert np.allclose(widgets.generate_grid(loaded, text[0], 2), widgets.generate_grid(generator, text[0], 2))
    assert not list(tmp_path.glob(".*partial*"))  # the temp files were renamed, not left behind
    with pytest.raises(ValueError, match="ending in .keras"):
        pretrained.save_generator(generator, tmp_path / "g.h5", {"text_encoder": "test"})
    with pytest.raises(FileNotFoundError, match="check the path"):
        pretrained.load_generator(tmp_path / "missing.keras")


def test_the_shipped_generator_loads_and_reads_sentence_embeddings():
    from t2ilib import pretrained

    if not pretrained.PRETRAINED_GAN_CLS.is_file():
        pytest.skip("t2ilib/assets/ has no exported generator yet (python -m tools.export_pretrained)")
    loaded, card = pretrained.load_generator()
    assert card["text_encoder"] == "sentence" and loaded.input["text"].shape[-1] == card["embedding_dim"] == 384
    assert widgets.generate_grid(loaded, np.zeros(384, "float32"), 4).dtype == np.uint8
