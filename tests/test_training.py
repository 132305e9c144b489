"""One train_step of each GAN variant updates both networks; the switches do what they say."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2ilib import config, losses, models, training
from t2ilib.text import LSTMTextEncoder

# The smoke size with Reed et al.'s recipe: each test turns on the one term it checks
PRESET = config.PRESETS["smoke"].replace(recipe=config.REED_ET_AL)
EMBEDDING_DIM = 12


def trainer_options(preset, options: dict) -> dict:
    """``options`` for ``ConditionalGAN``, the recipe's fields among them (``loss=``...) moved into ``recipe``."""
    changes = {name: options.pop(name) for name in list(options) if name in config.RECIPE_FIELDS}
    return {"recipe": preset.recipe.replace(**changes), **options}


def tiny_dataset(text_kind="embedding", count=8):
    rng = np.random.default_rng(0)
    if text_kind == "embedding":
        text = rng.standard_normal((count, EMBEDDING_DIM)).astype("float32")
    else:
        text = rng.integers(1, 30, (count, 6)).astype("int32")
    data = {"image": rng.uniform(-1, 1, (count, 32, 32, 3)).astype("float32"), "text": text,
            "wrong_text": np.roll(text, 1, axis=0)}
    return tf.data.Dataset.from_tensor_slices(data).batch(count)


def make_gan(text_kind="embedding", run_eagerly=True, **options):
    """A smoke-sized GAN. Eager by default: tracing costs ~10 s per model, and one test below runs traced."""
    if text_kind == "embedding":
        kwargs = {"embedding_dim": EMBEDDING_DIM}
        generator = models.build_generator(PRESET, **kwargs)
        discriminator = models.build_discriminator(PRESET, **kwargs)
    else:
        generator = models.build_generator(PRESET, text_encoder=LSTMTextEncoder(30, 8, 8), sequence_length=6)
        discriminator = models.build_discriminator(PRESET, text_encoder=LSTMTextEncoder(30, 8, 8),
                                                   sequence_length=6)
    gan = training.ConditionalGAN(generator, discriminator, **trainer_options(PRESET, options))
    gan.compile(run_eagerly=run_eagerly)
    return gan


def snapshot(model):
    return [np.array(v) for v in model.trainable_variables]


def changed(before, model):
    return [not np.allclose(b, np.asarray(a)) for b, a in zip(before, model.trainable_variables)]


@pytest.mark.parametrize("text_kind, options", [
    ("embedding", {}),  # GAN-CLS
    ("embedding", {"mismatch": False}),  # plain conditional GAN
    ("embedding", {"interpolate": True, "loss": "hinge"}),  # GAN-INT-CLS, hinge
    ("tokens", {"mismatch": False}),  # the LSTM-GAN
])
def test_one_train_step_changes_both_networks(text_kind, options):
    gan = make_gan(text_kind, **options)
    g_before, d_before = snapshot(gan.generator), snapshot(gan.discriminator)
    history = gan.fit(tiny_dataset(text_kind), epochs=1, verbose=0).history
    assert all(changed(g_before, gan.generator)), "every generator weight should move"
    # Every D kernel moves. (Not every bias: under the hinge GAN-CLS loss the last bias's gradient is exactly
    # -1 + (1 + 1) / 2 = 0 while all margins are active, as they are at the start.)
    kernels = [c for c, v in zip(changed(d_before, gan.discriminator), gan.discriminator.trainable_variables)
               if len(v.shape) > 1]
    assert kernels and all(kernels), "every discriminator kernel should move"
    assert int(gan.g_optimizer.iterations) == int(gan.d_optimizer.iterations) == 1
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])
    assert ("d_wrong" in history) is options.get("mismatch", True)


def test_losses_near_equilibrium_at_start_when_traced():
    # Traced (tf.function), as fit() runs it for real. Fresh D outputs ~1/2, so the GAN-CLS loss starts near
    # 2 ln 2 and G's near ln 2.
    history = make_gan(run_eagerly=False).fit(tiny_dataset(), epochs=1, verbose=0).history
    assert abs(history["d_loss"][0] - 2 * np.log(2)) < 0.5
    assert abs(history["g_loss"][0] - np.log(2)) < 0.5


