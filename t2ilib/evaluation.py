"""Realism and diversity scores of generated images: FID, KID, Inception Score, with sample size and spread.

Every score here compares *features*, and the feature extractor is pluggable: any callable
``images -> float [N, D]``.

- :class:`InceptionFeatures`: InceptionV3's 2048-d pool features (``keras.applications``), the network FID and KID
  were defined with. Its ImageNet weights download on Colab; offline the same code runs with ``weights=None``
  (random weights: the numbers then only check the plumbing).
- ``classifier.features`` of a :class:`t2ilib.metrics.AttributeClassifier`: the kit's own small network, trained
  on ``synthetic_flowers``, which knows what matters in that domain and works offline.

Numbers from different extractors, image sizes or sample sizes are not comparable: a :class:`Score` therefore
carries its sample size ``n`` and, where it is cheap, a spread over several runs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from t2ilib.data import to_unit_range
from t2ilib.metrics import frechet_distance

__all__ = ["Score", "InceptionFeatures", "fid", "mmd2_unbiased", "kid", "inception_score", "mean_pairwise_distance",
           "truncated_normal"]


@dataclasses.dataclass(frozen=True)
class Score:
    """A measured number with what it rests on: ``mean`` over ``runs`` runs (``std`` between them), ``n`` samples."""

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

        images = to_unit_range(images)
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
    """
    value = frechet_distance(extract(images_a), extract(images_b))
    return Score(value, 0.0, min(len(images_a), len(images_b)))


def mmd2_unbiased(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3`` (Binkowski et al. 2018)."""
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
    """Mean Euclidean distance between all pairs of feature vectors: 0 when every sample is the same (collapse)."""
    f = np.asarray(features, "float64")
    if len(f) < 2:
        raise ValueError("diversity needs at least 2 samples")
    squared = (f**2).sum(1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * f @ f.T, 0.0))
    return float(distances.sum() / (len(f) * (len(f) - 1)))


def truncated_normal(shape, truncation: float | None = None, seed: int = 0) -> np.ndarray:
    """N(0, I) noise, with every value beyond ``±truncation`` drawn again (BigGAN's truncation trick).

    Smaller ``truncation`` trades diversity for typical, cleaner samples; ``None`` is plain N(0, I).
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
