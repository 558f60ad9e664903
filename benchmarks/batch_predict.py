"""File scoring: `attnlens predict --input/--output` against transformers' pipeline reading the same
file with `datasets`, and against `Predictor` on texts already in memory (docs/benchmarks.md,
"File scoring"; issue #25).

    python benchmarks/batch_predict.py --model outputs/sst2-minilm-800/best --rows 50000 \\
        --rss-rows 10000,200000 --work outputs/batch-bench

Inputs are the first `--rows` sentences of SST-2 train (67,349; repeated in file order past that),
written as GLUE-style TSV (`sentence<TAB>label`, no quoting) under `--work`. Every contender runs in
its own process with the same model, `--threads` torch threads, batch 32 and long texts truncated;
each child process keeps freed memory for reuse and bounds oneDNN's caches, as the CLI does
(attnlens.inference.process_setup):

- **file job**: the real command `python -m attnlens predict --input rows.tsv --text-column sentence
  --output out.jsonl --batch-size 32 --resume never`; seconds are its summary line's (reading,
  predicting and writing the whole file, model loading excluded). Threads: OMP_NUM_THREADS.
- **Predictor**: the rows read into a list first, then `Predictor.from_pretrained(M, batch_size=32)
  .predict(texts)` timed alone (no reading, no writing).
- **pipeline** (reference): `transformers.pipeline("text-classification", batch_size=32, device=-1,
  truncation=True)`, loaded first; timed from `datasets.load_dataset("csv", ...)` (a fresh cache, so
  the file is converted each time) to the last result of `pipe(KeyDataset(ds, "sentence"))`.
- **rss**: the file job on each of `--rss-rows`; peak RSS must not grow with the file.

Peak RSS is each child's `ru_maxrss` (os.wait4). The file job's labels must equal the Predictor's
and it must write no error rows (exit status 1 otherwise); the pipeline's agreement is reported. Without `--model`, the
embedded all-MiniLM-L6-v2 with a seeded fresh 2-class head is saved under `--work` and used by all
(speed only: its labels are those of an untrained head). Prints a Markdown table and writes
`results.json` under `--work`.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import shared_data

BATCH_SIZE = 32
LONG_TEXT = "truncate"
CONTENDERS = ("file", "predictor", "pipeline", "rss")
NAMES = {
    "file": "attnlens predict --input (file job)",
    "predictor": "Predictor.predict, texts in memory",
    "pipeline": "transformers pipeline + datasets (reference)",
}
# `Summary.line` of attnlens.batch.job: "<rows> rows in <s> s[ by <n> processes] (<rate> rows/s), <t>
# truncated, <e> errors" (no "(... resumed from parts)": the job runs with --resume never)
SUMMARY = re.compile(
    r"(\d+) rows in ([\d.]+) s(?: by \d+ processes)? \(([\d.]+) rows/s\), (\d+) truncated, (\d+) errors"
)


# ------------------------------------------------------------------------------ inputs


def write_rows(path: Path, rows: int) -> Path:
    """The first `rows` lines of SST-2 train (cycled), with its header, bytes as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        written = 0
        while written < rows:
            with shared_data.SST2_TRAIN.open(encoding="utf-8", newline="") as source:
                header = source.readline()
                if written == 0:
                    out.write(header)
                for line in itertools.islice(source, rows - written):
                    out.write(line if line.endswith("\n") else line + "\n")
                    written += 1
    return path


# ------------------------------------------------------------------------------ child processes


