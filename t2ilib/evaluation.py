"""Realism and diversity scores of generated images: FID, KID, Inception Score, with sample size and spread.
Introduced in notebook 03.

Every score here compares *features*, and the feature extractor is pluggable: any callable
``images -> float [N, D]``.

- :class:`InceptionFeatures`: InceptionV3's 2048-d pool features (``keras.applications``), the network FID and KID
  were defined with. Its ImageNet weights download on Colab; offline the same code runs with ``weights=None``
  (random weights: the numbers then only check the plumbing).
- ``classifier.features`` of a :class:`t2ilib.metrics.AttributeClassifier`: the kit's own small network, trained
  on ``synthetic_flowers``, which knows what matters in that domain and works offline.

Numbers from different extractors, image sizes or sample sizes are not comparable: a :class:`Score` therefore
carries its sample size ``n`` and, where it is cheap, a spread over several runs.

What a match rate misses, each as a ratio to real images (1.0 = like the data): :func:`noise_diversity` (does
the generator use its noise?), :func:`frechet_ratio` (how far from real, in units of real-vs-real) and
:func:`checkerboard_ratio` (transposed-convolution artefacts).

Notebook 06 asks whether a refining stage adds detail: :func:`high_frequency_energy` (which a bicubic
:func:`upsample` cannot raise) and :func:`compare_stages`, its table; :func:`interpolation_jumpiness` measures a
walk between captions (``t2ilib.conditioning.caption_walk``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from t2ilib.data import to_tanh_range
from t2ilib.losses import reconstruction_loss
from t2ilib.metrics import frechet_distance, match_rates

__all__ = ["Score", "InceptionFeatures", "fid", "mmd2_unbiased", "kid", "inception_score", "mean_pairwise_distance",
           "truncated_normal", "diversity_ratio", "noise_diversity", "real_images_like", "frechet_ratio",
           "power_spectrum", "checkerboard_energy", "checkerboard_ratio", "ratio_to_real", "interpolation_jumpiness",
           "high_frequency_energy", "upsample", "compare_stages"]


@dataclasses.dataclass(frozen=True)
class Score:
    """A measured number with what it rests on: ``mean`` over ``runs`` runs (``std`` between them), ``n`` samples.
    Used by noise_diversity (notebook 03)."""

    mean: float
    std: float
    n: int
    runs: int = 1

    def __str__(self) -> str:
        spread = f" ± {self.std:.3g}" if self.runs > 1 else ""
        return f"{self.mean:.4g}{spread} (n={self.n}{f', {self.runs} runs' if self.runs > 1 else ''})"


class InceptionFeatures:
    """InceptionV3 features of images in [-1, 1] or uint8: ``pool`` (2048-d, for FID/KID) or class ``probabilities``.

    ``weights="imagenet"`` downloads the published weights (on Colab, once); ``weights=None`` gives random weights
    for offline tests. Images are resized (bilinear) to ``input_size`` (299 as published; at least 75).
    Introduced in notebook 07.
    """

    def __init__(self, weights: str | None = "imagenet", input_size: int = 299, batch_size: int = 32):
        import keras

        if input_size < 75:
            raise ValueError(f"input_size={input_size}: InceptionV3 needs at least 75x75 inputs (299 as published)")
        self.input_size, self.batch_size = input_size, batch_size
        shape = (input_size, input_size, 3)
        # InceptionV3's preprocess_input maps [0, 255] to [-1, 1]: the kit's images are already in that range.
        self.pool_model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=weights,
                                                         input_shape=shape)
        self._classifier = None
        self._weights = weights

    def _batches(self, model, images):
        import keras

        images = to_tanh_range(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images [N, H, W, 3], got shape {images.shape}")
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = keras.ops.image.resize(images[i : i + self.batch_size], (self.input_size, self.input_size))
            out.append(keras.ops.convert_to_numpy(model(batch, training=False)))
        return np.concatenate(out).astype("float64")

    def __call__(self, images) -> np.ndarray:
        """The 2048-d average-pool features, float64 ``[N, 2048]``."""
        return self._batches(self.pool_model, images)

    def probabilities(self, images) -> np.ndarray:
        """ImageNet class probabilities ``[N, 1000]`` (the full network with its top; what IS is computed on)."""
        if self._classifier is None:
            import keras

            self._classifier = keras.applications.InceptionV3(
                include_top=True, weights=self._weights, input_shape=(299, 299, 3), classifier_activation="softmax")
        saved, self.input_size = self.input_size, 299  # the top's dense layer fixes the input at 299
        try:
            return self._batches(self._classifier, images)
        finally:
            self.input_size = saved


def fid(extract, images_a, images_b) -> Score:
    """Frechet distance between the ``extract`` features of two image sets (FID with InceptionFeatures).

    Biased upwards at small ``n``: compare only figures computed with the same extractor and the same ``n``.
    Introduced in notebook 07.
    """
    value = frechet_distance(extract(images_a), extract(images_b))
    return Score(value, 0.0, min(len(images_a), len(images_b)))


def mmd2_unbiased(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3`` (Binkowski et al. 2018).
    Used by kid (notebook 07)."""
    a, b = np.asarray(features_a, "float64"), np.asarray(features_b, "float64")
    m, n, d = len(a), len(b), a.shape[1]
    if min(m, n) < 2:
        raise ValueError("an unbiased MMD needs at least 2 feature vectors per set")
    k_aa, k_bb, k_ab = ((a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3)
    # The diagonal pairs an image with itself: leaving it out is what makes the estimate unbiased.
    return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1)) + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
                 - 2 * k_ab.mean())


