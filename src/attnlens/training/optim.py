"""AdamW with the usual BERT-family parameter groups, and a linear warm-up/decay schedule."""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from attnlens.training.config import TrainingConfig


def is_decayed(name: str, parameter: nn.Parameter) -> bool:
    """Weight decay only on matrices: decaying biases and LayerNorm gains pulls them towards 0, which
    hurts (BERT paper recipe), while the embedding and projection matrices benefit from it."""
    return parameter.ndim >= 2 and "LayerNorm" not in name and not name.endswith(".bias")


# BERT and RoBERTa name their layers encoder.layer.{i}, DistilBERT transformer.layer.{i}.
_ENCODER_LAYER = re.compile(r"(?:^|\.)(?:encoder|transformer)\.layer\.(\d+)\.")


def layer_depth(name: str, num_layers: int) -> int:
    """0 for the embeddings, i + 1 for encoder layer i, num_layers + 1 for what sits on top
    (pooler, classifier): the depth layer-wise learning-rate decay counts down from."""
    if ".embeddings." in f".{name}":
        return 0
    match = _ENCODER_LAYER.search(name)
    return int(match.group(1)) + 1 if match else num_layers + 1


def build_optimizer(model: nn.Module, training: TrainingConfig) -> torch.optim.AdamW:
    """Two groups (decayed or not), or, with `layerwise_lr_decay` < 1, two per depth, each depth's
    learning rate `decay ** (distance from the top)` times the configured one: the lower layers,
    whose general features fine-tuning should keep, move less than the new classifier on top."""
    decay = training.layerwise_lr_decay
    layers = getattr(model, "transformer_layers", None)  # the model contract; the baselines have none
    num_layers = len(layers()) if layers is not None else 0
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        depth = layer_depth(name, num_layers) if decay != 1.0 else num_layers + 1
        with_decay = is_decayed(name, parameter)
        group = groups.setdefault((depth, with_decay), {
            "params": [], "weight_decay": training.weight_decay if with_decay else 0.0,
            "lr": training.learning_rate * decay ** (num_layers + 1 - depth),
        })
        group["params"].append(parameter)
    # Top depth first, decayed before not decayed within a depth: with one rate this is the
    # (decayed, not decayed) layout earlier checkpoints saved their optimizer state in.
    ordered = sorted(groups.items(), key=lambda item: (-item[0][0], not item[0][1]))
    return torch.optim.AdamW(
        [group for _, group in ordered],
        lr=training.learning_rate,
        betas=(training.adam_beta1, training.adam_beta2),
        eps=training.adam_epsilon,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> LambdaLR:
    """Learning rate rises linearly over `warmup_steps`, then falls linearly to 0 at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return LambdaLR(optimizer, factor)
