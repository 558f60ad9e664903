"""Reading and writing BERT weights in Hugging Face's layout.

Loading is strict: checkpoint keys are renamed by a short, explicit list of rules (the `bert.`
prefix, old TensorFlow `gamma`/`beta` names, dropped pre-training heads and `position_ids`
buffers) and then every key must match the model exactly, shapes included. Anything else is an
error naming the key, because a fuzzy match silently leaves random weights in a model.
Weights are read with safetensors, or with `torch.load(weights_only=True)` for legacy
`pytorch_model.bin`; nothing is ever unpickled beyond plain tensors.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from attnlens.config import BertConfig
from attnlens.errors import CheckpointError
from attnlens.hub import PICKLE_WEIGHTS, SAFE_WEIGHTS, resolve_model_dir

logger = logging.getLogger("attnlens")

# Keys that checkpoints carry but this encoder has no use for: pre-training heads and buffers.
_DROPPED_PREFIXES = ("cls.",)
_DROPPED_SUFFIXES = ("position_ids",)
_HEAD_PREFIX = "classifier."


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


def _rename(key: str) -> str:
    """Old TensorFlow-converted names -> current ones."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


def map_checkpoint_keys(state: dict[str, Tensor], model: nn.Module) -> tuple[dict[str, Tensor], list[str]]:
    """Rename checkpoint keys to `model`'s names. Returns (state, dropped keys)."""
    expected = set(model.state_dict())
    wants_prefix = any(k.startswith("bert.") for k in expected)
    mapped: dict[str, Tensor] = {}
    dropped: list[str] = []
    for key, tensor in state.items():
        name = _rename(key)
        if name.startswith(_DROPPED_PREFIXES) or name.endswith(_DROPPED_SUFFIXES):
            dropped.append(key)
            continue
        if wants_prefix and not name.startswith(("bert.", _HEAD_PREFIX)):
            name = "bert." + name
        elif not wants_prefix and name.startswith("bert."):
            name = name[len("bert."):]
        elif not wants_prefix and name.startswith(_HEAD_PREFIX):
            dropped.append(key)  # a classifier checkpoint loaded as a bare encoder
            continue
        if name in mapped:
            raise CheckpointError(f"checkpoint holds {key!r} twice after renaming (as {name!r})")
        mapped[name] = tensor
    return mapped, dropped


def load_weights(model: nn.Module, state: dict[str, Tensor], source: str) -> list[str]:
    """Strictly load `state` into `model`. Returns the names initialised fresh (the head, if absent)."""
    mapped, _ = map_checkpoint_keys(state, model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in mapped]
    fresh = [k for k in missing if k.startswith(_HEAD_PREFIX)]
    missing = [k for k in missing if k not in fresh]
    unexpected = [k for k in mapped if k not in expected]
    if missing:
        raise CheckpointError(f"{source}: missing weight {missing[0]!r} (and {len(missing) - 1} more)"
                              if len(missing) > 1 else f"{source}: missing weight {missing[0]!r}")
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(f"{source}: unexpected weight {unexpected[0]!r}{more}")
    for key in expected:  # the model's order, so the first mismatch named is the first in the model
        tensor = mapped.get(key)
        if tensor is not None and tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{source}: weight {key!r} has shape {tuple(tensor.shape)} in the checkpoint but "
                f"{tuple(expected[key].shape)} in the model (check num_labels / the config)"
            )
    with torch.no_grad():
        result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) == set(fresh)
    if fresh:
        logger.warning("%s has no classification head; initialised %s fresh (train before use)",
                       source, ", ".join(fresh))
    return fresh


def load_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None,
                    num_labels: int | None = None, id2label: dict[int, str] | None = None,
                    local_files_only: bool | None = None, cache_dir: str | Path | None = None):
    folder = resolve_model_dir(name_or_path, revision=revision, local_files_only=local_files_only,
                               cache_dir=cache_dir)
    config = BertConfig.from_json_file(folder / "config.json")
    config = config.with_labels(num_labels=num_labels, id2label=id2label)
    config.extra.pop("_name_or_path", None)
    model = cls(config)
    source = str(name_or_path) + (f"@{revision}" if revision else "")
    load_weights(model, read_weights(folder), source=source)
    model.eval()
    model.name_or_path = str(name_or_path)
    return model


def save_pretrained(model: nn.Module, directory: str | Path, tokenizer=None) -> Path:
    """Write the Hub layout. Each file is written beside its final name and renamed into place,
    so an interrupted save never leaves a half-written file under the real name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config: BertConfig = model.config
    config.architectures = [type(model).__name__]
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"refusing to save non-finite weights ({bad[0]!r}) to {directory}")
    _atomic_write(directory / SAFE_WEIGHTS, lambda p: save_file(state, p, metadata={"format": "pt"}))
    _atomic_write(directory / "config.json", config.to_json_file)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))
    return directory


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
