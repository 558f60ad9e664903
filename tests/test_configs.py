"""Every shipped job config loads into the dataclasses; bad keys, types and values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from attnlens.errors import ConfigError
from attnlens.training.config import JobConfig, load_job_config

REPO_ROOT = Path(__file__).resolve().parents[1]
JOB_CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))
LAUNCH_CONFIGS = sorted((REPO_ROOT / "configs" / "accelerate").glob("*.yaml"))


def test_the_required_configs_are_shipped():
    assert {"demo.yaml", "sst2-minilm.yaml", "sst2-bert-base.yaml"} <= {p.name for p in JOB_CONFIGS}
    assert {"2cpu.yaml", "1gpu.yaml", "8gpu-ddp.yaml", "2nodes-8gpu.yaml", "fsdp-8gpu.yaml"} <= {
        p.name for p in LAUNCH_CONFIGS
    }


@pytest.mark.parametrize("path", JOB_CONFIGS, ids=lambda p: p.name)
def test_job_config_loads_and_starts_with_its_command(path):
    config = load_job_config(path)
    assert isinstance(config, JobConfig)
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# "), first_line
    command = first_line[2:]
    assert ("training/train.py" in command or "attnlens train" in command) and f"configs/{path.name}" in command


@pytest.mark.parametrize("path", LAUNCH_CONFIGS, ids=lambda p: p.name)
def test_accelerate_launch_config_is_complete(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# accelerate launch --config_file configs/accelerate/" + path.name)
    launch = yaml.safe_load(text)
    assert launch["distributed_type"] in {"NO", "MULTI_GPU", "FSDP"}
    assert launch["num_processes"] >= launch["num_machines"] >= 1
    if launch["distributed_type"] == "FSDP":
        assert launch["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "BertLayer"


def test_overrides_use_the_yaml_structure(tmp_path):
    config = load_job_config(
        REPO_ROOT / "configs" / "demo.yaml",
        [
            "output.dir=elsewhere",
            "training.max_steps=7",
            "training.seed=3",
            "training.checkpoint_every_steps=2",
            "training.resume=auto",
            "data.train=some/file.csv",
            "data.validation=org/dataset",
            "training.learning_rate=3e-4",
            "model.dropout=null",
            "training.class_weights=[1,3]",
            "training.sampler=balanced",
        ],
    )
    assert config.training.class_weights == [1.0, 3.0] and all(
        isinstance(weight, float) for weight in config.training.class_weights)
    assert config.training.sampler == "balanced"
    assert config.output.dir == "elsewhere"
    assert (config.training.max_steps, config.training.seed, config.training.checkpoint_every_steps) == (7, 3, 2)
    assert config.training.resume == "auto"
    assert (config.data.train, config.data.validation) == ("some/file.csv", "org/dataset")
    assert config.training.learning_rate == pytest.approx(3e-4)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("training.epoch=3", "unknown key training.epoch"),
        ("optimizer.lr=1", "unknown key optimizer"),
        ("training.batch_size=eight", "training.batch_size must be int"),
        ("training.batch_size=2.5", "training.batch_size must be int"),
        ("training.group_by_length=1", "training.group_by_length must be bool"),
        ("data.label_names=positive", "data.label_names must be a list"),
        ("training.batch_size=0", "training.batch_size=0 must be at least 1"),
        ("training.learning_rate=-1", "training.learning_rate=-1.0 must be a positive"),
        ("training.warmup_ratio=1.5", "training.warmup_ratio=1.5 must be in [0, 1)"),
        ("training.layerwise_lr_decay=0", "training.layerwise_lr_decay=0.0 must be in (0, 1]"),
        ("training.rdrop_alpha=-1", "training.rdrop_alpha=-1.0 must be 0 (off) or a positive finite number"),
        ("training.label_smoothing=1", "training.label_smoothing=1.0 must be in [0, 1)"),
        ("training.class_weights=heavy", "training.class_weights='heavy' must be one of ['none', 'balanced']"),
        ("training.class_weights=[1,2,3]", "training.class_weights=[1.0, 2.0, 3.0] must have one weight per label"),
        ("training.class_weights=[1,0]", "training.class_weights=[1.0, 0.0] must hold positive finite weights"),
        ("training.class_weights=[-1,2]", "the weight of 'negative' is -1.0"),
        ("training.class_weights=[1,a]", "training.class_weights must be str or a list of float"),
        ("training.sampler=random", "training.sampler='random' must be one of ['length_grouped', 'balanced']"),
        ("training.metric_for_best=bleu", "training.metric_for_best='bleu' must be one of"),
        ("training.mixed_precision=fp8", "training.mixed_precision='fp8' must be one of"),
        ("data.label_names=[good]", "data.label_names=['good'] must list at least 2"),
        ("output.push_to_hub=true", "output.hub_repo_id=None must be set"),
        ("training", "must look like section.key=value"),
        ("training.seed.x=1", "training.seed is not a section"),
    ],
)
def test_bad_values_name_the_key(override, named):
    with pytest.raises(ConfigError, match=None) as error:
        load_job_config(REPO_ROOT / "configs" / "demo.yaml", [override])
    assert named in str(error.value)
    assert "\n" not in str(error.value)


def test_layerwise_lr_decay_is_refused_for_the_baselines():
    with pytest.raises(ConfigError, match="layerwise_lr_decay=0.8 applies to an encoder's layers only; model.arch is 'han'"):
        load_job_config(REPO_ROOT / "configs" / "demo.yaml", ["training.layerwise_lr_decay=0.8", "model.arch=han"])


def test_unreadable_and_non_mapping_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read job config"):
        load_job_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_job_config(listing)


def test_push_preflight_refuses_offline_and_missing_token(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from attnlens.training.config import OutputConfig
    from attnlens.training.hub_push import preflight_push

    output = OutputConfig(push_to_hub=True, hub_repo_id="someone/model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        preflight_push(output)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    with pytest.raises(ConfigError, match="no Hugging Face token found"):
        preflight_push(output)
    monkeypatch.setenv("HF_TOKEN", "hf_example")
    preflight_push(output)  # online with a token: allowed to start
    preflight_push(OutputConfig(push_to_hub=False))
