"""Batched sentiment prediction for many texts: the code path the service and benchmarks share.

Texts are tokenised once, sorted by length and cut into batches so each batch is padded only to
its own longest member: with mixed short sentences and long reviews this avoids computing
attention over hundreds of padding positions. Texts longer than the model's window are either
truncated (`long_text="truncate"`, flagged `truncated=True`) or scored as overlapping windows
whose class probabilities are averaged (`long_text="chunk"`), so a long review is not judged by
its first 512 tokens only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from attnlens.calibration import apply_temperature, is_uncertain, temperature_of
from attnlens.cancellation import PredictionCancelled, StopCheck, StopPoll, stop_points
from attnlens.classifier import label_names
from attnlens.errors import InputError
from attnlens.inference.engine import classify
from attnlens.padding import length_sorted_batches, pad_sequences, padding_id
from attnlens.text_windows import (
    LONG_TEXT_MODES,
    check_long_text,
    check_overlap,
    default_overlap,
    window_starts,
)
from attnlens.tokenization import tokenize_user_texts

# PredictionCancelled and StopCheck live in attnlens.cancellation (explanations raise it too).
__all__ = ["LONG_TEXT_MODES", "LongText", "Prediction", "PredictionCancelled", "Predictor", "StopCheck"]

LongText = Literal["truncate", "chunk"]


@dataclass
class Prediction:
    """One text's result; `num_tokens` counts the tokens of the text plus [CLS]/[SEP]."""

    label: str
    score: float  # probability of `label` (calibrated when the model has a temperature)
    probabilities: dict[str, float]
    num_tokens: int  # tokens the model saw (truncate) or the whole text's tokens (chunk)
    truncated: bool  # True when tokens past the model's window were dropped
    num_windows: int = 1  # windows scored for this text (> 1 only with long_text="chunk")
    uncertain: bool = False  # `score` is below the caller's `min_confidence` (the label stays the arg-max)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Window:
    """A token sequence (with special tokens) fed to the model, and the text it belongs to."""

    text_index: int
    input_ids: list[int]
    weight: float  # how much this window counts when a text's windows are averaged


