"""`hidden_act` names of Hugging Face configs -> activation modules (as `transformers`' ACT2FN).

Modules, not functions, so an explanation rule can recognise and wrap them from outside the model.
"""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {
    "gelu": lambda: nn.GELU(),
    "relu": lambda: nn.ReLU(),
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": lambda: nn.SiLU(),
    "swish": lambda: nn.SiLU(),
}


def activation_module(name: str) -> nn.Module:
    return ACTIVATIONS[name]()
