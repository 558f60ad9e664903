"""How an explanation may change the engine's backward without the models knowing of it.

A `BackwardRule` is handed to `attnlens.inference.engine.classify` for one call; the engine routes
the three kinds of non-linear step through it (attention's queries and keys, LayerNorm, elementwise
activations). Every method must return the forward value unchanged: a rule may only change the
gradient (`attnlens.explain.conservative` is the one attnlens ships).
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

# The activation modules the engine routes through a rule (the families' heads and feed-forwards).
ACTIVATION_MODULES = (nn.GELU, nn.ReLU, nn.Tanh, nn.SiLU)


class BackwardRule(Protocol):
    def attention_inputs(self, query: Tensor, key: Tensor) -> tuple[Tensor, Tensor]: ...

    def layer_norm(self, module: nn.LayerNorm, x: Tensor) -> Tensor: ...

    def activation(self, module: nn.Module, x: Tensor) -> Tensor: ...


def apply_module(module: nn.Module, x: Tensor, rule: BackwardRule | None) -> Tensor:
    """`module(x)`, through the rule where the module is a LayerNorm or an activation."""
    if rule is not None:
        if isinstance(module, nn.LayerNorm):
            return rule.layer_norm(module, x)
        if isinstance(module, ACTIVATION_MODULES):
            return rule.activation(module, x)
    return module(x)
