"""Can the model's confidence be trusted? Calibration measures and temperature scaling.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T > 0 fitted to minimise
the negative log-likelihood on held-out labelled data. It changes no label (dividing every logit
by the same positive number keeps their order) and usually removes most of a fine-tuned model's
over-confidence. Here it acts on the log-probabilities of a text, `softmax(log p / T)`, which is
`softmax(logits / T)` for a text read in one window, and for a long text scored as windows
(`long_text="chunk"`) acts on the windows' averaged probabilities, so one rule covers both.

The fitted T is stored in the model's `config.json` under `CALIBRATION_KEY`, a key `transformers`
keeps as a plain attribute and otherwise ignores, and every caller (Predictor, explanations, CLI,
service) reads it from there through `temperature_of`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from attnlens.config import read_config_json
from attnlens.errors import ConfigError, InputError

CALIBRATION_KEY = "attnlens_calibration"
ECE_BINS = 15


# -- applying ----------------------------------------------------------------------------------


def calibration_of(config: Any) -> dict[str, Any] | None:
    """The calibration record of a model config (ours keep unknown keys in `extra`; a
    `transformers` config holds them as attributes), or None."""
    value = getattr(config, CALIBRATION_KEY, None)
    if value is None:
        value = (getattr(config, "extra", None) or {}).get(CALIBRATION_KEY)
    return value


def temperature_of(model_or_config: Any) -> float:
    """The model's fitted temperature, 1.0 when it has none; a malformed record is a ConfigError."""
    config = getattr(model_or_config, "config", model_or_config)
    record = calibration_of(config)
    if record is None:
        return 1.0
    temperature = record.get("temperature") if isinstance(record, dict) else None
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"config.json: {CALIBRATION_KEY}.temperature must be a positive number, got {record!r}")
    return float(temperature)


def apply_temperature(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """(n, classes) probabilities -> `softmax(log p / T)`; T = 1 returns them unchanged."""
    if temperature == 1.0:
        return probabilities
    log_p = probabilities.double().clamp_min(0).log()  # log 0 = -inf stays 0 after softmax
    return (log_p / temperature).softmax(dim=-1).to(probabilities.dtype)


def is_uncertain(score: float, min_confidence: float | None) -> bool:
    """True when the winning probability is below the caller's threshold (None or 0: never)."""
    return bool(min_confidence) and score < float(min_confidence)


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class ReliabilityBin:
    """Predictions whose confidence lies in (lower, upper]; the first bin also holds 0."""

    lower: float
    upper: float
    count: int
    confidence: float  # mean confidence in the bin (0 when empty)
    accuracy: float  # share of right predictions in the bin (0 when empty)


@dataclass
class CalibrationScores:
    """Expected calibration error (equal-width confidence bins), Brier score, NLL, and the bins."""

    ece: float
    brier: float
    nll: float
    accuracy: float
    mean_confidence: float
    bins: list[ReliabilityBin]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checked(probabilities: torch.Tensor, labels: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.as_tensor(probabilities, dtype=torch.float64)
    y = torch.as_tensor(list(labels), dtype=torch.long)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise InputError(f"probabilities of shape {tuple(p.shape)} do not match {y.shape[0]} labels")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= p.shape[1]):
        raise InputError(f"labels must be class indices in [0, {p.shape[1]}), got {sorted(set(y.tolist()))}")
    return p, y


def reliability_bins(probabilities: torch.Tensor, labels: Sequence[int], bins: int = ECE_BINS) -> list[ReliabilityBin]:
    p, y = _checked(probabilities, labels)
    confidence, predicted = p.max(dim=-1)
    right = (predicted == y).double()
    # Bin b holds confidences in (b/B, (b+1)/B]; ceil(c * B) - 1 is that b, and 0 joins bin 0.
    index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    result = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        result.append(ReliabilityBin(
            lower=b / bins, upper=(b + 1) / bins, count=count,
            confidence=float(confidence[members].mean()) if count else 0.0,
            accuracy=float(right[members].mean()) if count else 0.0,
        ))
    return result


def calibration_scores(probabilities: torch.Tensor, labels: Sequence[int], bins: int = ECE_BINS) -> CalibrationScores:
    """ECE = sum over bins of (share of examples) x |accuracy - mean confidence|;
    Brier = mean over examples of the squared distance between p and the one-hot label, summed
    over classes (Brier's original form; for two classes it is twice scikit-learn's
    `brier_score_loss` of the positive class); NLL = mean of -log p(label)."""
    p, y = _checked(probabilities, labels)
    n = p.shape[0]
    if n == 0:
        raise InputError("calibration needs at least one labelled example")
    table = reliability_bins(p, y.tolist(), bins)
    ece = sum(b.count / n * abs(b.accuracy - b.confidence) for b in table)
    one_hot = torch.nn.functional.one_hot(y, p.shape[1]).double()
    brier = float(((p - one_hot) ** 2).sum(dim=-1).mean())
    chosen = p.gather(1, y[:, None]).squeeze(1)
    nll = float(-chosen.clamp_min(torch.finfo(torch.float64).tiny).log().mean())
    confidence, predicted = p.max(dim=-1)
    return CalibrationScores(ece=float(ece), brier=brier, nll=nll, accuracy=float((predicted == y).double().mean()),
                             mean_confidence=float(confidence.mean()), bins=table)


# -- fitting -----------------------------------------------------------------------------------


def fit_temperature(probabilities: torch.Tensor, labels: Sequence[int]) -> float:
    """The T > 0 minimising the NLL of `softmax(log p / T)` on these labels (L-BFGS on log T,
    so T stays positive without a constraint)."""
    p, y = _checked(probabilities, labels)
    if p.shape[0] == 0:
        raise InputError("fitting a temperature needs at least one labelled example")
    # Floor -inf (a float32 probability that underflowed) so a wrong 0-probability label gives a
    # large finite loss instead of a NaN gradient.
    log_p = p.clamp_min(1e-300).log()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(log_p / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    # Bounded: a set the model gets all right drives T towards 0 (ever more confident), all
    # wrong towards infinity; neither extreme is a useful model of its confidence.
    return float(log_t.detach().exp().clamp(0.05, 20.0))


# -- storing -----------------------------------------------------------------------------------


def calibration_record(temperature: float, *, fit_on: str, examples: int, nll_before: float,
                       nll_after: float) -> dict[str, Any]:
    return {"temperature": round(float(temperature), 6), "method": "temperature_scaling", "fit_on": fit_on,
            "examples": int(examples), "nll_before": round(nll_before, 6), "nll_after": round(nll_after, 6)}


def attach_calibration(config: Any, record: dict[str, Any] | None) -> None:
    """Set (None: remove) the record on an in-memory config, where `config.to_dict()` writes it."""
    if hasattr(config, "extra"):  # attnlens encoders keep unknown keys in `extra`
        config.extra.pop(CALIBRATION_KEY, None)
        if record is not None:
            config.extra[CALIBRATION_KEY] = record
        return
    setattr(config, CALIBRATION_KEY, record)


def write_calibration(model_dir: str | Path, record: dict[str, Any]) -> Path:
    """Store `record` in `model_dir/config.json`, keeping every other key; written beside and
    renamed, so a crash leaves the old file whole."""
    path = Path(model_dir) / "config.json"
    values = read_config_json(path)
    values[CALIBRATION_KEY] = record
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(json.dumps(dict(sorted(values.items())), indent=2) + "\n")
    os.replace(staging, path)
    return path
