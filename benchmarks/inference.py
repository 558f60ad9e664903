"""Inference throughput: our encoder (float32 and int8) vs `transformers`, PyTorch int8 and ONNX
Runtime (float32 and int8), same weights, one run.

Sentences per second over SST-2 validation (872 sentences) with batch 32 and 2 threads, timing
the model call on pre-tokenised batches (tokenisation is identical for all and excluded).
Batches are taken in file order ("as given") and sorted by length ("sorted"). Every float32
path's logits are checked against transformers eager before timing (within 1e-5), so a fast
wrong model cannot win; int8 paths report their largest logit change and how often their
argmax agrees with float32 (meaningful with a fine-tuned `--model`; int8 accuracy proper is
`benchmarks/int8_accuracy.py`). Repeats are interleaved, so drifting machine load hits every
contender alike; the table reports the median pass.

Contenders: transformers eager / sdpa; PyTorch dynamic int8 (`quantize_dynamic` on the sdpa
model); ONNX Runtime float32 and int8 (transformers' model exported with `torch.onnx`, int8 by
`onnxruntime.quantization.quantize_dynamic`), each as exported and after onnxruntime's BERT
graph optimizer (fused attention, SkipLayerNorm, BiasGelu); attnlens float32 (oneDNN, unpadded)
and int8 (`attnlens.inference.quantize`). The process keeps freed memory for reuse (`attnlens.inference.allocator`,
as the service and CLI do; it helps every PyTorch contender, ONNX Runtime has its own arena);
`--malloc default` measures without it. It bounds oneDNN's caches of prepared products, as they do
(`attnlens.inference.primitive_caches`); `--primitive-caches default` keeps the libraries' own
bounds. ONNX Runtime comes from the `bench` extra:

    pip install -e '.[bench]'
    python benchmarks/inference.py [--model DIR] [--data ../shared/data/sst2/validation.tsv] \\
        [--repeats 3] [--limit N] [--only NAME ...] [--malloc tuned|default] \\
        [--primitive-caches bounded|default]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import shared_data
import torch
import transformers

from attnlens import DEFAULT_BASE_MODEL, BertForSequenceClassification, load_tokenizer
from attnlens.inference.allocator import keep_freed_memory
from attnlens.inference.engine import classify
from attnlens.inference.primitive_caches import bound_primitive_caches
from attnlens.inference.quantize import quantize_int8
from attnlens.loading import load_model

REPO_ROOT = Path(__file__).resolve().parents[1]
# torch.testing's float32 tolerance: |Δ| <= 1e-5 + 1.3e-6·|reference|. A trained model's logits
# reach ~3.5, and another summation order (oneDNN's blocked products) over six post-LN layers then
# moves them by up to ~1.1e-5 (relative 3e-6), which a bare 1e-5 would call a mismatch.
FLOAT32_ATOL, FLOAT32_RTOL = 1e-5, 1.3e-6
REFERENCE = "transformers eager"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

Forward = Callable[[dict], torch.Tensor]


def read_sentences(path: Path) -> list[str]:
    return [row["sentence"] for row in shared_data.read_rows(path)]


def make_batches(tokenizer, sentences: list[str], batch_size: int, sort: bool) -> list[dict[str, torch.Tensor]]:
    order = sorted(range(len(sentences)), key=lambda i: len(tokenizer.tokenize(sentences[i]))) if sort \
        else range(len(sentences))
    ordered = [sentences[i] for i in order]
    return [dict(tokenizer(ordered[i:i + batch_size], padding=True, truncation=True, max_length=512,
                           return_tensors="pt", return_token_type_ids=True))
            for i in range(0, len(ordered), batch_size)]


def tensors(batch: dict) -> dict[str, torch.Tensor]:
    """The model inputs of a batch (which also carries their numpy copies for ONNX Runtime);
    DistilBERT's forward takes no token types."""
    return {name: batch[name] for name in batch["inputs"]}


