"""The interactive demo of notebook 07: type a caption, pick a model, move the seed and truncation, press Generate.
Introduced in notebook 07.

Two layers, so the demo is testable without a browser and usable where widgets don't render:

- :class:`CaptionEncoder` + :func:`generate_grid`: plain functions. Free text is embedded with the encoder the
  model was trained with (for the shipped model: MiniLM's vector joined to an LSTM's, ``pretrained.load_text_encoder``),
  then the generator draws a grid.
- :func:`demo`: the ipywidgets front (Text, Dropdown, IntSlider, FloatSlider, Button, Output) whose button calls
  :meth:`Demo.generate`. On Colab it first enables the custom widget manager; without ipywidgets or a front end
  that shows widgets it prints how to call :func:`generate_grid` instead.
- :func:`default_model` picks what the Model menu opens on: the student's latest saved full-mode generator, else
  the shipped one; :func:`menu_name` labels fast-mode models, which are never the default.

Caption rules (documented behaviour, never a Keras stack trace; ``tests/test_reliability.py`` tries each):

- an empty or whitespace-only caption, an empty list, or something that is not a string: a ``ValueError`` or
  ``TypeError`` saying what to type instead;
- captions longer than ``MAX_WORDS`` words are cut to their first ``MAX_WORDS`` words, with a warning (MiniLM
  reads at most 256 word pieces anyway);
- any Unicode is accepted, and so are words the model never saw ("zxqv blorp"): MiniLM splits them into word
  pieces it knows (or ``[UNK]``) and the picture follows whatever those mean; nothing checks that a caption
  talks about flowers;
- a vector of the wrong size for the chosen model, or one holding NaN, is a ``ValueError`` from
  :func:`t2ilib.models.generate` naming the sizes or the rows; a model that reads token ids refuses embeddings.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import sys
import typing
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from t2ilib import models, viz
from t2ilib.evaluation import truncated_normal

__all__ = ["MAX_WORDS", "SHIPPED", "CaptionEncoder", "generate_grid", "Demo", "demo", "default_model", "menu_name"]

MAX_WORDS = 64
SHIPPED = "shipped GAN-CLS"  # the menu name of the generator in t2ilib/assets
FAST_LABEL = " (fast mode: untrained)"


class CaptionEncoder:
    """Free text -> the embedding a model reads, via ``encode`` (``list[str] -> [N, D]``), with a per-text cache.

    Pass the *same* encoder the model was trained with, e.g. for the ``sentence`` models::

        from data_prep import embed
        encoder = CaptionEncoder(lambda texts: embed.encode_sentence(texts).vectors, name="sentence")
    Introduced in notebook 07.
    """

    def __init__(self, encode: Callable[[list[str]], np.ndarray], name: str = "sentence"):
        self.encode, self.name = encode, name
        self._cache: dict[str, np.ndarray] = {}

    @staticmethod
    def clean(caption) -> str:
        """Whitespace collapsed, cut to ``MAX_WORDS`` words; an error for anything that is not a non-empty string."""
        if not isinstance(caption, str):
            raise TypeError(f"a caption is a string, got {type(caption).__name__}: {caption!r}")
        words = caption.split()
        if not words:
            raise ValueError("the caption is empty: type a description, e.g. 'a flower with red round petals'")
        if len(words) > MAX_WORDS:
            warnings.warn(f"the caption has {len(words)} words; only the first {MAX_WORDS} are used", stacklevel=3)
        return " ".join(words[:MAX_WORDS])

    def __call__(self, captions: Sequence[str]) -> np.ndarray:
        """float32 ``[len(captions), D]``; each distinct text is encoded once per session."""
        if isinstance(captions, str):
            captions = [captions]
        try:
            captions = list(captions)
        except TypeError:
            raise TypeError(f"captions is a list of strings, got {type(captions).__name__}: {captions!r}") from None
        if len(captions) == 0:
            raise ValueError("no captions given: pass at least one caption")
        texts = [self.clean(c) for c in captions]
        new = sorted({t for t in texts if t not in self._cache})
        if new:
            vectors = np.asarray(self.encode(new), dtype="float32")
            if vectors.shape[0] != len(new):
                raise ValueError(f"the {self.name!r} encoder returned {vectors.shape[0]} vectors for {len(new)} texts")
            self._cache.update(zip(new, vectors))
        return np.stack([self._cache[t] for t in texts])


def generate_grid(generator, text_vector: np.ndarray, count: int = 8, seed: int = 0,
                  truncation: float | None = None, columns: int = 4) -> np.ndarray:
    """``count`` images of one caption (its embedding ``text_vector``), noise seeded by ``seed``, as a uint8 grid.

    The vector is checked by :func:`t2ilib.models.generate` (its size, NaN); the caption itself is refused with a
    hint, since it has to be embedded first.
    Used by demo (notebook 07).
    """
    text_vector = np.asarray(text_vector)
    if text_vector.dtype.kind in "USO":
        raise TypeError(f"generate_grid takes a caption's embedding, not the caption {text_vector.tolist()!r}: "
                        "pass encoder([caption])[0] (a CaptionEncoder)")
    if text_vector.ndim != 1:
        raise ValueError(f"text_vector has shape {text_vector.shape}: pass one caption's embedding, "
                         "e.g. encoder([caption])[0]")
    if count < 1:
        raise ValueError(f"count={count}: ask for at least one image")
    z = truncated_normal((count, models.z_dim(generator)), truncation, seed)
    images = models.generate(generator, np.repeat(text_vector[None], count, axis=0), z=z)
    return viz.image_grid(images, columns=min(columns, count))


@dataclasses.dataclass
class Demo:
    """What the widgets drive: models by name, their caption encoder, and the last result or error.
    Used by demo (notebook 07)."""

    models: dict  # name -> generator
    encoder: CaptionEncoder | dict  # the one every model reads, or name -> the one that model reads
    count: int = 8
    last_grid: np.ndarray | None = None
    last_error: str | None = None
    default: str | None = None  # the model the menu opens on (and ``generate`` uses when given none)

    def generate(self, caption: str, model: str | None = None, seed: int = 0,
                 truncation: float = 1.0) -> np.ndarray | None:
        """The demo's callback: a grid, or ``None`` with ``last_error`` set to a message a student can act on."""
        self.last_grid, self.last_error = None, None
        model = self.default if model is None else model
        try:
            if model not in self.models:
                raise ValueError(f"unknown model {model!r}; choose one of {sorted(self.models)}")
            encoder = self.encoder[model] if isinstance(self.encoder, dict) else self.encoder
            vector = encoder([caption])[0]
            self.last_grid = generate_grid(self.models[model], vector, self.count, seed, truncation or None)
        except (ValueError, TypeError) as error:
            self.last_error = str(error)
        return self.last_grid


