"""Predictor (length-grouped batches, truncation, chunked long texts, calibration and
`min_confidence`), model resolution and the `export`/`predict` commands, with tiny random models
and a temporary BentoML store."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from service_harness import save_tiny_classifier

import attnlens.predict
from attnlens import BertForSequenceClassification, load_tokenizer
from attnlens.calibration import calibration_record, write_calibration
from attnlens.cancellation import STOP_POLL_INTERVAL_S
from attnlens.cli import main
from attnlens.errors import InputError, ModelNotFoundError
from attnlens.model_source import export_to_store, resolve_model
from attnlens.predict import PredictionCancelled, Predictor

TEXTS = ["fine", "a much longer sentence about a film that goes on for quite a while", "bad", "so-so movie",
         " ".join(["word"] * 40), "great"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("predict") / "tiny", max_position_embeddings=32)


@pytest.fixture(scope="module")
def predictor(model_dir):
    model = BertForSequenceClassification.from_pretrained(str(model_dir))
    return Predictor(model, load_tokenizer(str(model_dir)), batch_size=2)


@pytest.fixture(scope="module")
def calibrated_dir(tmp_path_factory):
    """A tiny model whose config.json carries a fitted temperature of 2 (its own folder: the
    other tests read `model_dir` uncalibrated)."""
    folder = save_tiny_classifier(tmp_path_factory.mktemp("calibrated") / "tiny", max_position_embeddings=32)
    write_calibration(folder, calibration_record(2.0, fit_on="test", examples=0, nll_before=0.0, nll_after=0.0))
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An empty BentoML home for this module. BentoML caches the store's location for the life of
    a process, so it is set once, before the first store access, and restored afterwards."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    home = tmp_path_factory.mktemp("bentoml-home")
    saved = os.environ.get("BENTOML_HOME")
    os.environ["BENTOML_HOME"] = str(home)
    BentoMLContainer.bentoml_home.set(str(home))
    yield home
    if saved is None:
        os.environ.pop("BENTOML_HOME", None)
    else:
        os.environ["BENTOML_HOME"] = saved


def test_batched_predictions_equal_one_by_one_in_input_order(predictor):
    together = predictor.predict(TEXTS)
    alone = [predictor.predict([text])[0] for text in TEXTS]
    for batched, single in zip(together, alone, strict=True):
        assert batched.label == single.label
        assert batched.probabilities == pytest.approx(single.probabilities, abs=1e-5)
        assert sum(batched.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert batched.score == max(batched.probabilities.values())
    assert len({round(p.score, 5) for p in together}) > 1


def test_batches_group_texts_of_similar_length(predictor, monkeypatch):
    widths: list[tuple[int, int]] = []
    classify = attnlens.predict.classify

    def recording(model, input_ids, *args, **kwargs):  # the real engine call, its batch shape noted
        widths.append(tuple(input_ids.shape))
        return classify(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(attnlens.predict, "classify", recording)
    predictor.predict(TEXTS)
    lengths = sorted(len(predictor.tokenizer(t)["input_ids"]) for t in TEXTS)
    lengths = [min(n, predictor.max_length) for n in lengths]
    # batch_size=2 over length-sorted texts: each batch is as wide as its own longest member.
    assert widths == [(2, lengths[1]), (2, lengths[3]), (2, lengths[5])]


def test_truncation_is_flagged_and_counts_tokens(predictor):
    short, long = predictor.predict(["a fine film", " ".join(["word"] * 100)])
    assert (short.truncated, short.num_tokens) == (False, 5)
    assert (long.truncated, long.num_tokens, long.num_windows) == (True, 32, 1)


def test_chunk_mode_averages_overlapping_windows(predictor):
    text = " ".join(f"w{i}" for i in range(60))  # ~120 word pieces, window of 30
    ids = predictor.tokenizer(text, add_special_tokens=False)["input_ids"]
    (result,) = predictor.predict([text], long_text="chunk")
    body, step = predictor.max_length - 2, predictor.max_length - 2 - predictor.chunk_overlap
    starts = sorted({min(s, len(ids) - body) for s in range(0, len(ids) - body + step, step)})
    assert result.num_windows == len(starts) > 2 and starts[-1] + body == len(ids)
    assert (result.truncated, result.num_tokens) == (False, len(ids) + 2)
    cls, sep = predictor.tokenizer.cls_token_id, predictor.tokenizer.sep_token_id
    windows = torch.tensor([[cls, *ids[s : s + body], sep] for s in starts])
    with torch.no_grad():
        expected = predictor.model(windows).logits.softmax(-1).mean(0)
    assert list(result.probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-5)
    # Texts that fit are scored the same way in both modes.
    assert predictor.predict(["fine"], long_text="chunk")[0] == predictor.predict(["fine"])[0]


def test_bad_arguments_raise_input_errors(predictor):
    with pytest.raises(InputError, match="long_text='split'"):
        predictor.predict(["x"], long_text="split")
    with pytest.raises(InputError, match=r"texts\[1\] is a int"):
        predictor.predict(["x", 3])
    with pytest.raises(PredictionCancelled):
        predictor.predict(TEXTS, should_stop=lambda: True)
    assert predictor.predict([]) == []


SPECIAL_TOKEN_STRINGS = ("[SEP]", "[CLS]", "[MASK]", "[PAD]", "[UNK]", "<s>", "</s>", "<mask>")


def test_special_token_strings_in_user_text_are_text(predictor):
    tokenizer = predictor.tokenizer
    (ids,) = predictor._token_ids(["a [SEP] b"])
    assert tokenizer.sep_token_id not in ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["a", "[", "sep", "]", "b"]
    special_ids = set(tokenizer.all_special_ids)
    for text in SPECIAL_TOKEN_STRINGS:
        assert not special_ids & set(predictor._token_ids([f"x {text} y"])[0]), text
    # The text is what the model reads: "[SEP]" as characters, not as the end of the sequence.
    (typed,) = predictor.predict(["a [SEP] b"])
    assert typed.num_tokens == 2 + 5
    assert typed.probabilities != predictor.predict(["a"])[0].probabilities


def test_text_without_word_pieces_is_predicted_as_cls_sep(predictor):
    wordless = ["\u200b", "\ufeff", "\u00ad", "\u2060", "\u0301", "\x00", "", "   "]
    empty = predictor.predict([""])[0]
    for long_text in ("truncate", "chunk"):
        results = predictor.predict([*wordless, "fine"], long_text=long_text)
        for result in [*results[:-1], empty]:
            assert (result.label, result.num_tokens, result.truncated, result.num_windows) == (empty.label, 2, False, 1)
            assert result.probabilities == pytest.approx(empty.probabilities, abs=1e-6)
        assert results[-1].probabilities == pytest.approx(predictor.predict(["fine"])[0].probabilities, abs=1e-6)


def test_lone_surrogate_raises_input_error_naming_the_text(predictor):
    with pytest.raises(InputError, match=r"text 1 holds a lone surrogate U\+DC00 at character 3"):
        predictor.predict(["fine", "bad\udc00"])


def test_cancelled_prediction_stops_inside_the_forward_and_leaves_no_hooks(predictor):
    """`should_stop` is asked before each encoder layer too, not only between batches."""
    answers = iter([False, True])

    def slow_stop() -> bool:
        time.sleep(STOP_POLL_INTERVAL_S * 1.5)  # so that no question is throttled away
        return next(answers)

    with pytest.raises(PredictionCancelled, match="before layer 0"):
        predictor.predict(["fine"], should_stop=slow_stop)  # one batch: the 2nd question is a layer's
    assert all(not layer._forward_pre_hooks for layer in predictor.model.bert.encoder.layer)
    assert predictor.predict(["fine"], should_stop=lambda: False) == predictor.predict(["fine"])


def test_resolve_model_folder_store_and_hub(model_dir, store):
    folder = resolve_model(str(model_dir))
    assert (folder.origin, folder.name_or_path) == ("folder", str(model_dir.resolve()))
    hub = resolve_model("textattack/bert-base-uncased-SST-2@abc123")
    assert (hub.origin, hub.name_or_path, hub.revision) == ("hub", "textattack/bert-base-uncased-SST-2", "abc123")
    with pytest.raises(ModelNotFoundError, match="'attnlens-sentiment'.*attnlens export"):
        resolve_model("")  # the default: the store entry `make demo` creates
    stored = export_to_store(model_dir)
    source = resolve_model("attnlens-sentiment")
    assert source.origin == "bentoml-store" and source.name_or_path == stored.path
    assert resolve_model(str(stored.tag)).name_or_path == stored.path
    loaded = Predictor.from_pretrained(source.name_or_path)
    assert loaded.labels == ["negative", "positive"]


def test_export_and_predict_commands(model_dir, store, capsys, monkeypatch):
    assert main(["export", "--model", str(model_dir), "--name", "my-model"]) == 0
    assert "my-model:" in capsys.readouterr().out
    monkeypatch.setenv("ATTNLENS_MODEL", "my-model")
    assert main(["predict", "a fine film", "dull"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["a fine film", "dull"]
    assert {line["label"] for line in lines} <= {"negative", "positive"}
    assert main(["export", "--model", str(model_dir / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", "--model", "not-in-store", "x"]) == 2
    assert "not-in-store" in capsys.readouterr().err


def test_model_temperature_calibrates_probabilities_and_keeps_labels(calibrated_dir):
    model = BertForSequenceClassification.from_pretrained(str(calibrated_dir))
    tokenizer = load_tokenizer(str(calibrated_dir))
    calibrated, raw = Predictor(model, tokenizer), Predictor(model, tokenizer, temperature=1.0)
    assert (calibrated.temperature, raw.temperature) == (2.0, 1.0)
    scaled, plain = calibrated.predict(TEXTS), raw.predict(TEXTS)
    for result, reference in zip(scaled, plain, strict=True):
        expected = (torch.tensor(list(reference.probabilities.values()), dtype=torch.float64).log() / 2.0).softmax(-1)
        assert list(result.probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-6)
        assert result.label == reference.label and result.score == max(result.probabilities.values())
        assert result.score < reference.score  # T > 1 softens an over-confident model
    scores = [result.score for result in scaled]
    threshold = (min(scores) + max(scores)) / 2
    marked = calibrated.predict(TEXTS, min_confidence=threshold)
    assert [result.uncertain for result in marked] == [score < threshold for score in scores]
    assert any(result.uncertain for result in marked) and not all(result.uncertain for result in marked)
    assert not any(result.uncertain for result in scaled)  # no threshold: nothing is marked
    with pytest.raises(InputError, match=r"min_confidence=1\.2 must be in \[0, 1\]"):
        calibrated.predict(TEXTS, min_confidence=1.2)


def test_predict_and_explain_commands_take_min_confidence(calibrated_dir, capsys):
    folder = str(calibrated_dir)
    scores = [p.score for p in Predictor.from_pretrained(folder).predict(TEXTS)]
    threshold = (min(scores) + max(scores)) / 2
    assert main(["predict", "--model", folder, "--min-confidence", repr(threshold), *TEXTS]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["uncertain"] for line in lines] == [score < threshold for score in scores]
    assert [line["score"] for line in lines] == pytest.approx(scores, abs=1e-6)  # calibrated, as the library's

    for bad in ("1.5", "-0.1", "nan", "high"):
        with pytest.raises(SystemExit) as stopped:
            main(["predict", "--model", folder, "--min-confidence", bad, "fine"])
        assert stopped.value.code == 2
        assert "argument --min-confidence" in capsys.readouterr().err

    assert main(["explain", "--model", folder, "--no-color", "--json", "-", "--min-confidence", "1", "fine"]) == 0
    out = capsys.readouterr().out
    assert "uncertain: " in out and "below --min-confidence 1" in out
    assert json.loads(out[out.index("{"):])["uncertain"] is True