def test_interpolation_of_token_ids_is_refused():
    with pytest.raises(ValueError, match="token ids"):
        make_gan("tokens", interpolate=True)
    with pytest.raises(ValueError, match="token ids"):  # WGAN-GP's penalty between the right and the wrong caption
        make_gan("tokens", loss="wgan-gp")
    make_gan("tokens", loss="wgan-gp", mismatch=False)  # no wrong caption, no penalty between captions


def test_unknown_loss_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="hinge"):
        make_gan(loss="wasserstein")


def test_compile_defaults_to_dcgan_adam():
    gan = make_gan()
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)
        assert float(optimizer.beta_1) == pytest.approx(0.5)
    assert gan.g_optimizer is not gan.d_optimizer


def test_make_gan_follows_the_preset():
    preset = PRESET.replace(lr_d=1e-4, loss="hinge", projection=True)
    gan = training.make_gan(preset, embedding_dim=EMBEDDING_DIM, interpolate=True)
    assert gan.recipe.loss == "hinge" and gan.interpolate and gan.mismatch
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(1e-4)
    assert "image_features" in gan.discriminator.output


def test_contrastive_term_trains_both_networks_on_all_pairs_of_the_batch():
    preset = PRESET.replace(projection=True)
    generator = models.build_generator(preset, embedding_dim=EMBEDDING_DIM)
    discriminator = models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM)
    gan = training.ConditionalGAN(generator, discriminator, recipe=preset.recipe.replace(contrastive_weight=1.0))
    gan.compile(run_eagerly=True)
    history = gan.fit(tiny_dataset(), epochs=15, verbose=0).history
    # On one fixed batch D learns which caption belongs to which real image.
    assert history["d_contrastive"][-1] < 0.8 * history["d_contrastive"][0]
    assert np.isfinite(history["g_contrastive"]).all()


def test_contrastive_term_needs_the_projection_head():
    with pytest.raises(ValueError, match="projection"):
        make_gan(contrastive_weight=1.0)


def test_make_gan_takes_the_preset_contrastive_weight_only_with_mismatched_pairs():
    preset = PRESET.replace(projection=True, contrastive_weight=0.5)
    assert training.make_gan(preset, embedding_dim=EMBEDDING_DIM).recipe.contrastive_weight == 0.5
    assert training.make_gan(preset, embedding_dim=EMBEDDING_DIM, mismatch=False).recipe.contrastive_weight == 0.0
    assert config.PRESETS["cpu"].recipe.contrastive_weight > 0  # part of config.IMPROVED
    assert config.REED_ET_AL.contrastive_weight == 0.0


def test_make_gan_takes_the_preset_diversity_weight_and_reed_et_al_has_none():
    gan = training.make_gan(PRESET.replace(diversity_weight=0.3), embedding_dim=EMBEDDING_DIM)
    assert gan.recipe.diversity_weight == 0.3 and "diversity" in [metric.name for metric in gan.metrics]
    reed = training.make_gan(PRESET.replace(diversity_weight=0.3), recipe=config.REED_ET_AL,
                             embedding_dim=EMBEDDING_DIM)  # an explicit recipe wins
    assert reed.recipe == config.REED_ET_AL and "diversity" not in [metric.name for metric in reed.metrics]
    assert config.PRESETS["cpu"].recipe.diversity_weight == 0.2  # config.IMPROVED: issue 16's measured weight
    assert config.REED_ET_AL.diversity_weight == 0.0
    with pytest.raises(ValueError, match="diversity_weight=-1"):
        PRESET.replace(diversity_weight=-1)


def test_a_trainer_argument_that_repeats_a_recipe_field_is_refused():
    generator = models.build_generator(PRESET, embedding_dim=EMBEDDING_DIM)
    discriminator = models.build_discriminator(PRESET, embedding_dim=EMBEDDING_DIM)
    for field, value in (("loss", "hinge"), ("contrastive_weight", 1.0), ("diversity_weight", 0.2), ("lr_d", 1e-4)):
        with pytest.raises(ValueError, match=f"{field}= is a field of the recipe: pass recipe=recipe.replace"):
            training.ConditionalGAN(generator, discriminator, **{field: value})


