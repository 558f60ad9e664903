"""Stopping explanations and predictions nobody waits for: where `should_stop` is asked, how
often, and that a cancelled call leaves the model as it found it."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from attnlens.cancellation import (
    STOP_POLL_INTERVAL_S,
    PredictionCancelled,
    StopPoll,
    stop_modules,
    stop_points,
)
from attnlens.explain import METHODS, explain_batch
from attnlens.predict import PredictionCancelled as PredictCancelled

TEXTS = ["a fine film", "dull and long , mostly", "the plot holds together ."]
GRADIENT_METHODS = ("grad_rollout", "integrated_gradients")


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


class SlowAnswers:
    """A `should_stop` that takes longer than the poll interval (so no question is throttled
    away) and says True from question `stop_at` on (never, with None)."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at = stop_at
        self.asked = 0

    def __call__(self) -> bool:
        time.sleep(STOP_POLL_INTERVAL_S * 1.2)
        self.asked += 1
        return self.stop_at is not None and self.asked >= self.stop_at


def test_the_old_import_path_is_the_same_exception():
    assert PredictCancelled is PredictionCancelled


def test_poll_asks_at_most_once_per_interval():
    asked = []
    poll = StopPoll(lambda: asked.append(1) or False)
    for _ in range(1000):
        poll("in a loop")
    assert len(asked) == 1  # the first question always goes through, then the throttle holds
    time.sleep(STOP_POLL_INTERVAL_S * 1.5)
    poll("later")
    assert len(asked) == 2
    StopPoll(None)("without a check")  # nothing to ask


def test_stop_points_are_removed_on_error_and_absent_without_a_check(model):
    layers = stop_modules(model)
    assert layers == list(model.bert.encoder.layer)
    with pytest.raises(PredictionCancelled, match="stopped before layer 0"), \
            stop_points(model, StopPoll(lambda: True)):
        assert all(len(layer._forward_pre_hooks) == 1 for layer in layers)
        model(torch.tensor([[101, 2204, 102]]))
    assert all(not layer._forward_pre_hooks for layer in layers)
    with stop_points(model, StopPoll(None)):
        assert all(not layer._forward_pre_hooks for layer in layers)


def test_stop_points_leave_another_threads_call_alone(model):
    ids = torch.tensor([[101, 2204, 102]])
    outcome = []
    with stop_points(model, StopPoll(lambda: True)):
        thread = threading.Thread(target=lambda: outcome.append(model(ids).logits))
        thread.start()
        thread.join()
        with pytest.raises(PredictionCancelled):
            model(ids)
    assert len(outcome) == 1


def test_explain_batch_asks_before_each_batch(model, tokenizer):
    with pytest.raises(PredictionCancelled, match="after 0 of 3 texts"):
        explain_batch(model, tokenizer, TEXTS, method="attention", should_stop=lambda: True)
    # Per batch of plain attention: the batch's question, then one before and one after each layer.
    second_batch = 1 + 2 * model.config.num_hidden_layers + 1
    with pytest.raises(PredictionCancelled, match="after 1 of 3 texts"):
        explain_batch(model, tokenizer, TEXTS, method="attention", batch_size=1,
                      should_stop=SlowAnswers(stop_at=second_batch))


@pytest.mark.parametrize("method", METHODS)
def test_a_cancelled_explanation_stops_inside_the_model_and_leaves_it_as_it_was(model, tokenizer, method):
    expected = [e.to_dict() for e in explain_batch(model, tokenizer, TEXTS, method=method)]
    count = SlowAnswers()
    assert [e.to_dict() for e in explain_batch(model, tokenizer, TEXTS, method=method, should_stop=count)] == expected
    # The first question is the batch's, the second the first layer's; the last is asked after a
    # layer's forward, or for gradient methods after a layer's backward.
    last = "after the backward of layer" if method in GRADIENT_METHODS else "after layer"
    for stop_at, where in ((2, "before layer 0"), (count.asked, last)):
        model.train()
        grad_enabled = torch.is_grad_enabled()
        with pytest.raises(PredictionCancelled, match=where):
            explain_batch(model, tokenizer, TEXTS, method=method, should_stop=SlowAnswers(stop_at))
        assert model.training  # the caller's mode is back
        model.eval()
        assert torch.is_grad_enabled() == grad_enabled
        assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
        assert all(p.grad is None for p in model.parameters())
        assert [e.to_dict() for e in explain_batch(model, tokenizer, TEXTS, method=method)] == expected
