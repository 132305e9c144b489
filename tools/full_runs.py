"""Train the main runs of notebooks 03-06 at their full budgets and store what they reach in t2ilib/assets/full_runs/.

    make full-runs                           # all four, one after another: about 40 min on one core (31.75 of training)
    python -m tools.full_runs --notebook 04  # one notebook
    python -m tools.full_runs --core none    # without pinning to a core

Without a GPU a notebook trains for its laptop budget (``config.minutes(full, laptop=...)``). This runs each
notebook's own main run(s) with the ``cpu`` preset for the notebook's *full* budget instead, pinned to one CPU core
(``--core``, default 1) and niced, so that other work on the machine changes its speed little. The recipe is the
notebook's: its constants cell is executed as a full-mode run would execute it, then the notebook's own assignment
to each name its runs need that a section cell defines (``constants``, ``ELSEWHERE``), and the models are built by
the notebook's own calls, word for word (``BUILDS``), with the recipe their ``recipe=`` names (else the preset's).
For each notebook it writes, into ``t2ilib/assets/full_runs/``:

- ``NN_name.json``: the numbers the notebook prints beside its pictures (the attribute judge's match rates on the
  test captions, and the rest), steps, seconds, load averages, the machine, the command and the recipe (each run's
  size and recipe, budget and step cap; the judge; the calls);
- ``NN_name*.png``: the sample grid of each run.

``viz.show_full_run("NN_name")`` shows them in the notebook; tests/test_full_runs.py fails when a stored recipe no
longer matches the notebook's (``recipe_of``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ASSETS = ROOT / "t2ilib" / "assets" / "full_runs"
CONSTANTS_CELL = "# The constants of this notebook's runs"
PRESET = "cpu"  # the preset of a machine without a GPU: what a laptop trains, here for the full budget

# What each notebook's stored runs are, as expressions over the names its constants cell defines (and ``ELSEWHERE``):
# the preset, the call in ``BUILDS`` that builds the run's model (its ``recipe=``, else the preset's recipe, is the
# run's recipe), the budget in minutes and the most steps fit() is given (epochs x steps per epoch); the judge's
# settings.
SECTION_5_EPOCHS = "max(1, round(source_a_steps / STEPS_PER_EPOCH))"  # 03: section 5 trains at most section 3's steps
RUNS = {
    "03_lstm_gan": {  # section 3: Reed et al.'s GAN with LSTMs; section 5: the same in GAN-CLS, at most as many steps
        "runs": {"LSTM GAN (section 3)": dict(preset="preset", build="gan", minutes="SOURCE_A_MINUTES",
                                              epochs="EPOCHS", steps_per_epoch="STEPS_PER_EPOCH"),
                 "GAN-CLS with LSTMs": dict(preset="preset", build="gan_cls", minutes="CLS_MINUTES",
                                            epochs=SECTION_5_EPOCHS, steps_per_epoch="STEPS_PER_EPOCH")},
        "judge": dict(image_size="preset.size.image_size", epochs="JUDGE_EPOCHS"),
    },
    "04_gan_cls": {  # section 3: GAN-CLS on the MiniLM sentence embeddings
        "runs": {"GAN-CLS": dict(preset="preset", build="gan", minutes="MAIN_MINUTES", epochs="EPOCHS",
                                 steps_per_epoch="STEPS_PER_EPOCH", encoder="encoder")},
        "judge": dict(image_size="preset.size.image_size", epochs="JUDGE_EPOCHS"),
    },
    "05_conditioning_augmentation": {  # section 3: Dense against CA at StackGAN's KL weight, each for its minutes
        "runs": {name: dict(preset="preset_a", build="gan", minutes="RUN_MINUTES", epochs="STEPS // LOG_EVERY",
                            steps_per_epoch="LOG_EVERY") for name in ("Dense", "CA, KL weight 2")},
        "judge": dict(image_size="SIZE", epochs="JUDGE_EPOCHS", captions="EVAL_CAPTIONS"),
    },
    "06_stackgan": {  # sections 2-3: Stage I, then Stage II on the frozen Stage I; the bicubic baseline
        "runs": {"Stage I": dict(preset="preset1", build="stage1", minutes="STAGE1_MINUTES",
                                 epochs="max(1, STEPS1 // LOG_EVERY)", steps_per_epoch="LOG_EVERY", image_size="LOW"),
                 "Stage II": dict(preset="preset2", build="stage2", minutes="STAGE2_MINUTES",
                                  epochs="max(1, STEPS2 // LOG_EVERY)", steps_per_epoch="LOG_EVERY",
                                  image_size="HIGH")},
        "judge": dict(image_size="HIGH", epochs="JUDGE_EPOCHS", captions="EVAL_CAPTIONS",
                      kl_weight="KL_WEIGHT", reconstruction_weight="RECONSTRUCTION_WEIGHT"),
    },
}

# Names the runs depend on that a notebook defines in the section that uses them, not in its constants cell: the
# notebook's own assignment to each is executed after the constants cell (``assignment``).
ELSEWHERE = {
    "05_conditioning_augmentation": ("preset_a",),
    "06_stackgan": ("EVAL_CAPTIONS", "JUDGE_EPOCHS", "RECONSTRUCTION_WEIGHT", "preset2"),
}

# Names a run's expressions may read that only an earlier run's training gives (03: section 3's steps cap section
# 5's): the recipe records such an expression as written, and the run evaluates it after the earlier run.
TRAINED = {"03_lstm_gan": ("source_a_steps",)}

# The notebooks' own calls that build the models and their data, word for word (whitespace aside): evaluated here
# over the constants, and checked to be in the notebook by tests/test_full_runs.py (``missing_builds``).
BUILDS = {
    "03_lstm_gan": {
        "lstm": "t2itext.LSTMTextEncoder(vocab_size=vectorizer.vocabulary_size(), embed_dim=128, units=128)",
        "gan": "training.make_gan(preset, recipe=config.REED_ET_AL, text_encoders=(lstm(), lstm()), "
               "sequence_length=sequence_length, mismatch=False)",
        "gan_cls": "training.make_gan(preset, recipe=config.REED_ET_AL, text_encoders=(lstm(), lstm()), "
                   "sequence_length=sequence_length, mismatch=True)",
        "source_a_steps": "source_a_steps = callbacks.gan_steps(gan)",
        "section_5_epochs": f"epochs={SECTION_5_EPOCHS}",
        "dataset": 'data.make_dataset(prepared, "train", image_size=preset.size.image_size, text="tokens", '
                   "vectorizer=vectorizer, batch_size=preset.size.batch_size, repeat=True)",
    },
    "04_gan_cls": {
        "gan": "training.make_gan(preset, embedding_dim=embeddings.shape[1], text_stats=text_stats, mismatch=True)",
        "dataset": 'data.make_dataset(prepared, "train", image_size=preset.size.image_size, text=encoder, '
                   "batch_size=preset.size.batch_size, repeat=True)",
    },
    "05_conditioning_augmentation": {
        "Dense": '"Dense": dict(conditioning="dense")',
        "CA, KL weight 2": '"CA, KL weight 2": dict(conditioning="ca")',
        "gan": "training.make_gan(preset_a, embedding_dim=384, text_stats=text_stats, **variant)",
        "dataset": "make_dataset(prepared, image_size=SIZE, batch_size=preset_a.size.batch_size, repeat=True, seed=0)",
    },
    "06_stackgan": {
        "stage1": 'training.make_gan(preset1, embedding_dim=384, text_stats=text_stats, conditioning="ca", '
                  "kl_weight=KL_WEIGHT)",
        "stage2": "stackgan.make_stage2(g1, preset2, embedding_dim=384, text_stats=text_stats, image_size=HIGH, "
                  "kl_weight=KL_WEIGHT, reconstruction_weight=RECONSTRUCTION_WEIGHT)",
        "dataset": "make_dataset(prepared, image_size=size, batch_size=preset1.size.batch_size, repeat=True, seed=0)",
    },
}


def code_cells(name: str) -> list[str]:
    """The code cells of ``notebooks/<name>.ipynb``."""
    path = NOTEBOOKS / f"{name}.ipynb"
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def _statements(name: str) -> list[tuple[ast.stmt, str]]:
    """The top-level statements of the notebook's code cells, each with its cell's source."""
    out = []
    for source in code_cells(name):
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a cell with IPython syntax (%magic, !shell) assigns none of the names looked up here
            continue
        out.extend((node, source) for node in tree.body)
    return out


def assignment(name: str, target: str) -> str:
    """The notebook's one top-level statement that assigns ``target`` (``preset_a = preset.replace(...)``)."""
    found = []
    for node, source in _statements(name):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        if target in names:
            found.append(ast.get_source_segment(source, node))
    if len(found) != 1:
        raise ValueError(f"notebooks/{name}.ipynb: expected one top-level assignment to {target!r}, found "
                         f"{len(found)}: update ELSEWHERE in tools/full_runs.py to where the notebook defines it")
    return found[0]


