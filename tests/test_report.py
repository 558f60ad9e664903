"""`build_report`, `attnlens report` and `attnlens calibrate` on the planted-word task: the report's
numbers against scikit-learn and the predictor, the planted words as each class's top words, and
the deletion check telling them from random words."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from planted_task import PLANTED, planted_examples
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from attnlens.calibration import CALIBRATION_KEY, temperature_of
from attnlens.cli import main
from attnlens.errors import InputError
from attnlens.loading import load_model
from attnlens.predict import Predictor
from attnlens.report import build_report
from attnlens.report.markdown import report_markdown


@pytest.fixture(scope="module")
def data():
    texts, targets = planted_examples(240, seed=11, neutral_fraction=0.15)
    # Neutral texts (no planted word) get label 0: the model is then wrong on about half of them,
    # which gives the error sections something to show.
    return texts, [1 if t == 1.0 else 0 for t in targets]


@pytest.fixture(scope="module")
def report(planted_model, tokenizer, data):
    texts, labels = data
    return build_report(planted_model, tokenizer, texts, labels, row_numbers=[i + 2 for i in range(len(texts))],
                        model_name="planted", data_name="planted.csv", faithfulness_examples=60, progress=False)


def test_per_class_metrics_and_confusion_equal_scikit_learns(report, planted_model, tokenizer, data):
    texts, labels = data
    predicted = [["negative", "positive"].index(p.label) for p in Predictor(planted_model, tokenizer).predict(texts)]
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=[0, 1], zero_division=0)
    for c, scores in enumerate(report.metrics.per_class):
        assert (scores.precision, scores.recall, scores.f1, scores.support) == pytest.approx(
            (precision[c], recall[c], f1[c], support[c]), abs=1e-12)
    macro = precision_recall_fscore_support(labels, predicted, average="macro", zero_division=0)[:3]
    assert list(report.metrics.macro.values()) == pytest.approx(list(macro), abs=1e-12)
    assert report.metrics.confusion == confusion_matrix(labels, predicted).tolist()
    assert report.metrics.accuracy == pytest.approx(sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels))
    # Every example listed under a cell belongs there, most confident first.
    for cell, examples in report.cell_examples.items():
        true, pred = (int(x) for x in cell.split(","))
        assert all(e.label == report.labels[true] and e.predicted == report.labels[pred] for e in examples)
        assert [e.confidence for e in examples] == sorted((e.confidence for e in examples), reverse=True)
    # The worst errors are errors, the most confident first; row numbers are the caller's.
    errors = report.confident_errors
    assert errors and all(e.label != e.predicted for e in errors)
    assert all(texts[e.index - 2] == e.text for e in errors)


def test_the_planted_words_are_the_top_words_of_their_class(report):
    for c, group in enumerate(report.words):
        assert group.by_total[0].word == PLANTED[c]
        assert group.by_mean[0].word == PLANTED[c]
        assert group.by_total[0].count >= 50
    by_label = {check.label: check for check in report.deletion}
    for c, label in enumerate(report.labels):
        check = by_label[label]
        assert check.words[0] == PLANTED[c] and check.texts >= 50
        # Deleting the class's top words moves the model far more than deleting as many random words.
        assert check.top_drop > check.random_drop + 0.15, check
        assert check.top_flip_rate >= check.random_flip_rate


def test_faithfulness_calibration_and_slices(report, data):
    f = report.faithfulness
    assert f is not None and f.examples == 60
    assert f.comprehensiveness > f.random_comprehensiveness + 0.1
    assert f.sufficiency < f.random_sufficiency
    c = report.calibration
    assert c.temperature_source == "fit on this data"
    assert c.after.nll <= c.before.nll + 1e-9
    assert sum(b.count for b in c.before.bins) == len(data[0])
    assert sum(s.examples for s in report.slices["length"]) == len(data[0])
    assert [s.name for s in report.slices["truncated"]] == ["read whole"]


def test_json_holds_every_section_and_markdown_the_tables(report):
    values = json.loads(report.to_json())
    for key in ("metrics", "calibration", "words", "error_words", "deletion", "confident_errors", "unsure_right",
                "cell_examples", "slices", "faithfulness", "seconds"):
        assert values[key], key
    assert values["metrics"]["confusion"] == report.metrics.confusion
    markdown = report_markdown(report)
    negatives = report.metrics.confusion[0]
    assert f"| **negative** | {negatives[0]:,} | {negatives[1]:,} |" in markdown
    assert f"| negative | {report.metrics.per_class[0].precision:.4f} |" in markdown


def test_bad_calls_are_refused_naming_the_problem(planted_model, tokenizer):
    with pytest.raises(InputError, match="at least one"):
        build_report(planted_model, tokenizer, [], [], progress=False)
    with pytest.raises(InputError, match="row 1: label 2"):
        build_report(planted_model, tokenizer, ["a", "b"], [0, 2], progress=False)
    with pytest.raises(InputError, match="long_text"):
        build_report(planted_model, tokenizer, ["a"], [0], long_text="all", progress=False)


def test_calibrate_then_report_from_the_command_line(tmp_path, planted_model, tokenizer, data, capsys):
    folder = tmp_path / "model"
    planted_model.save_pretrained(folder, tokenizer=tokenizer)
    texts, labels = data
    data_file = tmp_path / "held_out.csv"
    with data_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        writer.writerows((text, ["negative", "positive"][y]) for text, y in zip(texts, labels, strict=True))
    raw = Predictor(planted_model, tokenizer, temperature=1.0).predict(texts[:5])

    args = ["--model", str(folder), "--data", str(data_file), "--text-column", "review", "--label-column", "sentiment"]
    assert main(["calibrate", *args]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["nll_after"] <= summary["nll_before"] and summary["examples"] == len(texts)
    stored = json.loads((folder / "config.json").read_text())[CALIBRATION_KEY]
    assert stored["temperature"] == summary["temperature"] and stored["fit_on"] == str(data_file)
    model = load_model(folder)
    assert temperature_of(model) == summary["temperature"]
    calibrated = Predictor(model, tokenizer).predict(texts[:5])
    for before, after in zip(raw, calibrated, strict=True):
        assert after.label == before.label
        p_raw = torch.tensor(list(before.probabilities.values()), dtype=torch.float64)
        expected = (p_raw.log() / summary["temperature"]).softmax(dim=-1)
        assert list(after.probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-6)

    out = tmp_path / "report"
    assert main(["report", *args, "--output", str(out), "--max-examples", "50", "--faithfulness-examples", "0"]) == 0
    assert "wrote" in capsys.readouterr().out
    values = json.loads((out / "report.json").read_text())
    assert values["num_examples"] == 50 and values["faithfulness"] is None
    assert values["calibration"]["temperature"] == summary["temperature"]
    assert values["calibration"]["temperature_source"].startswith("the model's config.json")
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")

    assert main(["report", *args, "--output", str(out), "--max-examples", "0"]) == 2
    assert "--max-examples 0 must be at least 1" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(tmp_path / "missing"), "--data", str(data_file)]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_predictions_equal_the_predictors_in_both_long_text_modes_and_blank_texts_count(planted_model, tokenizer):
    long_text = " ".join(["the film was"] * 200) + " terrible"  # past the 512-token window
    texts = ["   ", long_text, "an excellent film", "a terrible one"]
    labels = [0, 0, 1, 0]
    for mode in ("truncate", "chunk"):
        report = build_report(planted_model, tokenizer, texts, labels, long_text=mode, faithfulness_examples=0,
                              deletion_words=0, progress=False)
        expected = Predictor(planted_model, tokenizer, temperature=1.0).predict(texts, long_text=mode)
        shown = {e.index: e for cell in report.cell_examples.values() for e in cell}
        assert sorted(shown) == [0, 1, 2, 3]
        for i, prediction in enumerate(expected):
            assert shown[i].predicted == prediction.label
            assert shown[i].num_tokens == prediction.num_tokens and shown[i].truncated == prediction.truncated
        # Raw probabilities enter the calibration figures: NLL before scaling equals the Predictor's.
        nll = -sum(torch.tensor(p.probabilities[report.labels[y]]).log() for p, y in zip(expected, labels, strict=True))
        assert report.calibration.before.nll == pytest.approx(float(nll) / len(texts), abs=1e-5)
        assert [s.name for s in report.slices["truncated"]] == (["truncated", "read whole"] if mode == "truncate"
                                                               else ["read whole"])


def test_chunked_report_explains_past_the_first_window(planted_model, tokenizer):
    """With long_text="chunk" the planted word late in a long text is found by the word tables,
    the examples' shading and the deletion check, which read every window."""
    filler = " ".join(["the film was on a"] * 130)  # 650 words, one piece each: past the window
    texts = [f"{filler} {PLANTED[c]} {filler[:200]}" for c in (0, 1) for _ in range(6)]
    labels = [c for c in (0, 1) for _ in range(6)]
    report = build_report(planted_model, tokenizer, texts, labels, long_text="chunk", faithfulness_examples=6,
                          deletion_words=1, progress=False)
    assert report.metrics.accuracy == 1.0
    for c in (0, 1):
        assert report.words[c].by_mean[0].word == PLANTED[c]
        check = report.deletion[c]
        assert check.words == [PLANTED[c]] or PLANTED[c] in check.words
    shown = [e for cell in report.cell_examples.values() for e in cell]
    assert all(not e.truncated for e in shown)
    errors_and_unsure = report.confident_errors + report.unsure_right
    top = max(errors_and_unsure[0].words, key=lambda w: w[2])
    assert errors_and_unsure[0].text[top[0] : top[1]] in PLANTED.values()
    assert report.faithfulness.comprehensiveness > report.faithfulness.random_comprehensiveness
    truncated = build_report(planted_model, tokenizer, texts, labels, long_text="truncate", faithfulness_examples=0,
                             deletion_words=0, progress=False)
    assert truncated.metrics.accuracy < 1.0  # the first window holds no planted word