# --- What D sees and what each loss term adds, computed apart from the trainer -----------------------------------

def pairs_batch(count=8):
    """A batch whose wrong captions are independent draws (not a roll of the right ones), with G's noise in it."""
    rng = np.random.default_rng(7)
    return {"image": tf.constant(rng.uniform(-1, 1, (count, 32, 32, 3)).astype("float32")),
            "text": tf.constant(rng.standard_normal((count, EMBEDDING_DIM)).astype("float32")),
            "wrong_text": tf.constant(rng.standard_normal((count, EMBEDDING_DIM)).astype("float32")),
            "z": tf.constant(rng.standard_normal((count, PRESET.size.z_dim)).astype("float32"))}


def networks(preset=PRESET, **generator_options):
    """G and D with the same initial weights (and the same CA seeds) on every call."""
    keras.utils.set_random_seed(0)
    return (models.build_generator(preset, embedding_dim=EMBEDDING_DIM, **generator_options),
            models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM))


class ReplayingGAN(training.ConditionalGAN):
    """Draws G's noise from the batch, so that a test can recompute every term from the same z."""

    def noise(self, data):
        return data["z"]


def one_step(batch, preset=PRESET, lr_g=0.0, lr_d=0.0, generator_options=None, **options):
    """One train_step with plain SGD (lr 0: the step changes no weight, so every term uses the start weights)."""
    gan = ReplayingGAN(*networks(preset, **(generator_options or {})), **trainer_options(preset, options))
    gan.compile(g_optimizer=keras.optimizers.SGD(lr_g), d_optimizer=keras.optimizers.SGD(lr_d), run_eagerly=True)
    logs = {name: float(value) for name, value in gan.train_step(batch).items()}
    return gan, logs


def d_outputs(d, images, text):
    return {name: np.asarray(value) for name, value in d({"image": images, "text": text}, training=True).items()}


def sigmoid_mean(logits):
    return float(np.mean(1.0 / (1.0 + np.exp(-logits))))


def softplus_mean(x):  # -log sigmoid(-x), the non-saturating G loss of logits -x
    return float(np.mean(np.logaddexp(0.0, x)))


def contrastive_by_hand(outputs, temperature=0.1):
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)
    similarity = unit(outputs["image_features"]) @ unit(outputs["text_features"]).T / temperature
    rows = np.log(np.exp(similarity).sum(1)) - np.diag(similarity)
    columns = np.log(np.exp(similarity).sum(0)) - np.diag(similarity)
    return 0.5 * (rows.mean() + columns.mean())


def test_d_scores_the_right_the_wrong_and_the_fake_pairs_it_is_given():
    # Guards GAN-CLS (notebook 04): D scores the right pair, the real image with the *wrong* caption, and the fake.
    batch = pairs_batch()
    _, logs = one_step(batch)
    g, d = networks()
    fakes = g({"z": batch["z"], "text": batch["text"]}, training=True)
    expected = {"d_real": sigmoid_mean(d_outputs(d, batch["image"], batch["text"])["logits"]),
                "d_wrong": sigmoid_mean(d_outputs(d, batch["image"], batch["wrong_text"])["logits"]),
                "d_fake": sigmoid_mean(d_outputs(d, fakes, batch["text"])["logits"])}
    values = sorted(expected.values())
    assert min(np.diff(values)) > 1e-4, "the three pairs must score apart, else a swapped pair would pass"
    for name, value in expected.items():
        assert logs[name] == pytest.approx(value, abs=1e-6), name


