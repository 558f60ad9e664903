"""AdamW with the usual BERT parameter groups, and a linear warm-up/decay schedule."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from attnlens.training.config import TrainingConfig


def is_decayed(name: str, parameter: nn.Parameter) -> bool:
    """Weight decay only on matrices: decaying biases and LayerNorm gains pulls them towards 0, which
    hurts (BERT paper recipe), while the embedding and projection matrices benefit from it."""
    return parameter.ndim >= 2 and "LayerNorm" not in name and not name.endswith(".bias")


def build_optimizer(model: nn.Module, training: TrainingConfig) -> torch.optim.AdamW:
    decayed, not_decayed = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decayed if is_decayed(name, parameter) else not_decayed).append(parameter)
    groups = [
        {"params": decayed, "weight_decay": training.weight_decay},
        {"params": not_decayed, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
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
