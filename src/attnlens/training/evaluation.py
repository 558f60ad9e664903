"""Evaluation: the job's metrics over a validation loader (`evaluate`), and a saved model's on a
labelled file, in one process, through the same code (`evaluate_saved_model`)."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from attnlens import load_tokenizer
from attnlens.classifier import eval_mode, label_names
from attnlens.loading import load_model
from attnlens.padding import sorted_by_length
from attnlens.training.batching import PaddingCollator
from attnlens.training.data import load_examples, tokenize_examples
from attnlens.training.metrics import ClassificationMetrics


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, accelerator: Accelerator, metrics: ClassificationMetrics
) -> dict[str, float]:
    """Metrics over the whole split; `gather_for_metrics` drops the samples Accelerate duplicated to
    even out the last batch, so N processes report exactly what one process would."""
    predictions: list[int] = []
    references: list[int] = []
    loss_sum = 0.0
    with eval_mode(model):
        for batch in loader:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            losses = F.cross_entropy(logits.float(), batch["labels"], reduction="none")
            predicted, labels, losses = accelerator.gather_for_metrics(
                (logits.argmax(dim=-1), batch["labels"], losses)
            )
            predictions.extend(predicted.tolist())
            references.extend(labels.tolist())
            loss_sum += float(losses.double().sum())
    results = metrics.compute(predictions, references)
    results["loss"] = loss_sum / max(1, len(references))
    results["num_examples"] = len(references)
    return results


def evaluate_saved_model(
    model_dir: str,
    data: str,
    split: str = "validation",
    dataset_config: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    max_length: int = 512,
    batch_size: int = 32,
    quantize: str | None = None,
) -> dict[str, Any]:
    """Metrics of `model_dir` on `data`; labels are read against the model's own `id2label`.

    `quantize="int8"` scores the opt-in int8 model (attnlens.inference.quantize) instead of float32.
    """
    from attnlens.inference.quantize import apply_quantization

    model = apply_quantization(load_model(model_dir), quantize)
    tokenizer = load_tokenizer(model_dir)
    names = label_names(model)
    examples = load_examples(data, split, dataset_config, text_column, label_column, names)
    max_length = min(max_length, model.config.max_tokens)
    tokenized = tokenize_examples(examples, tokenizer, max_length)
    loader = DataLoader(
        tokenized.with_format(columns=["input_ids", "labels"]),
        batch_size=batch_size,
        sampler=sorted_by_length(tokenized["length"], longest_first=True),  # padding small, memory peaks first
        collate_fn=PaddingCollator(tokenizer.pad_token_id),
        generator=torch.Generator().manual_seed(0),
    )
    accelerator = Accelerator()
    model, loader = accelerator.prepare(model, loader)
    started = time.perf_counter()
    with torch.inference_mode():  # no autograd graph: less memory, and the fast inference kernels apply
        results: dict[str, Any] = evaluate(model, loader, accelerator, ClassificationMetrics())
    results["seconds"] = round(time.perf_counter() - started, 3)
    results["examples_at_max_length"] = sum(1 for length in tokenized["length"] if length >= max_length)  # truncated ones among them
    results.update(model=str(model_dir), data=str(data), max_length=max_length, label_names=names,
                   quantize=quantize or "none")
    return results
