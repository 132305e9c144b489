"""GAN losses as pure functions of discriminator logits, and the tables the trainer picks them from by name.
Introduced in notebook 03.

Every function takes raw logits (before any sigmoid) and returns a scalar float32 tensor, so the same code runs
under mixed precision. Three families, the entries of :data:`D_LOSSES` / :data:`G_LOSSES`:

- ``"bce"``: the *cross-entropy* GAN of Goodfellow et al. (2014), with the non-saturating generator loss they
  recommend (notebook 03);
- ``"hinge"``: the *hinge* GAN (Lim & Ye 2017, Miyato et al. 2018), a margin loss that stops pushing once D is
  confident (notebook 04);
- ``"wgan-gp"``: the Wasserstein critic (Arjovsky et al. 2017), kept 1-Lipschitz by :func:`gradient_penalty`,
  which the trainer adds to D's loss as a separate term (notebook 06).

Each has a plain conditional form (real pairs vs fake pairs) and the GAN-CLS form of Reed et al. (2016), where D
also learns to reject a real image paired with the *wrong* text:
``L_D = L(real, right text) + (L(real, wrong text) + L(fake, right text)) / 2``.
"""

from __future__ import annotations

import keras
import tensorflow as tf  # only for the gradient penalty's tape
from keras import ops

__all__ = [
    "LN2",
    "bce_real",
    "bce_fake",
    "d_loss",
    "g_loss_nonsaturating",
    "g_loss_minimax",
    "gan_cls_d_loss",
    "hinge_real",
    "hinge_fake",
    "hinge_d_loss",
    "hinge_g_loss",
    "hinge_gan_cls_d_loss",
    "kl_loss",
    "wasserstein_d_loss",
    "wasserstein_cls_d_loss",
    "wasserstein_g_loss",
    "gradient_penalty",
    "conditional_gradient_penalty",
    "reconstruction_loss",
    "pair_similarity",
    "contrastive_matching_loss",
    "contrastive_loss",
    "D_LOSSES",
    "G_LOSSES",
]

# At the game's equilibrium D outputs 1/2 everywhere: the cross-entropy D loss (real + fake) is then 2 ln 2 and
# the non-saturating G loss ln 2. Losses that hover near these values mean neither network is winning.
LN2 = 0.6931471805599453


def _f32(logits):
    return ops.cast(logits, "float32")


def bce_real(logits):
    """Mean of ``-log sigmoid(logits)``: D's loss for calling these pairs real (also G's non-saturating loss).
    Introduced in notebook 04."""
    return ops.mean(ops.softplus(-_f32(logits)))  # -log sigmoid(x) = softplus(-x), stable for large |x|


def bce_fake(logits):
    """Mean of ``-log(1 - sigmoid(logits))``: D's loss for calling these pairs fake. Introduced in notebook 04."""
    return ops.mean(ops.softplus(_f32(logits)))


def d_loss(real_logits, fake_logits):
    """Cross-entropy discriminator loss of a plain (conditional) GAN: real pairs -> 1, fake pairs -> 0.
    Introduced in notebook 03."""
    return bce_real(real_logits) + bce_fake(fake_logits)


def g_loss_nonsaturating(fake_logits):
    """``-log D(G(z))``: strong gradients while D still rejects the fakes (Goodfellow et al. 2014, section 3).
    Introduced in notebook 03."""
    return bce_real(fake_logits)


def g_loss_minimax(fake_logits):
    """``log(1 - D(G(z)))``, the loss of the original minimax game. Taught, not used: it saturates when D wins.
    Introduced in notebook 03."""
    return -bce_fake(fake_logits)


def gan_cls_d_loss(real_logits, wrong_logits, fake_logits):
    """GAN-CLS (Reed et al. 2016): real image + right text is real; real + wrong text and fake + right are fake.
    Introduced in notebook 04."""
    return bce_real(real_logits) + 0.5 * (bce_fake(wrong_logits) + bce_fake(fake_logits))


def hinge_real(logits):
    """Mean of ``max(0, 1 - logits)``: zero once D scores a real pair above the margin.
    An entry of the loss tables (``loss="hinge"``, notebook 04)."""
    return ops.mean(ops.relu(1.0 - _f32(logits)))


def hinge_fake(logits):
    """Mean of ``max(0, 1 + logits)``: zero once D scores a fake pair below the margin.
    An entry of the loss tables (``loss="hinge"``, notebook 04)."""
    return ops.mean(ops.relu(1.0 + _f32(logits)))


def hinge_d_loss(real_logits, fake_logits):
    return hinge_real(real_logits) + hinge_fake(fake_logits)


