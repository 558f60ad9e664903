"""Tokenising texts for explanation: ids plus everything needed to map scores back to text.

Every method works on an `EncodedBatch`, so offsets, special-token flags, word ids and the
truncation flag are computed once, by the same code, whatever the method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlens.errors import InputError

MIN_LENGTH = 3  # [CLS], one token, [SEP]


@dataclass
class EncodedBatch:
    """A padded batch of single-sentence inputs with the bookkeeping of each token."""

    input_ids: torch.Tensor  # (batch, seq)
    attention_mask: torch.Tensor  # (batch, seq); 0 on padding
    token_type_ids: torch.Tensor  # (batch, seq)
    special: torch.Tensor  # (batch, seq) bool; [CLS], [SEP] and padding
    offsets: list[list[tuple[int, int]]]  # per example, per real (unpadded) token
    word_ids: list[list[int | None]]  # per example, per real token; None for special tokens
    tokens: list[list[str]]  # per example, per real token
    truncated: list[bool]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def lengths(self) -> list[int]:
        return [len(o) for o in self.offsets]

    def from_chunks(self, chunks: dict[int, torch.Tensor]) -> torch.Tensor:
        """Scores built chunk by chunk from `attention_chunk_hook` maps, {first example: (chunk,
        chunk's longest)} with each example's real tokens first -> (batch, seq), zero at padding:
        the layout every method returns, whatever the padding pattern."""
        lengths = self.lengths
        rows = [scores[j, : lengths[first + j]] for first, scores in sorted(chunks.items())
                for j in range(scores.shape[0])]
        return self.from_packed(torch.cat(rows))

    def from_packed(self, values: torch.Tensor) -> torch.Tensor:
        """(tokens,) values of the real tokens, row-major (example by example, in order) ->
        (batch, seq), zero at padding."""
        out = values.new_zeros(self.attention_mask.shape)
        out[self.attention_mask.bool()] = values
        return out

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }


def resolve_max_length(model, max_length: int | None) -> int:
    """The caller's limit, or the model's position table size; never longer than the model reads."""
    limit = int(model.config.max_position_embeddings)
    if max_length is None:
        return limit
    if not isinstance(max_length, int) or isinstance(max_length, bool):
        raise InputError(f"max_length must be an integer, got {max_length!r}")
    if max_length < MIN_LENGTH or max_length > limit:
        raise InputError(f"max_length={max_length} is outside [{MIN_LENGTH}, {limit}] (the model's max_position_embeddings)")
    return max_length


def check_texts(texts: list[str]) -> None:
    """Reject what would make an explanation meaningless rather than explaining nothing."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise InputError(f"texts must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise InputError("texts is empty: nothing to explain")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {index} is {type(text).__name__}, not str")
        if not text.strip():
            raise InputError(f"text {index} is empty or only whitespace")


def encode_texts(tokenizer, texts: list[str], max_length: int, device: torch.device | str = "cpu") -> EncodedBatch:
    """Tokenise with offsets, cutting at `max_length` and remembering which texts were cut.

    The overflow rows of the fast tokenizer tell truncation apart from a text that just fits;
    only each text's first row is kept.
    """
    check_texts(texts)
    encoding = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        stride=0,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        padding=False,
    )
    sample_of_row = encoding["overflow_to_sample_mapping"]
    first_row: dict[int, int] = {}
    rows_per_sample: dict[int, int] = {}
    for row, sample in enumerate(sample_of_row):
        first_row.setdefault(sample, row)
        rows_per_sample[sample] = rows_per_sample.get(sample, 0) + 1

    rows = [first_row[i] for i in range(len(texts))]
    ids = [encoding["input_ids"][r] for r in rows]
    width = max(len(x) for x in ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    input_ids = torch.full((len(texts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(texts), width), dtype=torch.long)
    special = torch.ones((len(texts), width), dtype=torch.bool)
    offsets, word_ids, tokens = [], [], []
    for i, row in enumerate(rows):
        n = len(ids[i])
        input_ids[i, :n] = torch.tensor(ids[i])
        attention_mask[i, :n] = 1
        special[i, :n] = torch.tensor(encoding["special_tokens_mask"][row], dtype=torch.bool)
        offsets.append([tuple(o) for o in encoding["offset_mapping"][row]])
        row_words = encoding.word_ids(row)
        word_ids.append([None if special[i, j] else row_words[j] for j in range(n)])
        tokens.append(tokenizer.convert_ids_to_tokens(ids[i]))
        if not (~special[i, :n]).any():
            raise InputError(f"text {i} has no tokens the model can read: {texts[i][:40]!r}")
    return EncodedBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        token_type_ids=torch.zeros_like(input_ids).to(device),
        special=special.to(device),
        offsets=offsets,
        word_ids=word_ids,
        tokens=tokens,
        truncated=[rows_per_sample[i] > 1 for i in range(len(texts))],
    )