def kid(extract, images_a, images_b, subsets: int = 10, subset_size: int = 1000, seed: int = 0) -> Score:
    """Kernel Inception Distance: mean and std of :func:`mmd2_unbiased` over random subsets of both sets.

    Unlike FID it is unbiased, so small samples give the right value on average (with a wider spread).
    Introduced in notebook 07.
    """
    a, b = extract(images_a), extract(images_b)
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return Score(float(np.mean(values)), float(np.std(values)), size, subsets)


def inception_score(probabilities: np.ndarray, splits: int = 10) -> Score:
    """``exp(E_x KL(p(y|x) || p(y)))`` per split of the class probabilities; mean and std over the splits.

    High when each image is confidently one class and the classes are varied. It never looks at real images,
    so a generator that memorised one sharp image per class scores perfectly (Barratt & Sharma 2018).
    Introduced in notebook 07.
    """
    p = np.asarray(probabilities, "float64")
    if p.ndim != 2 or len(p) < splits:
        raise ValueError(f"need probabilities [N, classes] with N >= splits={splits}, got shape {p.shape}")
    eps = 1e-12
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + eps) - np.log(marginal + eps))).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return Score(float(np.mean(scores)), float(np.std(scores)), len(p), splits)


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance between all pairs of feature vectors: 0 when every sample is the same (collapse).
    Introduced in notebook 03."""
    f = np.asarray(features, "float64")
    if len(f) < 2:
        raise ValueError("diversity needs at least 2 samples")
    f = f - f.mean(axis=0)  # the same distances, with less rounding in the Gram formula below
    squared = (f**2).sum(1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * f @ f.T, 0.0))
    return float(distances.sum() / (len(f) * (len(f) - 1)))


def truncated_normal(shape, truncation: float | None = None, seed: int = 0) -> np.ndarray:
    """N(0, I) noise, with every value beyond ``±truncation`` drawn again (BigGAN's truncation trick).

    Smaller ``truncation`` trades diversity for typical, cleaner samples; ``None`` is plain N(0, I).
    Introduced in notebook 07.
    """
    if truncation is not None and truncation <= 0:
        raise ValueError(f"truncation={truncation}: use a positive threshold (e.g. 0.5 .. 2) or None for none")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape)
    if truncation is not None:
        outside = np.abs(z) > truncation
        while outside.any():
            z[outside] = rng.standard_normal(int(outside.sum()))
            outside = np.abs(z) > truncation
    return z.astype("float32")


def diversity_ratio(generated_sets, real_sets, features=None) -> Score:
    """Per caption, the mean pairwise distance between its generated images over that between real images of the
    same kind (``real_sets[i]``); mean and std over captions. 0: the generator ignores its noise; 1.0: as varied
    as the data. ``features`` (images -> ``[N, D]``, e.g. ``classifier.features``) or, if None, pixels.
    Introduced in notebook 07."""
    if len(generated_sets) != len(real_sets) or not len(generated_sets):
        raise ValueError(f"need one set of real images per caption: got {len(generated_sets)} generated sets "
                         f"and {len(real_sets)} real sets")

    def spread(images):
        images = np.asarray(to_tanh_range(images))
        vectors = images.reshape(len(images), -1) if features is None else features(images)
        return mean_pairwise_distance(vectors)

    ratios = [ratio_to_real(spread(fakes), spread(reals), "spread between images of one caption")
              for fakes, reals in zip(generated_sets, real_sets)]
    return Score(float(np.mean(ratios)), float(np.std(ratios)), len(ratios))


def noise_diversity(generator, texts, real_sets, features=None, samples: int = 16, seed: int = 0) -> Score:
    """:func:`diversity_ratio` of ``samples`` images per text row (each with its own z) against ``real_sets``,
    e.g. from :func:`real_images_like`.
    Introduced in notebook 03."""
    from t2ilib.models import generate

    if samples < 2:
        raise ValueError(f"samples={samples}: diversity needs at least 2 images per caption (16 or more)")
    texts = np.asarray(texts)
    fakes = generate(generator, np.repeat(texts, samples, axis=0), seed=seed)
    return diversity_ratio(fakes.reshape(len(texts), samples, *fakes.shape[1:]), real_sets, features)


def real_images_like(attributes, images, target, by=("petal_colour", "centre_colour"), count: int = 16,
                     seed: int = 0) -> list[np.ndarray]:
    """For each row of ``target``, up to ``count`` real images (of ``images``, rows = ``attributes``' index) whose
    ``by`` attributes equal that row's: the real variety a caption naming those attributes allows.
    Introduced in notebook 03."""
    rng = np.random.default_rng(seed)
    keys = attributes[list(by)].astype(str).agg("|".join, axis=1)
    pools = {key: group.index.to_numpy() for key, group in keys.groupby(keys)}
    sets = []
    for key in target[list(by)].astype(str).agg("|".join, axis=1):
        pool = pools.get(key, np.empty(0, int))
        if len(pool) < 2:
            raise ValueError(f"only {len(pool)} real image(s) with {dict(zip(by, key.split('|')))}: need 2 or more")
        sets.append(np.asarray(images[np.sort(rng.choice(pool, min(count, len(pool)), replace=False))]))
    return sets


def frechet_ratio(extract, generated, real) -> dict:
    """FID of generated vs real over real vs real on the features ``extract`` gives, with two disjoint halves of
    ``real``: images generated for the captions of half A against real half B, real A against real B.

    ``generated[i]`` is drawn from a caption of ``real[i]``. 1.0 is as close as two real samples are.
    """
    half = len(real) // 2
    if len(generated) != len(real) or half < 2:
        raise ValueError(f"need as many generated as real images, at least 4 of each: got {len(generated)} "
                         f"and {len(real)}")
    real_features = extract(real)
    fake_vs_real = frechet_distance(extract(generated[:half]), real_features[half:])
    real_vs_real = frechet_distance(real_features[:half], real_features[half:])
    return {"generated_vs_real": fake_vs_real, "real_vs_real": real_vs_real,
            "ratio": ratio_to_real(fake_vs_real, real_vs_real, "FID between two halves")}


def power_spectrum(images) -> np.ndarray:
    """``|FFT|^2`` of each image's grey level minus its mean, ``[N, H, W]`` (frequencies as ``np.fft.fftfreq``).
    Used by checkerboard_ratio (notebook 04).
    """
    grey = np.asarray(to_tanh_range(images)).mean(axis=-1)
    return np.abs(np.fft.fft2(grey - grey.mean(axis=(1, 2), keepdims=True))) ** 2


def checkerboard_energy(images, periods=(2, 4)) -> float:
    """Share of the spectral energy at the frequencies of patterns that repeat every ``periods`` pixels (mean over
    images): where a stride-2 transposed convolution leaves its checkerboard, once per upsampling (Odena et al.
    2016). Image sides must be multiples of every period. Used by checkerboard_ratio (notebook 04)."""
    spectrum = power_spectrum(images)
    height, width = spectrum.shape[1:]
    if any(height % p or width % p for p in periods):
        raise ValueError(f"images of {height}x{width} px: the sides must be multiples of the periods {periods}")
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]
    on_grid = np.zeros((height, width), bool)
    for p in periods:
        on_grid |= np.isclose(fy * p, np.round(fy * p)) & np.isclose(fx * p, np.round(fx * p))
    on_grid[0, 0] = False  # the mean, removed already
    return float(np.mean(spectrum[:, on_grid].sum(-1) / np.maximum(spectrum.sum(axis=(1, 2)), 1e-12)))


def checkerboard_ratio(generated, real, periods=(2, 4)) -> float:
    """:func:`checkerboard_energy` of generated images over that of real ones: 1.0 for a real image set.
    Introduced in notebook 04."""
    return ratio_to_real(checkerboard_energy(generated, periods), checkerboard_energy(real, periods),
                         "energy at the checkerboard's frequencies")


def border_energy(images, width: int = 4) -> float:
    """Mean squared difference between neighbouring pixels (grey level, across and down) in the outer ``width``-pixel
    ring of each image, mean over images: a frame of light and dark lines scores high. Used by border_ratio
    (notebook 04)."""
    grey = np.asarray(to_tanh_range(images), "float64").mean(axis=-1)
    height, width_px = grey.shape[1:]
    if min(height, width_px) <= 2 * width:
        raise ValueError(f"images of {height}x{width_px} px have no inside within a {width}-pixel ring")
    ring = np.ones((height, width_px), bool)
    ring[width:-width, width:-width] = False
    across = np.zeros_like(grey)
    across[:, :, :-1] += np.diff(grey, axis=2) ** 2
    across[:, :-1, :] += np.diff(grey, axis=1) ** 2
    return float(across[:, ring].mean())


def border_ratio(generated, real, width: int = 4) -> float:
    """:func:`border_energy` of generated images over that of real ones: near 1 without a frame.
    Introduced in notebook 04."""
    return ratio_to_real(border_energy(generated, width), border_energy(real, width), "detail at the border")


def ratio_to_real(value: float, real: float, what: str) -> float:
    """``value / real``, a measure of generated images over the same measure of real ones; NaN, with the reason
    printed in one line, when the real images have none of ``what`` (flat one-colour pictures, as a stand-in or a
    broken preparation makes): a ratio to nothing is undefined, and a notebook cell should say so, not crash.
    Introduced in notebook 03."""
    if not real > 1e-9:  # zero, up to rounding (identical images are ~1e-8 apart through the Gram formula)
        print(f"the real images have no {what} ({real:.3g}): the ratio to them is undefined, NaN here; "
              "are they one flat colour? Look at them (viz.show_images)")
        return float("nan")
    return float(value) / float(real)


def interpolation_jumpiness(features) -> float:
    """How unevenly a walk between two captions changes the picture: the largest step between consecutive
    frames divided by the whole path length (features of frames in order).

    With ``n`` steps a perfectly smooth walk scores ``1/n``; a walk that jumps once and otherwise stands still
    scores 1.
    Introduced in notebook 06.
    """
    features = np.asarray(features, "float64")
    steps = np.sqrt((np.diff(features, axis=0) ** 2).sum(-1))
    return float(steps.max() / max(steps.sum(), 1e-12))


def high_frequency_energy(images, cutoff: float = 0.25) -> float:
    """Share of the images' spectral energy above ``cutoff`` of the sampling frequency (grey level, mean over
    images). A bicubic upsample cannot add any: a refining stage that raises it adds detail (or noise, which
    the attribute match and a look at the pictures tell apart). Introduced in notebook 06."""
    spectrum = power_spectrum(images)  # a share of the energy: the same for any scale of the pixels
    fy = np.fft.fftfreq(spectrum.shape[1])[:, None]
    fx = np.fft.fftfreq(spectrum.shape[2])[None, :]
    high = np.sqrt(fx ** 2 + fy ** 2) > cutoff
    return float(np.mean(spectrum[:, high].sum(-1) / np.maximum(spectrum.sum(axis=(1, 2)), 1e-12)))


def upsample(images, size: int, method: str = "bicubic") -> np.ndarray:
    """``images`` in [-1, 1] resized to ``size`` px: ``"bicubic"`` (clipped back to [-1, 1]: bicubic overshoots at
    edges) or ``"nearest"`` (each pixel repeated). Introduced in notebook 06."""
    import tensorflow as tf
    from keras import ops

    resized = tf.image.resize(np.asarray(images, "float32"), (size, size), method=method)
    return np.clip(ops.convert_to_numpy(resized), -1.0, 1.0).astype("float32")


def compare_stages(stage1, stage2, real, *, features, classifier=None, attributes: pd.DataFrame | None = None,
                   columns=("petal_colour", "centre_colour")) -> pd.DataFrame:
    """Notebook 06's table: Stage I's and Stage II's images for the same captions and z, beside the bicubic
    upsample of Stage I and ``real`` (the captions' own images, at Stage II's size). Introduced in notebook 06.

    Columns ``"Stage I"`` (its pixels repeated to Stage II's size, which is what a judge at that size reads of it),
    ``"Stage I, bicubic"``, ``"Stage II"``, ``"real"``. Rows:

    - ``match_<attribute>`` (with ``classifier`` and ``attributes``, the captions' attributes): the share of images
      whose attribute the classifier reads as the caption's; the real column is the classifier's own ceiling here;
    - ``fid_ratio``: :func:`frechet_ratio` on ``features`` (1.0: as close to real as real is);
    - ``high_frequency_ratio`` and ``checkerboard_ratio``: :func:`high_frequency_energy` and
      :func:`checkerboard_energy` over the real images' (not for Stage I: they would measure the repeat);
    - ``distance_to_stage1``: ``losses.reconstruction_loss`` (mean ``|avgpool(x) - Stage I|``), how far each set
      strays from the sketch.
    """
    size = stage2.shape[1]
    real = np.asarray(to_tanh_range(real), "float32")
    if real.shape[1] != size or len(real) != len(stage1) or len(stage2) != len(stage1):
        raise ValueError(f"compare_stages needs as many Stage-I, Stage-II and real images, the real ones at Stage II's "
                         f"{size} px: got {len(stage1)}, {len(stage2)} and {len(real)} at {real.shape[1]} px")
    sets = {"Stage I": upsample(stage1, size, "nearest"), "Stage I, bicubic": upsample(stage1, size),
            "Stage II": np.asarray(stage2, "float32"), "real": real}
    table = {}
    for name, images in sets.items():
        row = {}
        if classifier is not None and attributes is not None:
            rates = match_rates(classifier.predict(images), attributes[list(columns)])
            row.update({f"match_{c}": rate for c, rate in rates.items()})
        row["fid_ratio"] = frechet_ratio(features, images, real)["ratio"]
        spectral = name != "Stage I"
        row["high_frequency_ratio"] = (ratio_to_real(high_frequency_energy(images),
                                                                high_frequency_energy(real), "high-frequency energy")
                                       if spectral else np.nan)
        row["checkerboard_ratio"] = checkerboard_ratio(images, real) if spectral else np.nan
        row["distance_to_stage1"] = float(reconstruction_loss(images, stage1))
        table[name] = row
    return pd.DataFrame(table)
