"""Explanations of texts past the model's window (`long_text="chunk"`): every window explained,
combined with the prediction's weights, offsets into the whole text.

The planted-word model (tests/planted_task.py) reads 512-token windows, so a 1,500-token text is
four windows; the property tests shrink the window (`max_length`) to read many windows cheaply.
"""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planted_task import FILLER

from attnlens.cancellation import PredictionCancelled
from attnlens.explain import METHODS, explain, explain_batch
from attnlens.predict import Predictor
from attnlens.text_windows import default_overlap, window_starts
from attnlens.tokenization import tokenize_user_texts

FAST_METHODS = [m for m in METHODS if m != "integrated_gradients"]


def filler_text(length: int, seed: int, planted: dict[int, str] | None = None) -> str:
    rng = random.Random(seed)
    words = [rng.choice(FILLER) for _ in range(length)]
    for position, word in (planted or {}).items():
        words[position] = word
    return " ".join(words)


def windows_holding(position: int, num_tokens: int, max_length: int = 512) -> list[int]:
    body = max_length - 2
    return [number for number, start in enumerate(window_starts(num_tokens, body, default_overlap(body)))
            if start <= position < start + body]


@pytest.mark.parametrize("method", ["grad_rollout", "occlusion", "integrated_gradients"])
def test_a_word_planted_only_in_the_third_window_is_the_top_word(planted_model, tokenizer, method):
    # Every filler word is one word piece, so word 940 is token 940 (0-based, specials not counted).
    assert windows_holding(940, 1500) == [2]
    text = filler_text(1500, seed=0, planted={940: "excellent"})
    explanation = explain(planted_model, tokenizer, text, method=method, long_text="chunk")
    assert explanation.num_windows == 4 and not explanation.truncated
    assert len(explanation.tokens) == 1502
    top = explanation.top_words(1)[0]
    assert (top.word, text[top.start : top.end]) == ("excellent", "excellent")
    assert explanation.label == "positive"
    # Read from its first window only, the same text has no planted word to find.
    first_window = explain(planted_model, tokenizer, text, method=method)
    assert first_window.truncated and first_window.top_words(1)[0].word != "excellent"


def test_prediction_is_the_chunked_predictors(planted_model, tokenizer):
    texts = [filler_text(1500, seed=1, planted={100: "terrible"}), filler_text(700, seed=2, planted={650: "excellent"}),
             "the film was excellent", filler_text(1200, seed=3)]
    explanations = explain_batch(planted_model, tokenizer, texts, long_text="chunk")
    predictions = Predictor(planted_model, tokenizer).predict(texts, long_text="chunk")
    for explanation, prediction in zip(explanations, predictions, strict=True):
        assert explanation.label == prediction.label
        assert explanation.num_windows == prediction.num_windows
        assert explanation.probabilities == pytest.approx(prediction.probabilities, abs=1e-6)
        assert explanation.target == planted_model.config.label2id[prediction.label]


def test_every_window_explains_the_texts_class(planted_model, tokenizer):
    """A window whose own prediction differs from the text's is explained for the text's class:
    the combined scores are those of windows all explained for one class."""
    text = filler_text(1500, seed=4, planted={20: "terrible", 1400: "excellent", 1410: "excellent"})
    combined = explain(planted_model, tokenizer, text, long_text="chunk")
    assert explain(planted_model, tokenizer, text).label != combined.label  # the first window disagrees
    for target in (0, 1):
        forced = explain(planted_model, tokenizer, text, target=target, long_text="chunk")
        assert forced.target == target and forced.label == combined.label
        if target == combined.target:
            # The same windows for the same class (batched differently: float rounding only).
            assert [t.score for t in forced.tokens] == pytest.approx([t.score for t in combined.tokens], abs=1e-6)
    planted = {w.word: w.score for w in combined.words if w.word in ("terrible", "excellent")}
    assert combined.top_words(1)[0].word == ("excellent" if combined.label == "positive" else "terrible")
    assert len(planted) == 2


