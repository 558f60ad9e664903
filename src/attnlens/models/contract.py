"""What the rest of attnlens may ask of a classifier, so it asks instead of probing attributes.

`SequenceClassifier` is every model attnlens trains, serves and explains: the Transformer
encoders (BERT, RoBERTa, DistilBERT) and the recurrent baselines. `TransformerClassifier` adds what
the inference engine (`attnlens.inference`) and the explanation rules (`attnlens.explain`) need to
run an encoder's layers themselves: each layer's parts named by role (`PostLNLayerParts`), the
embedding module, and the head applied to the first token. Every family names its parts its own
way (`attention.self.query` in BERT, `attention.q_lin` in DistilBERT); the engine reads the roles,
so it is written once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

TRANSFORMER_EXPLANATIONS = ("attention", "rollout", "grad_rollout", "integrated_gradients", "occlusion")


@dataclass(frozen=True)
class PostLNLayerParts:
    """One post-LayerNorm Transformer block by role:

        attended = attention_norm(attention_output(attention(query(x), key(x), value(x))) + x)
        y        = output_norm(output(activation(intermediate(attended))) + attended)

    `layer` is the block's own module (engines may cache derived weights on it, never as state).
    """

    layer: nn.Module
    num_heads: int
    query: nn.Module
    key: nn.Module
    value: nn.Module
    attention_output: nn.Module
    attention_norm: nn.LayerNorm
    intermediate: nn.Module
    activation: nn.Module
    output: nn.Module
    output_norm: nn.LayerNorm


class TokenEmbeddings(Protocol):
    """An encoder's embedding module: any (..., seq) ids with their positions in, vectors out."""

    def position_ids(self, input_ids: Tensor) -> Tensor: ...

    def __call__(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                 position_ids: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class SequenceClassifier(Protocol):
    """A text classifier attnlens can train, save, serve and explain."""

    config: Any  # a config with id2label / num_labels (attnlens.models.configuration)
    supported_explanations: tuple[str, ...]

    def get_input_embeddings(self) -> nn.Embedding: ...

    def __call__(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                 token_type_ids: Tensor | None = None) -> Any: ...  # an output with .logits


@runtime_checkable
class TransformerClassifier(SequenceClassifier, Protocol):
    """A post-LN Transformer encoder with a head on its first token ([CLS] / <s>)."""

    @property
    def max_tokens(self) -> int: ...

    @property
    def embeddings(self) -> TokenEmbeddings: ...

    def transformer_layers(self) -> list[PostLNLayerParts]: ...

    def head_modules(self) -> list[nn.Module]:
        """The modules that map the last layer's first-token vector (batch, hidden) to the logits,
        in order (dropouts, products, activations), exactly as `forward` applies them."""
        ...