class Predictor:
    """Scores texts with a sequence classifier, batching texts of similar length together.

    `model` is any module called as `model(input_ids, attention_mask=..., token_type_ids=...)`
    returning `.logits` (attnlens' BertForSequenceClassification); `tokenizer` a fast tokenizer.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        chunk_overlap: int | None = None,
        device: str | torch.device | None = None,
        temperature: float | None = None,
    ) -> None:
        """`temperature`: None applies the model's own (attnlens.calibration, 1.0 when it has
        none); 1.0 gives the raw probabilities."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        model_max = int(model.config.max_tokens)
        tokenizer_max = getattr(tokenizer, "model_max_length", model_max) or model_max
        # Tokenizers without a limit report a huge sentinel (1e30); the position table is the
        # real limit.
        self.max_length = int(min(max_length or model_max, model_max, tokenizer_max))
        if self.max_length < 3:
            raise InputError(f"max_length={self.max_length} leaves no room for text; the minimum is 3")
        if batch_size < 1:
            raise InputError(f"batch_size={batch_size} must be at least 1")
        self.batch_size = batch_size
        window_tokens = self.max_length - 2
        self.chunk_overlap = check_overlap(default_overlap(window_tokens) if chunk_overlap is None else chunk_overlap,
                                           window_tokens)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.labels = label_names(model)
        self.temperature = temperature_of(model) if temperature is None else float(temperature)
        if not (self.temperature > 0 and self.temperature != float("inf")):
            raise InputError(f"temperature={temperature!r} must be a positive finite number")
        self.cls_id = tokenizer.cls_token_id
        self.sep_id = tokenizer.sep_token_id
        self.pad_id = padding_id(tokenizer)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, revision: str | None = None, quantize: str | None = None,
                        **kwargs: Any) -> Predictor:
        """Load model and tokenizer from a folder or Hub repo id (see attnlens' public API).

        `quantize="int8"` predicts with the opt-in int8 model (attnlens.inference.quantize).
        """
        from attnlens import load_tokenizer
        from attnlens.inference.quantize import apply_quantization
        from attnlens.loading import load_model

        model = apply_quantization(
            load_model(name_or_path, revision=revision), quantize)
        tokenizer = load_tokenizer(name_or_path, revision=revision)
        return cls(model, tokenizer, **kwargs)

    # -- tokenisation -------------------------------------------------------------------------

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each text without special tokens and without truncation; special-token
        strings in the text are text (`attnlens.tokenization.tokenize_user_texts`)."""
        encoded = tokenize_user_texts(self.tokenizer, texts, add_special_tokens=False, truncation=False,
                                      verbose=False)
        return encoded["input_ids"]

    def _windows(self, text_index: int, ids: list[int], long_text: LongText) -> list[_Window]:
        body = self.max_length - 2
        if len(ids) <= body or long_text == "truncate":
            return [_Window(text_index, [self.cls_id, *ids[:body], self.sep_id], 1.0)]
        starts = window_starts(len(ids), body, self.chunk_overlap)
        return [
            _Window(text_index, [self.cls_id, *ids[start : start + body], self.sep_id], float(body))
            for start in starts
        ]

    # -- inference ----------------------------------------------------------------------------

    @torch.inference_mode()
    def _probabilities(self, windows: list[_Window], should_stop: StopCheck | None = None) -> torch.Tensor:
        """Class probabilities of every window, computed in length-sorted, tightly padded batches.

        `should_stop` is asked before each batch and before each encoder layer (at most every
        `STOP_POLL_INTERVAL_S`, see attnlens.cancellation), so abandoned work stops within a layer.
        """
        probabilities = torch.empty(len(windows), len(self.labels))
        batches = length_sorted_batches([len(window.input_ids) for window in windows], max_rows=self.batch_size)
        poll = StopPoll(should_stop)
        with stop_points(self.model, poll):
            for number, members in enumerate(batches):
                poll(f"after {number * self.batch_size} of {len(windows)} windows")
                input_ids, attention_mask = pad_sequences([windows[i].input_ids for i in members], self.pad_id)
                logits = classify(self.model, input_ids.to(self.device), attention_mask.to(self.device),
                                  torch.zeros_like(input_ids).to(self.device))  # (batch, num_labels)
                probabilities[members] = logits.float().softmax(dim=-1).cpu()
        return probabilities

    def predict(
        self, texts: Sequence[str], *, long_text: LongText = "truncate", should_stop: StopCheck | None = None,
        min_confidence: float | None = None,
    ) -> list[Prediction]:
        """Predict every text; results keep the order of `texts`.

        Any string is read as text: special-token strings in it are ordinary characters, and a
        text without a word piece (empty, blank, or only characters the tokenizer drops, such as
        U+200B or a lone combining accent) gets the model's prediction on [CLS][SEP]
        (`num_tokens=2`). Probabilities are calibrated by the predictor's temperature; a result
        whose score is below `min_confidence` says `uncertain=True`. A non-string or a lone surrogate raises InputError. When `should_stop()`
        says True the call raises PredictionCancelled (attnlens.cancellation) within a layer's work.
        """
        check_long_text(long_text)
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise InputError(f"min_confidence={min_confidence!r} must be in [0, 1]")
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"texts[{index}] is a {type(text).__name__}, not a string")
        if not texts:
            return []
        token_ids = self._token_ids(texts)
        windows = [w for i, ids in enumerate(token_ids) for w in self._windows(i, ids, long_text)]
        window_probabilities = self._probabilities(windows, should_stop)

        totals = torch.zeros(len(texts), len(self.labels), dtype=torch.float64)
        weights = torch.zeros(len(texts), dtype=torch.float64)
        counts = [0] * len(texts)
        for window, probs in zip(windows, window_probabilities, strict=True):
            totals[window.text_index] += window.weight * probs.double()
            weights[window.text_index] += window.weight
            counts[window.text_index] += 1
        averaged = apply_temperature(totals / weights[:, None], self.temperature)

        results = []
        for index, ids in enumerate(token_ids):
            probs = averaged[index].tolist()
            best = max(range(len(probs)), key=probs.__getitem__)
            full_length = len(ids) + 2
            truncated = long_text == "truncate" and full_length > self.max_length
            results.append(
                Prediction(
                    label=self.labels[best],
                    score=float(probs[best]),
                    probabilities={label: float(p) for label, p in zip(self.labels, probs, strict=True)},
                    num_tokens=min(full_length, self.max_length) if truncated else full_length,
                    truncated=truncated,
                    num_windows=counts[index],
                    uncertain=is_uncertain(probs[best], min_confidence),
                )
            )
        return results
