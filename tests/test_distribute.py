"""tf.distribute: ``fit()`` on two replicas takes the same steps as on one device; the TPU code path in order.

Two logical CPU devices stand in for two GPUs. They must be configured before TensorFlow initialises, so the
comparison runs in a fresh Python process (``_TWO_REPLICAS`` below) and reports its numbers as JSON.
"""

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from t2ilib import device

ROOT = Path(__file__).resolve().parent.parent

_TWO_REPLICAS = textwrap.dedent("""
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import numpy as np
    from t2ilib import config, models, training

    preset = config.PRESETS["smoke"]
    rng = np.random.default_rng(0)
    batch, steps, dim = 8, 3, 12
    text = rng.standard_normal((batch * steps, dim)).astype("float32")
    data = {"image": rng.uniform(-1, 1, (batch * steps, 32, 32, 3)).astype("float32"), "text": text,
            "wrong_text": np.roll(text, 1, axis=0),
            # The noise comes with the data so that both runs see exactly the same inputs.
            "z": rng.standard_normal((batch * steps, preset.size.z_dim)).astype("float32")}
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(batch)  # the global batch: 4 per replica on two

    class ReplayingGAN(training.ConditionalGAN):
        def noise(self, data):
            return data["z"]

    def run(strategy, initial_weights):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            gan = ReplayingGAN(models.build_generator(preset, embedding_dim=dim),
                               models.build_discriminator(preset, embedding_dim=dim))
            # Plain SGD: its step is proportional to the gradient, so gradients doubled by a missing 1/replicas
            # would double the step (Adam divides most of that out).
            gan.compile(g_optimizer=keras.optimizers.SGD(0.05), d_optimizer=keras.optimizers.SGD(0.05))
            if initial_weights is not None:
                gan.set_weights(initial_weights)
        start = [w.copy() for w in gan.get_weights()]
        losses = {"d_loss": [], "g_loss": []}
        for step in dataset:  # one fit() per batch: Keras' history then holds each step's loss, not a running mean
            logs = gan.fit(tf.data.Dataset.from_tensors(step), epochs=1, verbose=0).history
            for name in losses:
                losses[name].append(logs[name][0])
        return start, losses, gan.get_weights()

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one_start, one_losses, one_end = run(tf.distribute.get_strategy(), None)
    two_start, two_losses, two_end = run(mirrored, one_start)
    json.dump({
        "replicas": mirrored.num_replicas_in_sync,
        "same_start": all(np.array_equal(a, b) for a, b in zip(one_start, two_start)),
        "one": one_losses, "two": two_losses,
        "weight_change": max(float(np.max(np.abs(a - b))) for a, b in zip(one_end, one_start)),
        "weight_gap": max(float(np.max(np.abs(a - b))) for a, b in zip(one_end, two_end)),
    }, sys.stdout)
""")


@pytest.mark.slow
def test_mirrored_two_replicas_train_like_one_device():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", _TWO_REPLICAS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["replicas"] == 2
    assert result["same_start"], "both runs must start from the same weights"
    for name in ("d_loss", "g_loss"):
        one, two = np.array(result["one"][name]), np.array(result["two"][name])
        assert one.shape == (3,) and np.isfinite(one).all()
        # Three steps: the later ones compare weights that both runs updated, not only the shared start.
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-5, err_msg=name)
    assert result["weight_change"] > 1e-3, "training must move the weights, else equal losses prove nothing"
    # Far below one step: a missing 1/replicas would make the gap as large as the change itself.
    assert result["weight_gap"] < 1e-2 * result["weight_change"]


class _FakeTPU:
    """The tf calls ``device.strategy`` makes on a TPU, recorded in order."""

    def __init__(self):
        self.calls = []
        record = self.calls.append
        resolver = types.SimpleNamespace(name="resolver")

        def cluster_resolver(tpu):
            record(("resolve", tpu))
            return resolver

        def tpu_strategy(given):
            record(("strategy", given is resolver))
            return types.SimpleNamespace(num_replicas_in_sync=8)

        resolvers = types.SimpleNamespace(TPUClusterResolver=cluster_resolver)
        self.distribute = types.SimpleNamespace(cluster_resolver=resolvers, TPUStrategy=tpu_strategy)
        connect = lambda r: record(("connect", r is resolver))
        self.config = types.SimpleNamespace(experimental_connect_to_cluster=connect)
        self.tpu = types.SimpleNamespace(experimental=types.SimpleNamespace(
            initialize_tpu_system=lambda r: record(("initialize", r is resolver))))


def test_tpu_strategy_connects_initialises_then_distributes(monkeypatch):
    """What runs on a Colab TPU, short of the TPU: resolve, connect, initialise, then TPUStrategy on that resolver."""
    fake = _FakeTPU()
    monkeypatch.setattr(device, "_import_tf", lambda: fake)
    info = device.DeviceInfo("colab", "tpu", tpu_address="grpc://10.0.0.2:8470")
    strategy = device.strategy(info)
    assert strategy.num_replicas_in_sync == 8
    assert fake.calls == [("resolve", "grpc://10.0.0.2:8470"), ("connect", True), ("initialize", True),
                          ("strategy", True)]
