import pytest

from t2ilib import config


@pytest.mark.parametrize("value, fast", [("1", True), ("true", True), ("0", False), ("", False), ("no", False)])
def test_is_fast_reads_t2i_fast(value, fast):
    assert config.is_fast({"T2I_FAST": value}) is fast


def test_is_fast_unset_means_full_mode():
    assert config.is_fast({}) is False


def test_is_fast_rejects_nonsense_with_the_value_named():
    with pytest.raises(ValueError, match="'maybe'"):
        config.is_fast({"T2I_FAST": "maybe"})


def test_is_fast_auto_follows_the_gpu(monkeypatch):
    from t2ilib import device

    fake = device.DeviceInfo("local", "cuda", gpu_names=("Tesla T4",))
    monkeypatch.setattr(device, "detect", lambda: fake)
    assert config.is_fast({"T2I_FAST": "auto"}) is False
    monkeypatch.setattr(device, "detect", lambda: device.DeviceInfo("local", "cpu"))
    assert config.is_fast({"T2I_FAST": "auto"}) is True


def test_default_preset_is_smoke_in_fast_mode():
    assert config.get_preset(environ={"T2I_FAST": "1"}).name == "smoke"


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="cpu"):
        config.get_preset("huge")


def test_paper_preset_has_the_published_widths():
    paper = config.get_preset("paper")  # the old name of reed2016
    assert paper.size.g_channels == (1024, 512, 256, 128)
    assert paper.size.d_channels == (64, 128, 256, 512)
    assert (paper.size.z_dim, paper.size.text_dim, paper.size.batch_size) == (100, 128, 64)


@pytest.mark.parametrize("name", sorted(config.PRESETS))
def test_preset_widths_reach_the_image_size(name):
    preset = config.PRESETS[name]
    # G starts at 4x4 and doubles once per block; D halves once per block down to 4x4.
    assert 4 * 2 ** len(preset.size.g_channels) == preset.size.image_size
    assert preset.size.image_size // 2 ** len(preset.size.d_channels) == 4


def test_data_and_runs_dirs_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("T2I_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("T2I_RUNS_DIR", str(tmp_path / "r"))
    assert config.data_dir() == tmp_path / "d"
    assert config.runs_dir() == tmp_path / "r"


def test_override_parses_each_field_to_its_type():
    cpu = config.PRESETS["cpu"]
    # Every value differs from the cpu preset's, so each assertion sees a parse.
    changed = config.override(cpu, ["batch_size=8", "g_channels=64,32,16,8", "lr_d=1e-4", "projection=no",
                                    "d_norm=none", "contrastive_weight=0.5"])
    assert (changed.size.batch_size, changed.size.g_channels, changed.recipe.lr_d) == (8, (64, 32, 16, 8), 1e-4)
    assert changed.recipe.projection is False and changed.recipe.d_norm == "none"
    assert changed.recipe.contrastive_weight == 0.5
    assert changed.size.z_dim == cpu.size.z_dim
    with pytest.raises(ValueError, match="batchsize"):
        config.override(cpu, ["batchsize=3"])
    with pytest.raises(ValueError, match="d_norm='layer'"):
        config.override(cpu, ["d_norm=layer"])


def test_a_preset_is_a_size_and_a_recipe_and_replace_routes_each_field():
    cpu = config.PRESETS["cpu"]
    small = cpu.replace(image_size=32, g_channels=(64, 32, 16), lr_d=1e-4)
    assert (small.size.image_size, small.size.g_channels, small.recipe.lr_d) == (32, (64, 32, 16), 1e-4)
    assert small.recipe.replace(lr_d=cpu.recipe.lr_d) == cpu.recipe and small.name == "cpu"
    reed = cpu.replace(recipe=config.REED_ET_AL)
    assert reed.size == cpu.size and reed.recipe == config.REED_ET_AL == config.Recipe()
    assert cpu.replace(recipe=config.REED_ET_AL, loss="hinge").recipe.loss == "hinge"  # the recipe first, then fields
    with pytest.raises(ValueError, match="preset 'cpu' has no field 'batchsize': a size's fields are image_size"):
        cpu.replace(batchsize=3)
    with pytest.raises(ValueError, match="recipe: g_norm='layer', use one of"):
        config.Recipe(g_norm="layer")
    with pytest.raises(ValueError, match="padding='reflect' pads G's 3x3 convolutions; set upsample='nearest'"):
        config.Recipe(padding="reflect")  # Reed et al.'s transposed convolutions pad differently
    with pytest.raises(ValueError, match="diversity_pool=0"):
        config.IMPROVED.replace(diversity_pool=0)
    with pytest.raises(ValueError, match="recipe: noise_injection='pixels', use one of"):
        config.IMPROVED.replace(noise_injection="pixels")
    with pytest.raises(ValueError, match="size: batch_size=0, use a positive whole number"):
        cpu.replace(batch_size=0)


def test_fast_mode_trains_the_recipe_full_mode_trains_smaller_and_shorter():
    smoke, cpu, gpu = (config.PRESETS[name] for name in ("smoke", "cpu", "gpu"))
    assert smoke.recipe == cpu.recipe == gpu.recipe == config.IMPROVED
    assert smoke.size.image_size < cpu.size.image_size and smoke.size.steps < cpu.size.steps
    assert config.PRESETS["reed2016"].recipe == config.REED_ET_AL
