"""Admission by estimated cost: a request that cannot start before its deadline is refused at once.

Counting requests says nothing about the work they bring: one integrated-gradients explanation
of a 512-token review is about as much work as ten thousand one-sentence predictions. Each
lane (predictions, explanations) keeps the estimated cost of the work it has accepted and not
finished, and learns how fast its model processes get through that cost. A request whose wait
behind the backlog would pass the deadline gets 429 with `Retry-After` now, rather than a 504
a minute later.

Costs are in "token passes": a text's tokens times the forward passes its method makes. The
token count is estimated from characters without tokenising (that would cost the event loop as
much as the estimate saves); since the speed is learned in the same unit, a constant bias of
the estimate cancels out and only its proportionality matters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from attnlens.explain.integrated_gradients import DEFAULT_STEPS
from serving.explain_mode import split_mode

# Characters per word piece of English text, on the low side, so a cost is rather over- than
# under-estimated.
CHARS_PER_TOKEN = 3.0
# Forward passes per token of each explanation method, relative to one forward pass (a backward
# counts as two). Occlusion's passes grow with the text's words and are added in `text_cost`.
METHOD_PASSES = {
    "attention": 1.0,
    "rollout": 1.2,
    "grad_rollout": 3.0,
    "integrated_gradients": 3.0 * DEFAULT_STEPS + 1,
    "occlusion": 1.0,
    "native": 1.0,
}
# How much the learned speed moves towards a slower measurement. A faster one is taken at once:
# short calls look slow (their fixed costs dominate), and a speed learned too low would refuse
# requests that would have been served in time, which is worse than a late 504.
RATE_SMOOTHING = 0.2
MIN_MEASURED_S = 0.05


class Overloaded(Exception):
    """The lane's backlog would not let this request start before its deadline (HTTP 429)."""

    def __init__(self, lane: str, wait_s: float, deadline_s: float) -> None:
        self.retry_after = max(1, math.ceil(wait_s))
        super().__init__(f"{lane}: about {wait_s:.0f} s of accepted work is ahead of this request, longer "
                         f"than its {deadline_s:g} s deadline (ATTNLENS_TIMEOUT); retry in {self.retry_after} s")


def token_estimate(text: str) -> float:
    return len(text) / CHARS_PER_TOKEN + 2


def text_cost(text: str, mode: str, max_length: int) -> float:
    """Estimated token passes of one text: `mode` is a prediction's long-text mode or an
    explanation mode (serving/explain_mode.py: a method, chunked or not)."""
    tokens = token_estimate(text)
    windows = max(1, math.ceil(tokens / max(1, max_length - 2)))
    if mode == "chunk":  # every window of the text; they overlap a little
        return windows * max_length * 1.2
    method, long_text = split_mode(mode)
    if long_text == "chunk" and windows > 1:  # every window explained, each as a full one
        return windows * 1.2 * _explanation_cost(max_length, method)
    tokens = min(tokens, max_length)
    if mode in ("truncate", "predict"):
        return tokens
    return _explanation_cost(tokens, method)


def _explanation_cost(tokens: float, method: str) -> float:
    passes = METHOD_PASSES.get(method, 1.0)
    if method == "occlusion":  # one pass per word, about one word per 1.3 pieces
        passes += tokens / 1.3
    return tokens * passes


class Lane:
    """The accepted, unfinished work of one kind and the speed at which it is done.

    The speed is learned per mode (each explanation method, each long-text mode): methods batch
    and scale differently, and one shared speed would misjudge all but the most frequent. The
    backlog is kept in seconds, each request converted at its own mode's speed when admitted.
    """

    def __init__(self, name: str, *, deadline_s: float, parallel: int = 1) -> None:
        self.name = name
        self.deadline_s = deadline_s
        self.parallel = parallel
        self.backlog_s = 0.0  # estimated seconds of one model process for the admitted work
        self.pending = 0  # admitted requests not finished (the backlog's sum can keep float dust)
        self.rates: dict[str, float] = {}  # token passes per second of one model process, per mode

    def _rate(self, mode: str) -> float | None:
        """The mode's speed; before it is measured, the fastest measured one: a speed too low
        would refuse requests that would have been served in time, which is worse than a 504."""
        return self.rates.get(mode) or (max(self.rates.values()) if self.rates else None)

    def seconds(self, mode: str, cost: float) -> float:
        rate = self._rate(mode)
        return 0.0 if rate is None else cost / rate

    def wait_s(self, extra_s: float = 0.0) -> float:
        """Seconds until the backlog (and `extra_s` more) would be done by all model processes."""
        return (self.backlog_s + extra_s) / self.parallel

    def admit(self, mode: str, costs: Sequence[float]) -> float:
        """Accept work of these costs, or raise Overloaded; returns its seconds, to `finish` later.

        A request is refused only when work is already waiting: alone, it is always tried.
        """
        seconds = self.seconds(mode, float(sum(costs)))
        if self.pending and self.wait_s(seconds) > self.deadline_s:
            raise Overloaded(self.name, self.wait_s(), self.deadline_s)
        self.backlog_s += seconds
        self.pending += 1
        return seconds

    def finish(self, seconds: float) -> None:
        """One admitted request is done (answered, failed or abandoned)."""
        self.pending -= 1
        self.backlog_s = max(0.0, self.backlog_s - seconds) if self.pending else 0.0

    def measured(self, mode: str, cost: float, seconds: float) -> None:
        """One model call did `cost` token passes of `mode` in `seconds`. A call shorter than
        MIN_MEASURED_S may set a first speed or raise it, never lower it: its fixed costs (the
        pipe, a [CLS] [SEP] text) make the model look slow."""
        if cost <= 0 or seconds <= 0:
            return
        rate = cost / seconds
        known = self.rates.get(mode)
        if seconds < MIN_MEASURED_S and known is not None and rate < known:
            return
        self.rates[mode] = rate if known is None or rate > known else known + RATE_SMOOTHING * (rate - known)

    def batch_budget(self, mode: str, seconds: float) -> float:
        """The cost one model call of `mode` may take to last about `seconds` (unbounded until measured)."""
        rate = self._rate(mode)
        return math.inf if rate is None else rate * seconds
