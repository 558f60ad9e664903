"""Reading and writing encoder weights in the Hugging Face Hub's layout, for every family.

Loading is strict: checkpoint keys are renamed by a short, explicit list of rules (the base
model's prefix such as `bert.` added or removed, old TensorFlow `gamma`/`beta` names, each
family's pre-training heads and `position_ids` buffers dropped) and then every key must match the
model exactly, shapes included. Anything else is an error naming the key, because a fuzzy match
silently leaves random weights in a model. Weights are read with safetensors, or with
`torch.load(weights_only=True)` for a legacy `pytorch_model.bin`; nothing beyond plain tensors is
ever unpickled. Saving writes each file beside its final name and renames it into place.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from attnlens.errors import CheckpointError
from attnlens.hub import PICKLE_WEIGHTS, SAFE_WEIGHTS, resolve_model_dir
from attnlens.models.configuration import EncoderConfig

logger = logging.getLogger("attnlens")


def read_weights(folder: Path) -> dict[str, Tensor]:
    """The state dict stored in `folder` (safetensors preferred), on CPU."""
    safe, pickled = folder / SAFE_WEIGHTS, folder / PICKLE_WEIGHTS
    if safe.is_file():
        try:
            return load_file(str(safe), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{safe}: unreadable safetensors file ({error}); is it truncated or corrupt?") from None
    if pickled.is_file():
        try:
            state = torch.load(str(pickled), map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for bad or unsafe pickles
            raise CheckpointError(f"{pickled}: unreadable weights ({type(error).__name__}: {error})") from None
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise CheckpointError(f"{pickled}: expected a state dict of tensors")
        return state
    raise CheckpointError(f"{folder}: no {SAFE_WEIGHTS} or {PICKLE_WEIGHTS} in the model folder")


def save_hub_layout(model: nn.Module, directory: str | Path, tokenizer: Any = None) -> Path:
    """Write config.json (with the model's class as `architectures`), model.safetensors and the
    tokenizer's files; non-finite weights are refused rather than published."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    config.architectures = [getattr(model, "hub_architecture", type(model).__name__)]
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"refusing to save non-finite weights ({bad[0]!r}) to {directory}")
    _atomic_write(directory / SAFE_WEIGHTS, lambda p: save_file(state, p, metadata={"format": "pt"}))
    _atomic_write(directory / "config.json", config.to_json_file)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))
    return directory


def _atomic_write(target: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _rename_legacy(key: str) -> str:
    """Old TensorFlow-converted names -> current ones."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


def map_checkpoint_keys(state: dict[str, Tensor], model: PreTrainedEncoder) -> tuple[dict[str, Tensor], list[str]]:
    """Rename checkpoint keys to `model`'s names. Returns (state, dropped keys)."""
    prefix = model.base_model_prefix + "."
    heads = model.head_prefixes
    expected = set(model.state_dict())
    wants_prefix = any(k.startswith(prefix) for k in expected)
    ignored = re.compile("|".join(model.ignored_checkpoint_keys)) if model.ignored_checkpoint_keys else None
    mapped: dict[str, Tensor] = {}
    dropped: list[str] = []
    for key, tensor in state.items():
        name = _rename_legacy(key)
        if ignored is not None and ignored.search(name):
            dropped.append(key)
            continue
        if name.startswith(heads) and not wants_prefix:
            dropped.append(key)  # a classifier checkpoint loaded as a bare encoder
            continue
        if wants_prefix and not name.startswith((prefix, *heads)):
            name = prefix + name
        elif not wants_prefix and name.startswith(prefix):
            name = name[len(prefix):]
        if ignored is not None and ignored.search(name):  # a base model's key under our prefix
            dropped.append(key)
            continue
        if name in mapped:
            raise CheckpointError(f"checkpoint holds {key!r} twice after renaming (as {name!r})")
        mapped[name] = tensor
    return mapped, dropped


def require_matching_state(expected: dict[str, Tensor], state: dict[str, Tensor], source: str, *,
                           may_miss: Collection[str] = (), hint: str = "config.json") -> None:
    """Every key of `expected` in `state` (but `may_miss`), nothing else, every shape equal; the
    error names the first offending key (in the model's order) and both shapes."""
    missing = [k for k in expected if k not in state and k not in may_miss]
    unexpected = [k for k in state if k not in expected]
    for problem, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise CheckpointError(f"{source}: {problem} weight {keys[0]!r}{more}")
    for key, tensor in expected.items():
        if key in state and state[key].shape != tensor.shape:
            raise CheckpointError(f"{source}: weight {key!r} has shape {tuple(state[key].shape)} in the "
                                  f"checkpoint but {tuple(tensor.shape)} in the model (check {hint})")


def load_weights(model: PreTrainedEncoder, state: dict[str, Tensor], source: str) -> list[str]:
    """Strictly load `state` into `model`. Returns the names initialised fresh (the head, if absent)."""
    mapped, _ = map_checkpoint_keys(state, model)
    expected = model.state_dict()
    fresh = [k for k in expected if k not in mapped and k.startswith(model.head_prefixes)]
    require_matching_state(expected, mapped, source, may_miss=fresh, hint="num_labels / the config")
    with torch.no_grad():
        result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) == set(fresh)
    if fresh:
        logger.warning("%s has no classification head; initialised %s fresh (train before use)",
                       source, ", ".join(fresh))
    return fresh


def init_weights(module: nn.Module, std: float) -> None:
    """`transformers`' initialisation, so a fresh head trains the way users expect."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PreTrainedEncoder(nn.Module):
    """`from_pretrained` / `save_pretrained` in the Hub's layout, for every encoder family.

    A family says how its checkpoints are named: the attribute holding the base model
    (`base_model_prefix`), the head's key prefixes (initialised fresh when a base checkpoint has
    none) and the pre-training keys it drops (`ignored_checkpoint_keys`, regular expressions).
    """

    config_class: ClassVar[type[EncoderConfig]]
    base_model_prefix: ClassVar[str]
    head_prefixes: ClassVar[tuple[str, ...]] = ("classifier.",)
    ignored_checkpoint_keys: ClassVar[tuple[str, ...]] = (r"position_ids$",)
    config: EncoderConfig

    def _init_weights(self, module: nn.Module) -> None:
        init_weights(module, self.config.initializer_range)

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens

    @property
    def hub_architecture(self) -> str:
        """The `transformers` class these weights load as: config.json's `architectures`."""
        return type(self).__name__

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None,
                        num_labels: int | None = None, id2label: dict[int, str] | None = None,
                        local_files_only: bool | None = None, cache_dir: str | Path | None = None):
        """Load a local folder or a Hub repo id (optionally at a pinned `revision`)."""
        folder = resolve_model_dir(name_or_path, revision=revision, local_files_only=local_files_only,
                                   cache_dir=cache_dir)
        config = cls.config_class.from_json_file(folder / "config.json")
        config = config.with_labels(num_labels=num_labels, id2label=id2label)
        config.extra.pop("_name_or_path", None)
        model = cls(config)
        source = str(name_or_path) + (f"@{revision}" if revision else "")
        load_weights(model, read_weights(folder), source=source)
        model.eval()
        model.name_or_path = str(name_or_path)
        return model

    def save_pretrained(self, directory: str | Path, tokenizer: Any = None) -> Path:
        """Write config.json, model.safetensors (the Hub's key names) and the tokenizer's files."""
        return save_hub_layout(self, directory, tokenizer=tokenizer)
