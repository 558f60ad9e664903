"""BertConfig reads config.json as transformers writes it and refuses what we don't implement."""

from __future__ import annotations

import json

import pytest
import transformers

from attnlens import BertConfig, ConfigError


def test_round_trip_with_transformers_config(tmp_path):
    hf = transformers.BertConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=3,
                                 intermediate_size=128, id2label={0: "neg", 1: "pos", 2: "mixed"})
    hf.save_pretrained(tmp_path)
    original = json.loads((tmp_path / "config.json").read_text())
    ours = BertConfig.from_json_file(tmp_path / "config.json")
    assert (ours.hidden_size, ours.num_hidden_layers, ours.num_labels) == (64, 3, 3)
    assert ours.id2label == {0: "neg", 1: "pos", 2: "mixed"} and ours.label2id["mixed"] == 2
    ours.to_json_file(tmp_path / "config.json")
    back = transformers.AutoConfig.from_pretrained(tmp_path)
    assert back.model_type == "bert" and back.hidden_size == 64 and back.id2label[2] == "mixed"
    written = json.loads((tmp_path / "config.json").read_text())
    kept = {k: v for k, v in original.items() if v is not None}
    assert {k: written[k] for k in kept} == kept  # nothing lost or changed
    assert written["label2id"] == {"neg": 0, "pos": 1, "mixed": 2}


@pytest.mark.parametrize(("change", "message"), [
    ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key' is not supported"),
    ({"is_decoder": True}, "is_decoder=true is not supported"),
    ({"add_cross_attention": True}, "add_cross_attention=true is not supported"),
    ({"model_type": "roberta"}, "model_type='roberta' is not BERT"),
    ({"hidden_size": 30}, r"hidden_size \(30\) must be divisible by num_attention_heads \(12\)"),
    ({"hidden_act": "mish"}, "hidden_act='mish' is not supported"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
])
def test_unsupported_settings_are_refused_naming_the_file(tmp_path, change, message):
    values = transformers.BertConfig().to_dict() | change
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=message) as info:
        BertConfig.from_json_file(path)
    assert str(path) in str(info.value)


def test_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config.json not found"):
        BertConfig.from_json_file(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        BertConfig.from_json_file(tmp_path / "config.json")


def test_with_labels():
    base = BertConfig()
    assert base.with_labels(num_labels=3).id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    named = base.with_labels(id2label={0: "negative", 1: "positive"})
    assert named.label2id == {"negative": 0, "positive": 1} and base.id2label[0] == "LABEL_0"
    with pytest.raises(ConfigError, match="num_labels=3 disagrees"):
        base.with_labels(num_labels=3, id2label={0: "a", 1: "b"})
