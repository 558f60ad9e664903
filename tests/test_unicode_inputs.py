"""Any Unicode a user can send through `Predictor.predict` and `explain_batch`, for every method:
defined results, never an unexpected exception.

The rules under test: special-token strings ("[SEP]", "<s>", ...) are plain text; a text the
tokenizer reads no word piece from (zero-width space, BOM, soft hyphen, a lone combining accent,
control or private-use characters ...) is the model's prediction on [CLS] [SEP], with no words and
zero scores; blank texts raise InputError in `explain_batch` (and are predicted as [CLS] [SEP]);
lone surrogates raise InputError in both. Property-based (Hypothesis) on tiny random models with
the real MiniLM tokenizer, plus explicit cases.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnlens import BertConfig, BertForSequenceClassification, InputError
from attnlens.baselines import BiRNNAttentionConfig, BiRNNAttentionForSequenceClassification
from attnlens.explain import METHODS, Explanation, explain_batch
from attnlens.explain.inputs import encode_texts
from attnlens.predict import LONG_TEXT_MODES, Predictor

MAX_LENGTH = 32  # short, so that generated texts are often truncated or chunked
SPECIAL_TOKEN_STRINGS = ["[SEP]", "[CLS]", "[MASK]", "[PAD]", "[UNK]", "<s>", "</s>", "<mask>"]
# Characters the MiniLM tokenizer drops: alone or together they leave no word piece.
DROPPED = ["\u200b", "\ufeff", "\u00ad", "\u2060", "\u0301", "\u0300", "\x00", "\x7f", "\ufffd", "\U000f0000",
           "\u180e", "\U000e0001"]
WORDS = ["good", "bad", "film", "café", "naïve", "😀", "!", ".", "10/10", "don't", "unbelievably"]
GOOD_TEXTS = ["a fine film", "dull [SEP] and long", "the plot holds together , mostly .", "Crème brûlée 😀!"]

pieces = st.one_of(
    st.characters(),  # every category but Cs (surrogates): Cc, Cf, Co, Cn, Mn, Zs, Zl, Zp, letters ...
    st.sampled_from([*DROPPED, " ", "\t", "\n", "\u3000", "\u2028"]),
    st.sampled_from(SPECIAL_TOKEN_STRINGS + WORDS),
)
texts_strategy = st.one_of(
    st.lists(pieces, min_size=1, max_size=40).map("".join),
    st.lists(st.sampled_from(DROPPED), min_size=1, max_size=4).map("".join),  # no word piece at all
    st.lists(pieces, min_size=15, max_size=40).map(" ".join),  # past MAX_LENGTH: truncated, chunked
)
batches = st.lists(texts_strategy, min_size=1, max_size=3)
PROPERTY_SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=MAX_LENGTH,
                        id2label={0: "negative", 1: "positive"})
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(100.0)  # clearly different probabilities for different texts
    return model


@pytest.fixture(scope="module")
def birnn(tokenizer):
    torch.manual_seed(0)
    return BiRNNAttentionForSequenceClassification(BiRNNAttentionConfig(
        vocab_size=tokenizer.vocab_size, embedding_dim=16, hidden_size=16, attention_dim=16,
        id2label={0: "negative", 1: "positive"}, embedding_init="random")).eval()


@pytest.fixture(scope="module")
def predictor(model, tokenizer):
    return Predictor(model, tokenizer, batch_size=2)


def cls_sep_probabilities(model, tokenizer) -> list[float]:
    ids = torch.tensor([[tokenizer.cls_token_id, tokenizer.sep_token_id]])
    with torch.no_grad():
        return model(ids).logits.softmax(dim=-1)[0].tolist()


def check_explanation(exp: Explanation, text: str) -> None:
    assert exp.text == text
    assert all(0 <= t.start <= t.end <= len(text) for t in exp.tokens)
    assert all(math.isfinite(t.score) and math.isfinite(t.attribution) and t.score >= 0 for t in exp.tokens)
    assert all(t.score == 0.0 for t in exp.tokens if t.special)
    assert all(math.isfinite(p) for p in exp.probabilities.values())
    assert sum(exp.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    for word in exp.words:
        assert 0 <= word.start <= word.end <= len(text) and text[word.start : word.end] == word.word
        assert math.isfinite(word.score) and math.isfinite(word.attribution)
    if exp.words:
        assert sum(w.score for w in exp.words) == pytest.approx(1.0, abs=1e-6)
        assert sum(s.score for s in exp.sentences) == pytest.approx(1.0, abs=1e-6)
    else:
        assert [(t.token, t.score) for t in exp.tokens] == [("[CLS]", 0.0), ("[SEP]", 0.0)]
        assert exp.sentences == []
    exp.to_dict()


def explain_or_refuse(model, tokenizer, texts: list[str], method: str) -> list[Explanation] | None:
    """The explanations, or None where a blank text was refused with the documented InputError."""
    if any(not text.strip() for text in texts):
        with pytest.raises(InputError, match="empty or only whitespace"):
            explain_batch(model, tokenizer, texts, method=method)
        return None
    return explain_batch(model, tokenizer, texts, method=method, batch_size=2)


# ------------------------------------------------------------------------------ properties


@pytest.mark.parametrize("method", METHODS)
@PROPERTY_SETTINGS
@given(texts=batches)
def test_any_text_gets_a_well_formed_explanation(model, tokenizer, method, texts):
    explanations = explain_or_refuse(model, tokenizer, texts, method)
    for text, exp in zip(texts, explanations or [], strict=False):
        check_explanation(exp, text)


@PROPERTY_SETTINGS
@given(texts=batches)
def test_any_text_gets_a_well_formed_native_explanation_from_a_baseline(birnn, tokenizer, texts):
    for method in ("native", "integrated_gradients"):
        explanations = explain_or_refuse(birnn, tokenizer, texts, method)
        for text, exp in zip(texts, explanations or [], strict=False):
            check_explanation(exp, text)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(texts=batches)
def test_any_text_gets_a_prediction_in_both_long_text_modes(predictor, texts):
    for long_text in LONG_TEXT_MODES:
        for prediction in predictor.predict(texts, long_text=long_text):
            assert all(math.isfinite(p) for p in prediction.probabilities.values())
            assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
            assert prediction.num_tokens >= 2 and prediction.num_windows >= 1


@settings(max_examples=20, deadline=None, derandomize=True)
@given(text=texts_strategy, surrogate=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
       at=st.integers(min_value=0))
def test_a_lone_surrogate_is_refused_with_input_error(model, predictor, tokenizer, text, surrogate, at):
    at %= len(text) + 1
    bad = text[:at] + surrogate + text[at:]
    message = rf"text 1 holds a lone surrogate U\+{ord(surrogate):04X} at character {at}"
    with pytest.raises(InputError, match=message):
        predictor.predict(["fine", bad])
    with pytest.raises(InputError, match=message):
        explain_batch(model, tokenizer, ["fine", bad], method="attention")


# ------------------------------------------------------------------------------ explicit cases


def test_special_token_strings_are_text_with_offsets_inside_it(tokenizer):
    batch = encode_texts(tokenizer, ["a [SEP] b", " ".join(SPECIAL_TOKEN_STRINGS)], MAX_LENGTH)
    ids = batch.input_ids[0, : batch.lengths[0]].tolist()
    assert ids.count(tokenizer.sep_token_id) == 1 and ids[-1] == tokenizer.sep_token_id
    assert batch.tokens[0] == ["[CLS]", "a", "[", "sep", "]", "b", "[SEP]"]
    pieces = [(s, e) for (s, e), word in zip(batch.offsets[0], batch.word_ids[0], strict=True) if word is not None]
    assert pieces == [(0, 1), (2, 3), (3, 6), (6, 7), (8, 9)]
    assert "a [SEP] b"[2:7] == "[SEP]"
    every = batch.input_ids[1, 1 : batch.lengths[1] - 1].tolist()
    assert not set(every) & set(tokenizer.all_special_ids)


def test_a_tokenizers_own_added_special_tokens_are_text_in_user_text(minilm_dir):
    """RoBERTa-style "<s>", "</s>", "<mask>" as the tokenizer's special tokens: still text."""
    from attnlens import load_tokenizer

    tokenizer = load_tokenizer(minilm_dir)  # a copy of its own: the session's stays untouched
    tokenizer.add_special_tokens({"additional_special_tokens": ["<s>", "</s>", "<mask>"]})
    added = set(tokenizer.convert_tokens_to_ids(["<s>", "</s>", "<mask>"]))
    assert added <= set(tokenizer("x <s> y </s> <mask>")["input_ids"])  # what plain calls would do
    batch = encode_texts(tokenizer, ["x <s> y </s> <mask>"], MAX_LENGTH)
    assert not added & set(batch.input_ids[0].tolist())
    assert [t for t, w in zip(batch.tokens[0], batch.word_ids[0], strict=True) if w is not None][:4] == [
        "x", "<", "s", ">"]


