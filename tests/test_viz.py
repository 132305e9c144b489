"""t2ilib.viz: the reference lines plot_history draws are the game's equilibrium, computed here independently."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from t2ilib import viz  # noqa: E402


def _optimal_game(mismatch):
    """D's losses at p_G = p_data with the pointwise-optimal D, found by a grid search over D's value."""
    p_real = np.array([0.5, 0.3, 0.2, 0.0, 0.0])    # (image, right text) pairs
    p_wrong = np.array([0.0, 0.0, 0.0, 0.6, 0.4])   # (real image, wrong text): off the data
    p_fake = p_real                                 # G has matched the data
    grid = np.linspace(1e-6, 1 - 1e-6, 200_001)[:, None]
    weight = 0.5 if mismatch else 1.0
    pointwise = -(p_real * np.log(grid) + weight * (p_fake + (p_wrong if mismatch else 0)) * np.log(1 - grid))
    d = grid[pointwise.argmin(0), 0]
    on_data = p_real > 0
    d_loss = -(p_real @ np.log(d)) - weight * (p_fake @ np.log(1 - d))
    if mismatch:
        d_loss -= weight * (p_wrong @ np.log(1 - d))
    return {"d_loss": d_loss, "g_loss": -(p_fake @ np.log(d)), "d_real": d[on_data].mean(),
            "d_fake": d[on_data].mean(), **({"d_wrong": d[~on_data].mean()} if mismatch else {})}


@pytest.mark.parametrize("mismatch", [False, True])
def test_equilibrium_is_the_optimal_discriminators_game(mismatch):
    expected = _optimal_game(mismatch)
    got = viz.equilibrium("bce", mismatch=mismatch)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-3), name


def test_gan_cls_equilibrium_is_not_the_plain_games():
    assert viz.equilibrium("bce", mismatch=True)["d_loss"] == pytest.approx(0.9548, abs=1e-4)
    assert viz.equilibrium("bce", mismatch=True)["g_loss"] == pytest.approx(0.4055, abs=1e-4)


@pytest.mark.parametrize("mismatch", [False, True])
def test_hinge_equilibrium_is_the_optimal_discriminators_game(mismatch):
    # The same toy game with the hinge: D's pointwise-optimal score by grid search over [-3, 3].
    p_real = np.array([0.5, 0.3, 0.2, 0.0, 0.0])
    p_wrong = np.array([0.0, 0.0, 0.0, 0.6, 0.4]) if mismatch else np.zeros(5)
    weight = 0.5 if mismatch else 1.0
    grid = np.linspace(-3, 3, 60_001)[:, None]
    pointwise = p_real * np.maximum(0, 1 - grid) + weight * (p_real + p_wrong) * np.maximum(0, 1 + grid)
    got = viz.equilibrium("hinge", mismatch=mismatch)
    assert got["d_loss"] == pytest.approx(pointwise.min(0).sum(), abs=1e-6)
    if mismatch:  # on the data the optimal score is unique: 1, so G's loss is -1
        score = grid[pointwise[:, :3].argmin(0), 0]
        assert score == pytest.approx(1.0, abs=1e-3)
        assert got["g_loss"] == pytest.approx(-(p_real @ grid[pointwise.argmin(0), 0]), abs=1e-3)
        assert got["d_real"] == got["d_fake"] == pytest.approx(1 / (1 + np.exp(-1)))
    else:  # every score in [-1, 1] is optimal: no single G loss to draw
        assert np.ptp(pointwise[(grid[:, 0] >= -1) & (grid[:, 0] <= 1), 0]) < 1e-9
        assert got.keys() == {"d_loss"}


@pytest.mark.parametrize("loss, contrastive", [("hinge", True), ("bce", True), ("wgan-gp", False)])
def test_no_reference_where_the_loss_has_no_equilibrium_value(loss, contrastive):
    assert viz.equilibrium(loss, mismatch=True, contrastive=contrastive) == {}


def _dashed(fig):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_plot_history_draws_the_games_lines_only_when_asked():
    history = {"step": [1, 2], "d_loss": [1.0, 0.9], "g_loss": [0.5, 0.6], "d_real": [0.6, 0.7],
               "d_wrong": [0.4, 0.3], "d_fake": [0.5, 0.6]}
    assert _dashed(viz.plot_history(history)) == []
    lines = sorted(round(float(line.get_ydata()[0]), 4) for line in _dashed(viz.plot_history(history, loss="bce")))
    assert lines == [0.0, 0.4055, 0.6667, 0.6667, 0.9548]
    assert _dashed(viz.plot_history({**history, "d_contrastive": [1.0, 1.0]}, loss="bce")) == []
