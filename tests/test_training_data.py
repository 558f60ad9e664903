"""Data reading and validation, batching and metrics of the fine-tuning job (no training)."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from attnlens.errors import ConfigError, DataError
from attnlens.padding import sorted_by_length
from attnlens.training.batching import ClassBalancedSampler, LengthGroupedSampler, PaddingCollator
from attnlens.training.checkpointing import resolve_resume
from attnlens.training.config import TrainingConfig
from attnlens.training.data import load_examples, tokenize_examples
from attnlens.training.job import classification_loss, resolve_class_weights, training_inputs
from attnlens.training.metrics import ClassificationMetrics
from attnlens.training.optim import build_optimizer, build_scheduler, is_decayed

LABELS = ["negative", "positive"]


def load(path: Path, text_column: str = "text", label_column: str = "label"):
    return load_examples(str(path), "train", None, text_column, label_column, LABELS)


def test_demo_set_is_shipped_balanced_varied_and_valid():
    examples = load_examples("attnlens://data/demo_reviews.csv", "train", None, "text", "label", LABELS)
    assert len(examples) >= 300
    assert Counter(examples["labels"]) == {0: len(examples) // 2, 1: len(examples) // 2}
    texts = examples["text"]
    assert len(set(texts)) == len(texts)
    assert max(len(t.split()) for t in texts) <= 40
    assert len({t.split()[0].lower() for t in texts}) >= 20, "reviews should not all start alike"


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_every_file_format_reads_ids_and_names(tmp_path, suffix):
    rows = [{"review": "lovely", "stars": "positive"}, {"review": "NA", "stars": 0}, {"review": 'a "quote', "stars": 1}]
    path = tmp_path / f"data{suffix}"
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        lines = ["review" + delimiter + "stars"] + [f"{r['review']}{delimiter}{r['stars']}" for r in rows]
        if suffix == ".csv":
            lines[3] = '"a ""quote",1'
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows[1:]) + "\n", encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows[1:]), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"review": [r["review"] for r in rows], "stars": [str(r["stars"]) for r in rows]}), path)
    examples = load(path, "review", "stars")
    expected = rows if suffix not in (".jsonl", ".json") else rows[1:]
    assert examples["text"] == [r["review"] for r in expected]
    assert examples["labels"] == [LABELS.index(r["stars"]) if isinstance(r["stars"], str) else r["stars"] for r in expected]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,label\ngood,1\n,0\n", "row 2: missing text in column 'text'"),
        ("text,label\ngood,1\nbad,neutral\n", "row 2: label 'neutral' in column 'label' is unknown"),
        ("text,label\ngood,1\nbad,7\n", "row 2: label 7 in column 'label' is unknown"),
        ("text,label\ngood,1\nbad,\n", "row 2: missing label in column 'label'"),
        ("text,label\ngood,0.5\n", "row 1: label 0.5 in column 'label' is float"),
        ("words,label\ngood,1\n", "no column 'text'"),
    ],
)
def test_bad_rows_name_file_row_and_value(tmp_path, content, message):
    path = tmp_path / "reviews.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as error:
        load(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_wrong_text_type_in_json_is_named(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"text": "fine", "label": 1}\n{"text": 12, "label": 0}\n', encoding="utf-8")
    with pytest.raises(DataError) as error:
        load(path)
    # datasets reads the mixed column as strings or refuses it; either way the file is named.
    assert str(path) in str(error.value) or "row 2" in str(error.value)


def test_missing_file_and_unknown_format_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load(tmp_path / "nope.csv")
    odd = tmp_path / "reviews.xlsx"
    odd.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported file type"):
        load(odd)


def test_sampler_is_seeded_per_epoch_and_groups_lengths():
    lengths = [int(x) for x in torch.randint(3, 60, (1000,), generator=torch.Generator().manual_seed(0))]
    sampler = LengthGroupedSampler(lengths, batch_size=10, seed=5, mega_batch_factor=5)
    first = list(sampler)
    assert sorted(first) == list(range(1000))
    assert list(sampler) == first, "same epoch, same order"
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(LengthGroupedSampler(lengths, 10, seed=5, mega_batch_factor=5)) == first
    # Padding is what grouping saves: padded tokens per batch of 10 vs a plain shuffle.
    plain = list(LengthGroupedSampler(lengths, 10, seed=5, group_by_length=False))

    def padded(order):
        batches = [order[i : i + 10] for i in range(0, len(order), 10)]
        return sum(len(b) * max(lengths[j] for j in b) for b in batches)

    assert padded(first) < 0.8 * padded(plain)


def test_balanced_sampler_is_seeded_per_epoch_evens_out_classes_and_groups_lengths():
    labels = [0] * 9_000 + [1] * 1_000
    lengths = [int(x) for x in torch.randint(3, 60, (len(labels),), generator=torch.Generator().manual_seed(0))]
    sampler = ClassBalancedSampler(lengths, labels, batch_size=10, seed=5, mega_batch_factor=5)
    first = list(sampler)
    assert len(first) == len(sampler) == len(labels)
    assert list(sampler) == first, "same epoch, same draw"
    assert list(ClassBalancedSampler(lengths, labels, 10, seed=5, mega_batch_factor=5)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(ClassBalancedSampler(lengths, labels, 10, seed=6, mega_batch_factor=5)) != first
    # With replacement, each class half the draws: the binomial's standard deviation is 50 here.
    minority = sum(labels[i] for i in first)
    assert abs(minority - len(labels) / 2) < 300, minority
    assert len(set(first)) < len(labels), "drawn with replacement"
    # Grouping only reorders the same draw within mega-batches, and saves padding as it does unbalanced.
    plain = list(ClassBalancedSampler(lengths, labels, 10, seed=5, group_by_length=False, mega_batch_factor=5))
    assert sorted(plain) == sorted(first) and plain != first
    for start in range(0, len(first), 50):
        assert sorted(first[start : start + 50]) == sorted(plain[start : start + 50])

    def padded(order):
        batches = [order[i : i + 10] for i in range(0, len(order), 10)]
        return sum(len(b) * max(lengths[j] for j in b) for b in batches)

    assert padded(first) < 0.8 * padded(plain)


def test_weighted_loss_is_the_weighted_mean_of_cross_entropies():
    torch.manual_seed(0)
    logits = torch.randn(10, 3)
    labels = torch.tensor([0, 2, 1, 1, 0])
    weights = torch.tensor([0.5, 2.0, 1.25])
    first = logits[:5]
    per_example = -first.log_softmax(-1)[torch.arange(5), labels]
    expected = (weights[labels] * per_example).sum() / weights[labels].sum()
    torch.testing.assert_close(classification_loss(first, labels, class_weights=weights), expected)
    torch.testing.assert_close(classification_loss(first, labels, class_weights=torch.ones(3)),
                               classification_loss(first, labels))
    # With R-Drop both passes' cross-entropy is weighted; the KL part is the unweighted one.
    both = torch.cat([labels, labels])
    weighted_rdrop = classification_loss(logits, labels, rdrop_alpha=0.7, class_weights=weights)
    torch.testing.assert_close(weighted_rdrop - classification_loss(logits, both, class_weights=weights),
                               classification_loss(logits, labels, rdrop_alpha=0.7) - classification_loss(logits, both))


def test_balanced_class_weights_follow_scikit_learn_and_refuse_an_absent_class():
    from sklearn.utils.class_weight import compute_class_weight

    labels = [0] * 7 + [1] * 2 + [2] * 11
    names = ["negative", "neutral", "positive"]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert resolve_class_weights("balanced", labels, names) == pytest.approx(expected.tolist())
    assert resolve_class_weights("none", labels, names) is None
    assert resolve_class_weights([1, 2.5, 3], labels, names) == [1.0, 2.5, 3.0]
    with pytest.raises(ConfigError, match="class 'neutral' has no examples in the training split"):
        resolve_class_weights("balanced", [0, 2, 2], names)


def test_collator_pads_dynamically_and_masks(tokenizer):
    collate = PaddingCollator(tokenizer.pad_token_id)
    batch = collate([{"input_ids": [101, 7, 102], "labels": 1}, {"input_ids": [101, 102], "labels": 0}])
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, tokenizer.pad_token_id]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_tokenize_truncates_and_records_lengths(tokenizer):
    examples = load_examples("attnlens://data/demo_reviews.csv", "train", None, "text", "label", LABELS)
    tokenized = tokenize_examples(examples.select(range(20)), tokenizer, max_length=8)
    assert max(tokenized["length"]) == 8
    assert all(len(ids) == n for ids, n in zip(tokenized["input_ids"], tokenized["length"], strict=True))
    order = sorted_by_length(tokenized["length"], longest_first=True)
    assert [tokenized["length"][i] for i in order] == sorted(tokenized["length"], reverse=True)


def test_tokenize_reads_special_token_strings_as_text(tokenizer):
    examples = datasets.Dataset.from_dict({"text": ["a [SEP] b", "[CLS] [MASK] <s>"], "labels": [0, 1]})
    tokenized = tokenize_examples(examples, tokenizer, max_length=32)
    for ids in tokenized["input_ids"]:
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert not set(ids[1:-1]) & set(tokenizer.all_special_ids)


def test_local_metric_modules_match_scikit_learn():
    predictions = [0, 1, 1, 0, 1, 1, 0, 0, 1]
    references = [0, 1, 0, 0, 1, 0, 1, 0, 1]
    results = ClassificationMetrics().compute(predictions, references)
    assert results == {
        "accuracy": pytest.approx(accuracy_score(references, predictions)),
        "f1": pytest.approx(f1_score(references, predictions, average="macro")),
        "precision": pytest.approx(precision_score(references, predictions, average="macro")),
        "recall": pytest.approx(recall_score(references, predictions, average="macro")),
    }


def test_no_weight_decay_on_biases_and_layer_norms_and_linear_schedule():
    from attnlens import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    )
    optimizer = build_optimizer(model, TrainingConfig(weight_decay=0.1))
    decayed, not_decayed = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.1 and not_decayed["weight_decay"] == 0.0
    assert all(not names[id(p)].endswith(".bias") and "LayerNorm" not in names[id(p)] for p in decayed["params"])
    assert {n for n in names.values() if "LayerNorm" in n or n.endswith(".bias")} == {
        names[id(p)] for p in not_decayed["params"]
    }
    scheduler = build_scheduler(optimizer, total_steps=10, warmup_steps=2)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] < rates[1] < rates[2] == pytest.approx(TrainingConfig().learning_rate)
    assert all(a > b for a, b in itertools.pairwise(rates[2:]))
    assert scheduler.get_last_lr()[0] == 0.0


def test_resume_ignores_unfinished_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    for name in ("checkpoint-20", "checkpoint-100", "checkpoint-120.tmp"):
        (root / name).mkdir(parents=True)
    assert resolve_resume("auto", tmp_path) == root / "checkpoint-100"
    assert resolve_resume("none", tmp_path) is None
    assert resolve_resume("auto", tmp_path / "fresh") is None
    with pytest.raises(Exception, match="unfinished checkpoint"):
        resolve_resume(str(root / "checkpoint-120.tmp"), tmp_path)


def test_layerwise_lr_decay_gives_each_depth_its_rate_and_keeps_weight_decay_rules():
    from attnlens import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=3, num_attention_heads=2, intermediate_size=16)
    )
    training = TrainingConfig(learning_rate=1e-3, weight_decay=0.1, layerwise_lr_decay=0.5)
    optimizer = build_optimizer(model, training)
    rate_of = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert len(rate_of) == len(named)  # every parameter in exactly one group
    expected_depth = {"bert.embeddings.word_embeddings.weight": 0, "bert.encoder.layer.0.output.dense.weight": 1,
                      "bert.encoder.layer.2.attention.self.query.bias": 3, "bert.pooler.dense.weight": 4,
                      "classifier.weight": 4, "bert.encoder.layer.1.output.LayerNorm.weight": 2}
    for name, depth in expected_depth.items():
        lr, decay = rate_of[id(named[name])]
        assert lr == pytest.approx(1e-3 * 0.5 ** (4 - depth)), name
        assert decay == (0.1 if is_decayed(name, named[name]) else 0.0), name
    # The schedule scales every group's own rate by the same factor.
    scheduler = build_scheduler(optimizer, total_steps=10, warmup_steps=0)
    optimizer.step()
    scheduler.step()
    assert [g["lr"] / g["initial_lr"] for g in optimizer.param_groups] == pytest.approx(
        [0.9] * len(optimizer.param_groups))


def test_rdrop_loss_is_the_papers_loss_over_2n_and_pulls_the_two_passes_together():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, 2, 1])
    p, q = logits[:3].softmax(-1), logits[3:].softmax(-1)

    def kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * (a.log() - b.log())).sum()

    # Liang et al.: both passes' summed cross-entropy + alpha/2 x (KL(p||q) + KL(q||p)), here / 2N.
    cross_entropy = torch.nn.functional.cross_entropy(logits, torch.cat([labels, labels]), reduction="sum")
    expected = (cross_entropy + 0.7 / 2 * (kl(p, q) + kl(q, p))) / 6
    loss = classification_loss(logits, labels, rdrop_alpha=0.7)
    torch.testing.assert_close(loss, expected)
    # Two identical passes: no disagreement to penalise, so it is the plain loss of one pass.
    same = torch.cat([logits[:3], logits[:3]]).detach()
    torch.testing.assert_close(classification_loss(same, labels, 5.0), classification_loss(same[:3], labels))
    # The KL part's gradient moves each pass toward the other.
    disagreement = classification_loss(logits, labels, 1.0) - classification_loss(logits, torch.cat([labels, labels]))
    (gradient,) = torch.autograd.grad(disagreement, logits)
    moved = (logits - 0.1 * gradient).detach()
    assert (moved[:3].softmax(-1) - moved[3:].softmax(-1)).abs().sum() < (p - q).abs().sum()


def test_label_smoothing_targets_a_finite_margin_with_or_without_rdrop():
    """Smoothing by eps puts eps/K on every class: the loss is that target's cross-entropy, and for
    two classes it is lowest at the margin log((1 - eps/2) / (eps/2)), so larger logits are pushed back."""
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 2, 1])
    target = torch.full((3, 3), 0.1 / 3).scatter_add(1, labels[:, None], torch.full((3, 1), 0.9))
    expected = -(target * logits[:3].log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(classification_loss(logits[:3], labels, label_smoothing=0.1), expected)
    # With R-Drop the cross-entropy part of both passes is smoothed the same way; the KL part is not.
    smoothed_rdrop = classification_loss(logits, labels, rdrop_alpha=0.7, label_smoothing=0.1)
    plain_rdrop = classification_loss(logits, labels, rdrop_alpha=0.7)
    both = torch.cat([labels, labels])
    torch.testing.assert_close(smoothed_rdrop - plain_rdrop,
                               classification_loss(logits, both, label_smoothing=0.1)
                               - classification_loss(logits, both))
    eps = 0.2
    best_margin = math.log((1 - eps / 2) / (eps / 2))
    for margin, sign in ((best_margin, 0), (best_margin + 2, 1), (best_margin - 2, -1)):
        pair = torch.tensor([[margin, 0.0]], requires_grad=True)
        (gradient,) = torch.autograd.grad(classification_loss(pair, torch.tensor([0]), label_smoothing=eps), pair)
        # d loss / d margin: zero at the best margin, positive (shrink it) above, negative below.
        slope = gradient[0, 0].item()
        assert abs(slope) < 1e-6 if sign == 0 else math.copysign(1, slope) == sign


def test_rdrop_inputs_give_each_copy_its_own_dropout_mask():
    """R-Drop is a no-op if both copies of the batch draw the same mask; our encoder must not."""
    from attnlens import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32))
    batch = {"input_ids": torch.tensor([[2, 5, 7, 3], [2, 9, 3, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    assert training_inputs(batch) == {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    twice = training_inputs(batch, rdrop_alpha=1.0)
    assert twice["input_ids"].shape == (4, 4) and torch.equal(twice["attention_mask"][2:], batch["attention_mask"])
    model.train()
    first, second = model(**twice).logits.chunk(2)
    assert (first - second).abs().min() > 0
    model.eval()
    first, second = model(**twice).logits.chunk(2)
    torch.testing.assert_close(first, second)
