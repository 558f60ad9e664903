"""What every explanation must satisfy, for every method: finite scores, special tokens at 0,
sums of 1, offsets that point at the right characters (accents, emoji, truncation), the sentence
level, stable results, and one-line errors for unusable input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attnlens import BertConfig, BertForSequenceClassification, InputError
from attnlens.explain import METHODS, Explanation, explain, explain_batch

ACCENTS_AND_EMOJI = "Crème brûlée at the café was naïve 😀 but great😀 — 10/10, don't miss it!"


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def check_invariants(exp: Explanation, text: str) -> None:
    assert exp.text == text
    real = [t for t in exp.tokens if not t.special]
    assert real, "no non-special tokens"
    assert all(math.isfinite(t.score) and t.score >= 0 for t in exp.tokens)
    assert all(t.score == 0.0 for t in exp.tokens if t.special)
    assert [t.token for t in exp.tokens if t.special][:1] == ["[CLS]"] and exp.tokens[-1].token == "[SEP]"
    assert sum(t.score for t in real) == pytest.approx(1.0, abs=1e-6)
    assert sum(w.score for w in exp.words) == pytest.approx(1.0, abs=1e-6)
    for word in exp.words:
        assert text[word.start : word.end] == word.word and word.word.strip() == word.word and word.word
    for token in real:
        assert 0 <= token.start < token.end <= len(text)
    assert sum(s.score for s in exp.sentences) == pytest.approx(1.0, abs=1e-6)
    for sentence in exp.sentences:
        assert text[sentence.start : sentence.end] == sentence.text and sentence.text.strip() == sentence.text
    assert sum(exp.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert exp.label == max(exp.probabilities, key=exp.probabilities.get)
    json.dumps(exp.to_dict())  # JSON-ready


@pytest.mark.parametrize("method", METHODS)
def test_invariants_hold_for_accents_and_emoji(model, tokenizer, method):
    exp = explain(model, tokenizer, ACCENTS_AND_EMOJI, method=method)
    check_invariants(exp, ACCENTS_AND_EMOJI)
    assert not exp.truncated
    words = [w.word for w in exp.words]
    # Accents are stripped by the uncased tokenizer but the offsets give the user's characters back.
    for expected in ("Crème", "brûlée", "café", "naïve", "😀", "great😀", "—", "10", "/", "don", "'", "t", "!"):
        assert expected in words, (expected, words)
    # The lone emoji is unknown to the vocabulary: one [UNK] whose offsets cover exactly the emoji.
    unk = [t for t in exp.tokens if t.token == "[UNK]"]
    assert any(ACCENTS_AND_EMOJI[t.start : t.end] == "😀" for t in unk)


@pytest.mark.parametrize("method", METHODS)
def test_truncated_text_keeps_offsets_into_the_original(model, tokenizer, method):
    text = "  Über-long review:\n" + " ".join(f"word{i} café" for i in range(80))  # > 64 tokens
    exp = explain(model, tokenizer, text, method=method)
    check_invariants(exp, text)
    assert exp.truncated
    assert len(exp.tokens) == model.config.max_position_embeddings
    assert exp.words[0].word == "Über" and exp.words[0].start == 2
    assert exp.words[-1].end < len(text)  # the tail was not read

    shorter = explain(model, tokenizer, text, method=method, max_length=10)
    assert shorter.truncated and len(shorter.tokens) == 10


def test_text_that_just_fits_is_not_truncated(model, tokenizer):
    ids = tokenizer("a b c d e f g h")["input_ids"]
    exp = explain(model, tokenizer, "a b c d e f g h", method="rollout", max_length=len(ids))
    assert not exp.truncated and len(exp.tokens) == len(ids)
    assert explain(model, tokenizer, "a b c d e f g h", method="rollout", max_length=len(ids) - 1).truncated


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_one_by_one_and_is_deterministic(model, tokenizer, method):
    texts = ["a fine film", ACCENTS_AND_EMOJI, "dull", "the plot holds together , mostly ."]
    batched = explain_batch(model, tokenizer, texts, method=method, batch_size=3)
    again = explain_batch(model, tokenizer, texts, method=method, batch_size=3)
    for text, exp, exp_again in zip(texts, batched, again, strict=True):
        single = explain(model, tokenizer, text, method=method)
        assert exp.to_dict() == exp_again.to_dict()
        assert exp.label == single.label and exp.truncated == single.truncated
        assert [t.token for t in exp.tokens] == [t.token for t in single.tokens]
        assert [w.score for w in exp.words] == pytest.approx([w.score for w in single.words], abs=1e-4)


def tokens_inside(exp: Explanation, start: int, end: int) -> list:
    return [t for t in exp.tokens if not t.special and start <= t.start and t.end <= end]


@pytest.mark.parametrize("method", METHODS)
def test_sentences_end_after_end_punctuation_and_sum_their_token_scores(model, tokenizer, method):
    text = "Crème brûlée! The café was naïve 😀... but great😀?  Yes — 10/10"
    exp = explain(model, tokenizer, text, method=method)
    check_invariants(exp, text)
    # Every ".", "!" or "?" ends a sentence ("..." gives one-token sentences); the last needs none.
    assert [s.text for s in exp.sentences] == ["Crème brûlée!", "The café was naïve 😀.", ".", ".", "but great😀?",
                                               "Yes — 10/10"]
    for sentence in exp.sentences:
        assert sentence.score == pytest.approx(sum(t.score for t in tokens_inside(exp, sentence.start, sentence.end)),
                                               abs=1e-9)
    # Each real token lies in exactly one sentence.
    real = [t for t in exp.tokens if not t.special]
    assert sum(len(tokens_inside(exp, s.start, s.end)) for s in exp.sentences) == len(real)
    assert exp.to_dict()["sentences"] == [
        {"text": s.text, "start": s.start, "end": s.end, "score": s.score} for s in exp.sentences]


def test_sentences_of_a_truncated_text_stop_where_reading_stopped(model, tokenizer):
    text = "Good film. " * 10 + "Bad end!"
    exp = explain(model, tokenizer, text, method="rollout", max_length=12)  # [CLS] + 10 pieces + [SEP]
    check_invariants(exp, text)
    assert exp.truncated
    assert [s.text for s in exp.sentences] == ["Good film."] * 3 + ["Good"]
    assert [s.start for s in exp.sentences] == [0, 11, 22, 33] and exp.sentences[-1].end == 37


def test_explaining_leaves_training_mode_and_weights_alone(tokenizer, model):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        first = explain(model, tokenizer, "a fine film", method="grad_rollout")
        second = explain(model, tokenizer, "a fine film", method="grad_rollout")
        assert model.training  # restored
        assert first.to_dict() == second.to_dict()  # dropout was off while explaining
        assert all(p.grad is None for p in model.parameters())
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    finally:
        model.eval()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "   "}, "empty"),
        ({"text": ""}, "empty"),
        ({"text": 42}, "must be a string"),
        ({"text": "ok", "method": "lime"}, "unknown explanation method 'lime'"),
        ({"text": "ok", "target": 2}, "target=2"),
        ({"text": "ok", "target": -1}, "target=-1"),
        ({"text": "ok", "max_length": 65}, "max_length=65"),
        ({"text": "ok", "max_length": 2}, "max_length=2"),
        ({"text": "ok", "method": "integrated_gradients", "n_steps": 0}, "n_steps=0"),
        ({"text": "ok\ud800"}, "lone surrogate U[+]D800 at character 2"),
        ({"text": "ok", "batch_size": 0}, "batch_size=0"),
        ({"text": "ok", "method": "integrated_gradients", "tokens_per_pass": 0}, "tokens_per_pass=0"),
    ],
)
def test_unusable_input_raises_one_line_input_error(model, tokenizer, kwargs, message):
    with pytest.raises(InputError, match=message) as error:
        explain(model, tokenizer, **kwargs)
    assert "\n" not in str(error.value)


def test_batch_rejects_mismatched_targets(model, tokenizer):
    with pytest.raises(InputError, match="2 targets for 3 texts"):
        explain_batch(model, tokenizer, ["a", "b", "c"], method="grad_rollout", target=[0, 1])
    exps = explain_batch(model, tokenizer, ["a", "b"], method="occlusion", target=[0, 1])
    assert [e.target for e in exps] == [0, 1]


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_tokens_per_pass_bounds_each_forward_without_changing_results(model, tokenizer, method, monkeypatch):
    texts = [ACCENTS_AND_EMOJI, "dull", "the plot holds together , mostly ."]
    one_pass = explain_batch(model, tokenizer, texts, method=method, tokens_per_pass=1_000_000)
    shapes: list[tuple[int, int]] = []
    position_ids = model.embeddings.position_ids

    def record(input_ids):  # every forward, engine or reference, asks for the padded batch's positions
        shapes.append(tuple(input_ids.shape))
        return position_ids(input_ids)

    monkeypatch.setattr(model.embeddings, "position_ids", record)
    small = explain_batch(model, tokenizer, texts, method=method, tokens_per_pass=40)
    # After the batch's own forward, every pass holds at most 40 padded tokens or a single row.
    assert len(shapes) > 2 and all(rows * width <= 40 or rows == 1 for rows, width in shapes[1:])
    for exp, reference in zip(small, one_pass, strict=True):
        assert exp.label == reference.label
        assert [t.attribution for t in exp.tokens] == pytest.approx([t.attribution for t in reference.tokens],
                                                                    abs=1e-6)


def test_integrated_gradients_is_complete_on_bert_word_embeddings(tokenizer):
    """Σ attributions = f(x) − f(baseline), the baseline being [PAD] word embeddings at every
    non-special token; this holds only if every gradient through the model is right, including
    the packed products' input-only backward (`attnlens.inference.kernels.input_gradients_only`)."""
    from attnlens.explain.inputs import encode_texts
    from attnlens.explain.integrated_gradients import integrated_gradients

    torch.manual_seed(1)
    # Larger initial weights than BERT's 0.02, so that the logits really depend on the words.
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        initializer_range=0.2, id2label={0: "negative", 1: "positive"})
    model = BertForSequenceClassification(config).eval()
    batch = encode_texts(tokenizer, ["a fine film , truly superb !", "dull"], 64)
    logits, attributions = integrated_gradients(model, batch, n_steps=64)
    word_embeddings = model.get_input_embeddings()
    pad_row = word_embeddings.weight[model.config.pad_token_id].detach()
    keep = batch.special[..., None]
    handle = word_embeddings.register_forward_hook(lambda _m, _i, out: torch.where(keep, out, pad_row))
    try:
        with torch.no_grad():
            baseline = model(**batch.model_inputs()).logits  # the reference model
    finally:
        handle.remove()
    target = logits.argmax(dim=-1, keepdim=True)
    expected = (logits - baseline).gather(1, target).squeeze(1)
    assert expected.abs().min() > 1e-3  # the input really differs from the baseline
    torch.testing.assert_close(attributions.sum(dim=-1), expected, rtol=1e-3, atol=1e-4)