def run_child(command: list[str], env: dict[str, str], log: Path) -> dict:
    """Run `command` to its end; its wall time and peak RSS (ru_maxrss of that process alone)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command)} exited with {process.returncode}; end of {log}:\n{tail}")
    return {"process_wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024}  # Linux: KiB


def file_job(model: str, data: Path, output: Path, env: dict[str, str], log: Path) -> dict:
    command = [sys.executable, "-m", "attnlens", "predict", "--model", model, "--input", str(data)]
    command += ["--text-column", "sentence", "--output", str(output), "--batch-size", str(BATCH_SIZE)]
    command += ["--long-text", LONG_TEXT, "--resume", "never"]
    run = run_child(command, env, log)
    lines = [
        m for m in map(SUMMARY.search, log.read_text(encoding="utf-8", errors="replace").splitlines()) if m
    ]
    if not lines:
        raise SystemExit(f"no summary line in {log}")
    rows, _, rate, truncated, errors = lines[-1].groups()
    # The rate keeps more digits than the seconds ("in 0.4 s"); seconds = rows / rate.
    return run | {
        "rows": int(rows),
        "seconds": int(rows) / float(rate),
        "rows_per_s": float(rate),
        "truncated": int(truncated),
        "errors": int(errors),
        "output": str(output),
    }


def role_child(
    role: str, args: argparse.Namespace, data: Path, result: Path, env: dict[str, str], log: Path
) -> dict:
    command = [sys.executable, __file__, "--role", role, "--model", args.model, "--input", str(data)]
    command += ["--result", str(result), "--threads", str(args.threads)]
    run = run_child(command, env, log)
    return run | json.loads(result.read_text(encoding="utf-8"))


def predictor_role(args: argparse.Namespace) -> dict:
    import torch

    from attnlens.inference.process_setup import prepare_inference_process
    from attnlens.predict import Predictor

    torch.set_num_threads(args.threads)
    setup = prepare_inference_process()
    texts = [row["sentence"] for row in shared_data.read_rows(Path(args.input))]
    predictor = Predictor.from_pretrained(args.model, batch_size=BATCH_SIZE)
    started = time.perf_counter()
    predictions = predictor.predict(texts, long_text=LONG_TEXT)
    seconds = time.perf_counter() - started
    return {
        "rows": len(texts),
        "seconds": seconds,
        "rows_per_s": len(texts) / seconds,
        "labels": [p.label for p in predictions],
        "truncated": sum(p.truncated for p in predictions),
        "max_length": predictor.max_length,
        "threads": torch.get_num_threads(),
        **setup,
    }


def pipeline_role(args: argparse.Namespace) -> dict:
    import datasets
    import torch
    import transformers
    from transformers.pipelines.pt_utils import KeyDataset

    from attnlens.inference.process_setup import prepare_inference_process

    torch.set_num_threads(args.threads)
    setup = prepare_inference_process()
    datasets.disable_progress_bars()
    pipe = transformers.pipeline(
        "text-classification",
        model=args.model,
        tokenizer=args.model,
        batch_size=BATCH_SIZE,
        device=-1,
        truncation=True,
    )
    cache = Path(args.result).with_name(Path(args.result).stem + "-datasets-cache")
    shutil.rmtree(cache, ignore_errors=True)  # each run converts the file, as a first run does
    started = time.perf_counter()
    dataset = datasets.load_dataset(
        "csv",
        data_files=str(args.input),
        delimiter="\t",
        quoting=csv.QUOTE_NONE,
        split="train",
        cache_dir=str(cache),
    )
    read_seconds = time.perf_counter() - started
    labels = [_top(out)["label"] for out in pipe(KeyDataset(dataset, "sentence"), batch_size=BATCH_SIZE)]
    seconds = time.perf_counter() - started
    # Outside the timer: how many texts the pipeline's truncation cut (its window: the tokenizer's).
    window = pipe.tokenizer.model_max_length
    lengths = [len(ids) for ids in pipe.tokenizer(list(dataset["sentence"]))["input_ids"]]
    del dataset
    shutil.rmtree(cache, ignore_errors=True)
    return {
        "rows": len(labels),
        "seconds": seconds,
        "read_seconds": read_seconds,  # load_dataset alone: parsing the file into its Arrow cache
        "rows_per_s": len(labels) / seconds,
        "labels": labels,
        "truncated": sum(n > window for n in lengths),
        "max_length": window,
        "threads": torch.get_num_threads(),
        **setup,
        "attn_implementation": pipe.model.config._attn_implementation,
        "dtype": str(pipe.model.dtype),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "datasets": datasets.__version__,
        },
    }


def _top(output: dict | list) -> dict:
    """The pipeline's top result for one text (a dict, or a one-element list in some versions)."""
    return output[0] if isinstance(output, list) else output


def default_model_role(args: argparse.Namespace) -> dict:
    import torch

    from attnlens import DEFAULT_BASE_MODEL, load_model, load_tokenizer

    torch.manual_seed(0)
    model = load_model(DEFAULT_BASE_MODEL, id2label={0: "negative", 1: "positive"})
    model.save_pretrained(args.model, tokenizer=load_tokenizer(DEFAULT_BASE_MODEL))
    return {"model": args.model, "base": str(DEFAULT_BASE_MODEL)}


ROLES = {"predictor": predictor_role, "pipeline": pipeline_role, "default-model": default_model_role}


# ------------------------------------------------------------------------------ checks


def file_labels(output: Path) -> list[str | None]:
    """The `label` of every row of a file job's jsonl output, in row order."""
    labels = []
    with output.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            record = json.loads(line)
            if record["row"] != number:
                raise SystemExit(f"{output}: line {number} holds row {record['row']}")
            labels.append(record["label"])
    return labels


