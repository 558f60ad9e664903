"""Explanations on a model whose right answer is known: one planted word decides the label.

The tiny BERT is trained inside the test (seconds); every method except plain last-layer
attention must put the planted word first in at least 95% of held-out texts, and its ERASER
comprehensiveness must beat a random ranking of the same words (and sufficiency be lower).
"""

from __future__ import annotations

import pytest
from planted_task import PLANTED, planted_examples

from attnlens.explain import METHODS, eraser_aopc, explain_batch, random_ranking, ranking_from_explanation

HELD_OUT = 200
# grad_rollout's default rule, and Chefer et al.'s published rule as an opt-in variant.
VARIANTS = {"grad_rollout:chefer": ("grad_rollout", {"rule": "chefer"})}
RANKED_METHODS = [m for m in (*METHODS, *VARIANTS) if m != "attention"]


@pytest.fixture(scope="module")
def held_out():
    return planted_examples(HELD_OUT, seed=999)


@pytest.fixture(scope="module")
def explanations(planted_model, tokenizer, held_out):
    texts, _ = held_out
    runs = {method: (method, {}) for method in METHODS} | VARIANTS
    return {name: explain_batch(planted_model, tokenizer, texts, method=method, batch_size=100, **kwargs)
            for name, (method, kwargs) in runs.items()}


def test_the_model_learned_the_task(explanations, held_out):
    _, targets = held_out
    predicted = [e.target for e in explanations["rollout"]]
    accuracy = sum(p == t for p, t in zip(predicted, targets, strict=True)) / len(targets)
    assert accuracy >= 0.98


@pytest.mark.parametrize("method", RANKED_METHODS)
def test_planted_word_ranks_first(explanations, method):
    hits = [e.top_words(1)[0].word == PLANTED[e.target] for e in explanations[method]]
    assert sum(hits) / len(hits) >= 0.95, f"{method}: planted word first in {sum(hits)}/{len(hits)}"


def test_an_explanation_of_the_other_class_differs(planted_model, tokenizer):
    """grad_rollout is class-specific: explaining the non-predicted class must not give the same words."""
    text = "the excellent film was on the a of it"
    predicted = explain_batch(planted_model, tokenizer, [text], method="grad_rollout")[0]
    other = explain_batch(planted_model, tokenizer, [text], method="grad_rollout", target=1 - predicted.target)[0]
    assert predicted.target == 1 and other.target == 0
    assert [w.score for w in predicted.words] != pytest.approx([w.score for w in other.words], abs=1e-3)


@pytest.fixture(scope="module")
def faithfulness(planted_model, tokenizer, held_out, explanations):
    texts, _ = held_out
    targets = [e.target for e in explanations["rollout"]]
    results = {
        method: eraser_aopc(planted_model, tokenizer, texts, [ranking_from_explanation(e) for e in exps], targets).mean()
        for method, exps in explanations.items()
    }
    random_rankings = [random_ranking(len(e.words), seed=i) for i, e in enumerate(explanations["rollout"])]
    results["random"] = eraser_aopc(planted_model, tokenizer, texts, random_rankings, targets).mean()
    return results


@pytest.mark.parametrize("method", RANKED_METHODS)
def test_comprehensiveness_beats_random(faithfulness, method):
    ours, chance = faithfulness[method], faithfulness["random"]
    assert ours["comprehensiveness"] > chance["comprehensiveness"] + 0.1, faithfulness
    assert ours["sufficiency"] < chance["sufficiency"] - 0.1, faithfulness