def constants(name: str) -> dict:
    """The names the notebook's constants cell defines, and then those of ``ELSEWHERE[name]`` by the notebook's own
    assignments, as a full-mode run with the ``cpu`` preset would define them, with each
    ``config.minutes(full, laptop=...)`` read as its full budget."""
    import t2ilib
    from t2ilib import config

    cells = [source for source in code_cells(name) if source.startswith(CONSTANTS_CELL)]
    if len(cells) != 1:
        raise ValueError(f"notebooks/{name}.ipynb: expected one cell starting {CONSTANTS_CELL!r}, found {len(cells)}")
    session = t2ilib.Session(fast=False, preset=config.get_preset(PRESET), seed=0, data_dir=config.data_dir(),
                             runs_dir=config.runs_dir(), device=None)
    namespace = {"session": session}
    full_budget = lambda full, *, laptop=None, environ=None: float(full)  # noqa: E731
    with mock.patch.object(config, "minutes", full_budget), mock.patch.dict(os.environ, {"T2I_FAST": "0"}):
        exec(compile(cells[0], f"notebooks/{name}.ipynb (constants)", "exec"), namespace)
        for target in ELSEWHERE.get(name, ()):
            exec(compile(assignment(name, target), f"notebooks/{name}.ipynb ({target})", "exec"), namespace)
    return namespace


