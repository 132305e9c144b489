"""Each loss against a hand computation on a few logits."""

import math

import numpy as np
import pytest
import tensorflow as tf

from t2ilib import losses


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_equilibrium_values_are_2ln2_and_ln2():
    # D outputs 1/2 (logit 0) everywhere at the equilibrium of the game.
    zeros = tf.zeros([5, 1])
    assert float(losses.d_loss(zeros, zeros)) == pytest.approx(2 * math.log(2))
    assert float(losses.g_loss_nonsaturating(zeros)) == pytest.approx(math.log(2))
    assert math.isclose(losses.LN2, math.log(2))


def test_bce_real_and_fake_match_the_log_formulas():
    logits = [0.0, math.log(3.0), -2.0]
    real = np.mean([-math.log(sigmoid(x)) for x in logits])
    fake = np.mean([-math.log(1 - sigmoid(x)) for x in logits])
    assert float(losses.bce_real(tf.constant(logits))) == pytest.approx(real, rel=1e-6)
    assert float(losses.bce_fake(tf.constant(logits))) == pytest.approx(fake, rel=1e-6)
    # logit ln 3 means D(x) = 3/4, so -log D(x) = log(4/3)
    assert float(losses.bce_real(tf.constant([math.log(3.0)]))) == pytest.approx(math.log(4 / 3), rel=1e-6)


def test_gan_cls_weights_wrong_and_fake_by_half():
    # Guards GAN-CLS's loss (notebook 04): real + (wrong + fake) / 2.
    real, wrong, fake = 1.5, 0.3, -0.7
    expected = -math.log(sigmoid(real)) + 0.5 * (-math.log(1 - sigmoid(wrong)) - math.log(1 - sigmoid(fake)))
    got = losses.gan_cls_d_loss(tf.constant([[real]]), tf.constant([[wrong]]), tf.constant([[fake]]))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_minimax_generator_loss_is_log_one_minus_d():
    x = 2.0
    assert float(losses.g_loss_minimax(tf.constant([x]))) == pytest.approx(math.log(1 - sigmoid(x)), rel=1e-6)


def test_minimax_loss_saturates_where_the_nonsaturating_one_does_not():
    # When D confidently rejects a fake (logit -6), log(1 - D) has almost no slope; -log D still has slope ~1.
    logit = tf.Variable([-6.0])
    with tf.GradientTape(persistent=True) as tape:
        minimax = losses.g_loss_minimax(logit)
        nonsaturating = losses.g_loss_nonsaturating(logit)
    assert abs(float(tape.gradient(minimax, logit)[0])) < 0.01
    assert abs(float(tape.gradient(nonsaturating, logit)[0])) > 0.99


def test_hinge_losses_by_hand():
    real, fake = tf.constant([0.5, 2.0]), tf.constant([-2.0, 0.5])
    assert float(losses.hinge_real(real)) == pytest.approx((0.5 + 0.0) / 2)
    assert float(losses.hinge_fake(fake)) == pytest.approx((0.0 + 1.5) / 2)
    assert float(losses.hinge_d_loss(real, fake)) == pytest.approx(0.25 + 0.75)
    assert float(losses.hinge_g_loss(fake)) == pytest.approx(0.75)
    wrong = tf.constant([0.0, 0.0])
    assert float(losses.hinge_gan_cls_d_loss(real, wrong, fake)) == pytest.approx(0.25 + 0.5 * (1.0 + 0.75))


def test_kl_of_a_unit_gaussian_is_zero_and_grows_with_the_mean():
    assert float(losses.kl_loss(tf.zeros([3, 4]), tf.zeros([3, 4]))) == pytest.approx(0.0)
    # KL(N(mu, 1) || N(0, 1)) = mu^2 / 2 per dimension, averaged over the dimensions: (0.5 + 2) / 2.
    assert float(losses.kl_loss(tf.constant([[1.0, 2.0]]), tf.zeros([1, 2]))) == pytest.approx(1.25)
    # variance e: 0.5 * (e - 1 - 1) per dimension
    assert float(losses.kl_loss(tf.zeros([1, 1]), tf.ones([1, 1]))) == pytest.approx(0.5 * (math.e - 2))


