"""t2ilib.device with the environment faked: Colab with a T4, Kaggle, an M1, a TPU, a bare CPU."""

import types

import pytest

from t2ilib import device


class FakeTF:
    """Just the tf.config calls device.detect() makes."""

    __version__ = "2.99.0"

    def __init__(self, gpus=(), tpus=(), details=None):
        self._devices = {"GPU": [types.SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(len(gpus))],
                         "TPU": list(tpus)}
        self._details = details or {}
        self.config = types.SimpleNamespace(
            list_physical_devices=lambda kind: self._devices.get(kind, []),
            experimental=types.SimpleNamespace(get_device_details=lambda d: self._details),
        )


def test_colab_with_a_t4():
    tf = FakeTF(gpus=[1], details={"device_name": "Tesla T4", "compute_capability": (7, 5)})
    info = device.detect(environ={"COLAB_RELEASE_TAG": "x"}, modules={}, tf=tf, system="Linux", machine="x86_64")
    assert (info.platform, info.accelerator, info.gpu_names) == ("colab", "cuda", ("Tesla T4",))
    assert info.has_gpu
    assert "Colab" in info.describe() and "Tesla T4" in info.describe()
    assert device.choose_precision(info) == "mixed_float16"


def test_old_cuda_gpu_keeps_float32():
    tf = FakeTF(gpus=[1], details={"device_name": "Tesla K80", "compute_capability": (3, 7)})
    info = device.detect(environ={}, modules={}, tf=tf, system="Linux", machine="x86_64")
    assert device.choose_precision(info) == "float32"


def test_kaggle_cpu():
    info = device.detect(environ={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, modules={}, tf=FakeTF(),
                         system="Linux", machine="x86_64")
    assert (info.platform, info.accelerator, info.has_gpu) == ("kaggle", "cpu", False)
    assert "CPU only" in info.describe()


def test_apple_silicon_metal():
    info = device.detect(environ={}, modules={}, tf=FakeTF(gpus=[1]), system="Darwin", machine="arm64")
    assert info.accelerator == "metal" and info.has_gpu
    assert device.choose_precision(info) == "float32"


def test_colab_tpu_from_the_environment():
    info = device.detect(environ={"COLAB_TPU_ADDR": "10.0.0.2:8470"}, modules={"google.colab": object()},
                         tf=FakeTF(), system="Linux", machine="x86_64")
    assert (info.platform, info.accelerator, info.tpu_address) == ("colab", "tpu", "10.0.0.2:8470")
    assert device.choose_precision(info) == "mixed_bfloat16"


@pytest.mark.parametrize("speedup, policy", [(1.3, "mixed_bfloat16"), (1.0, "float32")])
def test_cpu_uses_bfloat16_only_where_it_measures_faster(speedup, policy):
    info = device.DeviceInfo("local", "cpu")
    assert device.choose_precision(info, cpu_bf16_speedup=speedup) == policy


def test_override_wins_and_is_validated(monkeypatch):
    info = device.DeviceInfo("local", "cpu")
    assert device.choose_precision(info, override="float32", cpu_bf16_speedup=2.0) == "float32"
    monkeypatch.setenv("T2I_PRECISION", "mixed_float16")
    assert device.choose_precision(info, cpu_bf16_speedup=1.0) == "mixed_float16"
    with pytest.raises(ValueError, match="float64"):
        device.choose_precision(info, override="float64")


def test_bf16_speedup_is_measured_once_and_cached(tmp_path):
    cache = tmp_path / "speed.json"
    first = device.measure_cpu_bf16_speedup(repeats=1, cache=cache)
    assert first > 0 and cache.exists()
    cache.write_text(cache.read_text().replace(str(round(first, 3)), "9.5"))
    assert device.measure_cpu_bf16_speedup(repeats=1, cache=cache) == 9.5


def test_real_machine_and_one_device_strategy():
    info = device.detect()
    assert info.accelerator in {"cpu", "cuda", "metal", "tpu"}
    if info.accelerator == "cpu":
        strategy = device.strategy(info)
        assert strategy.num_replicas_in_sync == 1
