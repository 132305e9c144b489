"""Source E's CUB model on the synthetic flowers: which setup makes it follow the captions.

    python -m tests.benchmarks.source_e --steps 400 as_published balanced fixed
    python -m tests.benchmarks.source_e --steps 400 fixed_but_sampled_d fixed_but_colour_jitter
    python -m tests.benchmarks.source_e --steps 100000 --minutes 15 fixed   # what 15 minutes buy

Trains notebook 05's section-4 model (``t2ilib.source_e.SOURCE_E_SETUPS``, and the "fixed" setup with one fix
undone at a time) (source E's architecture, widths divided by 8 unless ``--full-width``,
64 px, batch 64, seed 0) once per named setup and prints one JSON row each: D's mean outputs over the last third
of the run (``d_wrong`` is D on real images with a wrong caption: equal to ``d_real`` means D ignores the text),
then ``conditioning.conditioning_report`` (match rates, diversity, jumpiness) on 512 test captions, judged by the
quality benchmark's 64 px attribute classifier (cached in ``--out``). Histories and generators go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pandas as pd

from t2ilib import callbacks, conditioning, config, data
from t2ilib.source_e import SOURCE_E, SOURCE_E_SETUPS, build_source_e_gan
from tests.benchmarks import quality

FIXED = SOURCE_E_SETUPS["fixed"]
SETUPS = {
    "as_published": SOURCE_E_SETUPS["as published"],
    "balanced": SOURCE_E_SETUPS["balanced"],
    "fixed": FIXED,
    # One fix undone at a time:
    "fixed_but_sampled_d": FIXED.replace(text_code="ca", projection=False, contrastive_weight=0.0),
    "fixed_but_no_projection": FIXED.replace(projection=False, contrastive_weight=0.0),  # the head feeds the term
    "fixed_but_no_contrastive": FIXED.replace(contrastive_weight=0.0),  # the "fixed" setup before issue 17
    # the "fixed" setup before issue 27: its KL weight 0.1 on a summed KL is 12.8 on StackGAN's mean
    "fixed_but_old_kl": FIXED.replace(kl_weight=0.1 * 128),
    "fixed_but_colour_jitter": FIXED.replace(augment="color,translation,cutout"),
    "fixed_no_augmentation": FIXED.replace(augment=None),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setups", nargs="+", choices=sorted(SETUPS))
    parser.add_argument("--steps", type=int, default=400, help="the most each setup trains")
    parser.add_argument("--minutes", type=float, default=None,
                        help="also stop each setup after this much wall-clock training (callbacks.TimeBudget)")
    parser.add_argument("--full-width", action="store_true", help="source E's published widths (a GPU run)")
    parser.add_argument("--out", type=Path, default=None, help="default: <runs dir>/benchmarks/source_e")
    args = parser.parse_args(argv)
    out = args.out or config.runs_dir() / "benchmarks" / "source_e"
    out.mkdir(parents=True, exist_ok=True)

    prepared = quality.prepare(config.data_dir(), 10_000)
    embeddings = prepared.embeddings("sentence")
    classifier = quality.attribute_classifier(prepared, 64, out)
    print("judge (accuracy on real test images):", classifier.test_accuracy.round(3).to_dict(), flush=True)
    captions = prepared.captions
    rows = captions[captions.split == "test"].groupby("image_idx").head(1).index.to_numpy()
    rows = np.random.default_rng(0).permutation(rows)[:512]
    text = embeddings[rows]
    attributes = prepared.attributes.loc[captions.image_idx[rows]].reset_index(drop=True)
    preset = SOURCE_E if args.full_width else SOURCE_E.replace(g_channels=(128, 64, 32, 16, 8),
                                                               d_channels=(8, 16, 32, 64))
    dataset = data.make_dataset(prepared, image_size=64, batch_size=preset.size.batch_size, repeat=True, seed=0)
    log_every = 50

    for name in args.setups:
        setup = SETUPS[name]
        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        gan = build_source_e_gan(setup, preset, text_stats=prepared.embedding_stats("sentence"))
        budget = [callbacks.TimeBudget(args.minutes)] if args.minutes else []
        history = pd.DataFrame(gan.fit(dataset, epochs=max(1, args.steps // log_every), steps_per_epoch=log_every,
                                       verbose=0, callbacks=budget).history)
        seconds = time.perf_counter() - start
        last = history.tail(max(1, len(history) // 3))
        row = {"setup": name, "steps": callbacks.gan_steps(gan), "seconds": round(seconds),
               "load": round(os.getloadavg()[0], 2),
               "d_real": last.d_real.mean(), "d_wrong": last.d_wrong.mean() if setup.mismatch else None,
               "d_fake": last.d_fake.mean(),
               **conditioning.conditioning_report(gan.generator, classifier, text, attributes).to_dict()}
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        tag = f"{args.minutes:g}min" if args.minutes else args.steps
        history.to_csv(out / f"{name}_{tag}.csv", index=False)
        gan.generator.save(out / f"{name}_{tag}.keras")


if __name__ == "__main__":
    main()