def preset_fields(preset, recipe) -> dict:
    """A preset's name, its size's fields and a recipe's fields, as JSON-ready dicts (the one place that knows their
    shape)."""
    return json.loads(json.dumps({"preset": preset.name, "size": dataclasses.asdict(preset.size),
                                  "recipe": dataclasses.asdict(recipe)}))


def recipe_expression(call: str, preset: str) -> str:
    """The recipe a ``make_gan``-like call trains with: its ``recipe=`` argument, else ``<preset>.recipe``."""
    keywords = {k.arg: k.value for k in ast.parse(call.strip(), mode="eval").body.keywords}
    return ast.unparse(keywords["recipe"]) if "recipe" in keywords else f"{preset}.recipe"


def _names(expression: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(expression, mode="eval")) if isinstance(node, ast.Name)}


def recipe_of(name: str) -> dict:
    """What notebook ``name``'s stored runs depend on, as the notebook would train them now: each run's preset (its
    size and the recipe its call trains with), budget and most steps; the judge's settings; the notebook's calls
    that build the models."""
    namespace = constants(name)
    trained = set(TRAINED.get(name, ()))
    value = lambda expression: expression if _names(expression) & trained else eval(expression, namespace)  # noqa: E731
    runs = {}
    for run, spec in RUNS[name]["runs"].items():
        spec = dict(spec)
        preset, build = spec.pop("preset"), spec.pop("build")
        runs[run] = {**preset_fields(value(preset), value(recipe_expression(BUILDS[name][build], preset))),
                     **{key: value(expr) for key, expr in spec.items()}}
        epochs, per_epoch = runs[run]["epochs"], runs[run]["steps_per_epoch"]
        runs[run]["max_steps"] = epochs * per_epoch if isinstance(epochs, int) else f"({epochs}) * {per_epoch}"
    return {"notebook": name, "preset": PRESET, "runs": runs,
            "judge": {key: value(expr) for key, expr in RUNS[name]["judge"].items()}, "builds": BUILDS[name]}


