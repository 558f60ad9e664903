"""Publishing the best model with `huggingface_hub`, refused up front when it cannot work.

A push that fails after hours of training loses nothing but wastes the user's attention at the worst
moment, so the preconditions (online, a token) are checked before the first step.
"""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants

from attnlens.errors import ConfigError
from attnlens.training.config import OutputConfig

TRUTHY = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUTHY


def preflight_push(output: OutputConfig) -> None:
    """Raise `ConfigError` now if `output.push_to_hub` is set but the upload could not happen later."""
    if not output.push_to_hub:
        return
    if not output.hub_repo_id:
        raise ConfigError("output.push_to_hub=true needs output.hub_repo_id (owner/name)")
    if hub_offline():
        raise ConfigError(
            f"output.push_to_hub=true (repo {output.hub_repo_id}) but HF_HUB_OFFLINE is set; "
            "unset it or set output.push_to_hub=false"
        )
    if huggingface_hub.get_token() is None:
        raise ConfigError(
            f"output.push_to_hub=true (repo {output.hub_repo_id}) but no Hugging Face token found; "
            "run `hf auth login` or set HF_TOKEN"
        )


def push_model(folder: Path, output: OutputConfig, commit_message: str) -> str:
    """Create the repo if needed and upload the model folder; returns the commit URL."""
    api = huggingface_hub.HfApi()
    api.create_repo(output.hub_repo_id, private=output.hub_private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=output.hub_repo_id, commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
