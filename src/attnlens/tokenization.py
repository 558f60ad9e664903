"""Tokenizers come from `transformers` (fast, Rust-backed); attnlens resolves where from, and how
user text goes through them (`tokenize_user_texts`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnlens.errors import InputError, ModelNotFoundError
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def tokenize_user_texts(tokenizer, texts: Sequence[str], **options: Any):
    """`tokenizer(texts, **options)` for text a user wrote: the one way attnlens tokenises it.

    Special-token strings in the text ("[SEP]", "[CLS]", "[MASK]", "<s>", "</s>", ...) are read as
    the ordinary characters they are (`split_special_tokens=True`): a user's "[SEP]" must not end
    the sequence, nor a "[MASK]" reach the model as a token it never saw while fine-tuning. Only
    the tokenizer's own additions (`add_special_tokens`) are special tokens.

    A lone surrogate (U+D800-U+DFFF, possible in a Python str but not in valid Unicode) raises
    InputError naming the text and the position: no tokenizer can read it.
    """
    texts = list(texts)
    for index, text in enumerate(texts):
        surrogate = _SURROGATE.search(text) if isinstance(text, str) else None
        if surrogate is not None:
            raise InputError(f"text {index} holds a lone surrogate U+{ord(surrogate.group()):04X} at "
                             f"character {surrogate.start()}: not valid Unicode, so no tokenizer can read it")
    return tokenizer(texts, split_special_tokens=True, **options)
