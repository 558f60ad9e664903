"""Opt-in int8 inference: dynamically quantised encoder projections (`quantize: int8`).

Dynamic quantisation stores each weight matrix as int8 (per output channel) and quantises the
activations per call from their observed range, so it needs no calibration data and keeps the
model's interface. On CPUs with AVX-512 VNNI the int8 products are much faster than float32
ones (docs/benchmarks.md, Encoder inference), at the cost of a small accuracy change measured by
`benchmarks/int8_accuracy.py`. Where VNNI is present they run on oneDNN's `qlinear_pointwise`
(the kernel PyTorch's own x86 compiler backend emits) with the feed-forward GELU fused into the
product; elsewhere on fbgemm's dynamic linear.

`torch.ao`'s dynamic Linear quantises activations to 7 bits (`reduce_range=True`), a guard against
int16 overflow in the pre-VNNI AVX2/AVX-512 kernels. MiniLM's LayerNorm outputs have outlier
channels (a few values many standard deviations out), so that lost bit doubles each product's
error. Where the CPU has VNNI (int32 accumulation, no overflow) `Int8Linear` uses
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
from attnlens.inference.engine import FUSED_QKV_ATTRIBUTE
from attnlens.models.contract import PostLNLayerParts, TransformerClassifier

QUANTIZE_MODES: tuple[str, ...] = ("none", "int8")


@functools.cache
def cpu_has_vnni() -> bool:
    """True where the CPU advertises AVX-512 VNNI or AVX-VNNI (Linux; elsewhere False, the safe side)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


@functools.cache
def onednn_int8_available() -> bool:
    """True where oneDNN's int8 linear (the kernel PyTorch's x86 Inductor backend uses) can run.

    Only with VNNI: without it, oneDNN's u8·s8 products go through 16-bit intermediates that can
    saturate, the overflow `reduce_range` exists to avoid.
    """
    onednn = getattr(torch.ops, "onednn", None)
    try:
        has_ops = hasattr(onednn, "qlinear_pointwise") and hasattr(onednn, "qlinear_prepack")
    except RuntimeError:  # a build without the ops raises on lookup
        has_ops = False
    return torch.backends.mkldnn.is_available() and has_ops and cpu_has_vnni()


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """(uint8 values, scale, zero point) of `x` over its whole range, asymmetric, all 8 bits.

    The range always includes 0 (so zero, e.g. padding, is exact), as in `torch.ao`'s dynamic
    quantisation. `torch.quantize_per_tensor` does the rounding in one vectorised pass and its
    bytes are read in place as plain uint8 (`int_repr()` would copy them, slowly); where that
    deprecated quantised dtype is gone, the same values come from plain tensor arithmetic.
    """
    x = x.detach()  # int8 products have no backward
    low, high = (float(v) for v in torch.aminmax(x))
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255.0 or 1.0
    zero_point = int(min(max(round(-low / scale), 0), 255))
    try:
        with warnings.catch_warnings():  # quantised dtypes announce their move to torchao
            warnings.simplefilter("ignore")
            quantized = torch.quantize_per_tensor(x.contiguous(), scale, zero_point, torch.quint8)
        values = torch.empty(0, dtype=torch.uint8).set_(
            quantized.untyped_storage(), 0, quantized.shape, quantized.stride())
    except (AttributeError, RuntimeError):
        # float -> uint8 conversion is scalar code in PyTorch; through int16 it is vectorised.
        values = (torch.mul(x, 1.0 / scale).round_().add_(zero_point).clamp_(0, 255)
                  .to(torch.int16).to(torch.uint8))
    return values, scale, zero_point


