"""The pre-BERT baselines: pooling formulas, HAN's sentence rule, save/load, native explanations.

Everything runs on tiny random models with the real MiniLM tokenizer; the planted-word models are
trained for a few seconds each (see tests/planted_task.py).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from planted_task import LABELS, PLANTED, fit_planted, planted_examples

from attnlens import BertForSequenceClassification, CheckpointError, ConfigError, InputError
from attnlens.baselines import (
    BiRNNAttentionConfig,
    BiRNNAttentionForSequenceClassification,
    HANConfig,
    HierarchicalAttentionNetwork,
    split_sentences,
)
from attnlens.baselines.han import ContextAttention
from attnlens.baselines.pooling import AttentionPooling, LocalPAttention
from attnlens.explain import explain, explain_batch, sentence_importances
from attnlens.explain.grad_rollout import gradient_weighted_rollout
from attnlens.explain.inputs import encode_texts
from attnlens.explain.rollout import attention_rollout
from attnlens.loading import load_model

POOLING_KINDS = ("additive", "dot", "general", "concat")


@pytest.fixture(autouse=True)
def one_thread():
    """Small recurrent steps gain nothing from a second thread, and on 2 loaded cores OpenMP threads
    spinning against each other made a BiGRU forward ~19x slower (measured: 0.1 s vs 1.9 s per batch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def end_ids(tokenizer) -> list[int]:
    return tokenizer.convert_tokens_to_ids([".", "!", "?"])


def tiny_birnn(tokenizer, seed: int = 0, **overrides) -> BiRNNAttentionForSequenceClassification:
    torch.manual_seed(seed)
    values = dict(vocab_size=tokenizer.vocab_size, embedding_dim=16, hidden_size=16, attention_dim=16,
                  dropout=0.1, id2label=dict(LABELS), embedding_init="random")
    values.update(overrides)
    return BiRNNAttentionForSequenceClassification(BiRNNAttentionConfig(**values))


def tiny_han(tokenizer, seed: int = 0, **overrides) -> HierarchicalAttentionNetwork:
    torch.manual_seed(seed)
    values = dict(vocab_size=tokenizer.vocab_size, embedding_dim=16, hidden_size=16, sentence_hidden_size=16,
                  attention_dim=16, dropout=0.1, id2label=dict(LABELS), embedding_init="random",
                  sentence_end_token_ids=end_ids(tokenizer), max_sentence_length=8)
    values.update(overrides)
    return HierarchicalAttentionNetwork(HANConfig(**values))


# ------------------------------------------------------------------------------ formulas


def random_states(batch: int = 3, seq: int = 7, dim: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, seq, dim, generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 2:] = False
    return states, mask


def textbook_score(pooling: AttentionPooling, kind: str, q: torch.Tensor, h: torch.Tensor) -> float:
    """One score written out from the papers, with plain vector operations."""
    score = pooling.score
    if kind == "dot":
        return float(q @ h)
    if kind == "general":
        return float(q @ score.weight @ h)
    if kind == "additive":
        hidden = score.query_proj.weight @ q + score.key_proj.weight @ h + score.key_proj.bias
        return float(score.v.detach() @ torch.tanh(hidden))
    return float(score.v.detach() @ torch.tanh(score.proj.weight @ torch.cat([q, h]) + score.proj.bias))


@pytest.mark.parametrize("query", ["learned", "final_state"])
@pytest.mark.parametrize("kind", POOLING_KINDS)
def test_attention_pooling_is_the_softmax_of_the_papers_scores_over_real_tokens(kind, query):
    torch.manual_seed(1)
    pooling = AttentionPooling(kind, 6, 5, query=query)
    states, mask = random_states()
    final = torch.randn(3, 6)
    pooled, weights = pooling(states, mask, final_state=final)
    for b in range(3):
        q = pooling.query.detach() if query == "learned" else final[b]
        valid = int(mask[b].sum())
        scores = torch.tensor([textbook_score(pooling, kind, q, states[b, s]) for s in range(valid)])
        expected = torch.softmax(scores, dim=0)
        torch.testing.assert_close(weights[b, :valid].detach(), expected, rtol=1e-5, atol=1e-6)
        assert (weights[b, valid:] == 0).all()
        torch.testing.assert_close(pooled[b].detach(), expected @ states[b, :valid], rtol=1e-5, atol=1e-6)


def test_local_p_is_luongs_predicted_position_and_gaussian_window():
    torch.manual_seed(2)
    window = 2
    local = LocalPAttention("general", 6, 5, window)
    states, mask = random_states(seq=9)
    query = torch.randn(3, 6)
    weights = local(query, states, mask).detach()
    sigma = window / 2
    for b in range(3):
        length = int(mask[b].sum())
        p = length * torch.sigmoid(local.v_p @ torch.tanh(local.position_proj.weight @ query[b]))
        inside = [s for s in range(length) if abs(s - float(p)) <= window]
        scores = torch.tensor([float(query[b] @ local.score.weight @ states[b, s]) for s in inside])
        align = torch.softmax(scores, dim=0)
        expected = torch.zeros(9)
        for a, s in zip(align, inside, strict=True):
            expected[s] = a * math.exp(-((s - float(p)) ** 2) / (2 * sigma**2))
        torch.testing.assert_close(weights[b], expected, rtol=1e-5, atol=1e-6)


def test_local_p_position_gets_a_gradient_through_the_gaussian():
    torch.manual_seed(3)
    local = LocalPAttention("dot", 6, 5, 2)
    states, mask = random_states(seq=9)
    local(torch.randn(3, 6), states, mask).sum().backward()
    assert local.v_p.grad is not None and local.v_p.grad.abs().sum() > 0
    assert local.position_proj.weight.grad.abs().sum() > 0


def test_han_attention_is_yangs_context_vector_softmax():
    torch.manual_seed(4)
    attention = ContextAttention(6, 5)
    states, mask = random_states()
    pooled, weights = attention(states, mask)
    for b in range(3):
        valid = int(mask[b].sum())
        u = torch.tanh(states[b, :valid] @ attention.proj.weight.T + attention.proj.bias)
        expected = torch.softmax(u @ attention.context.detach(), dim=0)
        torch.testing.assert_close(weights[b, :valid].detach(), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pooled[b].detach(), expected @ states[b, :valid], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ sentences


def test_sentences_end_after_end_punctuation_and_long_ones_are_cut(tokenizer):
    encoded = tokenizer(["Great film. I loved it! Why?", "one two three four five six seven eight nine ten"],
                        padding=True, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"].bool()
    sentence, position = split_sentences(ids, mask, torch.tensor(end_ids(tokenizer)), max_sentence_length=4)
    tokens = tokenizer.convert_ids_to_tokens(ids[0])
    assert tokens == ["[CLS]", "great", "film", ".", "i", "loved", "it", "!", "why", "?", "[SEP]", "[PAD]"]
    assert sentence[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, -1]
    assert position[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 0, -1]
    # No punctuation: 12 tokens cut into pieces of 4.
    assert sentence[1].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert position[1].tolist() == [0, 1, 2, 3] * 3


def test_a_long_sentence_is_cut_from_its_own_start(tokenizer):
    encoded = tokenizer(["ok. a b c d e f g"], return_tensors="pt")  # [CLS] ok . | a..g [SEP]
    sentence, position = split_sentences(encoded["input_ids"], encoded["attention_mask"].bool(),
                                         torch.tensor(end_ids(tokenizer)), max_sentence_length=3)
    assert sentence[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert position[0].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1]


# ------------------------------------------------------------------------------ batching


@pytest.mark.parametrize("build", [tiny_birnn, tiny_han], ids=["birnn", "han"])
def test_padding_does_not_change_a_texts_output(tokenizer, build):
    """Packed RNNs: a short text gets the same logits alone and beside a long one."""
    model = build(tokenizer).eval()
    short = "a fine film."
    long = "this is a much longer review. it goes on and on! and then it ends with a question?"
    alone = tokenizer([short], return_tensors="pt")
    together = tokenizer([short, long], padding=True, return_tensors="pt")
    with torch.no_grad():
        first = model(alone["input_ids"], attention_mask=alone["attention_mask"])
        second = model(together["input_ids"], attention_mask=together["attention_mask"])
    torch.testing.assert_close(first.logits[0], second.logits[0], rtol=1e-5, atol=1e-6)
    width = alone["input_ids"].shape[1]
    torch.testing.assert_close(first.attentions[0], second.attentions[0, :width], rtol=1e-5, atol=1e-6)
    assert (second.attentions[0, width:] == 0).all()


# ------------------------------------------------------------------------------ save / load


@pytest.mark.parametrize("build", [
    tiny_birnn,
    lambda t: tiny_birnn(t, attention="local_p", query="final_state", rnn_type="lstm", num_layers=2),
    tiny_han,
], ids=["birnn-additive", "bilstm-local_p", "han"])
def test_save_and_load_give_identical_outputs(tmp_path, tokenizer, build):
    model = build(tokenizer).eval()
    model.save_pretrained(tmp_path, tokenizer=tokenizer)
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert not loaded.training
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == model.config.model_type
    assert config["architectures"] == [type(model).__name__]
    encoded = tokenizer(["a gripping film. superb!", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(encoded["input_ids"], attention_mask=encoded["attention_mask"])
        after = loaded(encoded["input_ids"], attention_mask=encoded["attention_mask"])
    assert torch.equal(before.logits, after.logits)
    assert torch.equal(before.attentions, after.attentions)


def test_loading_is_strict_and_names_the_key(tmp_path, tokenizer):
    from safetensors.torch import load_file, save_file

    model = tiny_birnn(tokenizer)
    model.save_pretrained(tmp_path, tokenizer=tokenizer)
    state = load_file(tmp_path / "model.safetensors")
    del state["classifier.bias"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing weight 'classifier.bias'"):
        load_model(tmp_path)

    model.save_pretrained(tmp_path, tokenizer=tokenizer)
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden_size"] = 8
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"weight 'encoder.weight_ih_l0' has shape"):
        load_model(tmp_path)

    config["hidden_size"], config["atention"] = 16, "dot"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="unknown key 'atention'"):
        load_model(tmp_path)

    with pytest.raises(ConfigError, match="model_type='bert', expected 'attnlens_han'"):
        HierarchicalAttentionNetwork.from_pretrained(_bert_folder(tmp_path / "bert", tokenizer))


def _bert_folder(directory, tokenizer):
    from conftest import save_hf_classifier

    return save_hf_classifier(directory, tokenizer)


def test_load_model_still_loads_bert(tmp_path, tokenizer):
    model = load_model(_bert_folder(tmp_path, tokenizer))
    assert isinstance(model, BertForSequenceClassification)


def test_config_rejects_unknown_choices():
    with pytest.raises(ConfigError, match="attention='luong' must be one of"):
        BiRNNAttentionConfig(attention="luong")
    with pytest.raises(ConfigError, match="sentence_end_token_ids holds 40000"):
        HANConfig(sentence_end_token_ids=[40000])


# ------------------------------------------------------------------------------ planted task


def train_on_planted(model, tokenizer, with_sentences: bool, seed: int = 1, max_steps: int = 600):
    """Adam until the smoothed loss is near the floor the neutral fifth imposes (0.2 ln 2 ≈ 0.14)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    fit_planted(model, tokenizer, optimizer, seed, max_steps, stop_below=0.15,
                transform=as_sentences if with_sentences else None)
    return model.eval()


def as_sentences(text: str) -> str:
    """Planted texts cut into two sentences, so the HAN's sentence level has something to choose."""
    words = text.split()
    return " ".join(words[: len(words) // 2]) + ". " + " ".join(words[len(words) // 2 :]) + "."


PLANTED_MODELS = {
    "birnn-additive": lambda t: tiny_birnn(t, attention="additive"),
    "birnn-dot": lambda t: tiny_birnn(t, attention="dot"),
    "birnn-general": lambda t: tiny_birnn(t, attention="general", query="final_state"),
    "birnn-concat": lambda t: tiny_birnn(t, attention="concat"),
    "birnn-local_p": lambda t: tiny_birnn(t, attention="local_p", query="final_state", local_window=4),
    "han": tiny_han,
}


@pytest.mark.parametrize("name", PLANTED_MODELS)
def test_learns_the_planted_task_and_native_attention_ranks_the_planted_word_first(tokenizer, name):
    with_sentences = name == "han"
    model = train_on_planted(PLANTED_MODELS[name](tokenizer), tokenizer, with_sentences)
    texts, targets = planted_examples(200, seed=987_654)
    if with_sentences:
        texts = [as_sentences(t) for t in texts]
    explanations = explain_batch(model, tokenizer, texts, method="native", batch_size=100)
    accuracy = sum(e.target == int(y) for e, y in zip(explanations, targets, strict=True)) / len(texts)
    planted_first = sum(e.top_words(1)[0].word == PLANTED[int(y)]
                        for e, y in zip(explanations, targets, strict=True)) / len(texts)
    assert accuracy >= 0.95, accuracy
    assert planted_first >= 0.95, planted_first


# ------------------------------------------------------------------------------ explanations


def test_native_explanation_has_the_shared_format(tokenizer):
    model = tiny_han(tokenizer).eval()
    text = "A gripping film. Truly superb!"
    explanation = explain(model, tokenizer, text, method="native")
    assert explanation.method == "native"
    assert math.isclose(sum(w.score for w in explanation.words), 1.0, rel_tol=1e-6)
    assert [w.word for w in explanation.words] == ["A", "gripping", "film", ".", "Truly", "superb", "!"]
    assert all(text[w.start : w.end] == w.word for w in explanation.words)
    assert set(explanation.probabilities) == {"negative", "positive"}
    # Word level x sentence level: a token's raw attribution is its word weight times its sentence's.
    encoded = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        output = model(encoded["input_ids"], attention_mask=encoded["attention_mask"])
    expected = output.attentions[0] * output.sentence_attentions[0, output.sentence_ids[0]]
    for token, value in zip(explanation.tokens, expected.tolist(), strict=True):
        assert token.attribution == pytest.approx(0.0 if token.special else value, rel=1e-5)
    sentences = sentence_importances(model, tokenizer, text)
    assert [s.text for s in sentences] == ["A gripping film.", "Truly superb!"]
    weights = output.sentence_attentions[0, :2]
    assert [s.score for s in sentences] == pytest.approx((weights / weights.sum()).tolist(), rel=1e-5)


def test_han_sentence_level_is_its_own_split_and_with_native_its_own_sentence_attention(tokenizer):
    model = tiny_han(tokenizer).eval()  # max_sentence_length=8
    text = "A gripping film. The ending, though, is a mess and a total bore! Why?"
    explanation = explain(model, tokenizer, text, method="native")
    encoded = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        output = model(encoded["input_ids"], attention_mask=encoded["attention_mask"])
    # The HAN's own split: the 13-piece middle sentence is cut after 8 pieces; [SEP] after "?" is
    # a fifth sentence with no text, left out.
    assert int(output.sentence_ids.max()) + 1 == 5
    sentences = explanation.sentences
    assert [s.text for s in sentences] == ["A gripping film.", "The ending, though, is a mess", "and a total bore!",
                                           "Why?"]
    assert all(text[s.start : s.end] == s.text for s in sentences)
    weights = output.sentence_attentions[0, :4].double()
    assert [s.score for s in sentences] == pytest.approx((weights / weights.sum()).tolist(), rel=1e-6)
    assert sentence_importances(model, tokenizer, text) == sentences
    # Batched next to a shorter text (padding): the same sentences.
    batched = explain_batch(model, tokenizer, ["Dull.", text], method="native")[1].sentences
    assert [(s.text, s.start, s.end) for s in batched] == [(s.text, s.start, s.end) for s in sentences]
    assert [s.score for s in batched] == pytest.approx([s.score for s in sentences], rel=1e-5)

    # Other methods: the same split, each sentence scoring the sum of its tokens' scores.
    occluded = explain(model, tokenizer, text, method="occlusion")
    assert [s.text for s in occluded.sentences] == [s.text for s in sentences]
    for sentence in occluded.sentences:
        inside = [t.score for t in occluded.tokens if not t.special and sentence.start <= t.start < sentence.end]
        assert sentence.score == pytest.approx(sum(inside), abs=1e-9)


def test_sentence_importances_needs_a_han(tokenizer):
    with pytest.raises(InputError, match="BiRNNAttentionForSequenceClassification has no sentence level"):
        sentence_importances(tiny_birnn(tokenizer), tokenizer, "Fine. Good.")


def test_occlusion_works_and_transformer_only_methods_are_refused(tokenizer):
    model = tiny_birnn(tokenizer)
    explanation = explain(model, tokenizer, "a fine film", method="occlusion")
    assert [w.word for w in explanation.words] == ["a", "fine", "film"]
    with pytest.raises(InputError, match="method 'grad_rollout' does not apply to BiRNNAttention"):
        explain(model, tokenizer, "a fine film", method="grad_rollout")
    # Called directly, the transformer-only functions are refused by the model itself.
    batch = encode_texts(tokenizer, ["a fine film"], 64)
    for method in (attention_rollout, gradient_weighted_rollout):
        with pytest.raises(InputError, match="has no transformer attention maps"):
            method(model, batch)


def test_native_is_refused_for_bert(tmp_path, tokenizer):
    bert = load_model(_bert_folder(tmp_path, tokenizer))
    with pytest.raises(InputError, match="method 'native' does not apply to BertForSequenceClassification"):
        explain(bert, tokenizer, "a fine film", method="native")


@pytest.mark.parametrize("build", [tiny_birnn, tiny_han], ids=["birnn", "han"])
def test_integrated_gradients_is_complete_on_the_word_embeddings(tokenizer, build):
    """Σ attributions = f(x) − f(baseline), the baseline being [PAD] embeddings at every word
    (what attnlens.explain.integrated_gradients integrates from), with the input's own sentences."""
    from attnlens.explain.api import METHOD_FUNCTIONS
    from attnlens.explain.inputs import encode_texts

    model = build(tokenizer).eval()
    batch = encode_texts(tokenizer, ["a fine film. truly superb!", "dull"], 512)
    logits, attributions = METHOD_FUNCTIONS["integrated_gradients"](model, batch, None, n_steps=64)
    pad_row = model.word_embeddings.weight[model.config.pad_token_id].detach()
    keep = batch.special[..., None]
    handle = model.word_embeddings.register_forward_hook(lambda _m, _i, out: torch.where(keep, out, pad_row))
    try:
        with torch.no_grad():
            baseline = model(**batch.model_inputs()).logits
    finally:
        handle.remove()
    target = logits.argmax(dim=-1, keepdim=True)
    expected = (logits - baseline).gather(1, target).squeeze(1)
    torch.testing.assert_close(attributions.sum(dim=-1), expected, rtol=1e-3, atol=1e-4)
