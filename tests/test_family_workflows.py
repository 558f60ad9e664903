"""RoBERTa and DistilBERT through every workflow BERT has: explanations, the planted-word task, the
Predictor, the served model and the fine-tuning job.

Each is checked against an outside reference: `transformers`' own models (eager attention maps,
a plain backward, its text-classification pipeline, its loading of what the job saved), or the
library in this process for the service. Models are the tiny random checkpoints of
tests/families.py, sharpened where a comparison needs peaked attention and logits with margins
(`save_reference` of test_model_families.py); BERT joins the in-process checks, which are cheap.
"""

from __future__ import annotations

import copy
import itertools
import json
import math

import httpx
import pytest
import torch
import transformers
from demo_splits import write_demo_splits
from families import FAMILIES, reference_model, save_family_classifier
from planted_task import LABELS, PLANTED, fit_planted, planted_examples
from service_harness import load_library, running_server
from test_explain_rollout import (
    _ConstantGate,
    _ConstantScaleLayerNorm,
    reference_chefer,
    reference_deletion,
    rollout_from_attentions,
)
from test_model_families import save_reference
from test_service import assert_same_prediction, post
from test_train import run_job, write_job_config

from attnlens import InputError, load_model, load_tokenizer
from attnlens.explain import Explanation, TokenImportance, explain, explain_batch
from attnlens.explain.inputs import encode_texts
from attnlens.models.contract import TRANSFORMER_EXPLANATIONS
from attnlens.tokenization import tokenize_user_texts

NEW_FAMILIES = ("roberta", "distilbert")  # BERT's workflows have their own tests
SPECIAL_STRINGS = "x [CLS] y <s> z </s> w [SEP] <pad> [MASK] <mask> [PAD] v"
LONG_TEXT = " ".join(["the story meanders but the acting is superb and the music soars"] * 90)  # > 1000 tokens
MIXED_TEXTS = [
    "a fine film",
    LONG_TEXT,  # truncated at the model's 512 tokens
    "\u200b",  # nothing a WordPiece tokenizer reads: [CLS] [SEP]; one byte-level word for RoBERTa
    SPECIAL_STRINGS,  # every family's special-token strings, as text
    "<s>",
    "  Crème brûlée!   The café was naïve 😀 but great.\n Don't miss it ",
]
TEXTS = ["a gripping , beautifully shot film", "dull", "neither here nor there , but long enough to pad others",
         "The plot is thin, and the jokes fall flat!"]


@pytest.fixture(scope="module")
def family(request) -> str:
    return request.param


def parametrize_families(families=FAMILIES):
    """Tests of `families`, grouped by family so each module-scoped model (and server) exists once."""
    return pytest.mark.parametrize("family", families, indirect=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, family):
    """A sharpened random classifier of the family in the Hub layout, with the family's tokenizer."""
    return save_reference(tmp_path_factory.mktemp(family) / "model", family)


@pytest.fixture(scope="module")
def library(model_dir):
    """(model, tokenizer, Predictor) of attnlens, loaded from the folder by its config.json."""
    return load_library(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir):
    return reference_model(model_dir)


# ------------------------------------------------------------------------------------ explanations


def read_ids(tokenizer, text: str, max_length: int | None = None) -> list[int]:
    """What the model reads of `text`: special-token strings as text, the family's own specials."""
    options = {"truncation": True, "max_length": max_length} if max_length else {}
    return tokenize_user_texts(tokenizer, [text], **options)["input_ids"][0]