def test_the_wrong_caption_changes_d_loss_and_d_gradients():
    # Guards GAN-CLS (notebook 04): the wrong-caption pair is a term of D's loss, so it moves D's weights.
    batch = pairs_batch()
    other = {**batch, "wrong_text": tf.constant(np.random.default_rng(8).standard_normal(
        batch["wrong_text"].shape).astype("float32"))}
    steps = [one_step(b, lr_d=1.0) for b in (batch, other)]  # SGD lr 1: D's weight change is minus its gradient
    assert abs(steps[0][1]["d_loss"] - steps[1][1]["d_loss"]) > 1e-5
    assert not all(np.allclose(a, b, atol=1e-7) for a, b in zip(*(snapshot(gan.discriminator) for gan, _ in steps)))
    plain = [one_step(b, lr_d=1.0, mismatch=False)[1]["d_loss"] for b in (batch, other)]
    assert plain[0] == pytest.approx(plain[1], abs=1e-7)  # without GAN-CLS the wrong caption is never read


def test_conditioning_augmentation_adds_exactly_its_weighted_kl_to_g_loss():
    # Guards Conditioning Augmentation (notebook 05): G's loss carries kl_weight times CA's KL, and D's does not.
    batch = pairs_batch()
    on = one_step(batch, generator_options={"conditioning": "ca", "kl_weight": 2.0})[1]
    off = one_step(batch, generator_options={"conditioning": "ca", "kl_weight": 0.0})[1]
    g, _ = networks(conditioning="ca")
    ca = g.get_layer("text_ca")
    kernel, bias = (np.asarray(w) for w in ca.dense.weights)
    stats = np.asarray(batch["text"]) @ kernel + bias
    stats = np.where(stats > 0, stats, 0.2 * stats)  # LeakyReLU(0.2)
    mean, log_var = stats[:, :ca.units], stats[:, ca.units:]
    kl = np.mean(0.5 * (np.exp(log_var) + mean**2 - 1.0 - log_var))  # StackGAN's: the mean over every element
    assert kl > 1e-3
    assert on["g_loss"] - off["g_loss"] == pytest.approx(2.0 * kl, rel=1e-4)
    assert on["d_loss"] == pytest.approx(off["d_loss"], abs=1e-6)


def test_interpolation_adds_g_loss_on_the_mixed_captions_and_leaves_d_alone():
    # Guards GAN-INT (notebook 04): G also learns to fool D on captions halfway between two of the batch.
    batch = pairs_batch()
    on, off = one_step(batch, interpolate=True)[1], one_step(batch)[1]
    g, d = networks()
    text = np.asarray(batch["text"])
    mixed = 0.5 * text + 0.5 * np.roll(text, 1, axis=0)
    mixed = tf.constant(mixed)
    mixed_logits = d_outputs(d, g({"z": batch["z"], "text": mixed}, training=True), mixed)["logits"]
    assert on["g_loss"] - off["g_loss"] == pytest.approx(softplus_mean(-mixed_logits), rel=1e-5)
    assert on["d_loss"] == pytest.approx(off["d_loss"], abs=1e-6)


def test_contrastive_term_adds_exactly_its_weight_times_the_matching_loss_to_d_and_to_g():
    # Guards the contrastive term (XMC-GAN, notebook 04): in D's loss on real images and in G's on its fakes.
    batch = pairs_batch()
    preset = PRESET.replace(projection=True)
    on, off = one_step(batch, preset, contrastive_weight=0.5)[1], one_step(batch, preset)[1]
    g, d = networks(preset)
    real = d_outputs(d, batch["image"], batch["text"])
    fake = d_outputs(d, g({"z": batch["z"], "text": batch["text"]}, training=True), batch["text"])
    assert on["d_loss"] - off["d_loss"] == pytest.approx(0.5 * contrastive_by_hand(real), rel=1e-4)
    assert on["g_loss"] - off["g_loss"] == pytest.approx(0.5 * contrastive_by_hand(fake), rel=1e-4)
    assert on["d_contrastive"] == pytest.approx(contrastive_by_hand(real), rel=1e-5)