@pytest.mark.parametrize("method", METHODS)
def test_a_text_without_word_pieces_leaves_the_other_texts_exactly_as_they_were(model, tokenizer, method):
    wordless = ["\u200b", "\ufeff\u00ad", "\u2060\u0301"]
    alone = explain_batch(model, tokenizer, wordless[:1], method=method)[0]
    plain = explain_batch(model, tokenizer, GOOD_TEXTS, method=method, batch_size=2)
    mixed_texts = [wordless[0], GOOD_TEXTS[0], GOOD_TEXTS[1], wordless[1], GOOD_TEXTS[2], GOOD_TEXTS[3], wordless[2]]
    mixed = explain_batch(model, tokenizer, mixed_texts, method=method, batch_size=2)
    assert [e.to_dict() for e in mixed if e.words] == [e.to_dict() for e in plain]
    expected = cls_sep_probabilities(model, tokenizer)
    for exp, text in zip(mixed, mixed_texts, strict=True):
        if text in wordless:
            check_explanation(exp, text)
            assert exp.words == [] and not exp.truncated
            assert list(exp.probabilities.values()) == pytest.approx(expected, abs=1e-6)
            assert exp.label == alone.label and exp.probabilities == pytest.approx(alone.probabilities, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_explain_encoded_accepts_cls_sep_rows_among_others(model, tokenizer, method):
    from attnlens.explain import explain_encoded

    texts = ["\u200b", *GOOD_TEXTS[:2]]
    batch = encode_texts(tokenizer, texts, MAX_LENGTH)
    assert batch.tokens[0] == ["[CLS]", "[SEP]"] and batch.word_ids[0] == [None, None]
    explanations = explain_encoded(model, batch, texts, method, None)
    alone = explain_batch(model, tokenizer, GOOD_TEXTS[:2], method=method)
    check_explanation(explanations[0], texts[0])
    for exp, reference in zip(explanations[1:], alone, strict=True):
        check_explanation(exp, exp.text)
        assert exp.label == reference.label
        assert [w.score for w in exp.words] == pytest.approx([w.score for w in reference.words], abs=1e-4)