@parametrize_families()
@pytest.mark.parametrize("method", TRANSFORMER_EXPLANATIONS)
def test_every_method_scores_each_token_of_a_mixed_batch(family, library, method):
    model, tokenizer, _ = library
    assert method in model.supported_explanations
    limit = model.max_tokens
    assert limit == 512  # RoBERTa's 514-row table holds 512 tokens, as BERT's and DistilBERT's 512
    options = {"n_steps": 8} if method == "integrated_gradients" else {}
    explanations = explain_batch(model, tokenizer, MIXED_TEXTS, method=method, batch_size=4, **options)
    assert len(explanations) == len(MIXED_TEXTS)
    for text, exp in zip(MIXED_TEXTS, explanations, strict=True):
        ids = read_ids(tokenizer, text, limit)
        assert [t.token for t in exp.tokens] == tokenizer.convert_ids_to_tokens(ids), text
        assert exp.truncated == (len(read_ids(tokenizer, text)) > limit) == (text is LONG_TEXT)
        # The family's own specials at both ends, and nowhere else: a user's "<s>" or "[CLS]" is text.
        assert [t.special for t in exp.tokens] == [True] + [False] * (len(ids) - 2) + [True]
        assert (exp.tokens[0].token, exp.tokens[-1].token) == (tokenizer.cls_token, tokenizer.sep_token)
        assert all(math.isfinite(t.score) and t.score >= 0 and math.isfinite(t.attribution) for t in exp.tokens)
        assert all(t.score == 0 for t in exp.tokens if t.special)
        assert sum(exp.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        if len(ids) == 2:  # a text without word pieces (WordPiece drops U+200B)
            assert family != "roberta" and not exp.words
            continue
        assert sum(t.score for t in exp.tokens) == pytest.approx(1.0, abs=1e-6)
        assert sum(w.score for w in exp.words) == pytest.approx(1.0, abs=1e-6)
        for word in exp.words:  # words a reader sees: no blank ones, no space at either end
            assert word.word and word.word.strip() == word.word == text[word.start : word.end], (text, word)
        starts = [w.start for w in exp.words]
        assert starts == sorted(starts) and all(a.end <= b.start for a, b in itertools.pairwise(exp.words))
        read = "".join(w.word for w in exp.words)  # every visible character of what was read, once
        assert "".join(text.split()).startswith(read) and (exp.truncated or read == "".join(text.split()))
        for sentence in exp.sentences:
            assert sentence.text and sentence.text.strip() == sentence.text == text[sentence.start : sentence.end]
        assert sum(s.score for s in exp.sentences) == pytest.approx(1.0, abs=1e-6)


@parametrize_families()
def test_sentences_end_after_end_punctuation_of_every_tokenizer(family, library):
    """The punctuation rule on each family's own pieces ("Ġ" pieces of spaces before RoBERTa's
    marks); the pieces a larger BPE vocabulary merges are in the next test."""
    model, tokenizer, _ = library
    text = "a gripping , beautifully acted film ; unforgettable . the end drags ! yes"
    exp = explain(model, tokenizer, text, method="rollout")
    assert [s.text for s in exp.sentences] == [
        "a gripping , beautifully acted film ; unforgettable .", "the end drags !", "yes"]


def test_sentences_of_byte_level_pieces_holding_the_space_and_several_marks():
    """The pieces RoBERTa's Hub vocabulary makes of spaced punctuation (the tiny tokenizer here
    never merges them): "Ġ." and "Ġ!" end a sentence, so does "...", and the first piece's
    offsets keep the text's leading space (RobertaProcessing trims the others)."""
    text = " a fine film . the end drags ! yes..."
    pieces = [("<s>", 0, 0), ("Ġa", 0, 2), ("Ġfine", 3, 7), ("Ġfilm", 8, 12), ("Ġ.", 13, 14), ("Ġthe", 15, 18),
              ("Ġend", 19, 22), ("Ġdrags", 23, 28), ("Ġ!", 29, 30), ("Ġyes", 31, 34), ("...", 34, 37), ("</s>", 0, 0)]
    tokens = [TokenImportance(token=p, start=s, end=e, score=0.0 if p.startswith("<") else 0.1, special=p.startswith("<"))
              for p, s, e in pieces]
    exp = Explanation(text=text, method="rollout", label="LABEL_0", target=0, probabilities={"LABEL_0": 1.0},
                      truncated=False, tokens=tokens)
    assert [(s.text, s.start, s.end) for s in exp.sentences] == [
        ("a fine film .", 1, 14), ("the end drags !", 15, 30), ("yes...", 31, 37)]
    assert [s.score for s in exp.sentences] == pytest.approx([0.4, 0.4, 0.2])


@parametrize_families()
def test_blank_texts_are_refused_for_every_family(family, library):
    model, tokenizer, _ = library
    for blank in ("", "   ", "\n\t"):
        with pytest.raises(InputError, match="empty or only whitespace"):
            explain_batch(model, tokenizer, ["fine", blank], method="attention")


class TransformersCall:
    """`transformers`' classifier called as the references of test_explain_rollout.py call a model:
    `model(**batch.model_inputs(), output_attentions=True)` (DistilBERT takes no token types)."""

    def __init__(self, model, family: str) -> None:
        self.model, self.family = model, family

    def __call__(self, input_ids, attention_mask, token_type_ids=None, **kwargs):
        if self.family == "bert":
            kwargs["token_type_ids"] = token_type_ids
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.model.zero_grad(set_to_none=set_to_none)


def attributions(explanations, batch) -> torch.Tensor:
    """(batch, seq) raw token scores of the explanations (0 on special tokens and padding)."""
    out = torch.zeros(batch.input_ids.shape, dtype=torch.float64)
    for i, exp in enumerate(explanations):
        out[i, : len(exp.tokens)] = torch.tensor([t.attribution for t in exp.tokens], dtype=torch.float64)
    return out


def without_specials(values: torch.Tensor, batch) -> torch.Tensor:
    return values.double().masked_fill(batch.special, 0.0)


def conservative_reference(ref, family: str, batch, targets, monkeypatch) -> torch.Tensor:
    """Gradient x input at the embeddings' output of `transformers`' model with softmax, LayerNorm
    scales and every gate (the feed-forward activation, BERT's pooler and RoBERTa's head tanh)
    constant in the backward; objective: the target's log-odds (test_explain_rollout.py's
    reference for BERT, for any family)."""
    softmax, tanh = torch.nn.functional.softmax, torch.tanh
    monkeypatch.setattr(torch.nn.functional, "softmax", lambda *args, **kwargs: softmax(*args, **kwargs).detach())
    monkeypatch.setattr(torch, "tanh", lambda z: z * (tanh(z) / z).detach())  # RoBERTa's head calls torch.tanh
    ref = copy.deepcopy(ref)
    for module in list(ref.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.LayerNorm):
                setattr(module, name, _ConstantScaleLayerNorm(child))
        for name in ("intermediate_act_fn", "activation"):  # BERT/RoBERTa's, DistilBERT's FFN and pooler
            if isinstance(getattr(module, name, None), torch.nn.Module):
                setattr(module, name, _ConstantGate(getattr(module, name)))
    embedded = {}
    handle = ref.base_model.embeddings.register_forward_hook(
        lambda module, args, output: embedded.setdefault("h", output))
    try:
        logits = TransformersCall(ref, family)(**batch.model_inputs()).logits
    finally:
        handle.remove()
    log_odds = logits.gather(1, targets[:, None]) - logits.gather(1, 1 - targets[:, None])
    (grad,) = torch.autograd.grad(log_odds.sum(), embedded["h"])
    return (grad * embedded["h"]).sum(-1).detach() * batch.attention_mask


@parametrize_families()
@pytest.mark.parametrize("kind", ["attention", "rollout", "chefer", "deletion", "conservative"])
def test_attention_methods_equal_transformers_own_attention_maps(family, library, reference, kind, monkeypatch):
    """Through the public API, on a padded batch: `attention` is the head mean of the last layer's
    first-token row of `transformers`' eager maps, `rollout` the textbook product of all of them,
    grad_rollout's rules their references from those maps and a plain backward."""
    model, tokenizer, _ = library
    targets = torch.tensor([i % 2 for i in range(len(TEXTS))])
    method, options = {"attention": ("attention", {}), "rollout": ("rollout", {})}.get(
        kind, ("grad_rollout", {"rule": kind}))
    explanations = explain_batch(model, tokenizer, TEXTS, method=method, target=targets.tolist(), **options)
    batch = encode_texts(tokenizer, TEXTS, model.max_tokens)
    assert len(set(batch.lengths)) > 1  # padded, so the masks matter
    call = TransformersCall(reference, family)
    if kind in ("attention", "rollout"):
        with torch.no_grad():
            maps = call(**batch.model_inputs(), output_attentions=True).attentions
        assert len(maps) == len(model.transformer_layers())
        expected = maps[-1][:, :, 0].mean(dim=1) if kind == "attention" else rollout_from_attentions(maps)[:, 0]
    elif kind == "conservative":
        expected = conservative_reference(reference, family, batch, targets, monkeypatch)
    else:
        logits, expected = (reference_chefer if kind == "chefer" else reference_deletion)(call, batch, targets)
        assert [e.probabilities for e in explanations] == [
            pytest.approx(dict(zip(e.probabilities, p, strict=True)), abs=1e-5) for e, p in
            zip(explanations, logits.softmax(-1).tolist(), strict=True)]
    assert [e.target for e in explanations] == targets.tolist()
    got, expected = attributions(explanations, batch), without_specials(expected.detach(), batch)
    assert float(expected.abs().max()) > 1e-3  # not trivially zero
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@parametrize_families()
def test_integrated_gradients_equals_captum_on_transformers_and_is_complete(family, library, reference):
    """Every token's attribution is Captum's on `transformers`' model with the same baseline (the
    padding id's word embedding at every non-special token; positions and specials kept) and
    quadrature, and they add up to f(x) − f(baseline)."""
    from captum.attr import LayerIntegratedGradients

    model, tokenizer, _ = library
    targets = [i % 2 for i in range(len(TEXTS))]
    explanations = explain_batch(model, tokenizer, TEXTS, method="integrated_gradients", target=targets, n_steps=64)
    batch = encode_texts(tokenizer, TEXTS, model.max_tokens)
    call = TransformersCall(reference, family)
    pad_id = model.config.pad_token_id
    baseline_ids = torch.where(batch.special, batch.input_ids, torch.full_like(batch.input_ids, pad_id))
    captum = LayerIntegratedGradients(lambda ids, mask: call(ids, mask).logits, reference.get_input_embeddings())
    expected = captum.attribute(batch.input_ids, baselines=baseline_ids, target=torch.tensor(targets),
                                additional_forward_args=(batch.attention_mask,), n_steps=64,
                                method="gausslegendre").sum(-1).detach()
    got = attributions(explanations, batch)
    assert float(expected.abs().max()) > 1e-2
    torch.testing.assert_close(got, without_specials(expected, batch), rtol=1e-4, atol=1e-5)

    word_embeddings = reference.get_input_embeddings()
    pad_row = word_embeddings.weight[pad_id].detach()
    keep = batch.special[..., None]
    with torch.no_grad():
        logits = call(**batch.model_inputs()).logits
        handle = word_embeddings.register_forward_hook(lambda _m, _i, out: torch.where(keep, out, pad_row))
        try:
            baseline = call(**batch.model_inputs()).logits
        finally:
            handle.remove()
    difference = (logits - baseline).gather(1, torch.tensor([targets]).T).squeeze(1).double()
    assert difference.abs().min() > 1e-3  # the input really differs from the baseline
    # DistilBERT's head has a ReLU, whose kinks on the path cost the 64-point quadrature a few percent.
    tolerance = {"rtol": 0.1, "atol": 0.02} if family == "distilbert" else {"rtol": 1e-3, "atol": 1e-4}
    torch.testing.assert_close(got.sum(dim=1), difference, **tolerance)


# ------------------------------------------------------------------------------------ planted word

PLANTED_HELD_OUT = 200
# Methods whose ranking is asserted on every run. grad_rollout's rules and plain attention compute
# exactly their transformers-based references above, but on these tiny planted models their hit
# rate moves with the training run (0.5 to 1.0; the misses are all texts of one class, which such a
# model also reads from the other planted word's absence), so a threshold on them would be luck.
PLANTED_METHODS = ("rollout", "integrated_gradients", "occlusion")
DROPOUT = {"roberta": {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1},
           "distilbert": {"dropout": 0.1, "attention_dropout": 0.1}}  # BERT's usual 0.1, as planted_task's


@pytest.fixture(scope="module")
def planted(tmp_path_factory, family):
    """A tiny random model of the family (transformers' initialisation, dropout 0.1) trained in
    process on the planted task until it solves it (about 50 steps, a second), and its held-out
    explanations."""
    folder = save_family_classifier(tmp_path_factory.mktemp(f"planted-{family}"), family, seed=1, **DROPOUT[family])
    model, tokenizer = load_model(folder, id2label=LABELS), load_tokenizer(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see planted_task.train_planted_model
    try:
        torch.manual_seed(1)
        steps = fit_planted(model, tokenizer, torch.optim.AdamW(model.parameters(), lr=3e-3), seed=1, max_steps=400)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    texts, targets = planted_examples(PLANTED_HELD_OUT, seed=999)
    explanations = {method: explain_batch(model, tokenizer, texts, method=method, batch_size=100)
                    for method in PLANTED_METHODS}
    return steps, targets, explanations


@parametrize_families(NEW_FAMILIES)
@pytest.mark.parametrize("method", PLANTED_METHODS)
def test_planted_word_ranks_first(family, planted, method):
    steps, targets, explanations = planted
    assert steps < 400  # it solved the task before the step budget ran out
    predicted = [e.target for e in explanations[method]]
    assert sum(p == t for p, t in zip(predicted, targets, strict=True)) / len(targets) >= 0.98
    hits = [e.top_words(1)[0].word == PLANTED[e.target] for e in explanations[method]]
    assert sum(hits) / len(hits) >= 0.9, f"{family} {method}: planted word first in {sum(hits)}/{len(hits)}"


# ------------------------------------------------------------------------------------ Predictor


@parametrize_families()
def test_predictor_equals_transformers_pipeline(family, library, reference):
    _, tokenizer, predictor = library
    assert predictor.max_length == 512
    pipeline = transformers.pipeline("text-classification", model=reference, tokenizer=tokenizer, top_k=None)
    texts = [*TEXTS, "a", "Crème brûlée at the café was naïve 😀 — 10/10!"]
    ours = predictor.predict(texts)
    theirs = pipeline(texts)
    for text, prediction, scores in zip(texts, ours, theirs, strict=True):
        assert prediction.probabilities == pytest.approx({s["label"]: s["score"] for s in scores}, abs=1e-5), text
        assert prediction.num_tokens == len(tokenizer(text)["input_ids"]) and not prediction.truncated
    assert len({round(p.score, 3) for p in ours}) > 2  # the model tells the texts apart


@parametrize_families()
def test_chunked_long_text_averages_transformers_windows(family, library, reference):
    _, tokenizer, predictor = library
    ids = read_ids(tokenizer, LONG_TEXT)[1:-1]
    body = predictor.max_length - 2
    assert len(ids) > 2 * body
    (chunked,) = predictor.predict([LONG_TEXT], long_text="chunk")
    step = body - predictor.chunk_overlap
    starts = sorted({min(s, len(ids) - body) for s in range(0, len(ids) - body + step, step)})
    assert chunked.num_windows == len(starts) > 2 and (chunked.num_tokens, chunked.truncated) == (len(ids) + 2, False)
    windows = torch.tensor([[tokenizer.cls_token_id, *ids[s : s + body], tokenizer.sep_token_id] for s in starts])
    with torch.no_grad():
        expected = reference(input_ids=windows).logits.softmax(-1).mean(0)
    assert list(chunked.probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-5)
    (truncated,) = predictor.predict([LONG_TEXT])
    with torch.no_grad():
        first = reference(input_ids=windows[:1]).logits.softmax(-1)[0]
    assert (truncated.truncated, truncated.num_tokens) == (True, 512)
    assert list(truncated.probabilities.values()) == pytest.approx(first.tolist(), abs=1e-5)


@parametrize_families()
def test_predictor_reads_blank_and_special_strings_as_text(family, library, reference):
    _, tokenizer, predictor = library
    empty, blank, typed = predictor.predict(["", "   ", SPECIAL_STRINGS])
    with torch.no_grad():
        bare = reference(input_ids=torch.tensor([[tokenizer.cls_token_id, tokenizer.sep_token_id]]))
    assert list(empty.probabilities.values()) == pytest.approx(bare.logits.softmax(-1)[0].tolist(), abs=1e-5)
    ids = read_ids(tokenizer, SPECIAL_STRINGS)
    structural = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}  # [UNK] may stand for "<"
    assert typed.num_tokens == len(ids) and not set(ids[1:-1]) & structural
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor([ids])).logits.softmax(-1)[0]
    assert list(typed.probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-5)
    assert blank.num_tokens == len(read_ids(tokenizer, "   "))


