"""Conservative propagation through a Transformer encoder (Ali et al., 2022, "XAI for Transformers: Better
Explanations through Conservative Propagation"): one backward pass whose gradient × input is a
relevance that flows through every attention edge in proportion to its weight.

Why: plain gradient × input on a Transformer is dominated by the parts that are not locally
linear, the attention softmax and LayerNorm's scale. Their gradients say how a token would move
where others look, or rescale the whole vector, not how much of it reaches the output, and
relevance computed through them is not conserved (it ranked words worst of every variant tried,
docs/experiments.md, Explanations). Ali et al. show that treating
exactly those parts as constants in the backward restores conservation, as layer-wise relevance
propagation (LRP) demands.

`CONSERVATIVE` is a backward rule (`attnlens.inference.rules`) the engine applies for one call:
every forward value is unchanged (GELU runs apart from its product instead of fused into it, a
rounding-level difference), and the backward treats as constants:

- the attention weights: the gradient reaches the values only, through `Aᵀ`, so a token's
  relevance is what every query reads from it, weighted by how much that reading matters;
- LayerNorm's `1/σ` (its centring stays, a linear map);
- each elementwise nonlinearity `f` (GELU, the heads' tanh or ReLU) as the gate `f(z)/z`, the
  identity rule of AttnLRP (Achtibat et al., 2024).

Given those constants the network is linear in its input plus its biases, so for a model without
biases `Σ_tokens h·∂y/∂h = y` exactly (a test checks it), and with them the biases take their share.
For explanations only: under the rule LayerNorm and the gated activations give their weights no
gradient. The model never imports this module; the engine routes its non-linear steps here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _ConstantGate(torch.autograd.Function):
    """f(z) in the forward; in the backward, the gradient of the constant gate f(z)/z times z."""

    @staticmethod
    def forward(ctx, pre_activation: Tensor, activation) -> Tensor:
        output = activation(pre_activation)
        ratio = (output / pre_activation).nan_to_num_(0.0)  # 0/0 at z = 0, where f(z) = 0 carries nothing
        ctx.save_for_backward(ratio)
        return output

    @staticmethod
    def backward(ctx, grad: Tensor):
        (ratio,) = ctx.saved_tensors
        return grad * ratio, None


class _ConstantScaleLayerNorm(torch.autograd.Function):
    """LayerNorm in the forward; in the backward, its centring times the constant w/σ."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        output, _, rstd = torch.native_layer_norm(x, (x.shape[-1],), weight, bias, eps)  # = F.layer_norm
        ctx.save_for_backward(weight, rstd)
        return output

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, rstd = ctx.saved_tensors
        scaled = grad * weight * rstd
        return scaled - scaled.mean(dim=-1, keepdim=True), None, None, None


class ConservativeRule:
    """The backward rule of Ali et al. (see the module docstring), for `attnlens.inference.engine.classify`."""

    def attention_inputs(self, query: Tensor, key: Tensor) -> tuple[Tensor, Tensor]:
        """Queries and keys cut from the graph: the weights they make are constants of the
        backward, and the gradient reaches only the values."""
        return query.detach(), key.detach()

    def layer_norm(self, module: nn.LayerNorm, x: Tensor) -> Tensor:
        if x.requires_grad:
            return _ConstantScaleLayerNorm.apply(x, module.weight, module.bias, module.eps)
        return module(x)

    def activation(self, module: nn.Module, pre_activation: Tensor) -> Tensor:
        if pre_activation.requires_grad:
            return _ConstantGate.apply(pre_activation, module)
        return module(pre_activation)


CONSERVATIVE = ConservativeRule()