def differences(stored, now, where: str = "recipe") -> list[str]:
    """Where two recipes differ, one line each (``recipe.runs.GAN-CLS.minutes: stored 5.0, notebook now 6.0``).
    A recipe field added to ``config.Recipe`` after a run was stored counts as its default there: the default is
    what the code did before the field existed."""
    if isinstance(stored, dict) and isinstance(now, dict):
        if where.endswith(".recipe"):
            from t2ilib import config

            stored = {**dataclasses.asdict(config.Recipe()), **stored}
        return [line for key in sorted(set(stored) | set(now), key=str)
                for line in differences(stored.get(key, "<absent>"), now.get(key, "<absent>"), f"{where}.{key}")]
    return [] if stored == now else [f"{where}: stored {stored!r}, notebook now {now!r}"]


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def missing_builds(name: str) -> list[str]:
    """The calls of ``BUILDS[name]`` that notebook ``name`` no longer makes word for word (whitespace aside)."""
    code = _squeezed("\n".join(code_cells(name)))
    return [call for call in BUILDS[name].values() if _squeezed(call) not in code]


class LoadMonitor:
    """The 1-minute load average before, during (sampled every ``every`` seconds) and after a run."""

    def __init__(self, every: float = 10.0):
        self.every, self.samples, self._stop = every, [], threading.Event()

    @staticmethod
    def read() -> list[float]:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]

    def __enter__(self):
        self.before = self.read()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.every):
            self.samples.append(self.read()[0])

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.after = self.read()

    def summary(self) -> dict:
        during = self.samples or [self.after[0]]
        return {"before": self.before, "during_mean_1min": round(sum(during) / len(during), 2),
                "during_max_1min": max(during), "after": self.after}


def train(gan, dataset, run: dict) -> dict:
    """fit() as the notebook calls it: at most ``run``'s epochs of steps, stopped when its minutes are spent."""
    from t2ilib import callbacks

    budget = callbacks.TimeBudget(run["minutes"])
    start = time.perf_counter()
    with LoadMonitor() as load:
        gan.fit(dataset, epochs=run["epochs"], steps_per_epoch=run["steps_per_epoch"], verbose=0,
                callbacks=[callbacks.StopOnNaN(), budget])
    seconds = time.perf_counter() - start
    steps = callbacks.gan_steps(gan)
    most = run["epochs"] * run["steps_per_epoch"]
    return {"steps": steps, "seconds": round(seconds, 1), "budget_minutes": run["minutes"],
            "ended_by": "the budget" if budget.stopped_at is not None else f"the most steps ({most})",
            "load_average": load.summary()}


def _namespace(name: str) -> dict:
    """The notebook's constants and the library names its calls use."""
    import keras
    import numpy as np

    from t2ilib import callbacks, data, evaluation, metrics, models, stackgan, training
    from t2ilib import text as t2itext
    from t2ilib.data import make_dataset

    namespace = constants(name)
    namespace.update(keras=keras, np=np, callbacks=callbacks, data=data, evaluation=evaluation, metrics=metrics,
                     models=models, stackgan=stackgan, training=training, t2itext=t2itext, make_dataset=make_dataset)
    return namespace


def _load_data(namespace: dict, embeddings: bool):
    import data_prep
    import data_prep.embed
    from t2ilib import config, data

    path = data_prep.ensure("synthetic_flowers", config.data_dir(), namespace["session"].preset.size.num_images)
    if embeddings:
        data_prep.embed.ensure(path, "sentence")
    return data.load_prepared(path)


