"""Inference-only matrix products through oneDNN with weights packed once and cached.

Why: the CPU wheel's default `nn.Linear` goes through MKL, which on AMD CPUs may run its AVX2
code path, while oneDNN (bundled with torch) uses AVX-512 where the CPU has it. Packing the
weight into oneDNN's blocked layout once, instead of on every call, and fusing GELU into the
product make BERT's projections cheaper (docs/benchmarks.md, Encoder inference). The arithmetic
is the same product in another summation order, so outputs stay within float32 rounding (~1e-6)
of `F.linear`.

The packed weight is a cache, never state: it is keyed by every source parameter's version
counter and storage pointer, so an optimizer step, `load_state_dict` or `.to()` invalidates it,
and the module's state dict (Hugging Face key names) is untouched. The oneDNN op has no
backward, so callers use it only when autograd is off (`fast_kernels_apply`), or inside
`input_gradients_only()`: gradient explanations differentiate with respect to activations, never
weights, and there the product gets a backward for its input alone (the same packed kernel, with
the transposed weight packed once too), cheaper each way than `F.linear`'s MKL path.

The reference models (`attnlens.models`) never use these kernels: they compute with `F.linear`
exactly as `transformers` eager does, so the parity tests compare them bit for bit; the engine
(`attnlens.inference.engine`) is tested equal to them at float32 rounding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlens.inference.thread_mode import ThreadMode

_CACHE_ATTRIBUTE = "_attnlens_packed_linear"


def _onednn_available() -> bool:
    mkldnn = getattr(torch.ops, "mkldnn", None)
    return (torch.backends.mkldnn.is_available()
            and hasattr(mkldnn, "_linear_pointwise") and hasattr(mkldnn, "_reorder_linear_weight"))


ONEDNN_AVAILABLE = _onednn_available()
_INPUT_GRADIENTS = ThreadMode()  # per thread: the service runs model calls on worker threads


@contextmanager
def input_gradients_only() -> Iterator[None]:
    """Within this block (this thread only), autograd through our products yields gradients for
    their inputs only, never for the weights, so the packed kernels may run under autograd too.

    For explanations, which differentiate the logits with respect to attention maps or
    embeddings: a weight `.grad` computed inside the block would be silently missing, so never
    train inside it.
    """
    with _INPUT_GRADIENTS.entered():
        yield


def fast_kernels_apply(x: Tensor) -> bool:
    """True when the packed oneDNN kernels may replace `F.linear` for input `x`."""
    return (ONEDNN_AVAILABLE and x.device.type == "cpu" and x.dtype == torch.float32
            and (not torch.is_grad_enabled() or _INPUT_GRADIENTS.active()))


class _PackedWeight:
    """A packed weight with the key it was made from; copies and pickles of a model drop it.

    oneDNN's blocked tensors have no storage that `copy.deepcopy` or `torch.save` could copy, and
    a copy would be rebuilt on first use anyway.
    """

    def __init__(self, key: tuple, weight: Tensor, bias: Tensor | None) -> None:
        self.key, self.weight, self.bias = key, weight, bias

    def __deepcopy__(self, memo: dict) -> None:
        return None

    def __reduce__(self):
        return (type(None), ())


def _cache_key(linears: Sequence[nn.Linear]) -> tuple:
    key = []
    for linear in linears:
        for tensor in (linear.weight, linear.bias):
            key.append(None if tensor is None else (tensor._version, tensor.data_ptr(), tensor.dtype))
    return tuple(key)


def _packed(owner: nn.Module, linears: Sequence[nn.Linear], *,
            transposed: bool = False) -> tuple[Tensor, Tensor | None]:
    """(packed weight, bias) of the linears stacked along their outputs, cached on `owner`.

    `transposed`: the packed Wᵀ instead (no bias), whose product maps an output gradient back to
    the input's, for `input_gradients_only`.
    """
    attribute = _CACHE_ATTRIBUTE + ("_transposed" if transposed else "")
    key = _cache_key(linears)
    cached = owner.__dict__.get(attribute)
    if cached is not None and cached.key == key:
        return cached.weight, cached.bias
    weight = torch.cat([linear.weight.detach() for linear in linears])  # (sum out, in)
    bias = None
    if transposed:
        weight = weight.t().contiguous()  # (in, sum out): x @ weightᵀ is then grad @ W
    elif any(linear.bias is not None for linear in linears):
        bias = torch.cat([linear.bias.detach() if linear.bias is not None
                          else linear.weight.new_zeros(linear.out_features) for linear in linears])
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    # A plain attribute, not a buffer: invisible to state_dict, parameters() and .to().
    owner.__dict__[attribute] = _PackedWeight(key, packed, bias)
    return packed, bias


class _InputGradientProduct(torch.autograd.Function):
    """The packed product x Wᵀ + b whose backward returns the gradient of x only."""

    @staticmethod
    def forward(ctx, x: Tensor, packed: Tensor, bias: Tensor | None, packed_transposed: Tensor) -> Tensor:
        ctx.packed_transposed = packed_transposed
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        grad_input = torch.ops.mkldnn._linear_pointwise(grad.contiguous(), ctx.packed_transposed, None,
                                                        "none", [], "")
        return grad_input, None, None, None


def packed_linear(owner: nn.Module, linears: Sequence[nn.Linear], x: Tensor, *, gelu: bool = False) -> Tensor:
    """x @ [W_1; W_2; ...]ᵀ + [b_1; b_2; ...] (optionally exact GELU), outputs side by side.

    `owner` holds the cache; stacking several linears (query, key, value) turns three products
    into one. Call only when `fast_kernels_apply(x)`.
    """
    packed, bias = _packed(owner, linears)
    if torch.is_grad_enabled():  # only inside input_gradients_only (fast_kernels_apply)
        # GELU unfused: its backward needs the pre-activation, which the fused kernel never keeps.
        out = _InputGradientProduct.apply(x, packed, bias, _packed(owner, linears, transposed=True)[0])
        return F.gelu(out) if gelu else out
    rows = x.reshape(-1, x.shape[-1])
    padded = _rows_to_bucket(rows)
    out = torch.ops.mkldnn._linear_pointwise(padded, packed, bias, "gelu" if gelu else "none", [],
                                             "none" if gelu else "")
    return out[: rows.shape[0]].reshape(*x.shape[:-1], out.shape[-1])


# oneDNN and ideep keep a primitive per product shape they meet (up to 1,024 each, LRU): packed
# batches have as many row counts as sums of text lengths, thousands in a long job, and memory
# rose with every new shape. Rows padded to a multiple of this keep the shapes few.
ROW_BUCKET = 16


def _rows_to_bucket(rows: Tensor) -> Tensor:
    extra = -rows.shape[0] % ROW_BUCKET
    return rows if extra == 0 else torch.cat([rows, rows.new_zeros(extra, rows.shape[1])])


def linear(module: nn.Module, x: Tensor, *, gelu: bool = False) -> Tensor:
    """`module(x)` (then exact GELU if asked), through the packed oneDNN kernel where it applies.

    Modules that are not plain `nn.Linear` (e.g. dynamically quantised int8 ones) are called as
    they are; those that declare `fuses_gelu` compute the GELU inside their own product.
    """
    if type(module) is nn.Linear and fast_kernels_apply(x):
        return packed_linear(module, (module,), x, gelu=gelu)
    if gelu and getattr(module, "fuses_gelu", False):
        return module(x, gelu=True)
    out = module(x)
    return F.gelu(out) if gelu else out
