"""The notebook-07 demo: its callback and its bad-input behaviour, without a browser."""

import keras
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


def test_the_output_widget_holds_the_grid_as_a_png_or_the_error_in_its_state(generator):
    """Each click replaces the Output widget's outputs (its synced state, which every front end draws) with one
    PNG of the grid or the error, and leaves no open figure for the inline backend to show again in the cell."""
    pytest.importorskip("ipywidgets", reason="the widget front needs ipywidgets")
    import base64
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    plt.close("all")
    state, box = widgets.demo({"smoke": generator}, widgets.CaptionEncoder(CountingEncoder()))
    text, (_, button), out = box.children[0], box.children[1].children, box.children[-1]
    for _ in range(2):  # the opening grid, then a click's
        (shown,) = out.outputs
        assert shown["output_type"] == "display_data" and plt.get_fignums() == []
        picture = Image.open(io.BytesIO(base64.b64decode(shown["data"]["image/png"])))
        assert min(picture.size) > 100 and "smoke" in shown["data"]["text/plain"]
        button.click()
    text.value = "  "
    button.click()
    assert out.outputs == ({"output_type": "stream", "name": "stdout",
                            "text": f"Cannot generate: {state.last_error}\n"},) and "empty" in state.last_error


def test_the_menu_opens_on_the_latest_full_mode_generator_saved_else_the_shipped_one(generator, tmp_path,
                                                                                        monkeypatch):
    from t2ilib import pretrained

    shipped = {"fast_mode": False, "saved_at": "2026-12-04T00:00:00"}
    assert widgets.default_model({widgets.SHIPPED: shipped}) == widgets.SHIPPED
    monkeypatch.setenv("T2I_FAST", "1")  # save_generator records the mode it was saved in
    fast = pretrained.load_generator(pretrained.save_generator(generator, tmp_path / "fast.weights.h5",
                                                               {"text_encoder": "test"}))[1]
    monkeypatch.setenv("T2I_FAST", "0")
    full = pretrained.load_generator(pretrained.save_generator(generator, tmp_path / "full.weights.h5",
                                                               {"text_encoder": "test"}))[1]
    assert fast["fast_mode"] is True and full["fast_mode"] is False
    fast_name = widgets.menu_name("yours: fast", fast)
    assert fast_name == "yours: fast (fast mode: untrained)" and widgets.menu_name("yours: full", full) == "yours: full"
    trained_here = {"fast_mode": False}  # trained in the notebook, never saved: not the student's saved one
    cards = {widgets.SHIPPED: shipped, fast_name: {**fast, "saved_at": "2099-01-01T00:00:00"}, "GAN-CLS": trained_here}
    assert widgets.default_model(cards) == widgets.SHIPPED  # a fast-mode model never, however recent
    older = {**full, "saved_at": "2026-01-01T00:00:00"}
    assert widgets.default_model({**cards, "yours: full": full, "yours: older": older}) == "yours: full"
    with pytest.raises(ValueError, match="pass default="):
        widgets.default_model({fast_name: fast})


def test_the_dropdown_opens_on_the_default_and_generate_uses_it(generator):
    pytest.importorskip("ipywidgets", reason="the widget front needs ipywidgets")
    other = models.build_generator(config.get_preset("smoke"), embedding_dim=DIM)
    choices = {"a fast one": generator, "the best": other}
    state, box = widgets.demo(choices, widgets.CaptionEncoder(CountingEncoder()), default="the best")
    menu, button = box.children[1].children
    assert menu.value == state.default == "the best" and list(menu.options) == ["a fast one", "the best"]
    button.click()
    assert np.array_equal(state.last_grid, widgets.Demo({"the best": other}, widgets.CaptionEncoder(
        CountingEncoder())).generate("a flower with red round petals and a yellow centre", "the best"))
    assert np.array_equal(state.generate("a red flower"), state.generate("a red flower", "the best"))
    with pytest.raises(ValueError, match="not one of the models"):
        widgets.demo(choices, widgets.CaptionEncoder(CountingEncoder()), default="shipped GAN-CLS")
    assert widgets.demo(choices, widgets.CaptionEncoder(CountingEncoder())).state.default == "a fast one"


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


