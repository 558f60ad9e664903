"""Fit a model's temperature on labelled texts (attnlens.calibration has the method): what the
training job does with its validation split and `attnlens calibrate` with any labelled file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from attnlens.calibration import (
    CalibrationScores,
    apply_temperature,
    calibration_record,
    calibration_scores,
    fit_temperature,
)
from attnlens.classifier import label_names
from attnlens.predict import Predictor


@dataclass
class TemperatureFit:
    temperature: float
    before: CalibrationScores  # raw probabilities
    after: CalibrationScores  # with the temperature
    record: dict[str, Any]  # what config.json stores (attnlens.calibration.CALIBRATION_KEY)

    def summary(self) -> dict[str, Any]:
        """The numbers a person reads, without the reliability bins."""
        return {"temperature": self.temperature, "examples": self.record["examples"], "fit_on": self.record["fit_on"],
                **{f"{name}_{when}": getattr(scores, name) for when, scores in (("before", self.before),
                                                                                  ("after", self.after))
                   for name in ("nll", "ece", "brier", "accuracy")}}


def raw_probabilities(model: Any, tokenizer: Any, texts: Sequence[str], *, long_text: str = "truncate",
                      batch_size: int = 32, max_length: int | None = None) -> torch.Tensor:
    """(n, classes) probabilities before any temperature, in the model's label order."""
    predictor = Predictor(model, tokenizer, batch_size=batch_size, max_length=max_length, temperature=1.0)
    names = label_names(model)
    predictions = predictor.predict(list(texts), long_text=long_text)  # type: ignore[arg-type]
    return torch.tensor([[p.probabilities[name] for name in names] for p in predictions], dtype=torch.float64)


def fit_model_temperature(model: Any, tokenizer: Any, texts: Sequence[str], labels: Sequence[int], *, fit_on: str,
                          long_text: str = "truncate", batch_size: int = 32,
                          max_length: int | None = None) -> TemperatureFit:
    raw = raw_probabilities(model, tokenizer, texts, long_text=long_text, batch_size=batch_size, max_length=max_length)
    temperature = fit_temperature(raw, labels)
    before = calibration_scores(raw, labels)
    after = calibration_scores(apply_temperature(raw, temperature), labels)
    record = calibration_record(temperature, fit_on=fit_on, examples=len(texts), nll_before=before.nll,
                                nll_after=after.nll)
    return TemperatureFit(temperature=record["temperature"], before=before, after=after, record=record)
