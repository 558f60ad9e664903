"""The service over real HTTP: one `bentoml serve` with a tiny model for the whole module.

Results are compared with the library (`Predictor`, `explain`) run in this process on the same
model folder, so the service adds nothing and loses nothing. The folder carries a fitted temperature
(attnlens.calibration), so every such comparison also shows the service calibrates as the library does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bentoml
import httpx
import pytest
from service_harness import load_library, running_server, save_tiny_classifier

from attnlens.calibration import calibration_record, write_calibration
from attnlens.explain import METHODS, explain
from attnlens.predict import Predictor

TEXTS = [
    "a gripping, beautifully acted film.",
    "the plot is thin and the jokes fall flat",
    "ok",
    "one of the worst films i have seen this year , sadly",
]
LONG_TEXT = " ".join(["the story meanders but the acting is superb"] * 60)  # > 128 tokens
TEMPERATURE = 2.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = save_tiny_classifier(tmp_path_factory.mktemp("model") / "tiny")
    # Written before the server starts: it and `library` read the temperature from this config.json.
    write_calibration(folder, calibration_record(TEMPERATURE, fit_on="test", examples=0, nll_before=0.0,
                                                 nll_after=0.0))
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir):
    with running_server(tmp_path_factory.mktemp("serve"), str(model_dir)) as running:
        yield running


@pytest.fixture(scope="module")
def library(model_dir):
    return load_library(model_dir)


def post(server, route: str, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{server.url}{route}", content=content, headers=headers, timeout=60, **kwargs)


def assert_same_prediction(served: dict, expected) -> None:
    assert served["label"] == expected.label
    assert served["num_tokens"] == expected.num_tokens
    assert served["truncated"] == expected.truncated
    assert served["probabilities"] == pytest.approx(expected.probabilities, abs=1e-5)
    assert served["score"] == pytest.approx(expected.score, abs=1e-5)


def test_predict_equals_library_through_bentoml_client(server, library):
    _, _, predictor = library
    with bentoml.SyncHTTPClient(server.url) as client:
        served = client.predict(texts=[*TEXTS, LONG_TEXT])
    expected = predictor.predict([*TEXTS, LONG_TEXT])
    assert len(served) == len(expected)
    for result, prediction in zip(served, expected, strict=True):
        assert_same_prediction(result, prediction)
        assert result["explanation"] is None
    assert served[-1]["truncated"] is True and served[-1]["num_tokens"] == 128
    assert len({round(r["score"], 4) for r in served}) > 1, "the tiny model should separate texts"


def test_served_probabilities_are_calibrated_by_the_models_temperature(server, library):
    model, tokenizer, predictor = library
    assert predictor.temperature == TEMPERATURE
    response = post(server, "/predict", {"texts": TEXTS})
    assert response.status_code == 200, response.text
    served = [list(result["probabilities"].values()) for result in response.json()]
    calibrated = [list(p.probabilities.values()) for p in predictor.predict(TEXTS)]
    raw = [list(p.probabilities.values()) for p in Predictor(model, tokenizer, temperature=1.0).predict(TEXTS)]
    for served_p, calibrated_p, raw_p in zip(served, calibrated, raw, strict=True):
        assert served_p == pytest.approx(calibrated_p, abs=1e-5)
        assert served_p != pytest.approx(raw_p, abs=1e-2)


def test_min_confidence_marks_exactly_the_results_below_it(server):
    plain = post(server, "/predict", {"texts": TEXTS})
    assert plain.status_code == 200, plain.text
    assert [result["uncertain"] for result in plain.json()] == [False] * len(TEXTS)  # the server's default: off
    scores = [result["score"] for result in plain.json()]
    assert max(scores) - min(scores) > 1e-4, scores
    # Just above the lowest score and below the highest: some texts are marked, some are not.
    threshold = (min(scores) + max(scores)) / 2
    marked = post(server, "/predict", {"texts": TEXTS, "min_confidence": threshold})
    assert marked.status_code == 200, marked.text
    assert [result["uncertain"] for result in marked.json()] == [score < threshold for score in scores]
    assert [(r["label"], r["score"]) for r in marked.json()] == [(r["label"], r["score"]) for r in plain.json()]
    explicit_null = post(server, "/predict", {"texts": TEXTS, "min_confidence": None})
    assert [result["uncertain"] for result in explicit_null.json()] == [False] * len(TEXTS)


def test_explain_carries_uncertain(server):
    text = TEXTS[0]
    plain = post(server, "/explain", {"text": text})
    assert plain.status_code == 200, plain.text
    assert plain.json()["uncertain"] is False
    score = plain.json()["score"]
    for threshold, uncertain in ((score + 1e-4, True), (score - 1e-4, False)):
        response = post(server, "/explain", {"text": text, "min_confidence": threshold})
        assert response.status_code == 200, response.text
        assert (response.json()["uncertain"], response.json()["label"]) == (uncertain, plain.json()["label"])


@pytest.mark.parametrize("value", [1.5, -0.1])
def test_min_confidence_outside_zero_to_one_is_a_400_naming_it(server, value):
    for route, body in (("/predict", {"texts": ["ok"]}), ("/explain", {"text": "ok"})):
        response = post(server, route, {**body, "min_confidence": value})
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "min_confidence"
        assert response.json()["error"].startswith("min_confidence: ") and str(value) in response.json()["error"]


def test_long_text_chunk_scores_every_window(server, library):
    _, _, predictor = library
    response = post(server, "/predict", {"texts": [LONG_TEXT, TEXTS[0]], "long_text": "chunk"})
    assert response.status_code == 200, response.text
    expected = predictor.predict([LONG_TEXT, TEXTS[0]], long_text="chunk")
    assert expected[0].num_windows > 1
    for result, prediction in zip(response.json(), expected, strict=True):
        assert_same_prediction(result, prediction)
    assert response.json()[0]["truncated"] is False
    assert response.json()[0]["num_tokens"] > 128


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("level", ["word", "token", "sentence"])
def test_explain_equals_library(server, library, method, level):
    model, tokenizer, predictor = library
    text = "a gripping , beautifully acted film ; unforgettable . the end drags !"
    response = post(server, "/explain", {"text": text, "method": method, "level": level})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_same_prediction(body, predictor.predict([text])[0])
    expected = explain(model, tokenizer, text, method=method, max_length=predictor.max_length)
    items = {"word": expected.words, "token": [t for t in expected.tokens if not t.special],
             "sentence": expected.sentences}[level]
    served = body["explanation"]["importances"]
    assert [(i["start"], i["end"]) for i in served] == [(i.start, i.end) for i in items]
    assert [i["text"] for i in served] == [i.token if level == "token" else text[i.start : i.end] for i in items]
    if level == "sentence":
        assert [i["text"] for i in served] == ["a gripping , beautifully acted film ; unforgettable .", "the end drags !"]
    assert body["explanation"]["level"] == level
    assert [i["score"] for i in served] == pytest.approx([i.score for i in items], abs=1e-4)
    assert sum(i["score"] for i in served) == pytest.approx(1.0, abs=1e-4)
    assert body["explanation"]["method"] == method and body["explanation"]["target"] == expected.target


@pytest.mark.parametrize("level", ["word", "sentence"])
def test_explain_long_text_chunk_covers_the_whole_text(server, library, level):
    model, tokenizer, predictor = library
    text = LONG_TEXT + " . but the ending is a dreadful mess !"
    response = post(server, "/explain", {"text": text, "level": level, "long_text": "chunk"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_same_prediction(body, predictor.predict([text], long_text="chunk")[0])
    expected = explain(model, tokenizer, text, max_length=predictor.max_length, long_text="chunk")
    assert expected.num_windows > 1
    items = expected.words if level == "word" else expected.sentences
    served = body["explanation"]["importances"]
    assert [(i["start"], i["end"]) for i in served] == [(i.start, i.end) for i in items]
    assert served[-1]["end"] == len(text) and served[-1]["text"] == ("!" if level == "word" else
                                                                     "but the ending is a dreadful mess !")
    assert [i["score"] for i in served] == pytest.approx([i.score for i in items], abs=1e-4)
    assert body["explanation"]["target"] == expected.target


def test_predict_with_explain_and_chunk_explains_every_window(server, library):
    model, tokenizer, predictor = library
    response = post(server, "/predict", {"texts": [LONG_TEXT, TEXTS[0]], "explain": True, "long_text": "chunk"})
    assert response.status_code == 200, response.text
    for text, result in zip([LONG_TEXT, TEXTS[0]], response.json(), strict=True):
        expected = explain(model, tokenizer, text, max_length=predictor.max_length, long_text="chunk")
        words = result["explanation"]["importances"]
        assert [(w["start"], w["end"]) for w in words] == [(w.start, w.end) for w in expected.words]
        assert [w["score"] for w in words] == pytest.approx([w.score for w in expected.words], abs=1e-4)
        assert result["label"] == expected.label
    assert response.json()[0]["explanation"]["importances"][-1]["end"] == len(LONG_TEXT)


def test_predict_with_explain_adds_default_explanation(server, library):
    model, tokenizer, predictor = library
    response = post(server, "/predict", {"texts": TEXTS[:2], "explain": True})
    assert response.status_code == 200, response.text
    for text, result in zip(TEXTS[:2], response.json(), strict=True):
        expected = explain(model, tokenizer, text, method="grad_rollout", max_length=predictor.max_length)
        words = result["explanation"]["importances"]
        assert result["explanation"]["method"] == "grad_rollout"
        assert [(w["start"], w["end"]) for w in words] == [(w.start, w.end) for w in expected.words]
        assert [w["score"] for w in words] == pytest.approx([w.score for w in expected.words], abs=1e-4)


def test_control_characters_follow_the_documented_rule(server, library):
    """NUL removed; other C0 controls except tab/newline/CR, DEL and C1 become a space."""
    _, _, predictor = library
    raw = "great\x00 film\x07with\x7fheart\tand\nsoul\x85!"
    response = post(server, "/predict", {"texts": [raw]})
    assert response.status_code == 200, response.text
    assert_same_prediction(response.json()[0], predictor.predict(["great film with heart\tand\nsoul !"])[0])


BAD_INPUTS = [
    # (route, raw body, content type, status, words the one-line message must contain)
    ("/predict", {"texts": [""]}, None, 400, ["texts[0]", "''"]),
    ("/predict", {"texts": ["fine", " \t\n "]}, None, 400, ["texts[1]", "white space"]),
    ("/predict", {"texts": ["\x00\x01"]}, None, 400, ["texts[0]", "control"]),
    ("/predict", {"texts": []}, None, 400, ["texts", "at least 1", "0 items"]),
    ("/predict", {"texts": ["a"] * 65}, None, 400, ["texts", "64", "65 items"]),
    ("/predict", {"texts": ["a" * 20_001]}, None, 400, ["texts[0]", "20000", "20001 characters"]),
    ("/predict", {"texts": "just a string"}, None, 400, ["texts", "array", "'just a string'"]),
    ("/predict", {"texts": [42]}, None, 400, ["texts[0]", "string", "42"]),
    ("/predict", {"texts": ["ok"], "explain": "yes"}, None, 400, ["explain", "boolean", "'yes'"]),
    ("/predict", {"texts": ["ok"], "long_text": "split"}, None, 400, ["long_text", "'split'", "chunk"]),
    ("/predict", {"texts": ["ok"], "min_confidence": "0.5"}, None, 400, ["min_confidence", "number", "'0.5'"]),
    ("/predict", {"text": "ok"}, None, 400, ["text", "unknown field", "texts"]),
    ("/predict", [1, 2], None, 400, ["body", "object"]),
    ("/predict", b'{"texts": ["unterminated', None, 400, ["body", "JSON"]),
    ("/predict", b'{"texts": ["caf\xe9"]}', None, 400, ["body", "UTF-8", "byte 15"]),
    ("/predict", b'{"texts": ["ok"]}', "application/xml", 415, ["content-type", "application/xml", "application/json"]),
    ("/explain", {"text": "ok", "method": "shap"}, None, 400, ["method", "'shap'", "grad_rollout"]),
    ("/explain", {"text": "ok", "level": "paragraph"}, None, 400, ["level", "'paragraph'", "'word'", "'sentence'"]),
    ("/explain", {"text": "   "}, None, 400, ["text", "white space"]),
    ("/explain", {"text": ["a list"]}, None, 400, ["text", "string", "list"]),
    ("/explain", {"text": "x" * 20_001}, None, 400, ["text", "20000"]),
]


@pytest.mark.parametrize(("route", "body", "content_type", "status", "words"), BAD_INPUTS,
                         ids=[f"{r}-{i}" for i, (r, *_) in enumerate(BAD_INPUTS)])
def test_bad_input_gets_4xx_naming_field_value_and_limit(server, route, body, content_type, status, words):
    headers = {"Content-Type": content_type} if content_type else {}
    response = post(server, route, body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert "\n" not in error
    for word in words:
        assert word in error, f"{word!r} not in {error!r}"


def test_oversized_body_gets_413(server):
    response = post(server, "/predict", b'{"texts": ["' + b"a" * (64 * 20_000 * 6 + 70_000) + b'"]}')
    assert response.status_code == 413
    assert "bytes" in response.json()["error"]


def test_fifty_concurrent_requests_all_succeed_with_correct_results(server, library):
    _, _, predictor = library
    texts = [f"{TEXTS[i % len(TEXTS)]} number {i}" + " really" * (i % 7) for i in range(50)]
    expected = predictor.predict(texts)

    def one(i: int) -> httpx.Response:
        return post(server, "/predict", {"texts": [texts[i]]})

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(one, range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    for response, prediction in zip(responses, expected, strict=True):
        assert_same_prediction(response.json()[0], prediction)


def test_swagger_ui_moved_to_docs(server):
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert httpx.get(f"{server.url}/static_content/swagger-initializer.js").status_code == 200


def test_health_readiness_and_metrics(server):
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'attnlens_http_requests_total{endpoint="/livez",status="200"}' in metrics
    assert 'attnlens_batch_texts_count{kind="predict"}' in metrics


def test_by_default_requests_are_traced_and_logged(server):
    """The defaults keep BentoML's request id and access log; tests/test_service_workers.py checks
    that ATTNLENS_TRACE_REQUESTS=0 and ATTNLENS_ACCESS_LOG=0 turn them off."""
    response = post(server, "/predict", {"texts": ["traced and logged"]})
    assert response.status_code == 200
    request_id = response.headers["x-bentoml-request-id"]
    assert "path=/predict" in server.log() and f"span={request_id}" in server.log()


def test_openapi_declares_the_errors_the_server_sends(server):
    document = httpx.get(f"{server.url}/docs.json").json()
    for route in ("/predict", "/explain"):
        responses = document["paths"][route]["post"]["responses"]
        assert {"200", "400", "413", "415", "429", "504"} <= set(responses)
        assert "401" not in responses  # no ATTNLENS_API_KEY on this server
    assert document["components"]["schemas"]["predict__Input"]["properties"]["texts"]["maxItems"] == 64
    for route in ("predict", "explain"):
        field = document["components"]["schemas"][f"{route}__Input"]["properties"]["min_confidence"]
        assert (field["type"], field["minimum"], field["maximum"], field["nullable"]) == ("number", 0, 1, True)
        assert "uncertain" in field["description"]


def test_schemathesis_finds_no_failures(server, tmp_path):
    schemathesis_cli = str(Path(sys.executable).with_name("st"))
    result = subprocess.run(
        [schemathesis_cli, "run", f"{server.url}/docs.json", "--checks", "all", "--workers", "2",
         "--max-examples", "15", "--seed", "1", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout


def test_index_page_in_headless_chromium(server, tmp_path):
    from browser_driver import drive_index_page
    from PIL import Image

    screenshot = tmp_path / "page-after-answer.png"  # kept with the test's other files
    outcome = drive_index_page(f"{server.url}/", "an utterly charming film", tmp_path, screenshot=screenshot)
    assert outcome["state"] == "done", outcome
    assert outcome["label"] in ("positive", "negative")
    assert "".join(outcome["marked"]).replace(" ", "") == "anutterlycharmingfilm"
    assert abs(sum(outcome["scores"]) - 1.0) < 1e-3
    assert outcome["methods"] == list(METHODS)  # read from the server's OpenAPI document
    # The page must not try to load anything from elsewhere.
    assert all(url.startswith(server.url) for url in outcome["requests"]), outcome["requests"]
    # The screenshot shows a page, not a blank: dark text on white, and the orange of highlighted words.
    with Image.open(screenshot) as image:
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=pixels.width * pixels.height)
        assert len(colours) > 16, f"{screenshot}: {len(colours)} colours"
        assert any(r < 80 and g < 80 and b < 80 for _, (r, g, b) in colours), f"{screenshot}: no dark text"
        assert any(r > 200 and 80 < g < 230 and b < 150 for _, (r, g, b) in colours), f"{screenshot}: no highlight"


def test_index_page_shows_a_long_review_whole_with_sentences_and_words(server, library, tmp_path):
    from browser_driver import drive_index_page

    model, tokenizer, predictor = library
    review = " ".join(f"Scene {n} is {'superb' if n % 3 else 'a dreadful bore'}." for n in range(60))
    outcome = drive_index_page(f"{server.url}/", review, tmp_path, paste=True)
    assert outcome["state"] == "done", outcome
    expected = explain(model, tokenizer, review, max_length=predictor.max_length, long_text="chunk")
    assert expected.num_windows > 1
    assert outcome["shown"] == review  # the whole text, each character once
    assert outcome["sentences"] == [s.text for s in expected.sentences] and len(outcome["sentences"]) == 60
    assert outcome["sentence_scores"] == pytest.approx([s.score for s in expected.sentences], abs=1e-4)
    assert outcome["marked"] == [w.word for w in expected.words]
    assert f"in {expected.num_windows} windows" in outcome["details"]