@pytest.mark.parametrize("method", FAST_METHODS)
def test_texts_that_fit_are_explained_as_today(planted_model, tokenizer, method):
    texts = ["the film was excellent", "a terrible plot and it was", filler_text(510, seed=5)]
    truncated = explain_batch(planted_model, tokenizer, texts, method=method)
    chunked = explain_batch(planted_model, tokenizer, texts, method=method, long_text="chunk")
    assert chunked == truncated
    assert all(e.num_windows == 1 and not e.truncated for e in chunked)


def test_texts_that_fit_next_to_long_ones_are_unchanged(planted_model, tokenizer):
    short = ["the film was excellent", "a terrible plot and it was"]
    alone = explain_batch(planted_model, tokenizer, short, long_text="chunk")
    mixed = explain_batch(planted_model, tokenizer, [short[0], filler_text(1500, seed=6), short[1]],
                          long_text="chunk")
    for expected, got in zip(alone, [mixed[0], mixed[2]], strict=True):
        assert [t.score for t in got.tokens] == pytest.approx([t.score for t in expected.tokens], abs=1e-6)
        assert got.probabilities == pytest.approx(expected.probabilities, abs=1e-6)


def test_offsets_across_window_boundaries(planted_model, tokenizer):
    """Words cut by a window's edge (their pieces in two windows) come back whole, once, at the
    right characters; tokens carry the whole text's offsets."""
    rng = random.Random(7)
    vocabulary = ["unbelievably", "cinématographie", "naïveté", "overwrought", "über", "😀", "film", "the"]
    text = " ".join(rng.choice(vocabulary) for _ in range(700))
    explanation = explain(planted_model, tokenizer, text, long_text="chunk")
    assert explanation.num_windows > 1
    encoding = tokenize_user_texts(tokenizer, [text], add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(pair) for pair in encoding["offset_mapping"][0]]
    assert [(t.start, t.end) for t in explanation.tokens[1:-1]] == offsets
    assert [t.token for t in explanation.tokens[1:-1]] == tokenizer.convert_ids_to_tokens(encoding["input_ids"][0])
    assert [w.word for w in explanation.words] == text.split(" ")
    assert all(text[w.start : w.end] == w.word for w in explanation.words)
    assert sum(w.score for w in explanation.words) == pytest.approx(1.0)
    sentences = explanation.sentences
    assert sentences[0].start == 0 and sentences[-1].end == len(text)
    assert sum(s.score for s in sentences) == pytest.approx(1.0)


def test_stops_when_the_caller_no_longer_waits(planted_model, tokenizer):
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(PredictionCancelled):
        explain_batch(planted_model, tokenizer, [filler_text(1500, seed=8)] * 3, long_text="chunk", batch_size=1,
                      should_stop=should_stop)
    assert not planted_model.training and torch.is_grad_enabled()


def test_an_unknown_mode_is_refused(planted_model, tokenizer):
    with pytest.raises(ValueError, match="long_text='whole' is not one of truncate, chunk"):
        explain(planted_model, tokenizer, "fine", long_text="whole")


WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(WORDS, min_size=1, max_size=40), max_length=st.integers(4, 16))
def test_any_unicode_text_over_small_windows(planted_model, tokenizer, words, max_length):
    """Over all of Unicode, windows of 2 to 14 tokens: offsets stay in the text and in order,
    scores sum to 1 (or 0 without a word), and the probabilities are the chunked predictor's."""
    text = " ".join(words)
    if not text.strip():
        return
    explanation = explain(planted_model, tokenizer, text, max_length=max_length, long_text="chunk")
    prediction = Predictor(planted_model, tokenizer, max_length=max_length).predict([text], long_text="chunk")[0]
    assert explanation.label == prediction.label and explanation.num_windows == prediction.num_windows
    assert explanation.probabilities == pytest.approx(prediction.probabilities, abs=1e-6)
    starts = [t.start for t in explanation.tokens if not t.special]
    assert starts == sorted(starts)
    assert all(0 <= t.start <= t.end <= len(text) for t in explanation.tokens)
    assert all(text[w.start : w.end] == w.word for w in explanation.words)
    total = sum(w.score for w in explanation.words)
    assert total == pytest.approx(1.0) if explanation.words else total == 0
