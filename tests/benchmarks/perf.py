"""Performance benchmark: how fast each model trains here, against this machine's limit and the usual loops.

    python -m tests.benchmarks.perf                      # the `cpu` preset on data/synthetic_flowers -> build/bench.md
    python -m tests.benchmarks.perf --models gan_cls --steps 5

For each model (LSTM-GAN, GAN-CLS, the CA model, StackGAN Stage I and II), on the same data, one run measures:

- ``fit()``: ms per train step and images/s of ``t2ilib``'s ``fit()`` on the real ``tf.data`` pipeline;
- the same ``train_step`` driven by a plain Python loop, once eagerly (how the source projects wrote their loops)
  and once wrapped in ``tf.function`` (the TensorFlow DCGAN tutorial's way): same maths, three ways to run it;
- the input-pipeline overhead: ``fit()`` on the pipeline against ``fit()`` on one batch already in memory;
- FLOPs of one train step, counted from its traced graph (:func:`step_flops`), and the GFLOP/s achieved, as a
  percentage of this machine's measured float32 matmul peak (:func:`matmul_peak`);
- peak memory (resident set size) while the model trains.

For GAN-CLS it also times ``fit()`` under ``mixed_bfloat16`` and with XLA (``jit_compile=True``).
Timings on a shared machine are worthless: the load average is recorded next to every model's numbers.
``tests/benchmarks/test_perf.py`` runs all of it at toy size in ``make test`` (proving it works) and at full size
in ``make bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from t2ilib import config, data, device, models, stackgan, text, training

MODELS = ("lstm_gan", "gan_cls", "ca", "stackgan1", "stackgan2")
ROOT = Path(__file__).resolve().parents[2]

# Dense maths per op type, as multiply-adds (MACs) from the op's static shapes; FLOPs = 2 x MACs. Every other op
# (activations, batch norm, Adam's updates) is elementwise: cheap in FLOPs and left out, so the count is a floor.
_CONV_OPS = {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"}
_LOOP_OPS = {"While", "StatelessWhile"}


# --- The machine's limit ---------------------------------------------------------------------------------------

def matmul_peak(n: int = 2048, dtype=tf.float32, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of ``repeats`` ``n x n`` matmuls under ``tf.function``: the practical peak here."""
    a = tf.random.normal([n, n], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)[:1, :1]))
    matmul()  # trace and warm the caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):  # Linux names the CPU model in /proc/cpuinfo
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    return f"{cpu}, {os.cpu_count()} cores; {device.describe()}"


# --- FLOPs ---------------------------------------------------------------------------------------------------

def _macs(op) -> int:
    """Multiply-adds of one conv or matmul op, from its static shapes (forward or gradient)."""
    if op.type in _CONV_OPS:
        # All three run the same loops: out positions x kernel area x in channels x out channels.
        if op.type == "Conv2D":
            kernel, out = op.inputs[1].shape, op.outputs[0].shape
        elif op.type == "Conv2DBackpropInput":  # also the forward pass of a transposed conv
            kernel, out = op.inputs[1].shape, op.inputs[2].shape
        else:
            kernel, out = op.outputs[0].shape, op.inputs[2].shape
        return int(np.prod(out[:-1])) * int(np.prod(kernel))
    if op.type in ("MatMul", "BatchMatMulV2"):
        a, out = op.inputs[0].shape, op.outputs[0].shape
        transpose = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
        inner = a[-2] if transpose else a[-1]
        return int(np.prod(out)) * int(inner)
    return 0


def _graph_macs(graph, loop_trips: int) -> int:
    total = 0
    for op in graph.get_operations():
        if op.type in _LOOP_OPS:  # an RNN over the caption: its body runs once per token
            body = graph._functions[op.get_attr("body").name].graph  # noqa: SLF001 - the only way to the body
            total += loop_trips * _graph_macs(body, loop_trips)
        else:
            total += _macs(op)
    return total


