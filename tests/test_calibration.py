"""Calibration measures against direct computations, temperature scaling's promises, and where the
temperature is stored (config.json, read back by attnlens and harmless to transformers)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import brier_score_loss, log_loss

from attnlens.calibration import (
    CALIBRATION_KEY,
    apply_temperature,
    calibration_record,
    calibration_scores,
    fit_temperature,
    is_uncertain,
    reliability_bins,
    temperature_of,
    write_calibration,
)
from attnlens.errors import ConfigError, InputError


def test_ece_on_a_hand_built_set():
    # Confidences and rights chosen so three of the 15 bins are used:
    # bin (0.6, 0.667]: 0.62, 0.65 -> accuracy 1/2, confidence 0.635
    # bin (0.867, 0.933]: 0.9 x3 -> accuracy 2/3, confidence 0.9
    # bin (0.933, 1]: 1.0 -> accuracy 1, confidence 1.0
    confidences = [0.62, 0.65, 0.9, 0.9, 0.9, 1.0]
    right = [True, False, True, True, False, True]
    labels = [0] * 6
    probabilities = torch.tensor([[c, 1 - c] if r else [1 - c, c] for c, r in zip(confidences, right, strict=True)],
                                 dtype=torch.float64)
    scores = calibration_scores(probabilities, labels)
    expected = (2 / 6) * abs(0.5 - 0.635) + (3 / 6) * abs(2 / 3 - 0.9) + (1 / 6) * abs(1.0 - 1.0)
    assert scores.ece == pytest.approx(expected, abs=1e-12)
    used = [b for b in scores.bins if b.count]
    assert [(round(b.lower, 4), b.count) for b in used] == [(round(9 / 15, 4), 2), (round(13 / 15, 4), 3), (round(14 / 15, 4), 1)]
    assert sum(b.count for b in scores.bins) == 6 and len(scores.bins) == 15
    assert scores.accuracy == pytest.approx(4 / 6)


def test_a_confidence_on_a_bin_edge_falls_in_the_lower_bin():
    bins = reliability_bins(torch.tensor([[2 / 3, 1 / 3]], dtype=torch.float64), [0], bins=3)
    assert [b.count for b in bins] == [0, 1, 0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 1)), min_size=1, max_size=60))
def test_brier_and_nll_equal_scikit_learns(rows):
    p1 = torch.tensor([p for p, _ in rows], dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    labels = [y for _, y in rows]
    probabilities = torch.stack([1 - p1, p1], dim=1)
    scores = calibration_scores(probabilities, labels)
    # Brier's original multi-class form is twice scikit-learn's binary score of the positive class.
    assert scores.brier == pytest.approx(2 * brier_score_loss(labels, p1.numpy(), pos_label=1), abs=1e-9)
    assert scores.nll == pytest.approx(log_loss(labels, probabilities.numpy(), labels=[0, 1]), abs=1e-9)


def over_confident_set(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Logits of a model right 75% of the time that claims about 99%: temperature must rise above 1."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    right = torch.rand(n, generator=generator) < 0.75
    predicted = torch.where(right, labels, (labels + 1 + torch.randint(0, 2, (n,), generator=generator)) % 3)
    logits = torch.randn(n, 3, generator=generator)
    logits[torch.arange(n), predicted] += 6.0
    return logits.softmax(dim=-1).double(), labels.tolist()


def test_temperature_scaling_lowers_nll_and_ece_and_keeps_every_label():
    probabilities, labels = over_confident_set()
    temperature = fit_temperature(probabilities, labels)
    assert temperature > 1.5
    scaled = apply_temperature(probabilities, temperature)
    before, after = calibration_scores(probabilities, labels), calibration_scores(scaled, labels)
    assert after.nll < before.nll - 0.2
    assert after.ece < before.ece / 2
    assert torch.equal(scaled.argmax(dim=-1), probabilities.argmax(dim=-1))
    # The fit is the minimum: a little to either side is worse.
    for nearby in (temperature * 0.9, temperature * 1.1):
        assert calibration_scores(apply_temperature(probabilities, nearby), labels).nll > after.nll


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-30, 30), min_size=4, max_size=4), min_size=1, max_size=30),
       st.floats(0.05, 20.0))
def test_any_temperature_keeps_the_arg_max(logits, temperature):
    probabilities = torch.tensor(logits, dtype=torch.float64).softmax(dim=-1)
    scaled = apply_temperature(probabilities, temperature)
    assert torch.allclose(scaled.sum(dim=-1), torch.ones(len(logits), dtype=torch.float64))
    top = probabilities.max(dim=-1).values
    # Ties may break either way; wherever the maximum is unique the label is the same.
    unique = (probabilities == top[:, None]).sum(dim=-1) == 1
    assert torch.equal(scaled.argmax(dim=-1)[unique], probabilities.argmax(dim=-1)[unique])
    # On one window it is dividing the logits.
    expected = (torch.tensor(logits, dtype=torch.float64) / temperature).softmax(dim=-1)
    assert torch.allclose(scaled, expected, atol=1e-9)


def test_bad_inputs_are_named():
    with pytest.raises(InputError, match="class indices"):
        calibration_scores(torch.tensor([[0.5, 0.5]]), [2])
    with pytest.raises(InputError, match="do not match"):
        fit_temperature(torch.tensor([[0.5, 0.5]]), [0, 1])
    assert is_uncertain(0.6, 0.7) and not is_uncertain(0.7, 0.7) and not is_uncertain(0.1, None)


def test_the_record_lives_in_config_json_and_transformers_loads_it(tmp_path, tokenizer):
    import transformers
    from conftest import save_hf_classifier

    from attnlens.loading import load_model

    folder = save_hf_classifier(tmp_path / "model", tokenizer)
    assert temperature_of(load_model(folder)) == 1.0
    record = calibration_record(1.7, fit_on="validation", examples=10, nll_before=0.5, nll_after=0.4)
    write_calibration(folder, record)
    assert json.loads((folder / "config.json").read_text())[CALIBRATION_KEY]["temperature"] == 1.7
    model = load_model(folder)
    assert temperature_of(model) == 1.7
    model.save_pretrained(tmp_path / "again")  # kept when saved again
    assert temperature_of(load_model(tmp_path / "again")) == 1.7
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    assert getattr(reference.config, CALIBRATION_KEY)["temperature"] == 1.7
    assert temperature_of(reference) == 1.7

    values = json.loads((folder / "config.json").read_text())
    values[CALIBRATION_KEY] = {"temperature": -1}
    (folder / "config.json").write_text(json.dumps(values))
    with pytest.raises(ConfigError, match="temperature must be a positive number"):
        temperature_of(load_model(folder))
    with pytest.raises(ConfigError, match="config.json not found"):
        write_calibration(tmp_path / "nowhere", record)
    assert math.isfinite(record["nll_after"])
