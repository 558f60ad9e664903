"""Turn a model reference (local folder, Hub repo id, pinned revision) into a local folder.

Everything goes through `huggingface_hub`, so the Hub cache, `HF_HUB_OFFLINE`, `HF_HUB_CACHE`
/ `HF_HOME` and tokens behave exactly as they do for `transformers`. Only the files an encoder
classifier needs are fetched, and a repo with both safetensors and a pickle gets safetensors only.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from attnlens.errors import ModelNotFoundError


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exception bases of the HTTP clients huggingface_hub may use (httpx, httpx2, requests)."""
    errors: list[type[BaseException]] = [OSError, huggingface_hub.errors.HfHubHTTPError]
    for module_name, attribute in (("httpx", "HTTPError"), ("httpx2", "HTTPError"),
                                   ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module_name), attribute))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


SAFE_WEIGHTS = "model.safetensors"
PICKLE_WEIGHTS = "pytorch_model.bin"
# Config and tokenizer files of every family: WordPiece (BERT, DistilBERT: vocab.txt), byte-level
# BPE (RoBERTa: vocab.json + merges.txt), SentencePiece (XLM-RoBERTa: sentencepiece.bpe.model).
_SMALL_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "added_tokens.json"]


def is_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set since."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return bool(constants.HF_HUB_OFFLINE) or value in ("1", "true", "yes", "on")


def _looks_like_path(reference: str) -> bool:
    """Repo ids are "name" or "org/name"; anything shaped otherwise was meant as a path."""
    return reference.startswith((".", "/", "~")) or reference.count("/") > 1 or "\\" in reference


def is_repo_id(reference: str) -> bool:
    """Whether `reference` (not an existing folder) is shaped as a Hub repo id: the one rule every
    caller uses to tell a path from a repo (here and `attnlens.model_source`)."""
    if _looks_like_path(reference):
        return False
    try:
        huggingface_hub.utils.validate_repo_id(reference)
    except HFValidationError:
        return False
    return True


def split_revision(spec: str) -> tuple[str, str | None]:
    """"org/name@v1.0" -> ("org/name", "v1.0"); no "@" -> (spec, None)."""
    reference, _, revision = spec.partition("@")
    return reference, revision or None


def resolve_model_dir(name_or_path: str | Path, *, revision: str | None = None,
                      local_files_only: bool | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local folder holding config.json, weights and tokenizer files for `name_or_path`.

    A folder that exists is used as is. Anything else must be a Hub repo id ("org/name"); with
    `local_files_only` (default: HF_HUB_OFFLINE) it is looked up in the Hub cache only.
    """
    reference = str(name_or_path)
    path = Path(reference).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ModelNotFoundError(f"{path}: revision={revision!r} applies to Hub repo ids, not local folders")
        return path
    if path.exists():
        raise ModelNotFoundError(f"{path}: expected a model folder, found a file")
    if _looks_like_path(reference):
        raise ModelNotFoundError(f"{path}: no such model folder")
    if not is_repo_id(reference):
        raise ModelNotFoundError(f"{reference!r}: neither an existing folder nor a valid Hub repo id")
    offline = is_offline() if local_files_only is None else local_files_only
    at = f"@{revision}" if revision else ""
    try:
        if offline:
            folder = snapshot_download(reference, revision=revision, cache_dir=cache_dir, local_files_only=True)
        else:
            folder = _download(reference, revision, cache_dir)
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise ModelNotFoundError(
            f"{reference}{at}: no such local folder, and the Hub repo is not in the Hub cache "
            f"({cache_dir or constants.HF_HUB_CACHE}) while downloads are off (offline)"
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"Hub repo {reference}: revision {revision!r} not found") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"Hub repo {reference} not found (or private without a token)") from None
    except _network_errors() as error:
        # No network, DNS failure, refused connection, HTTP 5xx: one line, not a traceback.
        raise ModelNotFoundError(
            f"Hub repo {reference}{at} could not be fetched ({type(error).__name__}: {error}); "
            "set HF_HUB_OFFLINE=1 to use the Hub cache only"
        ) from None
    return Path(folder)


def _download(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> str:
    """Fetch config, tokenizer and one weights file (safetensors preferred) into the Hub cache."""
    files = set(huggingface_hub.list_repo_files(repo_id, revision=revision))
    if SAFE_WEIGHTS in files:
        weights = SAFE_WEIGHTS
    elif PICKLE_WEIGHTS in files:
        weights = PICKLE_WEIGHTS
    else:
        raise EntryNotFoundError(f"{repo_id} has neither {SAFE_WEIGHTS} nor {PICKLE_WEIGHTS}")
    return snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                             allow_patterns=[weights, *_SMALL_FILES])