def step_flops(concrete_function, loop_trips: int = 1) -> int:
    """FLOPs of one train step: 2 x the multiply-adds of every conv and matmul in its traced graph.

    The graph holds the forward passes *and* the gradient ops the tapes added, so this is the step's real
    count, not the usual "backward = 2 x forward" estimate. Loops (the LSTMs) count ``loop_trips`` times
    (the caption length). Shapes must be static: trace with a fixed batch size.
    """
    return 2 * _graph_macs(concrete_function.graph, loop_trips)


# --- Memory ----------------------------------------------------------------------------------------------------

def _rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the process's peak so far (macOS reports bytes)
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if platform.system() == "Darwin" else peak / 2**10


@contextlib.contextmanager
def peak_memory(every: float = 0.05):
    """Samples the resident set size in a thread; yields a dict that holds ``start_mb`` and, after, ``peak_mb``."""
    found = {"start_mb": _rss_mb()}
    found["peak_mb"] = found["start_mb"]
    stop = threading.Event()

    def sample():
        while not stop.wait(every):
            found["peak_mb"] = max(found["peak_mb"], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        stop.set()
        sampler.join()
        found["peak_mb"] = max(found["peak_mb"], _rss_mb())


# --- The models ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Subject:
    """One model to time, with the data it trains on."""

    name: str
    gan: keras.Model
    dataset: tf.data.Dataset  # the real pipeline, repeating
    batch_size: int
    loop_trips: int = 1  # tokens per caption for the LSTM's loop, else 1


def build_subject(name: str, preset, prepared, *, encoder: str = "sentence", jit_compile: bool = False) -> Subject:
    """Build and compile model ``name`` at ``preset`` and its training pipeline on ``prepared``; the text is the
    cached embedding ``encoder`` (token ids for the LSTM-GAN)."""
    keras.utils.set_random_seed(0)
    pipeline = dict(batch_size=preset.size.batch_size, repeat=True, seed=0)
    if name == "lstm_gan":
        train_texts = prepared.captions.text[prepared.captions.split == "train"].tolist()
        vectorizer = text.make_vectorizer(train_texts)
        length = int(vectorizer(["x"]).shape[-1])
        encoders = [text.LSTMTextEncoder(vectorizer.vocabulary_size()) for _ in range(2)]
        gan = training.make_gan(preset, text_encoders=encoders, sequence_length=length, mismatch=False,
                                jit_compile=jit_compile)
        dataset = data.make_dataset(prepared, image_size=preset.size.image_size, text="tokens", vectorizer=vectorizer,
                                    **pipeline)
        return Subject(name, gan, dataset, preset.size.batch_size, loop_trips=length)

    dim = prepared.embeddings(encoder).shape[1]
    size = preset.size.image_size
    if name == "gan_cls":
        gan = training.make_gan(preset, embedding_dim=dim, jit_compile=jit_compile)
    elif name == "ca":
        gan = training.ConditionalGAN(models.build_generator(preset, embedding_dim=dim, conditioning="ca"),
                                      models.build_discriminator(preset, embedding_dim=dim), recipe=preset.recipe)
    elif name == "stackgan1":
        gan = stackgan.StageGAN(models.build_generator(preset, embedding_dim=dim, conditioning="ca"),
                                models.build_discriminator(preset, embedding_dim=dim), recipe=preset.recipe)
    elif name == "stackgan2":
        size = 2 * preset.size.image_size
        stage1 = models.build_generator(preset, embedding_dim=dim, conditioning="ca", name="stage1_generator")
        gan = stackgan.StageGAN(stackgan.build_stage2_generator(preset, embedding_dim=dim, image_size=size),
                                stackgan.build_stage2_discriminator(preset, embedding_dim=dim, image_size=size),
                                stage1=stage1, recipe=preset.recipe)
    else:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    if name != "gan_cls":
        gan.compile(jit_compile=jit_compile)  # the recipe's Adam
    dataset = data.make_dataset(prepared, image_size=size, text=encoder, **pipeline)
    return Subject(name, gan, dataset, preset.size.batch_size)


# --- Timing ----------------------------------------------------------------------------------------------------

class _StepClock(keras.callbacks.Callback):
    """The time at the end of every train step of a ``fit()``."""

    def on_train_begin(self, logs=None):
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def time_fit(gan, dataset, steps: int, warmup: int) -> float:
    """Seconds per step of ``fit()`` over ``steps`` steps, after ``warmup`` steps (the first traces)."""
    clock = _StepClock()
    gan.fit(dataset, epochs=1, steps_per_epoch=warmup + steps + 1, verbose=0, callbacks=[clock])
    return (clock.ends[-1] - clock.ends[warmup]) / steps


def time_loop(step, batches, steps: int, warmup: int) -> float:
    """Seconds per step of ``step(batch)`` called from a Python loop, after ``warmup`` calls."""
    for _ in range(warmup):
        step(next(batches))
    start = time.perf_counter()
    for _ in range(steps):
        logs = step(next(batches))
    float(logs["d_loss"])  # wait for the last step to finish
    return (time.perf_counter() - start) / steps


def in_memory(dataset) -> tf.data.Dataset:
    """One batch of ``dataset``, already materialised, repeated: ``fit()`` with no input pipeline work."""
    batch = next(iter(dataset))
    return tf.data.Dataset.from_tensors(batch).repeat()


def benchmark_subject(subject: Subject, steps: int, warmup: int, peak_gflops: float) -> dict:
    """Every measurement of one model; see the module docstring."""
    gan, batches = subject.gan, iter(subject.dataset)
    load_before = load_average()
    fit_s = time_fit(gan, subject.dataset, steps, warmup)
    memory_s = time_fit(gan, in_memory(subject.dataset), steps, warmup=1)
    eager_s = time_loop(gan.train_step, batches, max(1, steps // 2), warmup=1)  # the slow one: fewer steps
    graph_step = tf.function(gan.train_step)
    function_s = time_loop(graph_step, batches, steps, warmup=2)
    load_after = load_average()
    flops = step_flops(graph_step.get_concrete_function(subject.dataset.element_spec), subject.loop_trips)
    gflops = flops / fit_s / 1e9
    return {
        "model": subject.name, "batch": subject.batch_size,
        "fit_ms": 1e3 * fit_s, "images_per_s": subject.batch_size / fit_s,
        "fit_memory_ms": 1e3 * memory_s, "pipeline_overhead": fit_s / memory_s - 1.0,
        "eager_ms": 1e3 * eager_s, "function_ms": 1e3 * function_s,
        "fit_vs_eager": eager_s / fit_s, "fit_vs_function": function_s / fit_s,
        "step_gflop": flops / 1e9, "gflops": gflops, "peak_percent": 100 * gflops / peak_gflops,
        "load": (load_before + load_after) / 2,
    }


def variant_ms(name: str, preset, prepared, steps: int, *, encoder: str = "sentence", precision: str = "float32",
               jit_compile: bool = False) -> dict:
    """ms/step of ``fit()`` on in-memory data for model ``name`` under another precision or with XLA."""
    device.set_precision(precision)
    try:
        subject = build_subject(name, preset, prepared, encoder=encoder, jit_compile=jit_compile)
        load_before = load_average()
        seconds = time_fit(subject.gan, in_memory(subject.dataset), steps, warmup=1)
    finally:
        device.set_precision("float32")
    return {"ms": 1e3 * seconds, "load": (load_before + load_average()) / 2}


# --- A paper-scale estimate for a T4 ----------------------------------------------------------------------------

T4_PEAK_TFLOPS = {"mixed_float16": 65.0, "float32": 8.1}  # NVIDIA's published peaks: fp16 tensor cores, fp32
T4_ASSUMED_EFFICIENCY = 0.30  # an assumption, not a measurement: small-batch DCGAN convs rarely exceed ~30-40%
OXFORD_102_IMAGES = 8_189


def paper_scale_flops(embedding_dim: int = 384, batch_size: int = 64) -> dict:
    """FLOPs of one train step at the ``paper`` preset, counted from traced (never run) steps: GAN-CLS at 64x64
    and StackGAN Stage II (64 -> 128) on a frozen Stage I."""
    paper = config.PRESETS["reed2016"]
    spec = lambda size: {"image": tf.TensorSpec([batch_size, size, size, 3]),
                         "text": tf.TensorSpec([batch_size, embedding_dim]),
                         "wrong_text": tf.TensorSpec([batch_size, embedding_dim])}
    gan_cls = training.make_gan(paper, embedding_dim=embedding_dim)
    stage1 = models.build_generator(paper, embedding_dim=embedding_dim, conditioning="ca", name="stage1_generator")
    stage2 = stackgan.StageGAN(
        stackgan.build_stage2_generator(paper, embedding_dim=embedding_dim, image_size=128),
        stackgan.build_stage2_discriminator(paper, embedding_dim=embedding_dim, image_size=128), stage1=stage1,
        recipe=paper.recipe)
    stage2.compile()
    return {"gan_cls 64x64": step_flops(tf.function(gan_cls.train_step).get_concrete_function(spec(64))),
            "stackgan2 128x128": step_flops(tf.function(stage2.train_step).get_concrete_function(spec(128)))}


def t4_estimate(flops: dict, batch_size: int = 64, efficiency: float = T4_ASSUMED_EFFICIENCY) -> list[dict]:
    """Steps/s and minutes per Oxford-102 epoch on a T4 *if* it sustains ``efficiency`` of its published peak."""
    steps_per_epoch = -(-OXFORD_102_IMAGES // batch_size)
    rows = []
    for model, count in flops.items():
        for precision, peak in T4_PEAK_TFLOPS.items():
            steps_per_s = efficiency * peak * 1e12 / count
            rows.append({"model": model, "precision": precision, "step_gflop": count / 1e9,
                         "steps_per_s": steps_per_s, "epoch_minutes": steps_per_epoch / steps_per_s / 60})
    return rows


# --- The run and its report ------------------------------------------------------------------------------------

def run(prepared, preset, model_names=MODELS, *, encoder: str = "sentence", steps: int = 10, warmup: int = 3,
        matmul_n: int = 2048, variants: bool = True, estimate: bool = True, log=print) -> dict:
    """Benchmark ``model_names`` at ``preset`` on ``prepared``; returns everything :func:`report` needs."""
    peak = matmul_peak(matmul_n)
    peak_bf16 = matmul_peak(matmul_n, tf.bfloat16)
    log(f"matmul peak: {peak:.1f} GFLOP/s float32, {peak_bf16:.1f} bfloat16 (n={matmul_n}, load {load_average():.2f})")
    results = {"machine": machine(), "preset": preset.name, "steps": steps, "matmul_n": matmul_n,
               "peak_gflops": peak, "peak_bf16_gflops": peak_bf16, "models": [], "variants": {}}
    for name in model_names:
        # One process runs every model and its allocator keeps what it freed: the growth of later models is a floor.
        with peak_memory() as memory:
            row = benchmark_subject(build_subject(name, preset, prepared, encoder=encoder), steps, warmup, peak)
        row.update(peak_rss_mb=memory["peak_mb"], rss_growth_mb=memory["peak_mb"] - memory["start_mb"])
        log(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
        results["models"].append(row)
    if variants and "gan_cls" in model_names:
        for label, options in (("mixed_bfloat16", {"precision": "mixed_bfloat16"}), ("xla", {"jit_compile": True})):
            # Fewer steps: bfloat16 without hardware support is many times slower than float32.
            results["variants"][label] = variant_ms("gan_cls", preset, prepared, max(2, steps // 3), encoder=encoder,
                                                    **options)
            log(f"gan_cls {label}: {results['variants'][label]}")
    if estimate:
        results["t4_estimate"] = t4_estimate(paper_scale_flops())
    return results


def report(results: dict) -> str:
    """The markdown table of ``results`` (what build/bench.md and the README show)."""
    peak = results["peak_gflops"]
    lines = [
        f"Machine: {results['machine']}. Preset `{results['preset']}`, {results['steps']} timed steps per figure.",
        f"Measured matmul peak ({results['matmul_n']}x{results['matmul_n']}, tf.function): {peak:.0f} GFLOP/s "
        f"float32, {results['peak_bf16_gflops']:.0f} GFLOP/s bfloat16.",
        "",
        "| model | batch | fit ms/step | images/s | eager loop ms | tf.function loop ms | fit vs eager | "
        "fit vs tf.function | GFLOP/step | GFLOP/s | % of fp32 peak | pipeline overhead | peak RSS MB "
        "(growth) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["models"]:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['fit_ms']:.0f} | {r['images_per_s']:.0f} | {r['eager_ms']:.0f} | "
            f"{r['function_ms']:.0f} | {r['fit_vs_eager']:.2f}x | {r['fit_vs_function']:.2f}x | "
            f"{r['step_gflop']:.2f} | {r['gflops']:.1f} | {r['peak_percent']:.0f}% | "
            f"{100 * r['pipeline_overhead']:+.1f}% | {r['peak_rss_mb']:.0f} ({r['rss_growth_mb']:+.0f}) | "
            f"{r['load']:.2f} |")
    base = next((r for r in results["models"] if r["model"] == "gan_cls"), None)
    if results["variants"] and base:
        lines += ["", "GAN-CLS `fit()` on in-memory batches, other settings (speed-up over float32 without XLA):", "",
                  "| setting | ms/step | speed-up | load avg |", "|---|---|---|---|",
                  f"| float32 | {base['fit_memory_ms']:.0f} | 1.00x | {base['load']:.2f} |"]
        for label, v in results["variants"].items():
            lines.append(f"| {label} | {v['ms']:.0f} | {base['fit_memory_ms'] / v['ms']:.2f}x | {v['load']:.2f} |")
    if results.get("t4_estimate"):
        lines += ["", "**Estimate, not a measurement**: a T4 at the `paper` preset (batch 64), from the FLOPs "
                  f"counted in the traced steps and NVIDIA's published peaks, *assuming* it sustains "
                  f"{100 * T4_ASSUMED_EFFICIENCY:.0f}% of them (Oxford-102: {OXFORD_102_IMAGES} images per epoch):", "",
                  "| model | precision | GFLOP/step | steps/s | minutes per epoch |", "|---|---|---|---|---|"]
        for r in results["t4_estimate"]:
            lines.append(f"| {r['model']} | {r['precision']} | {r['step_gflop']:.0f} | {r['steps_per_s']:.1f} | "
                         f"{r['epoch_minutes']:.2f} |")
    lines += ["", "FLOPs: 2 x the multiply-adds of every Conv2D, its two gradient ops and every MatMul in the traced "
              "train step (forward and backward as the tapes built them; the LSTM loop counted once per token); "
              "elementwise ops are left out, so GFLOP/s is a floor. Pipeline overhead: `fit()` on the real "
              "`tf.data` pipeline against one batch already in memory."]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per figure")
    parser.add_argument("--num-images", type=int, default=10_000, help="size of the synthetic flowers to use")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench.md")
    args = parser.parse_args(argv)

    from data_prep import embed, synthetic

    path = synthetic.ensure(config.data_dir(), args.num_images)
    embed.ensure(path, "sentence")
    results = run(data.load_prepared(path), config.get_preset(args.preset), args.models, steps=args.steps)
    write_atomic(args.out.with_suffix(".json"), json.dumps(results, indent=1))
    write_atomic(args.out, report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
