"""The `README.md` model card written next to the best model.

A model folder without its card is a number without units: the card records what the model was
fine-tuned from, on what, with which hyper-parameters and command, and how well it did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attnlens.report.build import Report
from attnlens.report.markdown import report_markdown
from attnlens.training.config import JobConfig


def render_model_card(
    config: JobConfig,
    base_model: str,
    results: dict[str, float],
    best_step: int | None,
    command: str,
    num_processes: int,
    mixed_precision: str,
    class_weights: list[float] | None = None,
    report: Report | None = None,
) -> str:
    """The card's markdown; `class_weights` are the resolved numbers of `training.class_weights`
    (needed for `balanced`, which depends on the training split; a list in the config is used as is);
    `report`, the best model's audit on the validation split, adds its per-class table, confusion
    matrix and calibration."""
    training = config.training
    data = config.data
    audit = "" if report is None else report_markdown(report, heading_level=3) + "\n"
    label_names = ", ".join(f"`{name}`" for name in data.label_names)
    validation = data.validation or f"{data.validation_fraction:.0%} held out of the training data (seed {training.seed})"
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in results.items() if isinstance(value, float))
    hyper_parameters = {
        "epochs": training.epochs,
        "max_steps": training.max_steps,
        "batch_size_per_process": training.batch_size,
        "processes": num_processes,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "effective_batch_size": training.batch_size * num_processes * training.gradient_accumulation_steps,
        "learning_rate": training.learning_rate,
        "layerwise_lr_decay": training.layerwise_lr_decay,
        "rdrop_alpha": training.rdrop_alpha,
        "label_smoothing": training.label_smoothing,
        "class_weights": describe_class_weights(training.class_weights, class_weights, data.label_names),
        "sampler": training.sampler,
        "weight_decay": training.weight_decay,
        "warmup_ratio": training.warmup_ratio,
        "max_grad_norm": training.max_grad_norm,
        "max_length": config.model.max_length,
        "mixed_precision": mixed_precision,
        "seed": training.seed,
        "group_by_length": training.group_by_length,
    }
    # The Hub validates `base_model` as a repo id: only emit it when the base is not a local folder.
    base_model_line = "" if Path(base_model).exists() else f"base_model: {base_model}\n"
    origin = (f"Fine-tuned with `attnlens` (Accelerate) from `{base_model}`" if config.model.arch == "encoder" else
              f"A `{config.model.arch}` baseline (docs/baselines.md) trained with `attnlens` (Accelerate) on the "
              f"tokenizer and {config.model.baseline.embedding_init.replace('_', ' ')} word embeddings of `{base_model}`")
    architecture_tag = "bert" if config.model.arch == "encoder" else config.model.arch.replace("_", "-")
    return f"""---
{base_model_line}library_name: attnlens
pipeline_tag: text-classification
tags:
- attnlens
- {architecture_tag}
- text-classification
---

# attnlens sentiment classifier

{origin} to classify text as one of {label_names}.

## Data

- training: `{data.train}` (columns `{data.text_column}` -> `{data.label_column}`)
- validation: `{validation}`

## Validation metrics (best checkpoint, step {best_step})

| metric | value |
|---|---|
{rows}

{audit}## Hyper-parameters

```json
{json.dumps(hyper_parameters, indent=2)}
```

## Reproduce

```bash
{command}
```

## Use

```python
from attnlens import load_model, load_tokenizer

model = load_model("path/to/this/folder")  # the family (BERT, RoBERTa, DistilBERT) from config.json
tokenizer = load_tokenizer("path/to/this/folder")
```
"""


def describe_class_weights(
    setting: str | list[float], resolved: list[float] | None, label_names: list[str]
) -> str | dict[str, Any]:
    """`none`, or the rule with each label's weight: {"rule": "balanced", "weights": {"negative": 0.8989, ...}}."""
    if isinstance(setting, list):
        setting, resolved = "explicit", resolved or setting
    if resolved is None:
        return setting
    return {"rule": setting, "weights": {name: round(w, 4) for name, w in zip(label_names, resolved, strict=True)}}


def write_model_card(folder: Path, text: str) -> Path:
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def jsonable(value: Any) -> Any:
    """Config values for trackers that only take scalars (TensorBoard hparams)."""
    if value is None:
        return "null"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value