def _table(frame) -> dict:
    """A pandas table as {row: {column: value}}, numbers rounded to 4 places."""
    return {str(row): {str(col): (None if value != value else round(float(value), 4)) for col, value in values.items()}
            for row, values in frame.to_dict(orient="index").items()}


def _series(series) -> dict:
    return {str(key): round(float(value), 4) for key, value in series.items()}


def run_03(namespace: dict, recipe: dict) -> dict:
    import keras
    import numpy as np

    from t2ilib import evaluation, metrics, models
    from t2ilib import text as t2itext

    name = "03_lstm_gan"
    build = lambda key: eval(BUILDS[name][key], namespace)  # noqa: E731
    prepared = namespace["prepared"] = _load_data(namespace, embeddings=False)
    train_texts = prepared.captions.text[prepared.captions.split == "train"].tolist()
    vectorizer = namespace["vectorizer"] = t2itext.make_vectorizer(train_texts)
    namespace["sequence_length"] = int(vectorizer(["x"]).shape[-1])
    namespace["lstm"] = lambda: build("lstm")
    runs = recipe["runs"]
    dataset = build("dataset")
    keras.utils.set_random_seed(0)
    gan = namespace["gan"] = build("gan")  # section 3
    result_a = train(gan, dataset, runs["LSTM GAN (section 3)"])
    exec(BUILDS[name]["source_a_steps"], namespace)  # section 5 trains at most as many steps as section 3
    run = dict(runs["GAN-CLS with LSTMs"], epochs=eval(SECTION_5_EPOCHS, namespace))
    keras.utils.set_random_seed(0)
    lstm_cls = build("gan_cls")
    result = train(lstm_cls, dataset, run)

    judge = recipe["judge"]
    classifier = metrics.train_attribute_judge(prepared, judge["image_size"], epochs=judge["epochs"])
    test_captions = prepared.first_captions("test")
    target = prepared.attributes_of(test_captions)
    test_tokens = vectorizer(test_captions.text.tolist()).numpy()
    tables = {key: metrics.alignment_table(classifier, models.generate(model.generator, test_tokens, seed=1), target)
              for key, model in (("a", gan), ("cls", lstm_cls))}
    spread = np.linspace(0, len(test_captions) - 1, 8).astype(int)
    real_sets = evaluation.real_images_like(prepared.attributes, prepared.images(judge["image_size"]),
                                            target.iloc[spread])
    tokens = vectorizer(test_captions.text.iloc[spread].tolist()).numpy()
    captions = test_captions.text.head(4).tolist()
    grid = models.generate(lstm_cls.generator, np.repeat(vectorizer(captions).numpy(), 8, axis=0), seed=1)
    for out, key, model in ((result_a, "a", gan), (result, "cls", lstm_cls)):
        diversity = evaluation.noise_diversity(model.generator, tokens, real_sets, classifier.features)
        out["numbers"] = {"petal match": float(tables[key].generated["petal_colour"]),
                          "centre match": float(tables[key].generated["centre_colour"]),
                          "noise diversity / real": round(diversity.mean, 4), "test captions": len(test_captions)}
        out["table"] = _table(tables[key])
    result["step_cap"] = (f"{run['epochs'] * run['steps_per_epoch']}: section 3's {result_a['steps']} steps in "
                          f"whole epochs of {run['steps_per_epoch']}")
    return {"LSTM GAN (section 3)": (result_a, None, captions), "GAN-CLS with LSTMs": (result, grid, captions)}