def agreement(got: list, expected: list) -> dict:
    same = sum(a == b for a, b in zip(got, expected, strict=False))
    return {
        "agree": same,
        "of": len(expected),
        "rows_compared": len(got),
        "rate": same / max(len(expected), 1),
        "exact": len(got) == len(expected) and same == len(expected),
    }


# ------------------------------------------------------------------------------ main


def summarize(runs: list[dict]) -> dict:
    """The median run's seconds (rows/s from it), the largest peak RSS, and every run."""
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        "rows": runs[0]["rows"],
        "seconds": seconds,
        "rows_per_s": runs[0]["rows"] / seconds,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "truncated": runs[0]["truncated"],
        "runs": [{k: v for k, v in r.items() if k != "labels"} for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=None,
        help="a fine-tuned model folder (Hugging Face layout); default: "
        "the embedded all-MiniLM-L6-v2 with a seeded fresh head, saved under --work",
    )
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the speed set")
    parser.add_argument("--rss-rows", default="10000,200000", help="file sizes (rows) of the peak RSS runs")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("outputs/batch-bench"),
        help="generated inputs, outputs, logs and results.json",
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"any of {','.join(CONTENDERS)}")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per contender (rotating order); median time"
    )
    parser.add_argument("--role", choices=tuple(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        result = ROLES[args.role](args)
        Path(args.result).write_text(json.dumps(result), encoding="utf-8")
        return

    contenders = [name.strip() for name in args.contenders.split(",") if name.strip()]
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown:
        parser.error(f"--contenders {','.join(unknown)}: not one of {','.join(CONTENDERS)}")
    rss_rows = [int(n) for n in args.rss_rows.split(",") if n.strip()]
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
    )
    if args.model is None:
        args.model = str(work / "default-model")
        if not (work / "default-model" / "config.json").exists():
            log = work / "logs" / "default-model.log"
            role_child("default-model", args, Path(), work / "default-model.json", env, log)
    load_before = os.getloadavg()[0]

    speed = [name for name in ("file", "predictor", "pipeline") if name in contenders]
    data = write_rows(work / f"rows-{args.rows}.tsv", args.rows) if speed else None
    runs: dict[str, list[dict]] = {name: [] for name in speed}
    rss_runs: dict[int, list[dict]] = {n: [] for n in rss_rows} if "rss" in contenders else {}
    rss_data = {n: write_rows(work / f"rows-{n}.tsv", n) for n in rss_runs}
    for repeat in range(args.repeat):
        # Rotate the order so that changing load on a shared machine hits every contender alike.
        order = speed[repeat % len(speed) :] + speed[: repeat % len(speed)] if speed else []
        for name in order:
            log = work / "logs" / f"{name}-{args.rows}-{repeat}.log"
            if name == "file":
                run = file_job(args.model, data, work / f"file-{args.rows}.jsonl", env, log)
            else:
                run = role_child(name, args, data, work / f"{name}-{args.rows}.json", env, log)
            runs[name].append(run)
            print(
                f"repeat {repeat} {name:9s} {run['rows']:>9,} rows {run['seconds']:8.1f} s "
                f"{run['rows_per_s']:8.1f} rows/s  peak RSS {run['peak_rss_mib']:7.0f} MiB",
                flush=True,
            )
        for rows in rss_runs:
            log = work / "logs" / f"rss-{rows}-{repeat}.log"
            run = file_job(args.model, rss_data[rows], work / f"rss-{rows}.jsonl", env, log)
            rss_runs[rows].append(run)
            print(
                f"repeat {repeat} rss       {run['rows']:>9,} rows {run['seconds']:8.1f} s "
                f"{run['rows_per_s']:8.1f} rows/s  peak RSS {run['peak_rss_mib']:7.0f} MiB",
                flush=True,
            )

    checks = check_labels(runs, args.rows)
    results = {
        "settings": {
            "model": args.model,
            "rows": args.rows,
            "rss_rows": rss_rows,
            "threads": args.threads,
            "batch_size": BATCH_SIZE,
            "long_text": LONG_TEXT,
            "repeat": args.repeat,
            "contenders": contenders,
            "python": sys.version.split()[0],
            "load_average_1min": [load_before, os.getloadavg()[0]],
            "parent_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        "speed": {name: summarize(r) for name, r in runs.items()},
        "rss": {str(rows): summarize(r) for rows, r in rss_runs.items()},
        "checks": checks,
    }
    if "pipeline" in runs:
        last = runs["pipeline"][-1]
        results["settings"] |= {
            "versions": last["versions"],
            "pipeline_attn_implementation": last["attn_implementation"],
            "pipeline_dtype": last["dtype"],
        }
    results["ratios"] = ratios(results)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    if "file_errors" in checks or (
        checks.get("file_vs_predictor") and not checks["file_vs_predictor"]["exact"]
    ):
        sys.exit(1)


def check_labels(runs: dict[str, list[dict]], rows: int) -> dict:
    """File job vs Predictor (must be equal), pipeline vs the others (agreement rate)."""
    labels = {name: r[-1]["labels"] for name, r in runs.items() if name != "file"}
    if "file" in runs:
        labels["file"] = file_labels(Path(runs["file"][-1]["output"]))
    checks: dict = {}
    if "file" in labels and "predictor" in labels:
        checks["file_vs_predictor"] = agreement(labels["file"], labels["predictor"])
    for other in ("predictor", "file"):
        if "pipeline" in labels and other in labels:
            checks[f"pipeline_vs_{other}"] = agreement(labels["pipeline"], labels[other])
    for name, values in labels.items():
        if len(values) != rows:
            checks[f"{name}_rows"] = f"{len(values)} labels for {rows} rows"
    if "file" in runs and runs["file"][-1]["errors"]:
        checks["file_errors"] = f"{runs['file'][-1]['errors']} rows written as errors"
    return checks


def ratios(results: dict) -> dict:
    speed = {name: s["rows_per_s"] for name, s in results["speed"].items()}
    out = {}
    if "file" in speed and "pipeline" in speed:
        out["file_vs_pipeline"] = speed["file"] / speed["pipeline"]
    if "file" in speed and "predictor" in speed:
        out["file_vs_predictor"] = speed["file"] / speed["predictor"]
    rss = results["rss"]
    if len(rss) >= 2:
        smallest, largest = min(rss, key=int), max(rss, key=int)
        out["rss_largest_vs_smallest"] = rss[largest]["peak_rss_mib"] / rss[smallest]["peak_rss_mib"]
    return out


def print_table(results: dict) -> None:
    settings, speed = results["settings"], results["speed"]
    versions = ", ".join(f"{k} {v}" for k, v in settings.get("versions", {}).items())
    print(
        f"\nmodel {settings['model']}; batch {BATCH_SIZE}, {settings['threads']} threads, long texts "
        f"{LONG_TEXT}; median of {settings['repeat']} run(s); {versions + '; ' if versions else ''}"
        f"1-minute load average {settings['load_average_1min'][0]:.1f} at the start, "
        f"{settings['load_average_1min'][1]:.1f} at the end\n"
    )
    print("| contender | rows | seconds | rows/s | vs pipeline | vs Predictor | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, s in speed.items():
        vs = [
            f"{s['rows_per_s'] / speed[ref]['rows_per_s']:.2f}" if ref in speed else "—"
            for ref in ("pipeline", "predictor")
        ]
        print(
            f"| {NAMES[name]} | {s['rows']:,} | {s['seconds']:.1f} | {s['rows_per_s']:.1f} | {vs[0]} | {vs[1]} "
            f"| {s['peak_rss_mib']:.0f} |"
        )
    for rows, s in results["rss"].items():
        print(
            f"| file job, RSS set ({int(rows):,} rows) | {s['rows']:,} | {s['seconds']:.1f} | "
            f"{s['rows_per_s']:.1f} | — | — | {s['peak_rss_mib']:.0f} |"
        )
    goals = {
        "file_vs_pipeline": ("file job / pipeline rows/s", "≥ 2"),
        "file_vs_predictor": ("file job / Predictor rows/s", "≥ 0.9"),
        "rss_largest_vs_smallest": ("peak RSS, largest / smallest file", "≤ 1.10"),
    }
    print()
    for key, value in results["ratios"].items():
        label, goal = goals[key]
        print(f"- {label}: {value:.2f} (goal {goal})")
    for key, check in results["checks"].items():
        if isinstance(check, dict):
            verdict = ("exact" if check["exact"] else "must be all") if key == "file_vs_predictor" else ""
            print(
                f"- labels {key.replace('_vs_', ' vs ')}: {check['agree']:,}/{check['of']:,} agree"
                + (f" ({verdict})" if verdict else "")
            )
        else:
            print(f"- {key}: {check}")
    if "pipeline" in speed:
        read = statistics.median(r["read_seconds"] for r in speed["pipeline"]["runs"])
        print(f"- pipeline: load_dataset took {read:.2f} s of its {speed['pipeline']['seconds']:.1f} s")
    truncated = {name: s["truncated"] for name, s in speed.items()}
    print(f"- texts truncated: {', '.join(f'{name} {count}' for name, count in truncated.items())}")


if __name__ == "__main__":
    main()
