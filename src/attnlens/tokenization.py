"""Tokenizers come from `transformers` (fast, Rust-backed); attnlens only resolves where from."""

from __future__ import annotations

from pathlib import Path

from attnlens.errors import ModelNotFoundError
from attnlens.hub import resolve_model_dir


def load_tokenizer(name_or_path: str | Path, *, revision: str | None = None,
                   local_files_only: bool | None = None, cache_dir: str | Path | None = None):
    """The fast tokenizer saved with a model (folder, Hub repo id or pinned revision).

    Fast tokenizers are required because explanations need character offsets
    (`return_offsets_mapping`), which only they provide.
    """
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = resolve_model_dir(name_or_path, revision=revision, local_files_only=local_files_only,
                               cache_dir=cache_dir)
    # AutoTokenizer also reads config.json; for our baseline models (model_type attnlens_*) it
    # warns about an unknown model type although the tokenizer files are all it uses.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(f"{folder}: no usable tokenizer files ({error})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelNotFoundError(f"{folder}: tokenizer is not a fast tokenizer (tokenizer.json missing?)")
    return tokenizer
