"""Saving and loading the baselines in the same Hub layout and with the same strictness as BERT.

`config.json` (with the baseline's own `model_type`), `model.safetensors` and the tokenizer files;
writing goes through `attnlens.models.pretrained.save_hub_layout` (atomic files, refusal of non-finite
weights) and reading through `attnlens.models.pretrained.read_weights`. Loading is strict: there are no
legacy names to translate, so every key and shape must match exactly or the error names the key.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from attnlens.errors import CheckpointError, InputError
from attnlens.hub import resolve_model_dir
from attnlens.models.pretrained import read_weights, require_matching_state, save_hub_layout

# The baselines' own attention plus the model-agnostic methods (integrated gradients finds the word
# embeddings through `get_input_embeddings`). The others (attention, rollout, grad_rollout) read
# transformer attention maps these models do not have.
NATIVE_METHOD = "native"
SUPPORTED_EXPLANATIONS = (NATIVE_METHOD, "occlusion", "integrated_gradients")


def load_strict(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    require_matching_state(model.state_dict(), state, source)
    with torch.no_grad():
        model.load_state_dict(state, strict=True)


def base_word_embeddings(base_model: str | Path, revision: str | None = None) -> Tensor:
    """The word embedding matrix of a BERT checkpoint (vocab, hidden), to initialise a baseline with."""
    folder = resolve_model_dir(base_model, revision=revision)
    state = read_weights(folder)
    for key in ("embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"):
        if key in state:
            return state[key].float().clone()
    raise CheckpointError(f"{folder}: no embeddings.word_embeddings.weight to initialise the embeddings from")


class PretrainedBaseline(nn.Module):
    """`from_pretrained` / `save_pretrained` and the few hooks shared code looks for."""

    config_class: type
    supported_explanations = SUPPORTED_EXPLANATIONS

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None,
                        local_files_only: bool | None = None, cache_dir: str | Path | None = None):
        folder = resolve_model_dir(name_or_path, revision=revision, local_files_only=local_files_only,
                                   cache_dir=cache_dir)
        config = cls.config_class.from_json_file(folder / "config.json")
        model = cls(config)
        source = str(name_or_path) + (f"@{revision}" if revision else "")
        load_strict(model, read_weights(folder), source)
        model.eval()
        model.name_or_path = str(name_or_path)
        return model

    def save_pretrained(self, directory: str | Path, tokenizer=None) -> Path:
        return save_hub_layout(self, directory, tokenizer=tokenizer)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embeddings

    def refuse_attention_hook(self, *hooks) -> None:
        """Attention hooks read transformer maps; a silently ignored hook would explain nothing."""
        if any(hook is not None for hook in hooks):
            raise InputError(f"{self.config.model_type} has no transformer attention maps; explain it with "
                             f"one of {list(self.supported_explanations)}")
