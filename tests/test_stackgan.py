"""StackGAN: the WGAN-GP pieces by hand, Stage II's shapes, a frozen Stage I, and the notebooks' measurements."""

import numpy as np
import pytest
import tensorflow as tf

from t2ilib import conditioning, config, evaluation, losses, models, source_e, stackgan

# Reed et al.'s recipe at a smaller smoke size: each test turns on what it checks
SMOKE = config.PRESETS["smoke"].replace(recipe=config.REED_ET_AL, image_size=16, g_channels=(16, 8), d_channels=(8, 16),
                                        z_dim=4, text_dim=4)
TEXT_DIM = 6


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    w = np.random.default_rng(0).standard_normal((4, 4, 3)).astype("float32")
    real = np.random.default_rng(1).standard_normal((5, 4, 4, 3)).astype("float32")
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])
    # grad_x <w, x> = w at every point, whatever alpha picks.
    assert float(losses.gradient_penalty(critic, real, -real)) == pytest.approx((np.linalg.norm(w) - 1) ** 2, rel=1e-5)


def test_gradient_penalty_of_a_quadratic_critic_matches_a_hand_computation():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((3, 2, 2, 1)), rng.standard_normal((3, 2, 2, 1))
    alpha = np.array([0.0, 0.5, 1.0])
    # critic(x) = |x|^2 / 2 has gradient x, so the penalty is mean((|x_hat| - 1)^2) with x_hat the mix.
    x_hat = alpha[:, None, None, None] * real + (1 - alpha[:, None, None, None]) * fake
    expected = np.mean((np.sqrt((x_hat**2).sum(axis=(1, 2, 3))) - 1) ** 2)
    critic = lambda x: 0.5 * tf.reduce_sum(x**2, axis=[1, 2, 3])
    got = losses.gradient_penalty(critic, real.astype("float32"), fake.astype("float32"), alpha=alpha)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_wasserstein_losses_and_reconstruction_by_hand():
    real, wrong, fake = np.array([1.0, 3.0]), np.array([0.0, 2.0]), np.array([-1.0, -3.0])
    assert float(losses.wasserstein_d_loss(real, fake)) == pytest.approx(-2.0 - 2.0)
    assert float(losses.wasserstein_cls_d_loss(real, wrong, fake)) == pytest.approx(0.5 * (1.0 - 2.0) - 2.0)
    assert float(losses.wasserstein_g_loss(fake)) == pytest.approx(2.0)
    low = np.random.default_rng(3).uniform(-1, 1, (2, 4, 4, 3)).astype("float32")
    high = np.repeat(np.repeat(low, 2, axis=1), 2, axis=2)
    assert float(losses.reconstruction_loss(high, low)) == pytest.approx(0.0, abs=1e-7)
    assert float(losses.reconstruction_loss(high + 0.25, low)) == pytest.approx(0.25, rel=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        losses.reconstruction_loss(np.zeros((1, 6, 6, 3)), low)


@pytest.mark.parametrize("size", [32, 64])
def test_stage2_generator_refines_to_the_requested_size(size):
    g2 = stackgan.build_stage2_generator(SMOKE, embedding_dim=TEXT_DIM, image_size=size, channels=16)
    out = g2({"image": np.zeros((2, 16, 16, 3), "float32"), "text": np.zeros((2, TEXT_DIM), "float32")})
    assert out.shape == (2, size, size, 3)
    d2 = stackgan.build_stage2_discriminator(SMOKE.replace(d_norm="none"), embedding_dim=TEXT_DIM, image_size=size)
    assert d2.input["image"].shape == (None, size, size, 3) and d2.output["logits"].shape == (None, 1)
    with pytest.raises(ValueError, match="larger"):
        stackgan.build_stage2_generator(SMOKE, embedding_dim=TEXT_DIM, image_size=16)


def batches(size, count=16, batch=8):
    rng = np.random.default_rng(0)
    data = {"image": rng.uniform(-1, 1, (count, size, size, 3)).astype("float32"),
            "text": rng.standard_normal((count, TEXT_DIM)).astype("float32"),
            "wrong_text": rng.standard_normal((count, TEXT_DIM)).astype("float32")}
    return tf.data.Dataset.from_tensor_slices(data).batch(batch)


# WGAN-GP's run is slow: make test runs it; at Colab's pins notebook 06 trains a StageGAN (Stage I) with it
@pytest.mark.parametrize("loss", ["bce", pytest.param("wgan-gp", marks=pytest.mark.slow)])
def test_stage2_trains_while_stage1_stays_frozen(loss):
    stage1 = models.build_generator(SMOKE.replace(upsample="nearest"), embedding_dim=TEXT_DIM, conditioning="ca")
    frozen = [w.copy() for w in stage1.get_weights()]  # includes the BN moving statistics
    g2 = stackgan.build_stage2_generator(SMOKE, embedding_dim=TEXT_DIM, image_size=32, channels=16)
    d2 = stackgan.build_stage2_discriminator(SMOKE.replace(d_norm="batch" if loss == "bce" else "none"),
                                             embedding_dim=TEXT_DIM, image_size=32)
    start = [w.copy() for w in g2.get_weights()]
    gan = stackgan.StageGAN(g2, d2, stage1=stage1, recipe=SMOKE.recipe.replace(loss=loss), n_critic=2,
                            reconstruction_weight=1.0)
    gan.compile()
    gan.fit(batches(32), epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, stage1.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(start, g2.get_weights()))
    # Two batches, two critic steps each (the trainer's n_critic, which the ablation tests of test_training pin).
    assert (int(gan.d_optimizer.iterations), int(gan.g_optimizer.iterations)) == (4, 2)
    images = gan({"z": np.zeros((2, SMOKE.size.z_dim), "float32"), "text": np.zeros((2, TEXT_DIM), "float32")})
    assert images.shape == (2, 32, 32, 3)


def test_stage2_reconstruction_adds_exactly_its_weighted_loss_to_g_loss():
    import keras

    rng = np.random.default_rng(9)
    batch = {"image": tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)).astype("float32")),
             "text": tf.constant(rng.standard_normal((4, TEXT_DIM)).astype("float32")),
             "wrong_text": tf.constant(rng.standard_normal((4, TEXT_DIM)).astype("float32")),
             "z": tf.constant(rng.standard_normal((4, SMOKE.size.z_dim)).astype("float32"))}

    def networks():  # a deterministic Stage II (no CA noise), so the term can be computed apart
        keras.utils.set_random_seed(0)
        stage1 = models.build_generator(SMOKE, embedding_dim=TEXT_DIM)
        low, text = keras.Input((16, 16, 3), name="image"), keras.Input((TEXT_DIM,), name="text")
        shift = keras.layers.Reshape((1, 1, 3))(keras.layers.Dense(3)(text))
        x = keras.layers.Conv2D(3, 3, padding="same")(keras.layers.UpSampling2D(2)(low))
        g2 = keras.Model({"image": low, "text": text}, keras.layers.Activation("tanh")(x + shift))
        return stage1, g2, stackgan.build_stage2_discriminator(SMOKE, embedding_dim=TEXT_DIM, image_size=32)

    def step(weight):
        stage1, g2, d2 = networks()
        gan = stackgan.StageGAN(g2, d2, stage1=stage1, reconstruction_weight=weight)
        gan.compile(g_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
        return {name: float(value) for name, value in gan.train_step(batch).items()}

    on, off = step(0.5), step(0.0)
    stage1, g2, _ = networks()
    low = stage1({"z": batch["z"], "text": batch["text"]}, training=False)
    high = np.asarray(g2({"image": low, "text": batch["text"]}, training=True))
    shrunk = high.reshape(4, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    by_hand = float(np.mean(np.abs(shrunk - np.asarray(low))))
    assert by_hand > 1e-3
    assert on["g_loss"] - off["g_loss"] == pytest.approx(0.5 * by_hand, rel=1e-4)
    assert on["reconstruction"] == pytest.approx(0.5 * by_hand, rel=1e-5)
    assert on["d_loss"] == pytest.approx(off["d_loss"], abs=1e-6)


def test_stage_presets_size_each_machine_and_keep_the_widths_per_resolution():
    cpu, gpu = config.PRESETS["cpu"], config.PRESETS["gpu"]
    stage1, high = stackgan.stage_presets(cpu)
    assert (stage1.size.image_size, high) == (32, 64)
    # G keeps its 4..16 px widths, D its 16..4 px ones; the recipe (named improvements) is the preset's.
    assert stage1.size.g_channels == (128, 64, 32) and stage1.size.d_channels == (32, 64, 128)
    assert (stage1.recipe.loss, stage1.recipe.d_norm, stage1.recipe.projection) == ("hinge", "none", True)
    assert stage1.recipe.ma_gp_weight == 2.0  # DF-GAN's penalty keeps D smooth in place of spectral norm
    assert stage1.recipe.contrastive_weight == 1.0
    assert stackgan.at_size(stage1, 64) == cpu  # back up to the preset's own size: the preset itself
    assert stackgan.stage_presets(gpu) == (gpu, 128)
    assert stackgan.stage_presets(config.PRESETS["smoke"])[0] == config.PRESETS["smoke"]
    assert stackgan.at_size(SMOKE, 64).size.d_channels == (8, 8, 8, 16)  # new input-end blocks halve, down to 8
    with pytest.raises(ValueError, match="48"):
        stackgan.at_size(cpu, 48)


def test_stage2_is_narrower_on_a_cpu_than_twice_stage1s_last_width():
    cpu = config.PRESETS["cpu"]
    stage1, high = stackgan.stage_presets(cpu)
    g1 = models.build_generator(stage1, embedding_dim=TEXT_DIM)
    joint = stackgan.make_stage2(g1, stage1, embedding_dim=TEXT_DIM).generator.get_layer("joint")
    assert joint.filters == stackgan.STAGE2_CHANNELS["cpu"] == 32 < 2 * stage1.size.g_channels[-1]
    chosen = stackgan.make_stage2(g1, stage1, embedding_dim=TEXT_DIM, channels=64).generator.get_layer("joint")
    assert chosen.filters == 64  # an explicit width wins
    assert "gpu" not in stackgan.STAGE2_CHANNELS  # a GPU keeps the wider Stage II (twice Stage I's last width)


def test_make_stage2_trains_with_the_presets_recipe_on_a_frozen_stage1():
    improved = SMOKE.replace(recipe=config.IMPROVED)
    stage1 = models.build_generator(improved, embedding_dim=TEXT_DIM, conditioning="ca")
    gan = stackgan.make_stage2(stage1, improved, embedding_dim=TEXT_DIM, channels=16, reconstruction_weight=0.5)
    assert gan.generator.output.shape[1] == 32 and gan.discriminator.input["image"].shape[1] == 32
    assert (gan.recipe.loss, gan.recipe.contrastive_weight, gan.reconstruction_weight) == ("hinge", 1.0, 0.5)
    assert {"image_features", "text_features"} <= set(gan.discriminator.output)  # the projection head
    assert gan.recipe.ma_gp_weight == 2.0 and "ma_gp" in gan.trackers  # the recipe's penalty, Stage II's D too
    assert gan.generator.get_layer("up32").conditional  # the CA code sets Stage II's batch norms too
    group = tf.data.Dataset.from_tensor_slices({"group": np.arange(16)}).batch(8)
    history = gan.fit(tf.data.Dataset.zip(batches(32), group).map(lambda a, b: {**a, **b}), epochs=1, verbose=0)
    assert np.isfinite(history.history["reconstruction"][-1]) and not stage1.trainable
    # notebook 06's Stage II: the recipe without the mode-seeking term, and nothing else changed
    plain = stackgan.make_stage2(stage1, improved.replace(diversity_weight=0.0), embedding_dim=TEXT_DIM, channels=16)
    assert plain.recipe == improved.recipe.replace(diversity_weight=0.0) and "diversity" not in plain.trackers
    assert "diversity" in gan.trackers


def test_compare_stages_by_hand():
    import pandas as pd

    rng = np.random.default_rng(4)
    real = rng.uniform(-1, 1, (8, 16, 16, 3)).astype("float32")
    stage1 = real.reshape(8, 8, 2, 8, 2, 3).mean(axis=(2, 4))  # Stage I: the real images at half size
    features = lambda x: np.asarray(x, "float64").reshape(len(x), 16, 16, 3).mean(axis=(1, 2))  # noqa: E731
    table = evaluation.compare_stages(stage1, real, real, features=features)
    assert list(table.columns) == ["Stage I", "Stage I, bicubic", "Stage II", "real"]
    # Stage II is the real images themselves: every ratio 1, and it is exactly as far from Stage I as they are.
    assert table["Stage II"].to_dict() == pytest.approx(table["real"].to_dict())
    assert table.loc["fid_ratio", "real"] == pytest.approx(1.0) and table.loc["checkerboard_ratio", "real"] == 1.0
    assert table.loc["distance_to_stage1", "Stage I"] == pytest.approx(0.0, abs=1e-6)  # the repeat, pooled back
    assert pd.isna(table.loc["high_frequency_ratio", "Stage I"])
    assert table.loc["high_frequency_ratio", "Stage I, bicubic"] < 1  # a bicubic upsample has less detail
    with pytest.raises(ValueError, match="real ones at Stage II's"):
        evaluation.compare_stages(stage1, real, stage1, features=features)


def test_stage_gan_says_what_is_missing():
    g = models.build_generator(SMOKE, embedding_dim=TEXT_DIM, conditioning="ca")
    d = models.build_discriminator(SMOKE, embedding_dim=TEXT_DIM)
    with pytest.raises(ValueError, match="loss= is a field of the recipe: pass recipe=recipe.replace"):
        stackgan.StageGAN(g, d, loss="wgan-gp")
    with pytest.raises(ValueError, match="stage1"):
        stackgan.StageGAN(g, d, reconstruction_weight=1.0)


def test_measurements_by_hand():
    assert evaluation.mean_pairwise_distance([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]) == pytest.approx((5 + 0 + 5) / 3)
    even = np.linspace(0, 1, 11)[:, None] * np.ones((1, 3))
    assert evaluation.interpolation_jumpiness(even) == pytest.approx(0.1)
    jump = np.r_[np.zeros((5, 3)), np.ones((6, 3))]
    assert evaluation.interpolation_jumpiness(jump) == pytest.approx(1.0)
    flat = np.zeros((2, 16, 16, 3))
    stripes = np.zeros((2, 16, 16, 3))
    stripes[:, :, ::2] = 1.0  # the highest horizontal frequency
    assert evaluation.high_frequency_energy(stripes) == pytest.approx(1.0)
    assert evaluation.high_frequency_energy(flat) == pytest.approx(0.0)


def test_caption_walk_holds_ca_at_its_mean_and_the_report_has_one_row():
    import pandas as pd

    from t2ilib import metrics

    g = models.build_generator(SMOKE.replace(image_size=32, g_channels=(8, 8, 8)), embedding_dim=TEXT_DIM,
                               conditioning="ca")
    text = np.random.default_rng(0).standard_normal((4, TEXT_DIM)).astype("float32")
    walk = conditioning.caption_walk(g, text[0], text[1], frames=5)
    np.testing.assert_allclose(walk, conditioning.caption_walk(g, text[0], text[1], frames=5), atol=1e-6)
    assert walk.shape == (5, 32, 32, 3)
    assert g.get_layer("text_ca").sample_at_inference  # restored after the walk
    vocab = {"petal_colour": ["red", "blue"], "centre_colour": ["white", "black"]}
    judge = metrics.AttributeClassifier(metrics.build_attribute_classifier(32, vocab), vocab)
    attributes = pd.DataFrame({"petal_colour": ["red", "blue"] * 2, "centre_colour": ["white"] * 4})
    row = conditioning.conditioning_report(g, judge, text, attributes, captions=2, per_caption=3, frames=4)
    assert set(row.index) == {"match_petal_colour", "match_centre_colour", "diversity", "jumpiness"}
    assert 0 <= row.match_petal_colour <= 1 and row.diversity > 0 and 1 / 3 - 1e-9 <= row.jumpiness <= 1
    # A dataset without attributes: any image features judge diversity and jumpiness, no match rates.
    pixels = lambda images: np.asarray(images).reshape(len(images), -1)  # noqa: E731
    bare = conditioning.conditioning_report(g, None, text, features=pixels, captions=2, per_caption=3, frames=4)
    assert set(bare.index) == {"diversity", "jumpiness"} and bare.diversity > 0
    with pytest.raises(ValueError, match="without a classifier.*pass features="):
        conditioning.conditioning_report(g, None, text, attributes, captions=2)


# Each policy once, each loss once: the pairs cover loss scaling, the gradient penalty's inner tape and BCE.
@pytest.mark.parametrize(("policy", "loss"), [("mixed_bfloat16", "bce"), ("mixed_float16", "wgan-gp")])
def test_stage_gan_trains_under_mixed_precision(policy, loss):
    import keras

    keras.mixed_precision.set_global_policy(policy)
    try:
        stage1 = models.build_generator(SMOKE.replace(upsample="nearest"), embedding_dim=TEXT_DIM, conditioning="ca")
        g2 = stackgan.build_stage2_generator(SMOKE, embedding_dim=TEXT_DIM, image_size=32, channels=16)
        d2 = stackgan.build_stage2_discriminator(SMOKE.replace(d_norm="batch" if loss == "bce" else "none"),
                                                 embedding_dim=TEXT_DIM, image_size=32)
        gan = stackgan.StageGAN(g2, d2, stage1=stage1, recipe=SMOKE.recipe.replace(loss=loss), n_critic=1,
                                reconstruction_weight=1.0)
        gan.compile()
        # float16 gradients need a loss scale; bfloat16 has float32's range and needs none.
        assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
        g_start, d_start = [w.copy() for w in g2.get_weights()], [w.copy() for w in d2.get_weights()]
        history = gan.fit(batches(32, count=8), epochs=1, verbose=0).history
        assert all(np.isfinite(values[-1]) for values in history.values())
        assert not all(np.array_equal(a, b) for a, b in zip(g_start, g2.get_weights()))
        assert not all(np.array_equal(a, b) for a, b in zip(d_start, d2.get_weights()))
        assert d2.output["logits"].dtype == "float32" and g2.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


SOURCE_E_SMALL = source_e.SOURCE_E.replace(z_dim=4, text_dim=4, g_channels=(16, 8, 8, 8, 8), d_channels=(8, 8, 8, 16))
BUILDERS = {
    "source E generator": lambda **kw: source_e.build_source_e_generator(SOURCE_E_SMALL, embedding_dim=TEXT_DIM, **kw),
    "source E generator, conditional BN": lambda **kw: source_e.build_source_e_generator(
        SOURCE_E_SMALL.replace(g_norm="conditional"), embedding_dim=TEXT_DIM, **kw),
    "source E discriminator": lambda **kw: source_e.build_source_e_discriminator(
        SOURCE_E_SMALL, embedding_dim=TEXT_DIM, augment="translation", **kw),
    "Stage II generator": lambda **kw: stackgan.build_stage2_generator(SMOKE, embedding_dim=TEXT_DIM, image_size=32,
                                                                       channels=16, **kw),
    "Stage II discriminator": lambda **kw: stackgan.build_stage2_discriminator(SMOKE, embedding_dim=TEXT_DIM,
                                                                               image_size=32, **kw),
}


def model_inputs(model, count=3):
    rng = np.random.default_rng(4)
    return {name: rng.standard_normal((count, *spec.shape[1:])).astype("float32") * (3.0 if name == "text" else 1.0)
            for name, spec in model.input.items()}


@pytest.mark.parametrize("kind", BUILDERS)
def test_text_stats_standardise_the_text_inside_the_model_and_survive_save_load(kind, tmp_path):
    import keras

    rng = np.random.default_rng(5)
    mean, variance = rng.standard_normal(TEXT_DIM).astype("float32"), rng.uniform(0.5, 2, TEXT_DIM).astype("float32")
    with pytest.raises(ValueError):  # no such layer without text_stats: the published model is unchanged
        BUILDERS[kind]().get_layer("standardize_text")
    model = BUILDERS[kind](text_stats=(mean, variance))
    inputs = model_inputs(model)
    standardize = keras.Model(model.input["text"], model.get_layer("standardize_text").output)
    np.testing.assert_allclose(standardize(inputs["text"]), (inputs["text"] - mean) / np.sqrt(variance), atol=1e-5)

    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    with conditioning.ca_at_mean(model), conditioning.ca_at_mean(reloaded):  # CA samples at inference otherwise
        logits = lambda out: out["logits"] if isinstance(out, dict) else out  # D's named output, or G's image
        np.testing.assert_allclose(logits(reloaded(inputs, training=False)), logits(model(inputs, training=False)),
                                   atol=1e-6)


def test_the_matching_aware_penalty_of_a_linear_critic_is_its_gradient_norm_to_the_sixth():
    rng = np.random.default_rng(3)
    w_image = rng.standard_normal((4, 4, 3)).astype("float32") * 0.3
    w_text = rng.standard_normal(5).astype("float32") * 0.3
    images, text = rng.standard_normal((6, 4, 4, 3)).astype("float32"), rng.standard_normal((6, 5)).astype("float32")
    critic = lambda x, t: tf.reduce_sum(x * w_image, axis=[1, 2, 3]) + tf.reduce_sum(t * w_text, axis=1)
    norm_squared = np.sum(w_image**2) + np.sum(w_text**2)  # the gradient is (w_image, w_text) everywhere
    got = losses.matching_aware_gradient_penalty(critic, images, text)
    assert float(got) == pytest.approx(norm_squared**3, rel=1e-4)
    # a D that standardises its text: the slope in the text it reads is the raw slope times each dimension's spread
    scale = np.linspace(0.5, 2.0, 5).astype("float32")
    scaled = np.sum(w_image**2) + np.sum((w_text * scale) ** 2)
    got = losses.matching_aware_gradient_penalty(critic, images, text, text_scale=scale)
    assert float(got) == pytest.approx(scaled**3, rel=1e-4)
    # token ids have no slope: the images' alone
    ids = rng.integers(0, 9, (6, 5)).astype("int32")
    got = losses.matching_aware_gradient_penalty(lambda x, t: tf.reduce_sum(x * w_image, axis=[1, 2, 3]), images, ids)
    assert float(got) == pytest.approx(float(np.sum(w_image**2)) ** 3, rel=1e-4)