# ------------------------------------------------------------------------------------ the service


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir, family):
    with running_server(tmp_path_factory.mktemp(f"serve-{family}"), str(model_dir)) as running:
        yield running


@parametrize_families(NEW_FAMILIES)
def test_served_family_predicts_like_the_library(family, server, library):
    _, _, predictor = library
    texts = [*TEXTS, SPECIAL_STRINGS, LONG_TEXT]
    for long_text in ("truncate", "chunk"):
        response = post(server, "/predict", {"texts": texts, "long_text": long_text})
        assert response.status_code == 200, response.text
        expected = predictor.predict(texts, long_text=long_text)
        for served, prediction in zip(response.json(), expected, strict=True):
            assert_same_prediction(served, prediction)
        assert response.json()[-1]["truncated"] is (long_text == "truncate")


@parametrize_families(NEW_FAMILIES)
def test_served_family_offers_and_explains_with_every_encoder_method(family, server, library):
    model, tokenizer, predictor = library
    document = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    offered = document["components"]["schemas"]["explain__Input"]["properties"]["method"]["enum"]
    assert offered == list(model.supported_explanations) == list(TRANSFORMER_EXPLANATIONS)
    text = "  The plot is thin ; the <s> jokes [CLS] fall flat . Don't miss it!"
    for method in offered:
        expected = explain(model, tokenizer, text, method=method, max_length=predictor.max_length)
        for level, items in (("word", expected.words), ("token", [t for t in expected.tokens if not t.special]),
                             ("sentence", expected.sentences)):
            response = post(server, "/explain", {"text": text, "method": method, "level": level})
            assert response.status_code == 200, response.text
            body = response.json()
            assert_same_prediction(body, predictor.predict([text])[0])
            served = body["explanation"]
            assert (served["method"], served["level"], served["target"]) == (method, level, expected.target)
            assert [(i["start"], i["end"]) for i in served["importances"]] == [(i.start, i.end) for i in items]
            assert [i["score"] for i in served["importances"]] == pytest.approx([i.score for i in items], abs=1e-4)
            if level == "sentence":
                assert [i["text"] for i in served["importances"]] == [
                    "The plot is thin ; the <s> jokes [CLS] fall flat .", "Don't miss it!"]