def _enable_colab_widgets() -> None:
    if "google.colab" in sys.modules:
        from google.colab import output

        output.enable_custom_widget_manager()


class DemoWidgets(typing.NamedTuple):
    """``(state, box)``; a cell that ends with it (or with ``box``) shows the demo once. Used by demo (notebook 07)."""

    state: Demo
    box: object  # ipywidgets.VBox, or None without ipywidgets

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box if self.box is not None else self.state)


def _png(fig) -> str:
    """A matplotlib figure as base64 PNG text, closed so that the inline backend does not show it again."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def menu_name(name: str, card: dict) -> str:
    """``name`` as the Model menu shows it: fast-mode models (``card["fast_mode"]``) say so.
    Introduced in notebook 07."""
    return name + FAST_LABEL if card.get("fast_mode") and not name.endswith(FAST_LABEL) else name


def default_model(cards: dict, shipped: str = SHIPPED) -> str:
    """The menu name the demo opens on: of the generators the student saved (cards with ``saved_at``, other than
    ``shipped``), the latest one trained in full mode; else ``shipped``. A fast-mode model is never the default.
    Introduced in notebook 07."""
    own = [name for name, card in cards.items()
           if name != shipped and card.get("saved_at") and card.get("fast_mode") is False]
    if own:
        return max(own, key=lambda name: cards[name]["saved_at"])
    if shipped not in cards:
        raise ValueError(f"no full-mode generator among {sorted(cards)} and no {shipped!r}: pass default= yourself")
    return shipped


def demo(models: dict, encoder: CaptionEncoder | dict,
         caption: str = "a flower with red round petals and a yellow centre", count: int = 8, show: bool = False,
         default: str | None = None) -> DemoWidgets:
    """Build the widget demo, shown by the cell that ends with it (``show=True`` displays it now instead), with
    the grid of ``caption`` already drawn. ``encoder`` embeds the typed caption for every model, or, as a dict,
    for each model its own (models trained on different text vectors). Its Model menu opens on ``default`` (see
    :func:`default_model`; the first name in the menu if None).
    Introduced in notebook 07."""
    options = sorted(models)
    if default is not None and default not in models:
        raise ValueError(f"default={default!r} is not one of the models {options}")
    if isinstance(encoder, dict) and set(encoder) != set(models):
        raise ValueError(f"encoder names the models {sorted(encoder)}, the menu has {options}: give one per model")
    state = Demo(models, encoder, count, default=default if default is not None else options[0])
    try:
        import ipywidgets as w
        from IPython.display import display
    except ImportError:
        print("ipywidgets is not installed: call t2ilib.widgets.generate_grid(generator, encoder([caption])[0]) "
              "or state.generate(caption, model) directly.")
        return DemoWidgets(state, None)
    _enable_colab_widgets()
    text = w.Text(value=caption, description="Caption", layout=w.Layout(width="520px"))
    model = w.Dropdown(options=options, value=state.default, description="Model")
    seed = w.IntSlider(value=0, min=0, max=99, description="Seed")
    truncation = w.FloatSlider(value=1.0, min=0.1, max=3.0, step=0.1, description="Truncation")
    button = w.Button(description="Generate", button_style="primary")
    out = w.Output()

    def on_click(_):
        # Set as the Output widget's state, not printed `with out:`: that capture is routed by message id, and the
        # classic Notebook with ipywidgets 7 sends what arrives before its Output model is made to the cell instead.
        # The note also makes a click with unchanged settings redraw its (identical) grid.
        out.outputs = ({"output_type": "stream", "name": "stdout", "text": "Generating...\n"},)
        grid = state.generate(text.value, model.value, seed.value, truncation.value)
        if grid is None:
            out.outputs = ({"output_type": "stream", "name": "stdout",
                            "text": f"Cannot generate: {state.last_error}\n"},)
        else:
            title = f"{model.value}: {text.value!r} (seed {seed.value}, truncation {truncation.value:.1f})"
            out.outputs = ({"output_type": "display_data", "metadata": {},
                            "data": {"image/png": _png(viz.show_images(grid[None], title=title, columns=1, size=6)),
                                     "text/plain": title}},)

    button.on_click(on_click)
    on_click(None)  # the demo opens on a grid, never blank; an executed notebook's page keeps it as a PNG
    box = w.VBox([text, w.HBox([model, button]), w.HBox([seed, truncation]), out])
    if show:
        display(box)
    return DemoWidgets(state, box)
