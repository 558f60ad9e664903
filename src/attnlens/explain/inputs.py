"""Tokenising texts for explanation: ids plus everything needed to map scores back to text.

Every method works on an `EncodedBatch`, so offsets, special-token flags, word ids and the
truncation flag are computed once, by the same code, whatever the method.

A text the tokenizer reads no word piece from (only characters it drops: U+200B, U+FEFF, U+00AD,
U+2060, a lone combining accent, control characters ...) is encoded as [CLS] [SEP] and explained
like any other: its prediction is the model's on [CLS] [SEP], its tokens are the two special
tokens with score 0 and it has no words. Every method accepts such rows in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlens.errors import InputError
from attnlens.padding import padded_inputs, padding_id
from attnlens.tokenization import tokenize_user_texts

MIN_LENGTH = 3  # [CLS], one token, [SEP]


@dataclass
class EncodedText:
    """One text's tokens before padding: what `EncodedBatch` holds a row of."""

    input_ids: list[int]
    special: list[bool]  # [CLS] and [SEP]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]  # None for special tokens
    tokens: list[str]
    truncated: bool

    @property
    def has_word_pieces(self) -> bool:
        """False for a text the tokenizer read nothing from: [CLS] [SEP] only."""
        return any(word is not None for word in self.word_ids)


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

    @classmethod
    def stack(cls, texts: list[EncodedText], pad_id: int, device: torch.device | str = "cpu") -> EncodedBatch:
        """Encoded texts as one batch, padded to the longest."""
        inputs = padded_inputs([t.input_ids for t in texts], pad_id, device)
        special = torch.ones(inputs["input_ids"].shape, dtype=torch.bool)
        for i, text in enumerate(texts):
            special[i, : len(text.special)] = torch.tensor(text.special, dtype=torch.bool)
        return cls(**inputs, special=special.to(device), offsets=[t.offsets for t in texts],
                   word_ids=[t.word_ids for t in texts], tokens=[t.tokens for t in texts],
                   truncated=[t.truncated for t in texts])

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def lengths(self) -> list[int]:
        return [len(o) for o in self.offsets]

    def select(self, rows: list[int]) -> EncodedBatch:
        """The examples `rows`, in that order, as a batch padded to their own longest."""
        width = max(self.lengths[r] for r in rows)
        index = torch.tensor(rows, device=self.input_ids.device)

        def take(values: torch.Tensor) -> torch.Tensor:
            return values.index_select(0, index)[:, :width]

        return EncodedBatch(
            input_ids=take(self.input_ids), attention_mask=take(self.attention_mask),
            token_type_ids=take(self.token_type_ids), special=take(self.special),
            offsets=[self.offsets[r] for r in rows], word_ids=[self.word_ids[r] for r in rows],
            tokens=[self.tokens[r] for r in rows], truncated=[self.truncated[r] for r in rows],
        )

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
    limit = int(model.config.max_tokens)
    if max_length is None:
        return limit
    if not isinstance(max_length, int) or isinstance(max_length, bool):
        raise InputError(f"max_length must be an integer, got {max_length!r}")
    if max_length < MIN_LENGTH or max_length > limit:
        raise InputError(f"max_length={max_length} is outside [{MIN_LENGTH}, {limit}] (the model's limit)")
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


def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> list[EncodedText]:
    """Tokenise with offsets, cutting at `max_length` and remembering which texts were cut.

    Special-token strings in the texts are read as text (`attnlens.tokenization.tokenize_user_texts`).
    The overflow rows of the fast tokenizer tell truncation apart from a text that just fits;
    only each text's first row is kept. A text the tokenizer reads no word piece from (only
    characters it drops, such as U+200B, U+FEFF, U+00AD or a lone combining accent) becomes
    [CLS] [SEP]: see `EncodedText.has_word_pieces`. Blank texts and lone surrogates raise InputError.
    """
    check_texts(texts)
    encoding = tokenize_user_texts(
        tokenizer,
        texts,
        truncation=True,
        max_length=max_length,
        stride=0,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        padding=False,
    )
    first_row: dict[int, int] = {}
    rows_per_sample: dict[int, int] = {}
    for row, sample in enumerate(encoding["overflow_to_sample_mapping"]):
        first_row.setdefault(sample, row)
        rows_per_sample[sample] = rows_per_sample.get(sample, 0) + 1
    encoded = []
    for i in range(len(texts)):
        row = first_row[i]
        ids = encoding["input_ids"][row]
        special = [bool(flag) for flag in encoding["special_tokens_mask"][row]]
        row_words = encoding.word_ids(row)
        offsets = [tuple(o) for o in encoding["offset_mapping"][row]]
        encoded.append(EncodedText(
            input_ids=ids,
            special=special,
            offsets=offsets,
            word_ids=blank_words_joined(texts[i], [None if special[j] else row_words[j] for j in range(len(ids))],
                                        offsets),
            tokens=tokenizer.convert_ids_to_tokens(ids),
            truncated=rows_per_sample[i] > 1,
        ))
    return encoded


def blank_words_joined(text: str, word_ids: list[int | None], offsets: list[tuple[int, int]]) -> list[int | None]:
    """`word_ids` with every word of white space alone made part of the next word (trailing ones:
    of the word before), so that a word is something a reader sees.

    WordPiece drops white space, but byte-level BPE (RoBERTa) reads it: its pre-tokenizer makes
    "  x" the words " " and " x", and a piece of spaces only ("Ġ") has an empty span once offsets
    are trimmed. The spaces belong to the word they precede, as "Ġ" does inside "Ġx", so occlusion
    and ERASER delete them with it and its score includes theirs. A text without a visible word
    keeps its words as they are.
    """
    visible: dict[int, bool] = {}  # word id -> has a piece covering a non-space character; reading order
    for word, (start, end) in zip(word_ids, offsets, strict=True):
        if word is not None:
            visible[word] = visible.get(word, False) or bool(text[start:end].strip())
    if all(visible.values()) or not any(visible.values()):
        return word_ids  # WordPiece always: nothing to join
    owner: dict[int, int] = {}
    following = None
    for word in reversed(visible):
        following = word if visible[word] else following
        if following is not None:
            owner[word] = following
    preceding = None
    for word in visible:
        preceding = word if visible[word] else preceding
        owner.setdefault(word, preceding)  # blank words after the last visible one
    return [None if word is None else owner[word] for word in word_ids]


def encode_texts(tokenizer, texts: list[str], max_length: int, device: torch.device | str = "cpu") -> EncodedBatch:
    """`tokenize_texts` padded into one batch (see there for what becomes of each text)."""
    return EncodedBatch.stack(tokenize_texts(tokenizer, texts, max_length), padding_id(tokenizer), device)