class Int8Linear(nn.Module):
    """y = x Wᵀ + b (optionally exact GELU) with W int8 per output channel, x quantised per call.

    Two kernels compute the same quantised product. Where the CPU has VNNI, oneDNN's
    `qlinear_pointwise` runs it with the GELU fused into the product and plain int8 weights (no
    deprecated quantised dtype); faster than fbgemm's `linear_dynamic` plus a separate GELU on
    one product in isolation, no slower within the whole model. Elsewhere
    fbgemm runs it, with 7-bit activations (`reduce_range`) where the CPU lacks VNNI (see the
    module docstring).
    """

    fuses_gelu = True  # forward(x, gelu=True) computes GELU(x Wᵀ + b); see attnlens.inference.kernels.linear

    def __init__(self, linear: nn.Linear, *, reduce_range: bool | None = None,
                 backend: str | None = None) -> None:
        super().__init__()
        from torch.ao.quantization import per_channel_dynamic_qconfig

        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.reduce_range = not cpu_has_vnni() if reduce_range is None else reduce_range
        if backend is None:
            backend = "onednn" if onednn_int8_available() and not self.reduce_range else "fbgemm"
        if backend not in ("onednn", "fbgemm"):
            raise ValueError(f"Int8Linear backend={backend!r} is not one of onednn, fbgemm")
        if backend == "onednn" and self.reduce_range:
            raise ValueError("Int8Linear: the onednn backend uses all 8 bits; reduce_range needs fbgemm")
        self.backend = backend
        weight = linear.weight.detach().float()
        self._bias = None if linear.bias is None else linear.bias.detach().float().clone()
        observer = per_channel_dynamic_qconfig.weight()  # symmetric int8, one scale per output row
        observer(weight)
        scales, zero_points = observer.calculate_qparams()
        if backend == "onednn":
            self._qweight = torch.round(weight / scales[:, None]).clamp_(-128, 127).to(torch.int8)
            self._weight_scales = scales.float()
            self._weight_zero_points = torch.zeros(self.out_features, dtype=torch.int64)
        else:
            with warnings.catch_warnings():  # quantised tensors announce their move to torchao
                warnings.simplefilter("ignore")
                self._qweight = torch.quantize_per_channel(weight, scales.double(), zero_points.long(), 0,
                                                           torch.qint8)
        self._packed = self._pack()

    def _pack(self):
        """The weight in the kernel's own layout. A cache rebuilt on copy: oneDNN's is opaque."""
        if self.backend == "onednn":
            return torch.ops.onednn.qlinear_prepack(self._qweight, None)
        return torch.ops.quantized.linear_prepack(self._qweight, self._bias)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_packed", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._packed = self._pack()

    def forward(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        if self.backend == "fbgemm":
            out = torch.ops.quantized.linear_dynamic(x, self._packed, reduce_range=self.reduce_range)
            return torch.nn.functional.gelu(out) if gelu else out
        rows = x.reshape(-1, self.in_features)
        values, scale, zero_point = quantize_activations(rows)
        out = torch.ops.onednn.qlinear_pointwise(
            values, scale, zero_point, self._packed, self._weight_scales, self._weight_zero_points,
            self._bias, 1.0, 0, torch.float32, "gelu" if gelu else "none", [], "none" if gelu else "")
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8, " \
               f"backend={self.backend}, reduce_range={self.reduce_range}"


def _quantize_linears(module: nn.Module) -> nn.Module:
    """`module` with every nn.Linear inside replaced by an `Int8Linear`."""
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear:
            setattr(module, name, Int8Linear(child))
        else:
            _quantize_linears(child)
    return module


def _stacked_qkv(parts: PostLNLayerParts) -> nn.Linear:
    """A float32 nn.Linear computing [query | key | value] of one layer."""
    projections = (parts.query, parts.key, parts.value)
    stacked = nn.Linear(projections[0].in_features, sum(p.out_features for p in projections))
    with torch.no_grad():
        stacked.weight.copy_(torch.cat([p.weight for p in projections]))
        stacked.bias.copy_(torch.cat([p.bias for p in projections]))
    return stacked


def quantize_int8(model: nn.Module) -> nn.Module:
    """An int8 copy of a Transformer classifier (the input is left untouched): every encoder
    layer's products in int8, plus its query, key and value stacked into one product the engine
    uses (kept beside the layer's modules, not among them, so the state dict is unchanged)."""
    if not isinstance(model, TransformerClassifier):
        raise ConfigError(f"quantize=int8 applies to Transformer encoders, not {type(model).__name__}")
    quantized = copy.deepcopy(model).eval()
    for parts in quantized.transformer_layers():
        fused_qkv = Int8Linear(_stacked_qkv(parts))
        _quantize_linears(parts.layer)
        parts.layer.__dict__[FUSED_QKV_ATTRIBUTE] = fused_qkv
    quantized.quantization = "int8"
    return quantized


def apply_quantization(model: nn.Module, mode: str | None) -> nn.Module:
    """`model` itself for None/"none", an int8 copy for "int8"; anything else is a ConfigError."""
    mode = (mode or "none").strip().lower()
    if mode not in QUANTIZE_MODES:
        raise ConfigError(f"quantize={mode!r} is not one of {', '.join(QUANTIZE_MODES)}")
    return model if mode == "none" else quantize_int8(model)
