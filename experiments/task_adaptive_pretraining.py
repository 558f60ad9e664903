"""Task-adaptive pre-training (TAPT): masked-language modelling on SST-2's training texts.

Why: the fine-tuning recipes on the embedded all-MiniLM-L6-v2 all peak at about the same SST-2
validation accuracy, and the ensemble of their runs bounds what recipes, soups or distillation
from them can reach (docs/experiments.md). All of those start from the same encoder.
all-MiniLM-L6-v2 was trained contrastively for sentence embeddings after its MLM-trained MiniLM
ancestor; TAPT (Gururangan et al., 2020, "Don't Stop Pretraining") continues masked-language
modelling on the task's own unlabelled text first, which changes the starting point itself. The
labels are never read.

The checkpoint has no MLM head (sentence-transformers keeps the bare `BertModel`), so the head's
transform (dense, GELU, LayerNorm) starts fresh and its decoder is tied to the word embeddings, as
in BERT. Only masked positions go through the 30k-way decoder. The result is saved as a bare
`BertModel` in the Hub layout (pooler kept, head dropped), loadable as `model.base_model`:

    python experiments/task_adaptive_pretraining.py --out outputs/tapt
    python training/train.py configs/sst2-minilm.yaml model.base_model=outputs/tapt output.dir=outputs/tapt-ft

Findings: docs/experiments.md.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from attnlens.defaults import DEFAULT_BASE_MODEL
from attnlens.models.bert import BertModel
from attnlens.tokenization import load_tokenizer
from attnlens.training.batching import LengthGroupedSampler, PaddingCollator
from attnlens.training.config import TrainingConfig
from attnlens.training.data import load_raw_split, resolve_source
from attnlens.training.optim import build_optimizer, build_scheduler

SST2_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"


class MaskedLMHead(nn.Module):
    """BERT's MLM head: transform, then scores against the (tied) word embeddings plus a bias."""

    def __init__(self, encoder: BertModel) -> None:
        super().__init__()
        config = encoder.config
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.word_embeddings = encoder.embeddings.word_embeddings  # tied, not copied
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        nn.init.normal_(self.dense.weight, std=config.initializer_range)
        nn.init.zeros_(self.dense.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        hidden = self.LayerNorm(F.gelu(self.dense(hidden)))  # (masked, hidden)
        return hidden @ self.word_embeddings.weight.T + self.bias  # (masked, vocab)


def mask_tokens(input_ids: Tensor, maskable: Tensor, *, mask_id: int, vocab_size: int,
                probability: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """BERT's corruption: pick `probability` of the maskable tokens (at least one per batch); of
    those 80% become [MASK], 10% a random token, 10% stay. Returns (corrupted ids, picked)."""
    scores = torch.rand(input_ids.shape, generator=generator)
    picked = (scores < probability) & maskable
    if not picked.any():
        picked = maskable & (scores == scores.masked_fill(~maskable, 2.0).min())
    roll = torch.rand(input_ids.shape, generator=generator)
    corrupted = input_ids.clone()
    corrupted[picked & (roll < 0.8)] = mask_id
    swap = picked & (roll >= 0.8) & (roll < 0.9)
    corrupted[swap] = torch.randint(vocab_size, (int(swap.sum()),), generator=generator)
    return corrupted, picked


def padded_batches(encoded: list[list[int]], order: list[int], batch_size: int,
                   collate: PaddingCollator) -> Iterator[tuple[Tensor, Tensor]]:
    """(input_ids, attention_mask) batches of `batch_size` consecutive examples of `order`."""
    for start in range(0, len(order), batch_size):
        batch = collate([{"input_ids": encoded[i]} for i in order[start:start + batch_size]])
        yield batch["input_ids"], batch["attention_mask"].bool()


def masked_lm_loss(encoder: BertModel, head: MaskedLMHead, ids: Tensor, attention_mask: Tensor,
                   special: Tensor, args: argparse.Namespace, generator: torch.Generator,
                   train_encoder: bool = True) -> Tensor:
    """Cross-entropy of the original tokens at freshly corrupted positions; with `train_encoder`
    false the encoder runs without autograd, so only the head (and the tied embeddings) learn."""
    maskable = attention_mask & ~special[ids]
    corrupted, picked = mask_tokens(ids, maskable, mask_id=args.mask_id, vocab_size=args.vocab_size,
                                    probability=args.mask_probability, generator=generator)
    with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
        hidden = encoder(corrupted, attention_mask.long()).last_hidden_state  # (batch, seq, hidden)
    return F.cross_entropy(head(hidden[picked]), ids[picked])


@torch.no_grad()
def held_out_loss(encoder: BertModel, head: MaskedLMHead, held_out: list[tuple[Tensor, Tensor]],
                  special: Tensor, args: argparse.Namespace) -> float:
    """Mean MLM loss on the held-out texts, always with the same masks (seed 0), so values compare."""
    encoder.eval()
    generator = torch.Generator().manual_seed(0)
    losses = [masked_lm_loss(encoder, head, ids, mask, special, args, generator).item() for ids, mask in held_out]
    encoder.train()
    return sum(losses) / len(losses)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL)
    parser.add_argument("--data", type=Path, default=SST2_TRAIN)
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--out", type=Path, required=True, help="folder for the adapted encoder")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.06)
    parser.add_argument("--head-only-steps", type=int, default=100,
                        help="first steps that train only the fresh head, so its random start does not "
                             "push noise into the encoder")
    parser.add_argument("--mask-probability", type=float, default=0.15)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=1000, help="texts kept out of training to report the MLM loss")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    tokenizer = load_tokenizer(args.base_model)
    encoder = BertModel.from_pretrained(args.base_model)
    encoder.train()
    head = MaskedLMHead(encoder)
    args.mask_id, args.vocab_size = tokenizer.mask_token_id, encoder.config.vocab_size
    special = torch.zeros(args.vocab_size, dtype=torch.bool)
    special[tokenizer.all_special_ids] = True

    texts = list(load_raw_split(resolve_source(str(args.data)), "train", None)[args.text_column])  # the job's reader
    rng.shuffle(texts)
    encoded = tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]
    collate = PaddingCollator(tokenizer.pad_token_id)
    held_out = list(padded_batches(encoded, list(range(args.held_out)), 256, collate))
    train = encoded[args.held_out:]
    # The job's length-grouped order: little of each batch is padding.
    sampler = LengthGroupedSampler([len(ids) for ids in train], args.batch_size, args.seed)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total_steps = math.ceil(args.epochs * steps_per_epoch)
    modules = nn.ModuleDict({"bert": encoder, "head": head})  # .parameters() counts the tied matrix once
    optimizer = build_optimizer(modules, TrainingConfig(learning_rate=args.learning_rate, weight_decay=0.01))
    scheduler = build_scheduler(optimizer, total_steps, round(args.warmup_ratio * total_steps))
    generator = torch.Generator().manual_seed(args.seed)

    print(f"{args.data}: {len(train)} training texts, {args.held_out} held out; {total_steps} steps of "
          f"{args.batch_size} (the first {args.head_only_steps} train the head only), lr {args.learning_rate}, "
          f"mask {args.mask_probability}")
    print(f"held-out MLM loss before: {held_out_loss(encoder, head, held_out, special, args):.3f} "
          "(the head starts fresh)")
    started, step, running = time.perf_counter(), 0, []
    progress = tqdm(total=total_steps, desc="MLM", unit="step")
    while step < total_steps:
        sampler.set_epoch(step // steps_per_epoch)
        for ids, mask in padded_batches(train, list(sampler), args.batch_size, collate):
            loss = masked_lm_loss(encoder, head, ids, mask, special, args, generator,
                                  train_encoder=step >= args.head_only_steps)
            if not torch.isfinite(loss):
                raise SystemExit(f"non-finite MLM loss at step {step}")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(modules.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running.append(loss.item())
            progress.update()
            if step % 50 == 0:
                progress.set_postfix(loss=f"{sum(running[-50:]) / 50:.3f}")
            if step >= total_steps:
                break
    progress.close()
    print(f"held-out MLM loss after: {held_out_loss(encoder, head, held_out, special, args):.3f}; "
          f"{step} steps in {(time.perf_counter() - started) / 60:.1f} min")
    encoder.eval()
    encoder.save_pretrained(args.out, tokenizer=tokenizer)
    print(f"adapted encoder saved to {args.out}; fine-tune it with model.base_model={args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