def hinge_g_loss(fake_logits):
    """The hinge generator loss is unbounded: ``-mean(D(G(z)))``.
    An entry of the loss tables (``loss="hinge"``, notebook 04)."""
    return -ops.mean(_f32(fake_logits))


def hinge_gan_cls_d_loss(real_logits, wrong_logits, fake_logits):
    """GAN-CLS with the hinge: the same three pairs and weights as :func:`gan_cls_d_loss`.
    An entry of the loss tables (``loss="hinge"``, notebook 04)."""
    return hinge_real(real_logits) + 0.5 * (hinge_fake(wrong_logits) + hinge_fake(fake_logits))


def kl_loss(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per code dimension: averaged over the code's dimensions and the batch.

    The regulariser of Conditioning Augmentation (StackGAN), normalised as both of StackGAN's released codes do
    (``tf.reduce_mean`` / ``torch.mean`` over every element), so StackGAN's weight 2 means what it meant there.
    The KL of the whole code, summed over its ``dim`` dimensions, is ``dim`` times this. Introduced in notebook 05.
    """
    mean, log_var = _f32(mean), _f32(log_var)
    return ops.mean(0.5 * (ops.exp(log_var) + ops.square(mean) - 1.0 - log_var))


def wasserstein_d_loss(real_scores, fake_scores):
    """The WGAN critic loss ``E[D(fake)] - E[D(real)]``: its negative estimates the Wasserstein-1 distance
    (Arjovsky et al. 2017), provided the critic is kept 1-Lipschitz (see :func:`gradient_penalty`).
    An entry of the loss tables (``loss="wgan-gp"``, notebook 06)."""
    return ops.mean(_f32(fake_scores)) - ops.mean(_f32(real_scores))


def wasserstein_cls_d_loss(real_scores, wrong_scores, fake_scores):
    """The critic loss with the conditional (matching-aware) term: real image + wrong text counts as fake,
    with the GAN-CLS weights ``real + (wrong + fake) / 2``.
    An entry of the loss tables (``loss="wgan-gp"``, notebook 06)."""
    return 0.5 * (ops.mean(_f32(wrong_scores)) + ops.mean(_f32(fake_scores))) - ops.mean(_f32(real_scores))


def wasserstein_g_loss(fake_scores):
    """The WGAN generator loss ``-E[D(fake)]``. An entry of the loss tables (``loss="wgan-gp"``, notebook 06)."""
    return -ops.mean(_f32(fake_scores))


def gradient_penalty(critic, real, fake, alpha=None, seed=None):
    """WGAN-GP (Gulrajani et al. 2017): ``E[(||grad_x critic(x_hat)||_2 - 1)^2]`` on random points
    ``x_hat = alpha * real + (1 - alpha) * fake`` between real and fake images, one ``alpha ~ U(0, 1)`` per
    sample (or the ``alpha`` given, shape ``[B]``; ``seed`` is a ``keras.random.SeedGenerator`` or an int).
    ``critic`` maps a batch of images to scores; close over the text to penalise a conditional critic. Multiply by
    the weight (10 in the paper) yourself; ``ConditionalGAN(loss="wgan-gp")`` adds it to D's loss.
    Introduced in notebook 06.
    """
    real, fake = _f32(real), _f32(fake)
    if alpha is None:
        alpha = keras.random.uniform(ops.shape(real)[:1], seed=seed)
    alpha = ops.reshape(_f32(alpha), [-1] + [1] * (len(real.shape) - 1))
    between = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(between)
        scores = _f32(critic(between))
    gradients = tape.gradient(scores, between)
    norms = ops.sqrt(ops.sum(ops.square(gradients), axis=tuple(range(1, len(gradients.shape)))) + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


def conditional_gradient_penalty(critic, images, text, fakes, wrong_text=None, seed=None):
    """:func:`gradient_penalty` of a critic ``critic(images, text)`` on the lines from each real pair to each kind
    of pair it calls fake: to the fake image with the right caption and, given ``wrong_text`` (GAN-CLS), to the real
    image with the wrong caption, which the image penalty alone leaves unbounded. The mean of the two.
    Used by training.make_gan (notebook 03)."""
    penalties = [gradient_penalty(lambda x: critic(x, text), images, fakes, seed=seed)]
    if wrong_text is not None:
        penalties.append(gradient_penalty(lambda t: critic(images, t), text, wrong_text, seed=seed))
    return sum(penalties) / len(penalties)


def matching_aware_gradient_penalty(critic, images, text, power: float = 6.0, text_scale=None):
    """DF-GAN's matching-aware gradient penalty (Tao et al. 2022): ``E[||(grad_image, grad_text) critic||_2^power]``
    at the real images with their own captions, so D's surface is flat around the matching pairs in both inputs
    (``MA_GP`` in tobran/DF-GAN, power 6). Token ids (an LSTM's input) have no gradient: then the images' alone.
    ``text_scale`` (each dimension's standard deviation, for a D that standardises its text) turns the text's
    gradient into the one with respect to the text D reads. Multiply by the weight (DF-GAN's 2) yourself.
    Introduced in notebook 04."""
    embedded = not keras.backend.is_int_dtype(text.dtype)
    images = _f32(images)
    text = _f32(text) if embedded else text
    watched = [images, text] if embedded else [images]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        scores = ops.sum(_f32(critic(images, text)))
    grads = tape.gradient(scores, watched)
    squared = ops.sum(ops.square(grads[0]), axis=(1, 2, 3))
    if embedded:
        grad_text = grads[1]
        if text_scale is not None:
            grad_text = grad_text * _f32(text_scale)
        squared = squared + ops.sum(ops.square(grad_text), axis=1)
    return ops.mean(ops.power(ops.sqrt(squared + 1e-12), power))


def reconstruction_loss(high_res, low_res):
    """Mean absolute difference between ``high_res`` shrunk to ``low_res``'s size (average pooling) and
    ``low_res``: it keeps a refining stage (StackGAN's Stage II) faithful to the image it refines.
    Introduced in notebook 06."""
    high_res, low_res = _f32(high_res), _f32(low_res)
    factor = high_res.shape[1] // low_res.shape[1]
    if factor < 1 or high_res.shape[1] != factor * low_res.shape[1]:
        raise ValueError(f"reconstruction_loss: {high_res.shape[1]} px is not a multiple of {low_res.shape[1]} px")
    shrunk = ops.average_pool(high_res, factor, factor, "valid") if factor > 1 else high_res
    return ops.mean(ops.abs(shrunk - low_res))


def pair_similarity(image_features, text_features, temperature: float = 0.1):
    """``[B, B]`` cosine of every image's features with every caption's, over ``temperature`` (XMC-GAN's 0.1):
    the same scale whatever D's norms are. Row i is image i; column j is caption j.
    Used by training.make_gan (notebook 03)."""
    images, captions = ops.normalize(_f32(image_features), axis=-1), ops.normalize(_f32(text_features), axis=-1)
    return ops.matmul(images, ops.transpose(captions)) / temperature


def contrastive_matching_loss(similarity, groups=None):
    """Which caption of the batch is mine? ``similarity[i, j]`` scores image i against caption j; the right
    caption of image i is caption i. Cross-entropy over each row (image -> caption) and each column (caption ->
    image), averaged (CLIP's loss; XMC-GAN, Zhang et al. 2021, trains a text-to-image GAN with it). Every other
    caption of the batch is a wrong caption, so one matrix product gives B - 1 mismatched pairs per image; with
    ``groups`` (``[B]`` ids), captions of another image of the *same* group are left out: they are not wrong.
    Introduced in notebook 04."""
    similarity = _f32(similarity)
    if groups is not None:
        same = ops.equal(ops.expand_dims(groups, 1), ops.expand_dims(groups, 0))
        others = ops.logical_and(same, ops.logical_not(ops.eye(ops.shape(similarity)[0]) > 0))
        similarity = ops.where(others, -1e9, similarity)  # out of both softmaxes
    rows = -ops.diagonal(ops.log_softmax(similarity, axis=1))  # image i picks caption i
    columns = -ops.diagonal(ops.log_softmax(similarity, axis=0))  # caption j picks image j
    return 0.5 * (ops.mean(rows) + ops.mean(columns))


def contrastive_loss(image_features, text_features, groups=None, temperature: float = 0.1):
    """:func:`contrastive_matching_loss` of the batch's :func:`pair_similarity`: D's projection vectors in, one
    number out (the contrastive term of ``ConditionalGAN``, notebook 04)."""
    return contrastive_matching_loss(pair_similarity(image_features, text_features, temperature), groups)


# The discriminator and generator losses by name: (plain conditional, GAN-CLS) pairs and the G loss. "wgan-gp" is
# the Wasserstein pair; its gradient penalty is a separate D term (gradient_penalty) that the trainer adds.
D_LOSSES = {"bce": (d_loss, gan_cls_d_loss), "hinge": (hinge_d_loss, hinge_gan_cls_d_loss),
            "wgan-gp": (wasserstein_d_loss, wasserstein_cls_d_loss)}
G_LOSSES = {"bce": g_loss_nonsaturating, "hinge": hinge_g_loss, "wgan-gp": wasserstein_g_loss}