def test_kl_is_stackgans_mean_over_every_element():
    # StackGAN's TF KL_loss (outputs log sigma) and PyTorch KL_loss (outputs log sigma^2), written out on known
    # tensors: both take the mean of the per-element KL over the batch AND the code dimensions.
    mean = np.array([[0.5, -1.0, 0.0], [2.0, 0.0, 1.0]])
    log_sigma = np.array([[0.0, -0.5, 0.3], [1.0, 0.0, -1.0]])
    tf_form = np.mean(-log_sigma + 0.5 * (-1.0 + np.exp(2.0 * log_sigma) + mean**2))
    log_var = 2.0 * log_sigma
    torch_form = -0.5 * np.mean(1.0 + log_var - mean**2 - np.exp(log_var))
    assert tf_form == pytest.approx(torch_form)
    assert float(losses.kl_loss(mean, log_var)) == pytest.approx(tf_form, rel=1e-6)


def test_the_summed_kl_is_dim_times_the_averaged_one():
    rng = np.random.default_rng(0)
    for dim in (1, 3, 128):
        mean, log_var = rng.standard_normal((4, dim)), rng.standard_normal((4, dim))
        summed = np.mean(np.sum(0.5 * (np.exp(log_var) + mean**2 - 1.0 - log_var), axis=1))
        assert dim * float(losses.kl_loss(mean, log_var)) == pytest.approx(summed, rel=1e-5)


def test_losses_come_back_in_float32_from_bfloat16_logits():
    logits = tf.constant([0.5, -0.5], dtype=tf.bfloat16)
    for loss in (losses.bce_real(logits), losses.hinge_g_loss(logits), losses.d_loss(logits, logits)):
        assert loss.dtype == tf.float32


def test_loss_tables_pair_plain_and_cls_losses():
    assert set(losses.D_LOSSES) == set(losses.G_LOSSES) == {"bce", "hinge", "wgan-gp"}
    plain, cls = losses.D_LOSSES["bce"]
    assert plain is losses.d_loss and cls is losses.gan_cls_d_loss
    assert losses.D_LOSSES["wgan-gp"] == (losses.wasserstein_d_loss, losses.wasserstein_cls_d_loss)
    assert losses.G_LOSSES["wgan-gp"] is losses.wasserstein_g_loss


def test_contrastive_matching_loss_by_hand():
    similarity = np.array([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0], [0.0, 3.0, 0.5]], "float32")

    def cross_entropy(matrix):  # mean over rows of -log softmax(row)[own index]
        return float(np.mean([np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(matrix)]))

    by_hand = 0.5 * (cross_entropy(similarity) + cross_entropy(similarity.T))
    assert float(losses.contrastive_matching_loss(similarity)) == pytest.approx(by_hand, rel=1e-6)
    # Uniform scores: each row is a guess among 3, ln 3; a sharp diagonal drives it to 0.
    assert float(losses.contrastive_matching_loss(np.zeros((3, 3)))) == pytest.approx(math.log(3), rel=1e-6)
    assert float(losses.contrastive_matching_loss(20.0 * np.eye(3))) < 1e-6


def test_contrastive_negatives_of_the_same_group_are_left_out():
    # Images 0 and 1 share a group (the same colour pair): caption 1 is not a wrong caption for image 0, nor
    # caption 0 for image 1, so those two entries leave both softmaxes; image 2's row and column are untouched.
    similarity = np.array([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0], [0.0, 3.0, 0.5]], "float32")
    kept = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1]], bool)

    def cross_entropy(matrix, mask):
        return float(np.mean([np.log(np.exp(row[m]).sum()) - row[i] for i, (row, m) in enumerate(zip(matrix, mask))]))

    by_hand = 0.5 * (cross_entropy(similarity, kept) + cross_entropy(similarity.T, kept.T))
    masked = float(losses.contrastive_matching_loss(similarity, groups=np.array([4, 4, 7])))
    assert masked == pytest.approx(by_hand, rel=1e-6)
    assert masked != pytest.approx(float(losses.contrastive_matching_loss(similarity)), rel=1e-3)
    # Every image in its own group: the plain loss.
    assert float(losses.contrastive_matching_loss(similarity, groups=np.arange(3))) == pytest.approx(
        float(losses.contrastive_matching_loss(similarity)), rel=1e-6)
