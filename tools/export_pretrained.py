"""Train the GAN-CLS generator that ships with the kit and export it to ``t2ilib/assets/``.

    python -m tools.export_pretrained                    # cpu preset, 40 minutes of training, sentence embeddings
    python -m tools.export_pretrained --minutes 30 --out /tmp/g.weights.h5

Trains on the prepared ``synthetic_flowers`` set under the data directory (prepares it and its MiniLM
embeddings first if missing) with the ``cpu`` preset's recipe, in float32 so the file loads anywhere, and writes
the generator with :func:`t2ilib.pretrained.save_generator` (a ``.weights.h5`` file of a few MB and its ``.json``
card, which holds the builder's arguments that rebuild it on any supported Keras).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras

from t2ilib import callbacks, config, data, device, pretrained, training


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--minutes", type=float, default=40.0,
                        help="training time budget (the shipped generator had 40 minutes on one CPU core)")
    parser.add_argument("--num-images", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=pretrained.PRETRAINED_GAN_CLS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from data_prep import embed, synthetic  # tools may use data_prep; t2ilib may not

    device.set_precision("float32")  # a mixed-precision file would carry its policy to every machine
    keras.utils.set_random_seed(args.seed)
    preset = config.get_preset(args.preset)
    path = synthetic.ensure(config.data_dir(), args.num_images)
    embed.ensure(path, "sentence")
    prepared = data.load_prepared(path)
    embedding_dim = prepared.embeddings("sentence").shape[1]
    gan = training.make_gan(preset, embedding_dim=embedding_dim, mismatch=True,
                            text_stats=prepared.embedding_stats("sentence"))
    dataset = data.make_dataset(prepared, "train", preset.size.image_size, text="sentence",
                                batch_size=preset.size.batch_size, seed=args.seed, repeat=True)
    start = time.perf_counter()
    gan.fit(dataset, epochs=100_000, steps_per_epoch=100, verbose=2,  # the minutes end it, not a step count
            callbacks=[callbacks.TimeBudget(args.minutes), callbacks.StopOnNaN()])
    steps = callbacks.gan_steps(gan)
    card = {
        "model": "gan_cls", "dataset": prepared.name, "text_encoder": "sentence", "preset": preset.name,
        "steps": steps, "training_seconds": round(time.perf_counter() - start, 1), "seed": args.seed,
        "made_by": pretrained.command("python -m tools.export_pretrained", argv if argv is not None else sys.argv[1:]),
        "fast_mode": False,
    }
    out = pretrained.save_generator(gan.generator, args.out, card)
    print(f"{steps} steps; wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {pretrained.card_path(out).name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