def test_generators_save_as_weights_and_a_card_and_rebuild_the_same_model(tmp_path):
    import json

    from t2ilib import pretrained

    rng = np.random.default_rng(0)
    stats = (rng.standard_normal(DIM), rng.uniform(0.5, 2.0, DIM))  # the standardisation lives in the card
    smoke = config.get_preset("smoke").replace(upsample="transpose", padding="zero")
    generator = models.build_generator(smoke, embedding_dim=DIM, text_stats=stats, conditioning="dense")
    path = pretrained.save_generator(generator, tmp_path / "g.weights.h5", {"text_encoder": "test"})
    loaded, card = pretrained.load_generator(path)
    assert card["text_encoder"] == "test" and card["embedding_dim"] == DIM and card["image_size"] == 32
    assert card["format"] == pretrained.FORMAT == 2 and card["builder"]["recipe"]["upsample"] == "transpose"
    assert card["builder"]["preset"] == "smoke" and card["builder"]["size"]["image_size"] == 32
    assert json.loads(pretrained.card_path(path).read_text())["builder"]["text_stats"]["mean"][0] == \
        pytest.approx(stats[0][0])
    text, z = rng.standard_normal((4, DIM)).astype("float32"), rng.standard_normal((4, 16)).astype("float32")
    np.testing.assert_array_equal(models.generate(loaded, text, z=z), models.generate(generator, text, z=z))
    assert pretrained.load_generator(pretrained.card_path(path))[1] == card  # the card's path works too
    assert not list(tmp_path.glob(".*partial*"))  # the temp files were renamed, not left behind
    with pytest.raises(ValueError, match="ending in .weights.h5"):
        pretrained.save_generator(generator, tmp_path / "g.keras", {"text_encoder": "test"})
    with pytest.raises(FileNotFoundError, match="check the path"):
        pretrained.load_generator(tmp_path / "missing.weights.h5")


def test_a_format_1_card_with_the_preset_as_one_flat_dict_still_loads(tmp_path):
    import json

    from t2ilib import pretrained

    rng = np.random.default_rng(2)
    # saved before the recipe had padding, diversity_pool and ma_gp_weight (issue 28): zero padding, as then
    generator = models.build_generator(config.get_preset("smoke").replace(padding="zero"), embedding_dim=DIM)
    path = pretrained.save_generator(generator, tmp_path / "g.weights.h5", {"text_encoder": "test"})
    card = json.loads(pretrained.card_path(path).read_text())
    builder = card["builder"]
    later = ("beta_2", "padding", "diversity_pool", "ma_gp_weight")  # fields format 1 had none of
    recipe = {name: value for name, value in builder["recipe"].items() if name not in later}
    flat = {"name": builder["preset"], **builder["size"], **recipe}
    old_card = {**card, "format": 1, "builder": {**{k: v for k, v in builder.items() if k not in ("size", "recipe")},
                                                 "preset": flat}}
    pretrained.card_path(path).write_text(json.dumps(old_card))
    loaded, loaded_card = pretrained.load_generator(path)
    assert loaded_card["format"] == 1
    text, z = rng.standard_normal((3, DIM)).astype("float32"), rng.standard_normal((3, 16)).astype("float32")
    np.testing.assert_array_equal(models.generate(loaded, text, z=z), models.generate(generator, text, z=z))
    assert loaded.get_layer("to_rgb").padding == "zero"  # the recipe's later fields at their defaults
    # The generator the kit ships (format 2 since issue 28: reflect padding) loads
    shipped_card = json.loads(pretrained.card_path(pretrained.PRETRAINED_GAN_CLS).read_text())
    assert shipped_card["format"] == 2 and shipped_card["builder"]["recipe"]["padding"] == "reflect"
    shipped, _ = pretrained.load_generator()
    assert shipped.builder_arguments["size"]["image_size"] == 64


def test_a_generator_file_this_kit_cannot_read_gets_one_line_naming_the_file_versions_and_fix(generator, tmp_path):
    import json

    import keras

    from t2ilib import pretrained

    path = pretrained.save_generator(generator, tmp_path / "g.weights.h5", {"text_encoder": "test"})
    card_file = pretrained.card_path(path)
    card = json.loads(card_file.read_text())

    def fails_with(changed_card, *expected):
        card_file.write_text(json.dumps(changed_card))
        with pytest.raises(ValueError) as caught:
            pretrained.load_generator(path)
        message = str(caught.value)
        assert "\n" not in message and caught.value.__cause__ is None  # one line, no Keras trace chained to it
        assert caught.value.__context__ is None or caught.value.__suppress_context__
        for part in (str(card_file) if "weights" not in expected[0] else str(path), keras.__version__, *expected):
            assert part in message, (part, message)

    fails_with({**card, "format": pretrained.FORMAT + 1, "keras_version": "9.9.9"},
               f"format {pretrained.FORMAT + 1}", "Keras 9.9.9", "pip install -U t2i-course")
    fails_with({key: value for key, value in card.items() if key != "builder"}, "no builder arguments",
               "save_generator")
    wider = {**card["builder"], "size": {**card["builder"]["size"], "g_channels": [64, 32, 16]}}
    fails_with({**card, "builder": wider}, "weights do not fit", "copy both from the same save_generator")
    fails_with({**card, "builder": {**card["builder"], "recipe": {**card["builder"]["recipe"], "new_knob": 1}}},
               "does not know", "update the kit")

    old = tmp_path / "old.keras"  # the kit's format before weights + card: Keras-version-bound
    generator.save(old)
    with pytest.raises(ValueError) as caught:
        pretrained.load_generator(old)
    message = str(caught.value)
    assert "\n" not in message and str(old) in message and f"saved by Keras {keras.__version__}" in message
    assert "convert_keras_file" in message


