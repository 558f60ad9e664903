"""`build_report`: audit a classifier on labelled texts; everything the page and the JSON show.

The passes, in order (under one progress bar):
1. one explanation per text with the model's default method, at word level, read as
   `long_text` says (the first window, or every window combined: attnlens.explain.long_text).
   Its forward passes are also the text's prediction, the Predictor's up to float rounding;
2. predictions with attnlens.predict.Predictor where explanations do not give them: texts
   without a visible character;
3. the deletion check of each class's top words against random words;
4. ERASER faithfulness of the explanations against a random ranking on a sample.
Metrics, calibration, slices and the example lists come from these without more model work.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from attnlens.calibration import (
    CalibrationScores,
    apply_temperature,
    calibration_of,
    calibration_scores,
    fit_temperature,
    temperature_of,
)
from attnlens.classifier import label_names
from attnlens.errors import InputError
from attnlens.explain.api import default_method_for, explain_batch
from attnlens.explain.explanation import Explanation
from attnlens.explain.faithfulness import eraser_aopc, random_ranking, ranking_from_explanation
from attnlens.explain.inputs import resolve_max_length
from attnlens.predict import LONG_TEXT_MODES, Predictor
from attnlens.report.classes import ClassMetrics, class_metrics
from attnlens.report.deletion import (
    DEFAULT_DELETION_TEXTS,
    DEFAULT_DELETION_WORDS,
    DeletionCheck,
    deletion_check,
)
from attnlens.report.slices import Slice, slices
from attnlens.report.words import DEFAULT_MIN_COUNT, DEFAULT_TOP_K, ClassWords, words_by_class

DEFAULT_FAITHFULNESS_EXAMPLES = 100
EXAMPLES_PER_LIST = 10  # worst errors, least sure right answers
EXAMPLES_PER_CELL = 20  # examples listed under each confusion-matrix cell
PROGRESS_CHUNK = 64  # texts per step of the progress bar
# Explanation batches: up to `batch_size` texts (64 by default: short sentences gain from larger
# batches) and at most 16 windows of 512 tokens' worth, which bounds the memory of a backward pass.
EXPLAIN_BATCH_TOKENS = 16 * 512
FAITHFULNESS_CHUNK = 50  # texts per step of the faithfulness pass (x 11 sequences per ranking)


@dataclass
class Example:
    """One text as the page shows it: its label, the prediction, and its word scores."""

    index: int  # row of the data (`row_numbers`; by default the position in the texts)
    text: str
    label: str
    predicted: str
    confidence: float  # calibrated probability of `predicted`
    num_tokens: int
    truncated: bool
    words: list[tuple[int, int, float]] = field(default_factory=list)  # (start, end, score)


@dataclass
class Calibration:
    temperature: float
    temperature_source: str  # "the model's config.json (fit on ...)" or "fit on this data"
    before: CalibrationScores  # raw probabilities (T = 1)
    after: CalibrationScores  # divided by `temperature`


@dataclass
class Faithfulness:
    method: str
    examples: int  # the sample scored (texts with at least one word)
    comprehensiveness: float  # ERASER AOPC; higher is better
    sufficiency: float  # lower is better
    random_comprehensiveness: float  # the same for a random ranking of the words
    random_sufficiency: float
    explanation_ms_per_example: float  # the explanation pass's cost per text


@dataclass
class Report:
    """Everything in the page; `to_json` writes it all, `to_html` draws it (attnlens.report.html)."""

    model: str
    data: str
    num_examples: int
    labels: list[str]
    method: str
    long_text: str
    max_length: int
    metrics: ClassMetrics
    calibration: Calibration
    words: list[ClassWords]  # per predicted class, over all texts
    error_words: list[ClassWords]  # per predicted class, over the wrongly predicted texts
    deletion: list[DeletionCheck]
    confident_errors: list[Example]
    unsure_right: list[Example]
    cell_examples: dict[str, list[Example]]  # "true,predicted" -> the most confident examples
    slices: dict[str, list[Slice]]
    faithfulness: Faithfulness | None
    seconds: dict[str, float]  # wall time of each pass
    # The texts the word tables cite (`WordStat.example`, a position in the texts -> its text), so
    # the page can quote each word in context without keeping every text.
    word_examples: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_html(self) -> str:
        from attnlens.report.html import render_html

        return render_html(self)

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """`folder/report.html` and `folder/report.json`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        html_path, json_path = folder / "report.html", folder / "report.json"
        html_path.write_text(self.to_html(), encoding="utf-8")
        json_path.write_text(self.to_json() + "\n", encoding="utf-8")
        return html_path, json_path


