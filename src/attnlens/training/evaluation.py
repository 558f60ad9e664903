"""Evaluating a saved model on a labelled file, in one process, with the job's own code paths."""

from __future__ import annotations

import time
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from attnlens import load_tokenizer
from attnlens.models import load_model
from attnlens.training.batching import PaddingCollator, sorted_by_length
from attnlens.training.data import load_examples, tokenize_examples
from attnlens.training.job import evaluate
from attnlens.training.metrics import ClassificationMetrics


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
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    examples = load_examples(data, split, dataset_config, text_column, label_column, label_names)
    max_length = min(max_length, model.config.max_tokens)
    tokenized = tokenize_examples(examples, tokenizer, max_length)
    loader = DataLoader(
        tokenized.with_format(columns=["input_ids", "labels"]),
        batch_size=batch_size,
        sampler=sorted_by_length(tokenized["length"]),
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
    results.update(model=str(model_dir), data=str(data), max_length=max_length, label_names=label_names,
                   quantize=quantize or "none")
    return results