def run_04(namespace: dict, recipe: dict) -> dict:
    import keras
    import numpy as np

    from t2ilib import metrics, models

    name = "04_gan_cls"
    build = lambda key: eval(BUILDS[name][key], namespace)  # noqa: E731
    prepared = namespace["prepared"] = _load_data(namespace, embeddings=True)
    encoder = namespace["encoder"]
    embeddings = namespace["embeddings"] = prepared.embeddings(encoder)
    namespace["text_stats"] = prepared.embedding_stats(encoder)
    run = recipe["runs"]["GAN-CLS"]
    keras.utils.set_random_seed(0)
    gan = build("gan")
    result = train(gan, build("dataset"), run)

    judge = recipe["judge"]
    classifier = metrics.train_attribute_judge(prepared, judge["image_size"], epochs=judge["epochs"])
    test_captions = prepared.first_captions("test")
    fakes = models.generate(gan.generator, embeddings[test_captions.index], seed=1)
    table = metrics.alignment_table(classifier, fakes, prepared.attributes_of(test_captions))
    sample_rows = test_captions.head(4)
    grid = models.generate(gan.generator, np.repeat(embeddings[sample_rows.index], 8, axis=0), seed=1)
    result["numbers"] = {"petal match": float(table.generated["petal_colour"]),
                         "centre match": float(table.generated["centre_colour"]), "test captions": len(test_captions)}
    result["table"] = _table(table)
    return {"GAN-CLS": (result, grid, sample_rows.text.tolist())}


def _eval_rows(prepared, count: int):
    """The notebooks' evaluation captions (05, 06): ``count`` test captions in a fixed random order."""
    import numpy as np

    return np.random.default_rng(0).permutation(prepared.first_captions("test").index.to_numpy())[:count]


def _sentence_data(namespace: dict):
    """Notebooks 05 and 06: the prepared flowers and their MiniLM embeddings; their statistics go in the namespace."""
    prepared = namespace["prepared"] = _load_data(namespace, embeddings=True)
    namespace["text_stats"] = prepared.embedding_stats("sentence")
    return prepared, prepared.embeddings("sentence")


def run_05(namespace: dict, recipe: dict) -> dict:
    import keras
    import numpy as np

    from t2ilib import conditioning, metrics, models

    name = "05_conditioning_augmentation"
    build = lambda key: eval(BUILDS[name][key], namespace)  # noqa: E731
    prepared, embeddings = _sentence_data(namespace)
    judge = recipe["judge"]
    test_rows = _eval_rows(prepared, judge["captions"])
    eval_text = embeddings[test_rows]
    eval_attributes = prepared.attributes_of(prepared.captions.loc[test_rows])
    classifier = metrics.train_attribute_judge(prepared, judge["image_size"], epochs=judge["epochs"])
    captions = prepared.captions.text.to_numpy()[test_rows][:4].tolist()
    out = {}
    for run_name, run in recipe["runs"].items():
        namespace["variant"] = eval("{" + BUILDS[name][run_name] + "}", namespace)[run_name]
        keras.utils.set_random_seed(0)
        gan = build("gan")
        result = train(gan, build("dataset"), run)
        report = conditioning.conditioning_report(gan.generator, classifier, eval_text, eval_attributes)
        result["numbers"] = {"petal match": float(report["match_petal_colour"]),
                             "centre match": float(report["match_centre_colour"]),
                             "diversity": float(report["diversity"]), "jumpiness": float(report["jumpiness"]),
                             "test captions": len(eval_text)}
        out[run_name] = (result, models.generate(gan.generator, np.repeat(eval_text[:4], 8, 0)), captions)
    return out


