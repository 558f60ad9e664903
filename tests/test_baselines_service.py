"""A saved HAN served by the real `bentoml serve`: same answers as the library, `native` explanations."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from service_harness import running_server

from attnlens import DEFAULT_BASE_MODEL, load_tokenizer
from attnlens.baselines import HANConfig, HierarchicalAttentionNetwork
from attnlens.explain import explain, sentence_importances
from attnlens.loading import load_model
from attnlens.predict import Predictor

TEXT = "A gripping film. The ending, though, is a mess!"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tokenizer = load_tokenizer(DEFAULT_BASE_MODEL)
    torch.manual_seed(0)
    model = HierarchicalAttentionNetwork(HANConfig(
        vocab_size=tokenizer.vocab_size, embedding_dim=16, hidden_size=8, sentence_hidden_size=8, attention_dim=8,
        embedding_init="random", id2label={0: "negative", 1: "positive"},
        sentence_end_token_ids=tokenizer.convert_tokens_to_ids([".", "!", "?"])))
    with torch.no_grad():
        model.classifier.weight.mul_(100.0)  # clearly different probabilities for different texts
    directory = tmp_path_factory.mktemp("han") / "han"
    model.save_pretrained(directory, tokenizer=tokenizer)
    return directory


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir):
    with running_server(tmp_path_factory.mktemp("serve"), str(model_dir)) as running:
        yield running


def post(server, route: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}{route}", content=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"}, timeout=60)


def test_served_han_predicts_and_explains_natively_like_the_library(server, model_dir):
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    predictor = Predictor(model, tokenizer)
    expected = predictor.predict([TEXT, "dull"])

    response = post(server, "/predict", {"texts": [TEXT, "dull"]})
    assert response.status_code == 200, response.text
    served = response.json()
    assert [p["label"] for p in served] == [p.label for p in expected]
    assert [p["probabilities"] for p in served] == [pytest.approx(p.probabilities, abs=1e-5) for p in expected]

    response = post(server, "/explain", {"text": TEXT, "method": "native", "level": "word"})
    assert response.status_code == 200, response.text
    body = response.json()["explanation"]
    explanation = explain(model, tokenizer, TEXT, method="native", max_length=predictor.max_length)
    assert body["method"] == "native"
    assert [i["text"] for i in body["importances"]] == [w.word for w in explanation.words]
    assert [i["score"] for i in body["importances"]] == pytest.approx([w.score for w in explanation.words], abs=1e-4)

    # Methods that need transformer attention are refused with the usable ones named.
    response = post(server, "/explain", {"text": TEXT, "method": "grad_rollout"})
    assert 400 <= response.status_code < 500, response.text
    assert "native" in response.text and "grad_rollout" in response.text


@pytest.mark.parametrize("method", ["native", "occlusion"])
def test_served_han_sentence_level_equals_the_library(server, model_dir, method):
    """native: the HAN's own sentence attention; other methods: sums of token scores over its split."""
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    max_length = Predictor(model, tokenizer).max_length
    response = post(server, "/explain", {"text": TEXT, "method": method, "level": "sentence"})
    assert response.status_code == 200, response.text
    body = response.json()["explanation"]
    expected = explain(model, tokenizer, TEXT, method=method, max_length=max_length).sentences
    if method == "native":
        assert expected == sentence_importances(model, tokenizer, TEXT, max_length=max_length)
    assert body["level"] == "sentence"
    assert [(i["text"], i["start"], i["end"]) for i in body["importances"]] == [
        ("A gripping film.", 0, 16), ("The ending, though, is a mess!", 17, 47)]
    assert [i["score"] for i in body["importances"]] == pytest.approx([s.score for s in expected], abs=1e-4)
    assert sum(i["score"] for i in body["importances"]) == pytest.approx(1.0, abs=1e-5)