# ------------------------------------------------------------------------------------ fine-tuning


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, family):
    """The real job (training/train.py, one process) on a base folder of the family (`transformers`'
    AutoModel, no head): 6 steps on demo reviews with model.dropout=0.3, evaluated every 3."""
    directory = tmp_path_factory.mktemp(f"train-{family}")
    base = save_reference(directory / "base", family, auto=transformers.AutoModel)
    train, validation = write_demo_splits(directory, slice(48), slice(48, 64))
    config = write_job_config(directory, base, train, validation, epochs=1, max_steps=6, eval_every_steps=3,
                              checkpoint_every_steps=0, learning_rate=1e-4)
    overrides = ("model.dropout=0.3", "output.log_with=null")
    result = run_job(config, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    return config, overrides, directory / "out"


@parametrize_families(NEW_FAMILIES)
def test_fine_tuned_family_loads_in_transformers_with_equal_logits(family, fine_tuned):
    _, _, out = fine_tuned
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and [h["step"] for h in metrics["history"]] == [3, 6]
    best = out / "best"
    saved = json.loads((best / "config.json").read_text())
    assert saved["model_type"] == family and saved["id2label"] == {"0": "negative", "1": "positive"}
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(best, attn_implementation="eager").eval()
    expected_class = {"roberta": transformers.RobertaForSequenceClassification,
                      "distilbert": transformers.DistilBertForSequenceClassification}[family]
    assert type(theirs) is expected_class
    ours = load_model(best)
    assert type(ours).__name__ == expected_class.__name__
    batch = load_tokenizer(best)(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, theirs(**batch).logits, atol=1e-5, rtol=0)
    # The saved weights moved from the base's: the job trained this family's encoder.
    base = transformers.AutoModel.from_pretrained(out.parent / "base").state_dict()
    moved = [name for name, tensor in theirs.base_model.state_dict().items() if not torch.equal(tensor, base[name])]
    assert any(".layer.1." in name for name in moved), moved


@parametrize_families(NEW_FAMILIES)
def test_dropout_override_reaches_every_dropout_of_the_family(family, fine_tuned):
    from attnlens.training.config import load_job_config
    from attnlens.training.job import build_model

    config_path, overrides, _ = fine_tuned
    model = build_model(load_job_config(config_path, list(overrides)))
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and {m.p for m in dropouts} == {0.3}
    if family == "distilbert":  # attention's own dropout_p, the FFN's and the head's dropout modules
        layers = model.distilbert.transformer.layer
        assert [layer.attention.dropout_p for layer in layers] == [0.3, 0.3]
        assert model.dropout in dropouts and all(layer.ffn.dropout in dropouts for layer in layers)
    else:  # the attention probabilities' dropout_p, the residual branches' and the head's dropout
        layers = model.roberta.encoder.layer
        assert [layer.attention.self.dropout_p for layer in layers] == [0.3, 0.3]
        assert model.classifier.dropout in dropouts and all(layer.output.dropout in dropouts for layer in layers)
