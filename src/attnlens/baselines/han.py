"""Hierarchical Attention Network (Yang et al. 2016) over the base model's WordPiece tokens.

    tokens -> sentences (rule below) -> word BiGRU + word attention (context vector u_w)
           -> sentence vectors -> sentence BiGRU + sentence attention (context vector u_s)
           -> dropout -> linear classifier

Attention at both levels is the paper's: u_i = tanh(W h_i + b), α_i = softmax(u_iᵀ u_ctx), computed
with the project's `dot_score` against the learned context vector.

Sentence rule (`split_sentences`): the tokenised input (specials included, right padding) is read
left to right; a sentence ends after a word piece that is ".", "!" or "?" (ids stored in
`config.sentence_end_token_ids`, so runs like "!!!" end one sentence per piece and "..." gives
one-piece sentences, which is harmless), and a sentence longer than `max_sentence_length` pieces is
cut into pieces of that length. [CLS] belongs to the first sentence and [SEP] to the last. The
rule works on ids inside `forward` (`sentence_split`), so training, prediction, the service and
explanations (their sentence level included) all split the same way without a separate
preprocessing step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlens.attention import dot_score, masked_softmax
from attnlens.baselines.config import HANConfig
from attnlens.baselines.io import PretrainedBaseline
from attnlens.baselines.recurrent import BaselineOutput, build_rnn, run_bidirectional


def split_sentences(input_ids: Tensor, mask: Tensor, end_token_ids: Tensor, max_sentence_length: int
                    ) -> tuple[Tensor, Tensor]:
    """(sentence index, position in sentence) of every token, both (batch, seq); -1 on padding."""
    seq = input_ids.shape[1]
    ends = torch.isin(input_ids, end_token_ids) & mask
    follows_end = torch.zeros_like(ends)
    follows_end[:, 1:] = ends[:, :-1]
    positions = torch.arange(seq, device=input_ids.device).expand_as(input_ids)
    starts = follows_end.clone()
    starts[:, 0] = True
    # Each token's offset from the start of its (uncut) sentence, via a running max of start positions.
    start_positions = torch.where(starts, positions, torch.zeros_like(positions)).cummax(dim=1).values
    offset = positions - start_positions
    starts = offset % max_sentence_length == 0  # sentence starts and the cuts of long sentences
    sentence = starts.long().cumsum(dim=1) - 1
    position = offset % max_sentence_length
    return sentence.masked_fill(~mask, -1), position.masked_fill(~mask, -1)


class ContextAttention(nn.Module):
    """Yang et al.'s attention: α = softmax(tanh(W h + b)ᵀ u_ctx) over the valid positions."""

    def __init__(self, dim: int, attention_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, attention_dim)
        self.context = nn.Parameter(torch.empty(attention_dim).uniform_(-0.1, 0.1))

    def forward(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        hidden = torch.tanh(self.proj(states))  # (n, len, attn)
        query = self.context.expand(states.shape[0], 1, -1)  # (n, 1, attn)
        weights = masked_softmax(dot_score(query, hidden).squeeze(1), mask)  # (n, len)
        return (weights[:, None, :] @ states).squeeze(1), weights


class HierarchicalAttentionNetwork(PretrainedBaseline):
    config_class = HANConfig

    def __init__(self, config: HANConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.word_encoder = build_rnn(config.rnn_type, config.embedding_dim, config.hidden_size, config.num_layers,
                                      config.dropout)
        self.word_attention = ContextAttention(2 * config.hidden_size, config.attention_dim)
        self.sentence_encoder = build_rnn(config.rnn_type, 2 * config.hidden_size, config.sentence_hidden_size,
                                          config.num_layers, config.dropout)
        self.sentence_attention = ContextAttention(2 * config.sentence_hidden_size, config.attention_dim)
        self.classifier = nn.Linear(2 * config.sentence_hidden_size, config.num_labels)
        self.register_buffer("sentence_end_ids", torch.tensor(config.sentence_end_token_ids, dtype=torch.long),
                             persistent=False)

    def sentence_split(self, input_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(sentence index, position in sentence) of every token, both (batch, seq), -1 on padding.

        The split `forward` attends over; explanations group their sentence level by it too.
        """
        return split_sentences(input_ids, mask, self.sentence_end_ids, self.config.max_sentence_length)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, attention_hook=None, attention_chunk_hook=None,
                **_: object) -> BaselineOutput:
        """Same call as the BERT classifier; `token_type_ids` are accepted and ignored."""
        self.refuse_attention_hook(attention_hook, attention_chunk_hook)
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        mask = mask.clone()
        mask[:, 0] = True  # an all-padding row would have no sentence at all
        batch = input_ids.shape[0]
        sentence, position = self.sentence_split(input_ids, mask)
        num_sentences = int(sentence.max()) + 1
        length = self.config.max_sentence_length
        # Embed the tokens where they are (so the embedding output lines up with `input_ids`, which
        # integrated gradients relies on), then scatter them into (batch, sentences, length).
        token_embeddings = self.word_embeddings(input_ids)  # (batch, seq, emb)
        rows = torch.arange(batch, device=input_ids.device)[:, None].expand_as(input_ids)[mask]
        grid = token_embeddings.new_zeros(batch, num_sentences, length, token_embeddings.shape[-1])
        grid[rows, sentence[mask], position[mask]] = token_embeddings[mask]
        sentence_lengths = torch.zeros(batch, num_sentences, dtype=torch.long, device=input_ids.device)
        sentence_lengths.index_put_((rows, sentence[mask]), torch.ones_like(rows), accumulate=True)
        present = sentence_lengths > 0  # (batch, sentences); contiguous from sentence 0
        words = grid[present]  # (n, length, emb)
        word_lengths = sentence_lengths[present]
        word_mask = torch.arange(length, device=input_ids.device)[None, :] < word_lengths[:, None]

        embedded = self.dropout(words)
        word_states, _ = run_bidirectional(self.word_encoder, embedded, word_lengths)  # (n, length, 2H)
        sentence_vectors, word_weights = self.word_attention(word_states, word_mask)  # (n, 2H), (n, length)

        sentences = sentence_vectors.new_zeros(batch, num_sentences, sentence_vectors.shape[-1])
        sentences[present] = sentence_vectors
        sentences = self.dropout(sentences)
        sentence_states, _ = run_bidirectional(self.sentence_encoder, sentences, present.sum(dim=1))
        document, sentence_weights = self.sentence_attention(sentence_states, present)  # (batch, 2S), (batch, sentences)
        logits = self.classifier(self.dropout(document))

        # Word weights back at their token positions, for explanations.
        weight_grid = word_weights.new_zeros(batch, num_sentences, length)
        weight_grid[present] = word_weights
        token_weights = word_weights.new_zeros(input_ids.shape, dtype=word_weights.dtype)
        token_weights[mask] = weight_grid[rows, sentence[mask], position[mask]]
        return BaselineOutput(logits=logits, attentions=token_weights, sentence_attentions=sentence_weights,
                              sentence_ids=sentence)
