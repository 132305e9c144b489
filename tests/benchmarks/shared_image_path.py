"""GAN-CLS's D step with D's image path run once per batch of images (issue 28, item 1: a step's cost).

The kit's D reads the text only at 4x4 (``models.build_discriminator``), so its convolutions give the same features
for a real image whatever caption comes with it. ``ConditionalGAN.update_discriminator`` still runs them three
times on the real images: with the right caption, with the wrong one, and again inside the matching-aware penalty.
``SharedImagePathGAN`` runs them once, scores both captions on those features, and takes the penalty's slopes from
that same pass: the same losses and gradients, fewer FLOPs. Not in ``t2ilib`` (yet): it splits D into two models in
the step notebook 04 shows on one screen.

    python -m tests.benchmarks.shared_image_path            # FLOPs and ms per step of both, one batch in memory
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import tensorflow as tf
from keras import ops

from t2ilib import config, data, losses, training


class SharedImagePathGAN(training.ConditionalGAN):
    """``ConditionalGAN`` (GAN-CLS, the hinge or BCE loss) whose D step reads each batch of images once."""

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        if not self.mismatch or self.gp_weight:
            raise ValueError("SharedImagePathGAN mirrors GAN-CLS (mismatch=True) without WGAN-GP's penalty")
        names = [layer.name for layer in discriminator.layers]
        if "image_and_text" not in names:
            raise ValueError(f"discriminator {discriminator.name!r} has no 'image_and_text' layer: SharedImagePathGAN "
                             "needs one built like models.build_discriminator, whose text joins the image there")
        features = discriminator.get_layer("image_and_text").input[0]  # [B, 4, 4, C]: the image path's end
        self.image_path = keras.Model(discriminator.input["image"], features, name="image_path")
        self.pair_head = keras.Model([features, discriminator.input["text"]], discriminator.output, name="pair_head")

    @classmethod
    def like(cls, gan: training.ConditionalGAN, jit_compile: bool | str = "auto") -> SharedImagePathGAN:
        """The same networks, recipe and options as ``gan``, compiled with the recipe's Adam."""
        shared = cls(gan.generator, gan.discriminator, recipe=gan.recipe, mismatch=gan.mismatch,
                     interpolate=gan.interpolate)
        shared.size = gan.size
        shared.compile(jit_compile=jit_compile)
        return shared

    def update_discriminator(self, data):
        images, text, recipe = data["image"], data["text"], self.recipe
        fakes = ops.stop_gradient(self.generate(self.noise(data), text)[0])
        logs = {}
        with tf.GradientTape() as tape:
            with tf.GradientTape() as slope:  # the penalty's slopes, from the same pass the loss uses
                slope.watch([images, text])
                real_features = self.image_path(images, training=True)
                real = self.pair_head([real_features, text], training=True)
                real_scores = ops.sum(real["logits"])
            wrong = self.pair_head([real_features, data["wrong_text"]], training=True)
            fake = self.pair_head([self.image_path(fakes, training=True), text], training=True)
            d_loss = losses.D_LOSSES[recipe.loss][1](real["logits"], wrong["logits"], fake["logits"])
            if recipe.ma_gp_weight:  # losses.matching_aware_gradient_penalty's formula, on these slopes
                grad_image, grad_text = slope.gradient(real_scores, [images, text])
                if self.text_scale is not None:
                    grad_text = grad_text * self.text_scale
                squared = ops.sum(ops.square(grad_image), axis=(1, 2, 3)) + ops.sum(ops.square(grad_text), axis=1)
                logs["ma_gp"] = ops.mean(ops.power(ops.sqrt(squared + 1e-12), 6.0))
                d_loss += recipe.ma_gp_weight * logs["ma_gp"]
            if recipe.contrastive_weight:
                logs["d_contrastive"] = losses.contrastive_loss(real["image_features"], real["text_features"],
                                                                 data.get("group"))
                d_loss += recipe.contrastive_weight * logs["d_contrastive"]
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
        pairs = {"d_real": real, "d_fake": fake, "d_wrong": wrong}
        logs.update({name: ops.mean(ops.sigmoid(outputs["logits"])) for name, outputs in pairs.items()})
        return {**logs, "d_loss": d_loss, "wasserstein": ops.mean(real["logits"]) - ops.mean(fake["logits"])}


def main(argv=None) -> int:
    from tests.benchmarks import perf

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synthetic_flowers")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per figure")
    parser.add_argument("--repeats", type=int, default=4, help="times each trainer is timed, in turn")
    args = parser.parse_args(argv)
    prepared = data.load_prepared(args.data)
    preset = config.get_preset(args.preset)
    dataset = data.make_dataset(prepared, "train", preset.size.image_size, batch_size=preset.size.batch_size,
                                seed=0, repeat=True)
    batch = next(iter(dataset))
    in_memory = tf.data.Dataset.from_tensors(batch).repeat()
    for repeat in range(args.repeats):
        for kind in ("kit", "shared"):
            keras.utils.set_random_seed(0)
            gan = training.make_gan(preset, embedding_dim=prepared.embeddings("sentence").shape[1],
                                    text_stats=prepared.embedding_stats("sentence"))
            if kind == "shared":
                gan = SharedImagePathGAN.like(gan)
            row = {"repeat": repeat, "trainer": kind}
            if repeat == 0:
                step = tf.function(gan.train_step).get_concrete_function(dataset.element_spec)
                row["gflop"] = round(perf.step_flops(step) / 1e9, 2)
                d_step = gan.update_discriminator(batch)  # from the same start: the same numbers for both
                row["d_step"] = {name: round(float(value), 5) for name, value in d_step.items()}
            load = perf.load_average()
            row.update(ms=round(1e3 * perf.time_fit(gan, in_memory, args.steps, warmup=3), 1), load=load)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
