"""Tiny random checkpoints of every encoder family, with tokenizers trained here.

The only pretrained weights available are MiniLM's (a BERT), so RoBERTa and DistilBERT are tested
with random weights from `transformers` configs. Each gets the tokenizer its family uses on the
Hub, trained on the bundled demo reviews with `tokenizers`: byte-level BPE with `<s>`/`</s>` for
RoBERTa, WordPiece with [CLS]/[SEP] for BERT and DistilBERT, saved as `transformers` fast tokenizers.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import torch

FAMILIES = ("bert", "roberta", "distilbert")
VOCAB_SIZE = 600


@functools.cache
def demo_texts() -> tuple[str, ...]:
    import attnlens

    path = Path(attnlens.__file__).parent / "data" / "demo_reviews.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return tuple(row["text"] for row in csv.DictReader(handle))


@functools.cache
def _tokenizer(family: str):
    """A fast tokenizer of the family's kind, trained on the demo reviews (cached per process)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if family == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(demo_texts(), trainer)
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                          ("<s>", tok.token_to_id("<s>")), trim_offsets=True)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                       sep_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                       mask_token="<mask>", model_max_length=512)
    tok = Tokenizer(models.WordPiece(_wordpiece_vocab(), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                   unk_token="[UNK]", mask_token="[MASK]", model_max_length=512)


def _wordpiece_vocab() -> dict[str, int]:
    """Specials, every character alone and as a continuation, then the commonest words (ties in
    alphabetical order): the same vocabulary in every process, unlike tokenizers' WordPiece
    trainer, whose ties fall differently from run to run."""
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(word for text in demo_texts()
                    for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({char for word in words for char in word})
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{char}" for char in chars)]
    common = sorted((word for word in words if len(word) > 1), key=lambda word: (-words[word], word))
    pieces += common[: max(0, VOCAB_SIZE - len(pieces))]
    return {piece: index for index, piece in enumerate(pieces)}


def family_tokenizer(family: str):
    return _tokenizer("roberta" if family == "roberta" else "wordpiece")


def hf_config(family: str, *, size: str = "tiny", num_labels: int = 2, **overrides):
    """`transformers`' config of `family`: `tiny` (2 layers, width 32) or `base` (its defaults)."""
    import transformers

    vocab = len(family_tokenizer(family))
    if family == "distilbert":
        values = dict(vocab_size=vocab, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
        if size == "tiny":
            values |= dict(dim=32, n_layers=2, n_heads=4, hidden_dim=48)
        config = transformers.DistilBertConfig(**(values | overrides))
    else:
        values = dict(vocab_size=vocab, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        if family == "roberta":  # the Hub checkpoints' shape of the position table and types
            values |= dict(max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2)
        if size == "tiny":
            values |= dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
        config_class = transformers.RobertaConfig if family == "roberta" else transformers.BertConfig
        config = config_class(**(values | overrides))
    config.num_labels = num_labels
    return config


def save_family_classifier(directory: Path, family: str, *, size: str = "tiny", seed: int = 0,
                           num_labels: int = 2, **overrides) -> Path:
    """A random `transformers` classifier of `family` and its tokenizer, saved in the Hub layout."""
    import transformers

    torch.manual_seed(seed)
    config = hf_config(family, size=size, num_labels=num_labels, **overrides)
    model = transformers.AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    model.save_pretrained(directory)
    family_tokenizer(family).save_pretrained(directory)
    return Path(directory)


def reference_model(directory: Path):
    """`transformers`' own classifier from `directory`, eager attention, eval mode."""
    import transformers

    return transformers.AutoModelForSequenceClassification.from_pretrained(
        directory, attn_implementation="eager").eval()