def run_06(namespace: dict, recipe: dict) -> dict:
    import keras
    import numpy as np

    from t2ilib import conditioning, evaluation, metrics, models, viz

    name = "06_stackgan"
    build = lambda key: eval(BUILDS[name][key], namespace)  # noqa: E731
    prepared, embeddings = _sentence_data(namespace)
    judge = recipe["judge"]
    runs = recipe["runs"]
    keras.utils.set_random_seed(0)
    stage1 = build("stage1")
    namespace["size"] = runs["Stage I"]["image_size"]
    result1 = train(stage1, build("dataset"), runs["Stage I"])
    namespace["g1"] = g1 = stage1.generator
    keras.utils.set_random_seed(0)
    stage2 = build("stage2")
    namespace["size"] = runs["Stage II"]["image_size"]
    result2 = train(stage2, build("dataset"), runs["Stage II"])

    test_rows = _eval_rows(prepared, judge["captions"])
    eval_text = embeddings[test_rows]
    eval_images = prepared.captions.image_idx.to_numpy()[test_rows]
    eval_attributes = prepared.attributes_of(prepared.captions.loc[test_rows])
    high_size = judge["image_size"]
    classifier = metrics.train_attribute_judge(prepared, high_size, epochs=judge["epochs"])
    z = np.random.default_rng(1).standard_normal((len(eval_text), namespace["preset1"].size.z_dim)).astype("float32")
    with conditioning.ca_at_mean(stage2):
        low = models.generate(g1, eval_text, z=z)
        high = models.generate(stage2, eval_text, z=z)
    real = prepared.images(high_size)[eval_images]
    table = evaluation.compare_stages(low, high, real, features=classifier.features, classifier=classifier,
                                      attributes=eval_attributes)
    for result, column in ((result1, "Stage I"), (result2, "Stage II")):
        result["numbers"] = {"petal match": float(table.loc["match_petal_colour", column]),
                             "centre match": float(table.loc["match_centre_colour", column]),
                             "test captions": len(eval_text)}
    result2["numbers"]["bicubic petal match"] = float(table.loc["match_petal_colour", "Stage I, bicubic"])
    result2["numbers"]["bicubic centre match"] = float(table.loc["match_centre_colour", "Stage I, bicubic"])
    result2["table"] = _table(table.T)
    pick = slice(0, 8)
    rows = [viz.to_uint8(evaluation.upsample(low[pick], high_size, "nearest")),
            viz.to_uint8(evaluation.upsample(low[pick], high_size)), viz.to_uint8(high[pick]), real[pick]]
    captions = prepared.captions.text.to_numpy()[test_rows][pick].tolist()
    return {"Stage I": (result1, None, captions), "Stage II": (result2, np.concatenate(rows), captions)}


RUNNERS = {"03_lstm_gan": run_03, "04_gan_cls": run_04, "05_conditioning_augmentation": run_05,
           "06_stackgan": run_06}
GRID_LAYOUT = {
    "03_lstm_gan": "one row per caption, eight z each",
    "04_gan_cls": "one row per caption, eight z each",
    "05_conditioning_augmentation": "one row per caption, eight z each",
    "06_stackgan": "one column per caption; rows: Stage I (its pixels repeated), Stage I bicubic, Stage II, real",
}


