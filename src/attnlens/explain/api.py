"""`explain` and `explain_batch`: one entry point for every method, one output shape.

Each method is a function `(model, batch, target, **kwargs) -> (logits, raw token scores)`;
everything the methods share (tokenising with offsets, truncation, eval mode, choosing the
target, normalising, merging word pieces, the sentence split, stopping when the caller no
longer waits) happens here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from attnlens.calibration import temperature_of
from attnlens.cancellation import StopCheck, StopPoll, stop_points
from attnlens.classifier import eval_mode, label_names
from attnlens.errors import InputError
from attnlens.explain.attention import last_layer_cls_attention
from attnlens.explain.explanation import Explanation, SentenceImportance
from attnlens.explain.grad_rollout import gradient_weighted_rollout
from attnlens.explain.inputs import EncodedBatch, EncodedText, resolve_max_length, tokenize_texts
from attnlens.explain.integrated_gradients import integrated_gradients
from attnlens.explain.long_text import combine, document_probabilities, encode_documents
from attnlens.explain.native import native_attention
from attnlens.explain.occlusion import leave_one_word_out
from attnlens.explain.rollout import attention_rollout
from attnlens.explain.sentences import model_split
from attnlens.explain.targets import resolve_targets
from attnlens.explain.words import token_importances, word_importances
from attnlens.padding import length_sorted_batches, padding_id
from attnlens.text_windows import check_long_text

METHODS = ("attention", "rollout", "grad_rollout", "integrated_gradients", "occlusion")
# Methods only some models have: `native` is the own attention of the pre-BERT baselines
# (attnlens.baselines); a model lists what it supports in `supported_explanations`.
MODEL_SPECIFIC_METHODS = ("native",)
DEFAULT_METHOD = "grad_rollout"
DEFAULT_BATCH_SIZE = 16
# Methods whose scores do not depend on the class explained.
CLASS_AGNOSTIC = ("attention", "rollout")


def default_method_for(model) -> str:
    """`DEFAULT_METHOD` where the model supports it, else the first method it lists (the baselines'
    own attention)."""
    supported = tuple(getattr(model, "supported_explanations", METHODS))
    return DEFAULT_METHOD if DEFAULT_METHOD in supported else supported[0]


def _class_agnostic(method: Callable) -> Callable:
    """Adapt methods that ignore the target (plain attention, rollout) to the common signature."""

    def run(model, batch: EncodedBatch, target=None, **kwargs):
        return method(model, batch, **kwargs)

    return run


METHOD_FUNCTIONS: dict[str, Callable] = {
    "attention": _class_agnostic(last_layer_cls_attention),
    "rollout": _class_agnostic(attention_rollout),
    "grad_rollout": gradient_weighted_rollout,
    "integrated_gradients": integrated_gradients,
    "occlusion": leave_one_word_out,
    "native": native_attention,
}


def build_explanations(model, batch: EncodedBatch, texts: list[str], method: str, target, logits, raw) -> list[Explanation]:
    """Turn a method's (logits, raw token scores) into `Explanation`s (normalised, words merged).

    Sentences are grouped only when asked for (`Explanation.sentences`); here only a model's own
    split (the HAN's) is recorded, since it needs the batch's ids.
    """
    targets = resolve_targets(logits.detach(), target).tolist()
    # Calibrated like the Predictor's (attnlens.calibration); the arg-max is the same either way.
    probabilities = (logits.detach().float() / temperature_of(model)).softmax(dim=-1).cpu()
    predicted = probabilities.argmax(dim=-1).tolist()
    probabilities = probabilities.tolist()
    names = label_names(model)
    token_sentences, sentence_weights = model_split(model, batch, method, raw)
    explanations = []
    for i, tokens in enumerate(token_importances(batch, raw)):
        explanations.append(
            Explanation(
                text=texts[i],
                method=method,
                label=names[predicted[i]],
                target=int(targets[i]),
                probabilities={names[c]: p for c, p in enumerate(probabilities[i])},
                truncated=batch.truncated[i],
                tokens=tokens,
                words=word_importances(texts[i], batch.word_ids[i], tokens),
                token_sentences=None if token_sentences is None else token_sentences[i],
                sentence_weights=None if sentence_weights is None else sentence_weights[i],
            )
        )
    return explanations


def explain_encoded(model, batch: EncodedBatch, texts: list[str], method: str, target, *,
                    should_stop: StopCheck | None = None, **kwargs) -> list[Explanation]:
    """Explain an already tokenised batch (the model must be in eval mode); benchmarks time this.

    [CLS] [SEP]-only rows (texts without word pieces, see `attnlens.explain.inputs`) may be
    mixed in; they get the model's prediction on [CLS] [SEP], scores 0 and no words, though
    their company may move the other rows' results by float rounding (`explain_batch` keeps
    them apart). `should_stop`: as in `explain_batch`.
    """
    poll = StopPoll(should_stop)
    with stop_points(model, poll):
        poll("before explaining")
        logits, raw = METHOD_FUNCTIONS[method](model, batch, target, **kwargs)
    return build_explanations(model, batch, texts, method, target, logits, raw)


def _check_method(method: str) -> None:
    if method not in METHOD_FUNCTIONS:
        raise InputError(f"unknown explanation method {method!r}; choose one of {', '.join(METHODS + MODEL_SPECIFIC_METHODS)}")


def explain_batch(
    model,
    tokenizer,
    texts: list[str],
    method: str = DEFAULT_METHOD,
    target: int | list[int] | None = None,
    max_length: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    max_batch_tokens: int | None = None,
    long_text: str = "truncate",
    should_stop: StopCheck | None = None,
    **method_kwargs,
) -> list[Explanation]:
    """Explain many texts; `target` is one class for all, one per text, or None (each text's prediction).

    Texts are tokenised once, then explained in batches of `batch_size` texts of similar token
    counts (less padding), and of at most `max_batch_tokens` padded tokens when given (so a large
    `batch_size` for short texts does not mean a large batch of long ones); results come back in
    input order.

    Every string with a non-blank character gets an explanation; special-token strings in it
    ("[SEP]", "<s>", ...) are plain text. A text the tokenizer reads no word piece from (only
    characters it drops, such as U+200B, U+FEFF, U+00AD, U+2060 or a lone combining accent) is
    explained as the model's prediction on [CLS] [SEP]: its tokens are [CLS] and [SEP] with
    score 0 and its `words` list is empty. Such texts are explained in batches of their own, so
    the other texts' explanations are exactly what they are without them. Blank texts (empty or
    whitespace only), non-strings and texts holding a lone surrogate raise InputError.

    `should_stop` is asked between batches, before each encoder layer's forward and after its
    backward (at most every `attnlens.cancellation.STOP_POLL_INTERVAL_S`); once it says True the
    call raises `attnlens.cancellation.PredictionCancelled` (also `attnlens.predict`'s), leaving
    the model as it was (mode, hooks, autograd).
    """
    _check_method(method)
    supported = getattr(model, "supported_explanations", METHODS)
    if method not in supported:
        raise InputError(f"method {method!r} does not apply to {type(model).__name__}; choose one of {', '.join(supported)}")
    limit = resolve_max_length(model, max_length)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r} must be a positive integer")
    if max_batch_tokens is not None and (isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int)
                                         or max_batch_tokens < 1):
        raise InputError(f"max_batch_tokens={max_batch_tokens!r} must be a positive integer or None")
    check_long_text(long_text)
    encoded = tokenize_texts(tokenizer, texts, limit)
    targets = list(target) if isinstance(target, (list, tuple)) else None
    if targets is not None and len(targets) != len(texts):
        raise InputError(f"got {len(targets)} targets for {len(texts)} texts")
    long = [i for i, text in enumerate(encoded) if text.truncated] if long_text == "chunk" else []
    documents = dict(zip(long, encode_documents(tokenizer, [texts[i] for i in long], limit), strict=True))
    # What is explained: each text that fits (or is cut), and each window of a long text.
    units = [_Unit(i, encoded[i]) for i in range(len(texts)) if i not in documents]
    units += [_Unit(i, window, number) for i, document in documents.items()
              for number, window in enumerate(document.windows)]
    explainer = _UnitExplainer(model, tokenizer, texts, method, batch_size, max_batch_tokens, should_stop,
                               method_kwargs)
    unit_target = None if target is None else [targets[u.text_index] if targets is not None else target for u in units]
    first_pass = explainer.run(units, unit_target)  # type: ignore[arg-type]

    results: list[Explanation | None] = [None] * len(texts)
    windows: dict[int, list[Explanation]] = {i: [] for i in documents}
    for unit, explanation in zip(units, first_pass, strict=True):
        if unit.window is None:
            results[unit.text_index] = explanation
        else:
            windows[unit.text_index].append(explanation)
    temperature, names = temperature_of(model), label_names(model)
    document_targets = {}
    for i, document in documents.items():
        given = None if target is None else (targets[i] if targets is not None else target)
        document_targets[i] = given if given is not None else int(
            document_probabilities(windows[i], document.weights, temperature).argmax())
    # Windows that explained their own prediction where the text's class differs are explained
    # again for the text's class (methods that ignore the class need not be).
    again = [(i, number) for i in documents for number, window in enumerate(windows[i])
             if window.target != document_targets[i] and method not in CLASS_AGNOSTIC]
    if again:
        second_pass = explainer.run([_Unit(i, documents[i].windows[number], number) for i, number in again],
                                    [document_targets[i] for i, _ in again])
        for (i, number), explanation in zip(again, second_pass, strict=True):
            windows[i][number] = explanation
    for i, document in documents.items():
        results[i] = combine(document, windows[i], method=method, target=document_targets[i], labels=names,
                             temperature=temperature)
    return results  # type: ignore[return-value]


@dataclass
class _Unit:
    """One sequence to explain: a text's (first) window, or window `window` of a long text."""

    text_index: int
    encoded: EncodedText
    window: int | None = None


class _UnitExplainer:
    """Explains sequences in length-sorted batches (texts without word pieces apart), polling
    `should_stop` between batches and inside the model."""

    def __init__(self, model, tokenizer, texts: list[str], method: str, batch_size: int,
                 max_batch_tokens: int | None, should_stop: StopCheck | None, method_kwargs: dict) -> None:
        self.model, self.texts, self.method = model, texts, method
        self.batch_size, self.max_batch_tokens = batch_size, max_batch_tokens
        self.method_kwargs = method_kwargs
        self.pad_id = padding_id(tokenizer)
        self.device = next(model.parameters()).device
        self.poll = StopPoll(should_stop)

    def run(self, units: list[_Unit], targets: list[int] | None) -> list[Explanation]:
        lengths = [len(unit.encoded.input_ids) for unit in units]
        readable = [i for i, unit in enumerate(units) if unit.encoded.has_word_pieces]
        wordless = [i for i, unit in enumerate(units) if not unit.encoded.has_word_pieces]
        batches = [members for group in (readable, wordless) for members in
                   length_sorted_batches(lengths, group, max_rows=self.batch_size, max_tokens=self.max_batch_tokens)]
        results: list[Explanation | None] = [None] * len(units)
        with eval_mode(self.model), stop_points(self.model, self.poll):
            done = 0
            for members in batches:
                self.poll(f"after {done} of {len(units)} texts or windows")
                batch = EncodedBatch.stack([units[i].encoded for i in members], self.pad_id, self.device)
                batch_texts = [self.texts[units[i].text_index] for i in members]
                batch_target = None if targets is None else [targets[i] for i in members]
                explanations = explain_encoded(self.model, batch, batch_texts, self.method, batch_target,
                                               **self.method_kwargs)
                for i, explanation in zip(members, explanations, strict=True):
                    results[i] = explanation
                done += len(members)
        return results  # type: ignore[return-value]


def explain(
    model,
    tokenizer,
    text: str,
    method: str = DEFAULT_METHOD,
    target: int | None = None,
    max_length: int | None = None,
    *,
    long_text: str = "truncate",
    **method_kwargs,
) -> Explanation:
    """Explain the model's prediction (or class `target`) for one text with `method` (see METHODS);
    `long_text` as for `explain_batch`."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    if isinstance(target, (list, tuple)):
        raise InputError(f"target must be one class index for one text, got {target!r}")
    return explain_batch(model, tokenizer, [text], method, target, max_length, long_text=long_text,
                         **method_kwargs)[0]


def sentence_importances(model, tokenizer, text: str, max_length: int | None = None) -> list[SentenceImportance]:
    """The HAN's sentence-level attention over `text`, with character spans into `text`.

    The sentence level of `explain(..., method="native")` (`Explanation.sentences`): sentences
    of special tokens only are left out and the others' weights renormalised.
    """
    if getattr(model, "sentence_split", None) is None:
        raise InputError(f"{type(model).__name__} has no sentence level; sentence importances need a HAN")
    return explain(model, tokenizer, text, method="native", max_length=max_length).sentences