def test_the_contrastive_term_leaves_out_captions_of_the_same_group():
    # Images 0-3 share a group (one colour pair): their captions are not wrong for each other.
    batch = dict(pairs_batch(), group=tf.constant([0, 0, 0, 0, 1, 2, 3, 4], "int64"))
    preset = PRESET.replace(projection=True)
    grouped, plain = one_step(batch, preset, contrastive_weight=1.0)[1], one_step(pairs_batch(), preset,
                                                                                contrastive_weight=1.0)[1]
    _, d = networks(preset)
    real = d_outputs(d, batch["image"], batch["text"])
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)
    similarity = unit(real["image_features"]) @ unit(real["text_features"]).T / 0.1
    same = batch["group"].numpy()[:, None] == batch["group"].numpy()[None, :]
    similarity[same & ~np.eye(8, dtype=bool)] = -np.inf
    rows = np.log(np.exp(similarity).sum(1)) - np.diag(similarity)
    columns = np.log(np.exp(similarity).sum(0)) - np.diag(similarity)
    assert grouped["d_contrastive"] == pytest.approx(0.5 * (rows.mean() + columns.mean()), rel=1e-5)
    assert grouped["d_contrastive"] < plain["d_contrastive"]  # fewer negatives, a smaller loss


@pytest.mark.parametrize("loss, n_critic", [("bce", 1), ("wgan-gp", 3)])
def test_the_critic_takes_n_critic_steps_per_generator_step(loss, n_critic):
    gan = make_gan(loss=loss, n_critic=n_critic)
    history = gan.fit(tiny_dataset().repeat(2), epochs=1, verbose=0).history
    assert (int(gan.d_optimizer.iterations), int(gan.g_optimizer.iterations)) == (2 * n_critic, 2)
    if loss == "wgan-gp":
        assert history["gp"][0] > 0 and "wasserstein" in history and "d_real" not in history


@pytest.mark.parametrize("mismatch", [True, False])
def test_wgan_gp_also_penalises_between_the_right_and_the_wrong_caption(monkeypatch, mismatch):
    batch, penalties = pairs_batch(), []
    original = losses.gradient_penalty

    def recording(critic, real, fake, alpha=None, seed=None):
        penalties.append((np.asarray(real), np.asarray(fake), float(original(critic, real, fake, alpha, seed))))
        return penalties[-1][2]

    monkeypatch.setattr(losses, "gradient_penalty", recording)
    _, logs = one_step(batch, PRESET.replace(d_norm="none"), loss="wgan-gp", n_critic=1, mismatch=mismatch)
    lines = [(real.shape, np.array_equal(real, batch["text"]) and np.array_equal(fake, batch["wrong_text"]))
             for real, fake, _ in penalties]
    assert lines[0][0] == tuple(batch["image"].shape)  # real -> fake images, the right caption
    assert [between_captions for _, between_captions in lines[1:]] == ([True] if mismatch else [])
    assert logs["gp"] == pytest.approx(np.mean([value for *_, value in penalties]), rel=1e-5)


def test_wgan_gp_defaults_to_five_critic_steps_and_each_sees_fresh_fakes(monkeypatch):
    assert make_gan(loss="wgan-gp").n_critic == 5 and make_gan().n_critic == 1
    gan = make_gan(loss="wgan-gp", n_critic=3)
    drawn = []
    original = gan.generate
    monkeypatch.setattr(gan, "generate", lambda z, text: drawn.append(np.asarray(z)) or original(z, text))
    batch = {key: value for key, value in pairs_batch().items() if key != "z"}
    gan.train_step(batch)
    assert len(drawn) == 4  # three critic steps and G's, each with its own noise (Algorithm 1 of WGAN-GP)
    assert all(not np.allclose(drawn[i], drawn[j]) for i in range(4) for j in range(i))


def test_wgan_gp_without_a_penalty_logs_none():
    history = make_gan(loss="wgan-gp", gp_weight=0.0, n_critic=1).fit(tiny_dataset(), epochs=1, verbose=0).history
    assert "gp" not in history and "wasserstein" in history