def time_pass(forward: Forward, batches: list[dict]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            forward(batch)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------ contenders


def torch_contenders(model_dir: str, ours: torch.nn.Module) -> dict[str, tuple[Forward, bool]]:
    """name -> (forward, is_float32) for the PyTorch contenders, all with our weights."""
    references = {}
    for impl in ("eager", "sdpa"):
        ref = transformers.AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=2, attn_implementation=impl).eval()
        ref.load_state_dict(ours.state_dict())  # identical weights, head included
        references[impl] = ref
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        torch_int8 = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(references["sdpa"]), {torch.nn.Linear}, dtype=torch.qint8)
    ours_int8 = quantize_int8(ours)
    return {
        "transformers eager": (lambda b: references["eager"](**tensors(b)).logits, True),
        "transformers sdpa": (lambda b: references["sdpa"](**tensors(b)).logits, True),
        "PyTorch dynamic int8 (transformers sdpa)": (lambda b: torch_int8(**tensors(b)).logits, False),
        "attnlens fp32": (lambda b: classify(ours, b["input_ids"], b["attention_mask"], b["token_type_ids"]), True),
        "attnlens int8": (lambda b: classify(ours_int8, b["input_ids"], b["attention_mask"], b["token_type_ids"]),
                          False),
    }


class _Logits(torch.nn.Module):
    """transformers' model called with keywords, so families without token types export too."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs, strict=True))).logits


def export_onnx(model: torch.nn.Module, path: Path, names: tuple[str, ...] = INPUT_NAMES) -> Path:
    """transformers' model as ONNX with dynamic batch and sequence axes (TorchScript exporter)."""
    example = torch.randint(1000, 2000, (2, 16))
    mask = torch.ones_like(example)
    mask[1, 10:] = 0
    inputs = (example, mask, torch.zeros_like(example))[: len(names)]
    dynamic = {name: {0: "batch", 1: "seq"} for name in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Logits(model, names), inputs, str(path), input_names=list(names),
                          output_names=["logits"], dynamic_axes=dynamic, opset_version=17, dynamo=False)
    return path


def onnx_contenders(reference: torch.nn.Module, threads: int, workdir: Path,
                    names: tuple[str, ...] = INPUT_NAMES) -> dict[str, tuple[Forward, bool]]:
    """ONNX Runtime float32/int8, as exported and BERT-optimised; empty without the bench extra."""
    try:
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers import optimizer
    except ImportError:
        print("onnxruntime is not installed (pip install -e '.[bench]'): skipping ONNX Runtime")
        return {}
    config = reference.config
    plain = export_onnx(reference, workdir / "model.onnx", names)
    optimized = workdir / "model-optimized.onnx"
    optimizer.optimize_model(str(plain), model_type="bert", num_heads=config.num_attention_heads,
                             hidden_size=config.hidden_size, opt_level=1).save_model_to_file(str(optimized))
    files = {"ONNX Runtime fp32": (plain, True), "ONNX Runtime fp32 optimized": (optimized, True)}
    for name, source in (("ONNX Runtime int8", plain), ("ONNX Runtime int8 optimized", optimized)):
        target = source.with_name(source.stem + "-int8.onnx")
        # The optimizer's fused com.microsoft ops defeat shape inference; their outputs are float.
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        files[name] = (target, False)

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    contenders = {}
    for name, (path, is_float32) in files.items():
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        accepted = {node.name for node in session.get_inputs()}

        def forward(batch: dict, session=session, accepted=accepted) -> torch.Tensor:
            feed = {k: v for k, v in batch["numpy"].items() if k in accepted}
            return torch.from_numpy(session.run(None, feed)[0])

        contenders[name] = (forward, is_float32)
    return contenders


def random_family_model(family: str, folder: Path) -> str:
    """transformers' default (base-shaped) config of `family`, random weights, two labels, saved."""
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(family, num_labels=2)
    transformers.AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    return str(folder)


# ------------------------------------------------------------------------------ run


