"""Where the served model comes from: one string (`ATTNLENS_MODEL`) names a folder, a Hub repo or a
BentoML model-store tag, so the same service runs a fresh training run, a published model or a
versioned store entry without code changes.

Resolution order, first match wins:
1. an existing local folder (`outputs/demo/best`, `/models/sst2`);
2. a BentoML model-store tag (`attnlens-sentiment`, `attnlens-sentiment:latest`,
   `attnlens-sentiment:3kz7...`): a name without `/`;
3. a Hub repo id with an optional revision (`org/name`, `org/name@v1.0`, `org/name@<sha>`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnlens.errors import InputError, ModelNotFoundError
from attnlens.hub import is_repo_id, split_revision

MODEL_ENV_VAR = "ATTNLENS_MODEL"
DEFAULT_STORE_NAME = "attnlens-sentiment"
# Files of a Hub-layout model folder worth storing; anything else (optimizer state, logs) is not.
_MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".md")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: what to pass to `from_pretrained`, and a human-readable origin."""

    name_or_path: str
    revision: str | None
    origin: str  # "folder", "bentoml-store" or "hub"
    spec: str  # the string the user gave

    def describe(self) -> str:
        suffix = f"@{self.revision}" if self.revision else ""
        return f"{self.origin}:{self.name_or_path}{suffix}"


def _looks_like_store_tag(spec: str) -> bool:
    return "/" not in spec and "\\" not in spec and not spec.startswith(".")


def resolve_model(spec: str | None = None) -> ModelSource:
    """Turn `spec` (default: `$ATTNLENS_MODEL`, then the store's `attnlens-sentiment`) into a source."""
    spec = (spec if spec is not None else os.environ.get(MODEL_ENV_VAR, "")).strip() or DEFAULT_STORE_NAME
    path = Path(spec).expanduser()
    if path.is_dir():
        return ModelSource(str(path.resolve()), None, "folder", spec)
    if _looks_like_store_tag(spec):
        import bentoml
        from bentoml.exceptions import BentoMLException, NotFound

        try:
            model = bentoml.models.get(spec)
        except NotFound as error:
            raise ModelNotFoundError(
                f"model {spec!r} ({MODEL_ENV_VAR}) is neither a folder nor in the BentoML model store "
                f"({_store_home()}); create it with `attnlens export --model PATH --name {spec.split(':')[0]}`"
            ) from error
        except BentoMLException as error:  # malformed tag such as "a:b:c"
            raise ModelNotFoundError(f"model {spec!r} ({MODEL_ENV_VAR}) is not a valid store tag: {error}") from error
        return ModelSource(model.path, None, "bentoml-store", spec)
    repo_id, revision = split_revision(spec)
    if "/" in repo_id and is_repo_id(repo_id):
        return ModelSource(repo_id, revision, "hub", spec)
    raise ModelNotFoundError(f"model {spec!r} ({MODEL_ENV_VAR}): no such folder, store tag or Hub repo id")


def _store_home() -> str:
    return os.environ.get("BENTOML_HOME", str(Path.home() / "bentoml"))


def export_to_store(folder: str | os.PathLike[str], name: str = DEFAULT_STORE_NAME) -> Any:
    """Copy a Hub-layout model folder into the BentoML model store; returns the store entry.

    The folder is loaded first, so a broken checkpoint fails here rather than in the service.
    """
    import bentoml

    source = Path(folder)
    if not source.is_dir():
        raise ModelNotFoundError(f"model folder {str(source)!r} does not exist")
    if not (source / "config.json").is_file():
        raise ModelNotFoundError(f"model folder {str(source)!r} has no config.json")
    try:
        bentoml.Tag.from_taglike(name)
    except ValueError as error:
        raise InputError(f"name {name!r} is not a valid BentoML model name: {error}") from error

    from attnlens import load_tokenizer
    from attnlens.loading import load_model

    model = load_model(str(source))
    load_tokenizer(str(source))
    files = [p for p in sorted(source.iterdir()) if p.is_file() and p.name.endswith(_MODEL_FILE_SUFFIXES)]
    labels = {str(i): str(label) for i, label in sorted(model.config.id2label.items())}
    with bentoml.models.create(
        name,
        module="attnlens",
        labels={"task": "sentiment-classification"},
        metadata={"source": str(source.resolve()), "id2label": labels,
                  "num_hidden_layers": int(getattr(model.config, "num_hidden_layers", 0))},
    ) as stored:
        for file in files:
            shutil.copy2(file, stored.path_of(file.name))
    return bentoml.models.get(stored.tag)  # the entry at its final place in the store