def test_the_mode_seeking_term_adds_its_weight_over_the_image_to_noise_distance_ratio_to_g_loss():
    # Guards the mode-seeking term (Mao et al. 2019, notebook 04): G pays weight / ratio when two z look alike. Its
    # pairs are the batch's halves: G draws the first half's captions twice, each row with its own z.
    batch = pairs_batch()
    paired_text = np.concatenate([batch["text"][:4]] * 2)
    g, _ = networks()
    z = np.asarray(batch["z"])
    difference = np.asarray(g({"z": tf.constant(z), "text": tf.constant(paired_text)}, training=True))
    difference = difference[:4] - difference[4:]
    ratio = np.mean(np.abs(difference)) / np.mean(np.abs(z[:4] - z[4:]))
    assert ratio > 1e-4
    on, off = one_step(batch, diversity_weight=0.5)[1], one_step(batch)[1]
    assert on["diversity"] == pytest.approx(ratio, rel=1e-4)
    assert on["d_loss"] == pytest.approx(off["d_loss"], abs=1e-6)  # D still reads all eight captions
    assert "diversity" not in off
    # on a batch already paired (captions and groups) the pairing changes nothing, so G pays just the term more
    already = {**batch, "text": tf.constant(paired_text), "group": tf.constant([0, 1, 2, 3] * 2)}
    on, off = one_step(already, diversity_weight=0.5)[1], one_step(already)[1]
    assert on["g_loss"] - off["g_loss"] == pytest.approx(0.5 / (ratio + 1e-5), rel=1e-4)
    # diversity_pool=2: the two pictures' difference averaged over 2x2 pixels first (fine noise cancels out)
    pooled = one_step(batch, diversity_weight=0.5, diversity_pool=2)[1]
    n, h, w, c = difference.shape
    blocks = difference.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    assert pooled["diversity"] == pytest.approx(np.mean(np.abs(blocks)) / np.mean(np.abs(z[:4] - z[4:])), rel=1e-4)
    assert pooled["diversity"] < ratio


def test_paired_repeats_the_first_half_over_the_second_and_keeps_an_odd_last_row():
    assert np.asarray(training.paired(tf.range(6))).tolist() == [0, 1, 2, 0, 1, 2]
    assert np.asarray(training.paired(tf.range(5))).tolist() == [0, 1, 0, 1, 4]


def test_z_every_block_lets_z_set_each_blocks_scale_and_offset():
    preset = PRESET.replace(g_norm="conditional")
    plain = models.build_generator(preset, embedding_dim=EMBEDDING_DIM)
    skip = models.build_generator(preset.replace(z_every_block=True), embedding_dim=EMBEDDING_DIM)
    gamma_inputs = lambda g: g.get_layer("up1").norm.gamma.kernel.shape[0]
    assert gamma_inputs(skip) - gamma_inputs(plain) == preset.size.z_dim
    with pytest.raises(ValueError, match="g_norm='conditional'"):
        PRESET.replace(z_every_block=True)


def test_make_gan_gives_g_conditioning_augmentation_when_asked():
    gan = training.make_gan(PRESET, embedding_dim=EMBEDDING_DIM, conditioning="ca", jit_compile=False)
    assert gan.generator.get_layer("text_ca") is not None
    with pytest.raises(ValueError, match="conditioning='lstm'"):
        training.make_gan(PRESET, embedding_dim=EMBEDDING_DIM, conditioning="lstm")


def test_the_gradient_penalty_enters_the_critics_loss_with_its_weight():
    # Guards WGAN-GP (notebook 06): the critic's loss carries gp_weight times the penalty, and so its gradients.
    batch, critic = pairs_batch(), PRESET.replace(d_norm="none")
    (with_gp, on), (without_gp, off) = (one_step(batch, critic, lr_d=1.0, loss="wgan-gp", n_critic=1, gp_weight=weight)
                                        for weight in (10.0, 0.0))
    assert on["gp"] > 1e-4
    assert on["d_loss"] - off["d_loss"] == pytest.approx(10.0 * on["gp"], rel=1e-4)
    assert not all(np.allclose(a, b, atol=1e-7) for a, b in zip(snapshot(with_gp.discriminator),
                                                                 snapshot(without_gp.discriminator)))
