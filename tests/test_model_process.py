"""The service's model process (serving/model_process.py) on its own, with real child processes:
the same answers as the library in-process, a load failure that says why, cancellation, and
nothing lost when the process is killed, before or during a call."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from service_harness import save_tiny_classifier

from attnlens import BertForSequenceClassification, load_tokenizer
from attnlens.explain import explain_batch
from attnlens.predict import PredictionCancelled, Predictor
from serving.model_process import ModelProcess, ModelProcessError

TEXTS = ["a gripping, beautifully acted film.", "the jokes fall flat and the plot drags.", "fine.",
         "naïve but charming 🎬 — worth it"]
# Long texts scored as 512-token windows by a model big enough that a call takes seconds.
LONG_TEXTS = [" ".join(f"scene {i} of a long review that keeps going" for i in range(400))] * 8


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("slow"), hidden_size=256, num_hidden_layers=4,
                                max_position_embeddings=512)


def start(model_dir, **options) -> ModelProcess:
    return ModelProcess(str(model_dir), None, threads=1, batch_size=16, **options)


def test_answers_equal_the_library_in_process(tiny_dir):
    model = BertForSequenceClassification.from_pretrained(str(tiny_dir)).eval()
    tokenizer = load_tokenizer(str(tiny_dir))
    expected = Predictor(model, tokenizer, batch_size=16).predict(TEXTS)
    expected_explanations = explain_batch(model, tokenizer, TEXTS, method="grad_rollout")
    process = start(tiny_dir)
    try:
        predictions = process.predict(TEXTS, "truncate")
        explanations = process.explain(TEXTS, "grad_rollout")
    finally:
        process.close()
    assert [(p.label, p.num_tokens, p.truncated) for p in predictions] == \
        [(p.label, p.num_tokens, p.truncated) for p in expected]
    assert max(abs(p.score - q.score) for p, q in zip(predictions, expected, strict=True)) < 1e-6
    for served, reference in zip(explanations, expected_explanations, strict=True):
        assert [(w.word, w.start, w.end) for w in served.words] == [(w.word, w.start, w.end) for w in reference.words]
        assert max(abs(w.score - r.score) for w, r in zip(served.words, reference.words, strict=True)) < 1e-6
    assert not process.alive
    with pytest.raises(ModelProcessError, match="stopping"):  # not started again once closed
        process.predict(TEXTS, "truncate")


def test_a_model_that_cannot_load_is_an_error_naming_the_file(tiny_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((tiny_dir / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage}......")
    with pytest.raises(ModelProcessError, match=r"(?s)broken.*model.safetensors.*unreadable safetensors file"):
        start(broken)


def test_errors_of_a_call_come_back_and_the_process_goes_on(tiny_dir):
    process = start(tiny_dir)
    try:
        with pytest.raises(ValueError, match="no_such_method"):
            process.explain(TEXTS[:1], "no_such_method")
        assert process.predict(TEXTS[:1], "truncate")[0].label in {"negative", "positive"}
        assert process.restarts == 0
    finally:
        process.close()


def test_an_abandoned_call_stops_early_and_the_next_call_is_not_cancelled(slow_dir):
    process = start(slow_dir)
    try:
        started = time.monotonic()
        full = process.predict(LONG_TEXTS, "chunk")
        full_seconds = time.monotonic() - started
        assert full_seconds > 1.0, "the call must be long enough to cancel in the middle"

        started = time.monotonic()
        with pytest.raises(PredictionCancelled):
            process.predict(LONG_TEXTS, "chunk", should_stop=lambda: time.monotonic() - started > 0.2)
        assert time.monotonic() - started < full_seconds / 2

        again = process.predict(LONG_TEXTS[:2], "chunk", should_stop=lambda: False)
        assert [p.score for p in again] == [p.score for p in full[:2]]
    finally:
        process.close()


def test_sigterm_is_ignored_so_a_process_group_signal_does_not_drop_work(tiny_dir):
    process = start(tiny_dir)
    try:
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert process.alive
        assert len(process.predict(TEXTS, "truncate")) == len(TEXTS) and process.restarts == 0
    finally:
        process.close()


def test_a_killed_process_is_restarted_and_its_calls_are_answered(slow_dir):
    process = start(slow_dir)
    try:
        expected = process.predict(LONG_TEXTS[:4], "chunk")
        first_pid = process.pid
        os.kill(first_pid, signal.SIGKILL)  # between calls
        time.sleep(0.2)
        assert [p.score for p in process.predict(LONG_TEXTS[:4], "chunk")] == [p.score for p in expected]
        assert process.restarts == 1 and process.pid != first_pid

        results: list = []
        call = threading.Thread(target=lambda: results.append(process.predict(LONG_TEXTS[:4], "chunk")))
        second_pid = process.pid
        call.start()
        time.sleep(0.3)
        os.kill(second_pid, signal.SIGKILL)  # during a call: it is retried on a new process
        call.join(120)
        assert results and [p.score for p in results[0]] == [p.score for p in expected]
        assert process.restarts == 2
    finally:
        process.close()