def check(models: dict[str, tuple[Forward, bool]], batches: list[dict]) -> dict[str, str]:
    """Compare every contender's logits with the reference's; float32 ones must match."""
    notes = {}
    with torch.inference_mode():
        expected = [models[REFERENCE][0](b) for b in batches]
        for name, (forward, is_float32) in models.items():
            got = [forward(b) for b in batches]
            worst = max(float((g - e).abs().max()) for g, e in zip(got, expected, strict=True))
            agree = sum(int((g.argmax(-1) == e.argmax(-1)).sum()) for g, e in zip(got, expected, strict=True))
            total = sum(len(e) for e in expected)
            if is_float32:
                for g, e in zip(got, expected, strict=True):
                    torch.testing.assert_close(g, e, atol=FLOAT32_ATOL, rtol=FLOAT32_RTOL,
                                               msg=lambda m, name=name: f"{name} vs {REFERENCE}: {m}")
            notes[name] = f"max |Δlogit| {worst:.1e}, argmax agrees {agree}/{total}"
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data.SST2_VALIDATION)
    parser.add_argument("--model", default=DEFAULT_BASE_MODEL, help="a BERT folder (its tokenizer also "
                        "tokenises for --family)")
    parser.add_argument("--family", choices=("bert", "roberta", "distilbert"), default="bert",
                        help="roberta/distilbert: transformers' base-shaped default config with random "
                             "weights (seeded), saved and loaded through attnlens' loader")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only (development)")
    parser.add_argument("--only", nargs="*", default=None, help="contender names to time (reference always)")
    parser.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                        help="tuned: keep freed memory for reuse (attnlens.inference.allocator); default: glibc as is")
    parser.add_argument("--primitive-caches", choices=("bounded", "default"), default="bounded",
                        help="bounded: oneDNN's caches bounded as the service and CLI do "
                             "(attnlens.inference.primitive_caches); default: the libraries' own bounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    malloc = "tuned" if args.malloc == "tuned" and keep_freed_memory() else "default"
    caches = ("bounded to " + bound_primitive_caches()["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]
              if args.primitive_caches == "bounded" else "default")
    torch.manual_seed(0)

    load_before = os.getloadavg()[0]
    sentences = read_sentences(args.data)[: args.limit]
    tokenizer = load_tokenizer(args.model)
    with tempfile.TemporaryDirectory(prefix="attnlens-onnx-") as workdir:
        model_dir = str(args.model)
        if args.family == "bert":
            ours = BertForSequenceClassification.from_pretrained(args.model, num_labels=2).eval()
        else:
            model_dir = random_family_model(args.family, Path(workdir) / args.family)
            ours = load_model(model_dir).eval()
        names = INPUT_NAMES if args.family != "distilbert" else INPUT_NAMES[:2]
        models = torch_contenders(model_dir, ours)
        eager_reference = transformers.AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=2, attn_implementation="eager").eval()
        eager_reference.load_state_dict(ours.state_dict())
        models |= onnx_contenders(eager_reference, args.threads, Path(workdir), names)
        if args.only:
            models = {name: spec for name, spec in models.items() if name == REFERENCE or name in args.only}

        results: dict[tuple[str, str], float] = {}
        notes: dict[str, str] = {}
        for layout in ("as given", "sorted"):
            batches = make_batches(tokenizer, sentences, args.batch_size, sort=layout == "sorted")
            for batch in batches:
                batch["inputs"] = names
                batch["numpy"] = {name: batch[name].numpy() for name in names}
            layout_notes = check(models, batches)
            notes = layout_notes if layout == "sorted" else notes
            times: dict[str, list[float]] = {name: [] for name in models}
            for _ in range(args.repeats):  # interleaved, so drift in machine load hits every model alike
                for name, (forward, _) in models.items():
                    times[name].append(time_pass(forward, batches))
            for name in models:
                results[(name, layout)] = len(sentences) / statistics.median(times[name])

    base = "ONNX Runtime fp32" if ("ONNX Runtime fp32", "sorted") in results else "transformers sdpa"
    if (base, "sorted") not in results:
        base = REFERENCE
    print(f"\n{len(sentences)} sentences, batch {args.batch_size}, {args.threads} threads, median of "
          f"{args.repeats} interleaved passes; malloc {malloc}; primitive caches {caches}; torch {torch.__version__}, transformers {transformers.__version__}"
          f"{_ort_version()}; model {args.model if args.family == 'bert' else args.family + ' (random, base-shaped)'}; 1-minute load average {load_before:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    print(f"| contender | as given (sent/s) | ratio vs {base} | sorted by length (sent/s) | ratio vs {base} "
          f"| check vs {REFERENCE} (sorted batches) |")
    print("|---|---:|---:|---:|---:|---|")
    for name in models:
        given, ordered = results[(name, "as given")], results[(name, "sorted")]
        print(f"| {name} | {given:.0f} | {given / results[(base, 'as given')]:.2f} | {ordered:.0f} | "
              f"{ordered / results[(base, 'sorted')]:.2f} | {notes.get(name, '')} |")


def _ort_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        return ""
    return f", onnxruntime {onnxruntime.__version__}"


if __name__ == "__main__":
    main()