def machine(core) -> dict:
    import keras
    import tensorflow as tf

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    return {"cpu": cpu, "cores_used": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "cores_on_machine": os.cpu_count(), "pinned": core is not None, "nice": os.nice(0),
            "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "gpu": bool(tf.config.list_physical_devices("GPU"))}


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def store(name: str, core, out: Path = ASSETS, minutes: float | None = None) -> Path:
    """Train notebook ``name``'s runs and write ``<out>/<name>.json`` and its grids."""
    from t2ilib import viz

    recipe = recipe_of(name)
    for run in recipe["runs"].values():
        run["minutes"] = minutes or run["minutes"]
    missing = missing_builds(name)
    if missing:
        raise SystemExit(f"error: notebooks/{name}.ipynb no longer makes {missing[0]!r}: update BUILDS in "
                         "tools/full_runs.py to the notebook's call")
    namespace = _namespace(name)
    started = datetime.datetime.now(datetime.UTC)
    results = RUNNERS[name](namespace, recipe)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for index, (run_name, (result, grid, captions)) in enumerate(results.items()):
        result["numbers"] = {key: round(value, 4) if isinstance(value, float) else value
                             for key, value in result["numbers"].items()}
        if grid is not None:
            suffix = "" if sum(grid is not None for _, grid, _ in results.values()) == 1 else f"_{index + 1}"
            png = viz.save_png(out / f"{name}{suffix}.png", viz.image_grid(grid, columns=8))
            result.update(grid=png.name, grid_layout=GRID_LAYOUT[name])
        result["captions"] = captions
        runs[run_name] = result
    record = {
        "what": "Stored result of the full run: the notebook's own recipe for its full budget (a GPU's), trained on "
                "one CPU core with the cpu preset. Not the run of the notebook you are reading.",
        "notebook": name,
        "made_by": {"command": "make full-runs", "argv": shlex.join([Path(sys.executable).name, "-m", "tools.full_runs",
                                                                     *sys.argv[1:]]),
                    "date": started.strftime("%Y-%m-%d %H:%M UTC"), "git_commit": _git_commit(),
                    "machine": machine(core)},
        "runs": runs,
        "recipe": recipe,
    }
    path = out / f"{name}.json"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(partial, path)
    return path


def summary(names, directory: Path = ASSETS) -> str:
    """The stored runs as a markdown table (docs/results.md's "Stored full runs")."""
    lines = ["| notebook | run | budget (min) | steps | seconds | ended by | load (mean 1-min) | numbers |",
             "|---|---|---|---|---|---|---|---|"]
    for name in names:
        record = json.loads((directory / f"{name}.json").read_text())
        for run_name, run in record["runs"].items():
            numbers = ", ".join(f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}"
                                for key, value in run["numbers"].items())
            lines.append(f"| {name} | {run_name} | {run['budget_minutes']:g} | {run['steps']} | {run['seconds']:.0f} | "
                         f"{run['ended_by']} | {run['load_average']['during_mean_1min']} | {numbers} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", action="append", choices=sorted(RUNS),
                        help="a notebook to run (repeatable; by its number, e.g. 04, or its name); default: all")
    parser.add_argument("--core", default="1", help="the CPU core to pin to (default 1), or 'none'")
    parser.add_argument("--out", type=Path, default=ASSETS, help="where to write (default t2ilib/assets/full_runs)")
    parser.add_argument("--check", action="store_true", help="only say whether the stored recipes still match")
    parser.add_argument("--summary", action="store_true", help="print the stored runs as a markdown table")
    parser.add_argument("--minutes", type=float, help="to try the tool: every run's budget instead of the notebook's "
                        "(its recipe then differs from the notebook's, and tests/test_full_runs.py says so)")
    args_in = list(sys.argv[1:] if argv is None else argv)
    # 04 for 04_gan_cls
    args_in = [next((name for name in RUNS if name.startswith(a + "_")), a) for a in args_in]
    args = parser.parse_args(args_in)
    names = args.notebook or sorted(RUNS)
    if args.check:
        stale = [name for name in names if not (args.out / f"{name}.json").is_file()
                 or differences(json.loads((args.out / f"{name}.json").read_text())["recipe"], recipe_of(name))]
        print("stale or missing: " + ", ".join(stale) if stale else "every stored full run matches its notebook")
        return 1 if stale else 0
    if args.summary:
        print(summary(names, args.out))
        return 0
    core = None if args.core == "none" else int(args.core)
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})  # before TensorFlow starts its thread pools
    if os.nice(0) < 5:
        os.nice(5 - os.nice(0))
    os.environ["T2I_FAST"] = "0"  # full mode: callbacks.budget and the notebooks' constants read it
    os.environ.pop("T2I_MINUTES", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import t2ilib  # noqa: F401  (before keras: the backend and TensorFlow's logging)

    for name in names:
        print(f"{name}: training at the full budget ...", flush=True)
        path = store(name, core, args.out, args.minutes)
        record = json.loads(path.read_text())
        for run_name, run in record["runs"].items():
            print(f"  {run_name}: {run['steps']} steps in {run['seconds']:.0f} s ({run['ended_by']}), "
                  f"load {run['load_average']['during_mean_1min']}: {run['numbers']}", flush=True)
        print(f"  wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