def _chunks(n: int, size: int = PROGRESS_CHUNK) -> list[range]:
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def _example(index: int, texts: Sequence[str], references: Sequence[int], predicted: Sequence[int],
             confidences: Sequence[float], labels: Sequence[str], lengths: tuple[Sequence[int], Sequence[bool]],
             explanations: Sequence[Explanation] | None, row_numbers: Sequence[int]) -> Example:
    words = [] if explanations is None else [(w.start, w.end, round(w.score, 5)) for w in explanations[index].words]
    return Example(index=row_numbers[index], text=texts[index], label=labels[references[index]], predicted=labels[predicted[index]],
                   confidence=confidences[index], num_tokens=lengths[0][index], truncated=lengths[1][index],
                   words=words)


def build_report(
    model,
    tokenizer,
    texts: Sequence[str],
    references: Sequence[int],
    *,
    row_numbers: Sequence[int] | None = None,
    model_name: str = "",
    data_name: str = "",
    method: str | None = None,
    long_text: str = "truncate",
    max_length: int | None = None,
    batch_size: int = 64,
    top_k: int = DEFAULT_TOP_K,
    min_count: int = DEFAULT_MIN_COUNT,
    deletion_words: int = DEFAULT_DELETION_WORDS,
    deletion_texts: int = DEFAULT_DELETION_TEXTS,
    faithfulness_examples: int = DEFAULT_FAITHFULNESS_EXAMPLES,
    seed: int = 0,
    progress: bool = True,
) -> Report:
    """Audit `model` on `texts` with their gold class indices `references` (see the module doc).

    `long_text`: "truncate" or "chunk", as for the predictor (metrics, explanations, the deletion
    check and faithfulness all read texts so). The calibration section uses the model's stored temperature when it has
    one, else fits one on this data (said in `temperature_source`: optimistic, as it is fitted
    and scored on the same texts). `faithfulness_examples=0` leaves the faithfulness section out.
    `method`: None is the model's default (attnlens.explain.api.default_method_for).
    `row_numbers` name the texts' rows in the data in the examples shown (default 0, 1, ...).
    """
    texts, references = list(texts), [int(y) for y in references]
    row_numbers = list(range(len(texts))) if row_numbers is None else list(row_numbers)
    if len(row_numbers) != len(texts):
        raise InputError(f"got {len(row_numbers)} row numbers for {len(texts)} texts")
    labels = label_names(model)
    if not texts:
        raise InputError("the report needs at least one labelled text")
    if len(texts) != len(references):
        raise InputError(f"got {len(texts)} texts and {len(references)} labels")
    bad = [i for i, y in enumerate(references) if not 0 <= y < len(labels)]
    if bad:
        raise InputError(f"row {bad[0]}: label {references[bad[0]]} is not a class of the model ({len(labels)} classes)")
    if long_text not in LONG_TEXT_MODES:
        raise InputError(f"long_text={long_text!r} is not one of {', '.join(LONG_TEXT_MODES)}")
    limit = resolve_max_length(model, max_length)
    method = method or default_method_for(model)
    seconds: dict[str, float] = {}
    # One bar over every pass, in texts; the later passes add theirs when their size is known.
    bar = tqdm(total=len(texts), desc="report", unit="text", disable=not progress)

    # 1. explanations of every text with a visible character
    started = time.perf_counter()
    found: dict[int, Explanation] = {}
    bar.set_postfix_str(f"explaining ({method})")
    for chunk in _chunks(len(texts)):
        readable = [i for i in chunk if texts[i].strip()]
        found.update(zip(readable, explain_batch(model, tokenizer, [texts[i] for i in readable], method=method,
                                                 max_length=limit, batch_size=batch_size, long_text=long_text,
                                                 max_batch_tokens=EXPLAIN_BATCH_TOKENS), strict=True))
        bar.update(len(chunk))
    seconds["explanations"] = time.perf_counter() - started

    # 2. raw predictions (T = 1). A text's prediction is its explained forward passes' own
    # (equal to the Predictor's up to float rounding; the probabilities are un-calibrated
    # again), which saves a pass. The Predictor scores what explanations do not cover: blank
    # texts (read as [CLS] [SEP]).
    started = time.perf_counter()
    bar.set_postfix_str("predicting")
    predictor = Predictor(model, tokenizer, max_length=limit, temperature=1.0)
    scored = [i for i in range(len(texts)) if i not in found]
    bar.total += len(scored)
    scored_predictions: dict[int, Any] = {}
    for chunk in _chunks(len(scored), 256):
        members = [scored[k] for k in chunk]
        scored_predictions.update(zip(members, predictor.predict([texts[i] for i in members], long_text=long_text),
                                      strict=True))
        bar.update(len(members))
    if scored:  # with truncation alone, the predictions came with the explanations
        seconds["predictions"] = time.perf_counter() - started
    model_temperature = temperature_of(model)
    rows, num_tokens, truncated = [], [], []
    for i in range(len(texts)):
        result = scored_predictions.get(i) or found[i]
        rows.append([result.probabilities[name] for name in labels])
        num_tokens.append(result.num_tokens if i in scored_predictions else len(found[i].tokens))
        truncated.append(result.truncated)
    raw = torch.tensor(rows, dtype=torch.float64)
    explained_rows = torch.tensor([i not in scored_predictions for i in range(len(texts))])
    # Explanations carry calibrated probabilities: undo the model's temperature once, for all of them.
    raw[explained_rows] = apply_temperature(raw[explained_rows], 1 / model_temperature)
    record = calibration_of(model.config)
    if record is not None:
        temperature, source = model_temperature, f"the model's config.json (fit on {record.get('fit_on', 'unrecorded data')})"
    else:
        temperature, source = fit_temperature(raw, references), "fit on this data"
    calibrated = apply_temperature(raw, temperature)
    predicted = raw.argmax(dim=-1).tolist()
    confidences = calibrated.max(dim=-1).values.tolist()
    calibration = Calibration(temperature=temperature, temperature_source=source,
                              before=calibration_scores(raw, references), after=calibration_scores(calibrated, references))
    # Blank texts have no words to explain: an empty explanation of their prediction.
    explanations = [found.get(i) or Explanation(text=texts[i], method=method, label=labels[predicted[i]],
                                                target=predicted[i], probabilities={}, truncated=False)
                    for i in range(len(texts))]
    explained = [e.target for e in explanations]  # the class each explanation's scores are evidence for
    wrong = [p != y for p, y in zip(predicted, references, strict=True)]
    words = words_by_class(explanations, explained, labels, top_k=top_k, min_count=min_count)
    error_words = words_by_class(explanations, explained, labels, only=wrong, top_k=top_k, min_count=min_count)
    word_examples = {s.example: texts[s.example] for group in (*words, *error_words)
                     for s in (*group.by_total, *group.by_mean)}

    # 3. deletion check of each class's top words
    started = time.perf_counter()
    class_words = {c: [s.word for s in group.by_total[:deletion_words]] for c, group in enumerate(words)
                   if group.by_total}
    bar.set_postfix_str("deletion check")

    def class_checked(count: int) -> None:
        bar.total += count
        bar.update(count)

    deletion = deletion_check(model, tokenizer, texts, explanations, explained, class_words, labels,
                              max_length=limit, max_texts=deletion_texts, seed=seed, on_class=class_checked,
                              long_text=long_text,
                              # The predictions are of the whole texts as the check reads them.
                              full_probabilities=raw) if deletion_words else []
    seconds["deletion_check"] = time.perf_counter() - started

    # 4. faithfulness on a sample
    faithfulness = None
    if faithfulness_examples:
        started = time.perf_counter()
        candidates = [i for i, e in enumerate(explanations) if e.words]
        sample = sorted(random.Random(seed).sample(candidates, min(faithfulness_examples, len(candidates))))
        if sample:
            bar.total += len(sample)
            bar.set_postfix_str("faithfulness")
            ranked = {"comprehensiveness": [], "sufficiency": []}
            shuffled = {"comprehensiveness": [], "sufficiency": []}
            for chunk in _chunks(len(sample), FAITHFULNESS_CHUNK):
                members = [sample[k] for k in chunk]
                chunk_texts, targets = [texts[i] for i in members], [explained[i] for i in members]
                for totals, rankings in (
                        (ranked, [ranking_from_explanation(explanations[i]) for i in members]),
                        (shuffled, [random_ranking(len(explanations[i].words), seed + i) for i in members])):
                    scores = eraser_aopc(model, tokenizer, chunk_texts, rankings, targets, max_length=limit,
                                         long_text=long_text,
                                         full_probabilities=[float(raw[i, explained[i]]) for i in members])
                    totals["comprehensiveness"] += scores.comprehensiveness
                    totals["sufficiency"] += scores.sufficiency
                bar.update(len(members))
            ranked = {name: sum(values) / len(values) for name, values in ranked.items()}
            shuffled = {name: sum(values) / len(values) for name, values in shuffled.items()}
            n = len(texts)
            faithfulness = Faithfulness(
                method=method, examples=len(sample), comprehensiveness=ranked["comprehensiveness"],
                sufficiency=ranked["sufficiency"], random_comprehensiveness=shuffled["comprehensiveness"],
                random_sufficiency=shuffled["sufficiency"],
                explanation_ms_per_example=1000 * seconds["explanations"] / n)
        seconds["faithfulness"] = time.perf_counter() - started
    bar.close()

    # 5. examples: the most confident errors, the least confident right answers, each cell's
    def example(i: int) -> Example:
        return _example(i, texts, references, predicted, confidences, labels, (num_tokens, truncated), explanations, row_numbers)

    by_confidence = sorted(range(len(texts)), key=lambda i: (-confidences[i], i))
    confident_errors = [example(i) for i in by_confidence if wrong[i]][:EXAMPLES_PER_LIST]
    unsure_right = [example(i) for i in reversed(by_confidence) if not wrong[i]][:EXAMPLES_PER_LIST]
    cell_examples: dict[str, list[Example]] = {}
    for i in by_confidence:
        cell = cell_examples.setdefault(f"{references[i]},{predicted[i]}", [])
        if len(cell) < EXAMPLES_PER_CELL:
            cell.append(_example(i, texts, references, predicted, confidences, labels, (num_tokens, truncated), None, row_numbers))

    return Report(
        model=model_name, data=data_name, num_examples=len(texts), labels=labels, method=method, long_text=long_text,
        max_length=limit, metrics=class_metrics(references, predicted, labels), calibration=calibration,
        words=words, error_words=error_words, deletion=deletion, confident_errors=confident_errors,
        unsure_right=unsure_right, cell_examples=cell_examples,
        slices=slices(references, predicted, confidences, num_tokens, truncated, len(labels)),
        faithfulness=faithfulness, seconds={k: round(v, 3) for k, v in seconds.items()},
        word_examples=word_examples,
    )


def ece_summary(report: Report) -> str:
    """One line for logs: accuracy and ECE before/after temperature scaling."""
    c = report.calibration
    return (f"accuracy {report.metrics.accuracy:.4f}, ECE {c.before.ece:.4f} -> {c.after.ece:.4f} "
            f"(T={c.temperature:.3f}, {c.temperature_source})")


