"""Loading and saving weights: strict key mapping, Hub layout round trip, clear errors."""

from __future__ import annotations

import pickle

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from attnlens import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    CheckpointError,
    ConfigError,
    ModelNotFoundError,
)
from attnlens.loading import load_model
from tests.conftest import save_hf_classifier, tiny_hf_config

LABELS = {0: "negative", 1: "positive"}


def encode(tokenizer, texts=("a gripping, funny film", "dull.")):
    return tokenizer(list(texts), padding=True, return_tensors="pt")


def test_save_pretrained_loads_in_transformers_with_same_logits(tmp_path, tiny_classifier_dir, tokenizer):
    ours = BertForSequenceClassification.from_pretrained(tiny_classifier_dir, id2label=LABELS)
    torch.nn.init.normal_(ours.classifier.weight, std=1.0)  # make logits distinctive
    out_dir = ours.save_pretrained(tmp_path / "saved", tokenizer=tokenizer)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in out_dir.iterdir()}
    ref, info = transformers.AutoModelForSequenceClassification.from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert ref.config.architectures == ["BertForSequenceClassification"]
    assert ref.config.id2label == LABELS and ref.config.label2id == {"negative": 0, "positive": 1}
    batch = encode(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, ref.eval()(**batch).logits, atol=1e-5, rtol=0)
    pipe = transformers.pipeline("text-classification", model=str(out_dir))
    [prediction] = pipe("a gripping, funny film")
    with torch.no_grad():
        probs = ours(**encode(tokenizer, ["a gripping, funny film"])).logits.softmax(-1)[0]
    assert prediction["label"] == LABELS[int(probs.argmax())]
    assert prediction["score"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_ours_round_trip_is_exact(tmp_path, tiny_classifier_dir):
    ours = BertForSequenceClassification.from_pretrained(tiny_classifier_dir)
    ours.save_pretrained(tmp_path / "again")
    again = BertForSequenceClassification.from_pretrained(tmp_path / "again")
    for (name, a), (_, b) in zip(ours.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_base_model_gets_fresh_head_reported_once(minilm_dir, caplog):
    with caplog.at_level("WARNING", logger="attnlens"):
        model = BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=3)
    assert model.config.num_labels == 3 and model.classifier.weight.shape == (3, 384)
    reports = [r for r in caplog.records if "no classification head" in r.message]
    assert len(reports) == 1 and "classifier.weight" in reports[0].message


def test_classifier_checkpoint_loads_as_bare_encoder(tiny_classifier_dir):
    ref = transformers.BertForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    ours = BertModel.from_pretrained(tiny_classifier_dir)
    ids = torch.tensor([[101, 2000, 2001, 102]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).last_hidden_state, ref.bert(ids).last_hidden_state, atol=1e-5, rtol=0)


def rewrite_weights(folder, edit):
    path = folder / "model.safetensors"
    state = load_file(path)
    edit(state)
    save_file(state, path)


def test_old_gamma_beta_names_and_pretraining_heads_are_mapped(tmp_path, tokenizer):
    folder = save_hf_classifier(tmp_path / "old", tokenizer)
    expected = BertForSequenceClassification.from_pretrained(folder)

    def to_legacy(state):
        for key in [k for k in state if k.endswith("LayerNorm.weight")]:
            state[key.replace("weight", "gamma")] = state.pop(key)
        for key in [k for k in state if k.endswith("LayerNorm.bias")]:
            state[key.replace("bias", "beta")] = state.pop(key)
        state["cls.predictions.bias"] = torch.zeros(30522)
        state["bert.embeddings.position_ids"] = torch.arange(512)[None]

    rewrite_weights(folder, to_legacy)
    legacy = BertForSequenceClassification.from_pretrained(folder)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(legacy.state_dict()[name], tensor), name


def test_missing_key_is_named(tmp_path, tokenizer):
    folder = save_hf_classifier(tmp_path / "m", tokenizer)
    rewrite_weights(folder, lambda s: s.pop("bert.encoder.layer.1.output.dense.weight"))
    with pytest.raises(CheckpointError, match=r"missing weight 'bert.encoder.layer.1.output.dense.weight'"):
        BertForSequenceClassification.from_pretrained(folder)


def test_unexpected_key_is_named(tmp_path, tokenizer):
    folder = save_hf_classifier(tmp_path / "u", tokenizer)
    rewrite_weights(folder, lambda s: s.__setitem__("bert.encoder.layer.9.output.dense.weight", torch.zeros(1)))
    with pytest.raises(CheckpointError, match=r"unexpected weight 'bert.encoder.layer.9.output.dense.weight'"):
        BertForSequenceClassification.from_pretrained(folder)


def test_shape_mismatch_names_key_and_both_shapes(tiny_classifier_dir):
    with pytest.raises(CheckpointError, match=r"'classifier.weight' has shape \(2, 32\) in the checkpoint but \(5, 32\)"):
        BertForSequenceClassification.from_pretrained(tiny_classifier_dir, num_labels=5)


def test_truncated_safetensors_is_a_clear_error(tiny_classifier_dir):
    path = tiny_classifier_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model.safetensors: unreadable safetensors file"):
        BertForSequenceClassification.from_pretrained(tiny_classifier_dir)


def test_corrupt_safetensors_header_is_a_clear_error(tiny_classifier_dir):
    (tiny_classifier_dir / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage}......")
    with pytest.raises(CheckpointError, match="unreadable safetensors file"):
        BertForSequenceClassification.from_pretrained(tiny_classifier_dir)


def test_pytorch_bin_loads_with_weights_only(tmp_path, tiny_classifier_dir):
    reference = BertForSequenceClassification.from_pretrained(tiny_classifier_dir)
    (tiny_classifier_dir / "model.safetensors").unlink()
    torch.save(load_file_dict(reference), tiny_classifier_dir / "pytorch_model.bin")
    loaded = BertForSequenceClassification.from_pretrained(tiny_classifier_dir)
    assert torch.equal(loaded.classifier.weight, reference.classifier.weight)


def load_file_dict(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


class Exploit:
    """A pickle that would run code when unpickled without weights_only."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_malicious_pickle_is_refused_and_never_executed(tiny_classifier_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tiny_classifier_dir / "model.safetensors").unlink()
    with open(tiny_classifier_dir / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"bert.embeddings.word_embeddings.weight": Exploit()}, handle)
    with pytest.raises(CheckpointError, match="pytorch_model.bin: unreadable weights"):
        BertForSequenceClassification.from_pretrained(tiny_classifier_dir)
    assert not (tmp_path / "PWNED").exists()


def test_missing_weights_file(tiny_classifier_dir):
    (tiny_classifier_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        BertForSequenceClassification.from_pretrained(tiny_classifier_dir)


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match=f"{tmp_path}/nope: no such model folder"):
        BertForSequenceClassification.from_pretrained(tmp_path / "nope")


def test_non_bert_config_is_refused(tmp_path):
    transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="model_type='gpt2' is not BERT"):
        BertForSequenceClassification.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="model_type='gpt2' is not supported; attnlens loads the encoders "
                                          "bert, distilbert, roberta, xlm-roberta and its baselines"):
        load_model(tmp_path)


def test_refuses_to_save_non_finite_weights(tmp_path):
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=16))
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite weights .*classifier.weight"):
        model.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad" / "model.safetensors").exists()


def test_tiny_config_helper_is_really_tiny():
    assert tiny_hf_config().hidden_size == 32
