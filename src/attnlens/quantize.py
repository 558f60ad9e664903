"""Opt-in int8 inference: dynamically quantised encoder projections (`quantize: int8`).

Dynamic quantisation stores each weight matrix as int8 (per output channel) and quantises the
activations per call from their observed range, so it needs no calibration data and keeps the
model's interface. On CPUs with AVX-512 VNNI the int8 products (fbgemm) run two to three times as
fast as float32 ones, at the cost of a small accuracy change measured by
`benchmarks/int8_accuracy.py`.

`torch.ao`'s dynamic Linear quantises activations to 7 bits (`reduce_range=True`), a guard against
int16 overflow in the pre-VNNI AVX2/AVX-512 kernels. MiniLM's LayerNorm outputs have outlier
channels (max |x| ~ 28 at std ~ 0.7), so that lost bit doubles each product's error (4-8% -> 2-4%
relative on layer 0). Where the CPU has VNNI (int32 accumulation, no overflow) `Int8Linear` uses
all 8 bits.

Only the encoder's linear layers are quantised: the pooler and classifier are a tiny share of
the work and sit right at the decision, so they keep float32. Query, key and value are also
stacked into one int8 product per layer, so each layer's input is quantised once instead of
three times. The quantised model is for inference: it has no backward, so explanations that need
gradients (grad_rollout, integrated gradients) must use the float32 model.
"""

from __future__ import annotations

import copy
import functools
import warnings
from pathlib import Path

import torch
from torch import nn

from attnlens.errors import ConfigError

QUANTIZE_MODES: tuple[str, ...] = ("none", "int8")


@functools.cache
def cpu_has_vnni() -> bool:
    """True where the CPU advertises AVX-512 VNNI or AVX-VNNI (Linux; elsewhere False, the safe side)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


class Int8Linear(nn.Module):
    """y = x Wᵀ + b with W int8 per output channel and x quantised per call (fbgemm dynamic).

    Like `torch.ao.nn.quantized.dynamic.Linear`, but activations use the full 8 bits where the
    CPU's VNNI kernels cannot overflow (see the module docstring).
    """

    def __init__(self, linear: nn.Linear, *, reduce_range: bool | None = None) -> None:
        super().__init__()
        from torch.ao.quantization import per_channel_dynamic_qconfig

        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.reduce_range = not cpu_has_vnni() if reduce_range is None else reduce_range
        weight = linear.weight.detach().float()
        observer = per_channel_dynamic_qconfig.weight()
        observer(weight)
        scales, zero_points = observer.calculate_qparams()
        with warnings.catch_warnings():  # quantised tensors announce their move to torchao
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(weight, scales.double(), zero_points.long(), 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(
                qweight, None if linear.bias is None else linear.bias.detach().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed, reduce_range=self.reduce_range)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8, " \
               f"reduce_range={self.reduce_range}"


def _quantize_linears(module: nn.Module) -> nn.Module:
    """`module` with every nn.Linear inside replaced by an `Int8Linear`."""
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear:
            setattr(module, name, Int8Linear(child))
        else:
            _quantize_linears(child)
    return module


def _stacked_qkv(attention: nn.Module) -> nn.Linear:
    """A float32 nn.Linear computing [query | key | value] of one BertSelfAttention."""
    projections = (attention.query, attention.key, attention.value)
    stacked = nn.Linear(projections[0].in_features, sum(p.out_features for p in projections))
    with torch.no_grad():
        stacked.weight.copy_(torch.cat([p.weight for p in projections]))
        stacked.bias.copy_(torch.cat([p.bias for p in projections]))
    return stacked


def quantize_int8(model: nn.Module) -> nn.Module:
    """An int8 copy of a BertForSequenceClassification / BertModel (the input is left untouched)."""
    from attnlens.modeling_bert import BertSelfAttention

    quantized = copy.deepcopy(model).eval()
    encoder = quantized.bert.encoder if hasattr(quantized, "bert") else quantized.encoder
    for module in encoder.modules():
        if isinstance(module, BertSelfAttention):
            module.fused_qkv = _stacked_qkv(module)
    _quantize_linears(encoder)
    quantized.quantization = "int8"
    return quantized


def apply_quantization(model: nn.Module, mode: str | None) -> nn.Module:
    """`model` itself for None/"none", an int8 copy for "int8"; anything else is a ConfigError."""
    mode = (mode or "none").strip().lower()
    if mode not in QUANTIZE_MODES:
        raise ConfigError(f"quantize={mode!r} is not one of {', '.join(QUANTIZE_MODES)}")
    return model if mode == "none" else quantize_int8(model)