def test_an_old_keras_file_converts_to_weights_and_a_card_with_the_same_images(tmp_path):
    import json

    from t2ilib import pretrained

    rng = np.random.default_rng(1)
    old = models.build_generator(config.get_preset("smoke"), embedding_dim=DIM,
                                 text_stats=(rng.standard_normal(DIM), rng.uniform(0.5, 2.0, DIM)))
    old.save(tmp_path / "old.keras")
    (tmp_path / "old.json").write_text(json.dumps({"text_encoder": "test", "preset": "smoke", "steps": 3}))
    loaded, card = pretrained.load_generator(pretrained.convert_keras_file(tmp_path / "old.keras"))
    assert card["steps"] == 3 and "same images" in card["converted"]
    text, z = rng.standard_normal((4, DIM)).astype("float32"), rng.standard_normal((4, 16)).astype("float32")
    np.testing.assert_array_equal(models.generate(loaded, text, z=z), models.generate(old, text, z=z))
    with pytest.raises(ValueError, match="pass the preset it was trained with"):  # cpu's widths are not smoke's
        pretrained.convert_keras_file(tmp_path / "old.keras", tmp_path / "x.weights.h5", preset="cpu")
    assert not (tmp_path / "x.weights.h5").exists()


def test_the_shipped_generator_loads_with_its_text_encoder_and_reads_its_vectors():
    from t2ilib import pretrained

    loaded, card = pretrained.load_generator()
    assert card["text_encoder"] == pretrained.JOINED and loaded.input["text"].shape[-1] == card["embedding_dim"]
    joined = pretrained.load_text_encoder()
    captions = ["a green flower with a white centre", "a white flower with a green centre"]
    minilm = CountingEncoder(dim=384)(captions)  # a stand-in for MiniLM's vectors: the LSTM half is the real one
    vectors = joined(minilm, captions)
    assert vectors.shape == (2, card["embedding_dim"]) == (2, 384 + 128)
    assert np.abs(vectors[0, 384:] - vectors[1, 384:]).max() > 0.1  # its LSTM reads the colours' order
    assert widgets.generate_grid(loaded, vectors[0], 4).dtype == np.uint8


def test_a_generator_reading_joined_vectors_is_saved_and_loaded_with_its_text_encoder(tmp_path):
    from t2ilib import pretrained, text

    captions = ["a red flower with a white centre", "a white flower with a red centre"]
    vectorizer = text.make_vectorizer(captions, sequence_length=8)
    lstm = text.LSTMTextEncoder(vectorizer.vocabulary_size(), embed_dim=4, units=DIM - 4)
    lstm.build((None, 8))
    words = keras.ops.convert_to_numpy(lstm.embedding.embeddings)
    lstm.embedding.embeddings.assign(words.astype("float16").astype("float32"))  # the file keeps float16
    joined = text.JoinedTextEncoder.fit(vectorizer, lstm, CountingEncoder(dim=4)(captions), captions)
    generator = models.build_generator(config.get_preset("smoke"), embedding_dim=DIM)
    with pytest.raises(ValueError, match="saved with its text_encoder"):
        pretrained.save_generator(generator, tmp_path / "g.weights.h5", {"text_encoder": pretrained.JOINED})
    with pytest.raises(ValueError, match="and only such a generator"):
        pretrained.save_generator(generator, tmp_path / "g.weights.h5", {"text_encoder": "sentence"}, joined)
    path = pretrained.save_generator(generator, tmp_path / "g.weights.h5", {"text_encoder": pretrained.JOINED},
                                     text_encoder=joined)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.text.npz", "g.weights.h5"]
    minilm = CountingEncoder(dim=4)(captions)
    np.testing.assert_array_equal(pretrained.load_text_encoder(path)(minilm, captions), joined(minilm, captions))
    (tmp_path / "g.text.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"g\.text\.npz is missing: .*copy the three files together"):
        pretrained.load_text_encoder(pretrained.card_path(path))


def test_the_demo_embeds_each_models_caption_with_that_models_encoder(generator):
    minilm, joined = CountingEncoder(), CountingEncoder()
    encoders = {"a": widgets.CaptionEncoder(minilm), "b": widgets.CaptionEncoder(joined)}
    state = widgets.Demo({"a": generator, "b": generator}, encoders, count=2)
    assert state.generate("a red flower", "b") is not None and joined.seen == ["a red flower"] and not minilm.seen
    with pytest.raises(ValueError, match=r"encoder names the models \['a'\], the menu has \['a', 'b'\]"):
        widgets.demo({"a": generator, "b": generator}, {"a": encoders["a"]})
