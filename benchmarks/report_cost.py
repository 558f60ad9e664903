"""What a whole `attnlens report` costs against a plain prediction pass over the same texts, and
what temperature scaling does to calibration (docs/benchmarks.md, "Report").

    python benchmarks/report_cost.py --model outputs/sst2-minilm/best --output outputs/report-bench

For each data set (SST-2 validation, 872 sentences; imdb-2k, 2,000 reviews, truncated to the
model's 512 tokens), in one process: a prediction pass with `Predictor` (what `attnlens predict`
does), then `build_report` with every section (faithfulness included) on the same texts; the ratio
of the two wall times is the figure. The model's temperature is fitted on SST-2 validation first
(as the training job does), so the imdb-2k ECE after scaling is out of sample; on SST-2 the
temperature is fitted and scored on the same texts (said in the output). Writes each report's
JSON and HTML under --output, and prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_data import imdb, sst2

from attnlens import load_tokenizer
from attnlens.calibration import write_calibration
from attnlens.loading import load_model
from attnlens.predict import Predictor
from attnlens.report import build_report
from attnlens.temperature_fit import fit_model_temperature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a fine-tuned model folder (copied; the copy is calibrated)")
    parser.add_argument("--output", default="outputs/report-bench")
    parser.add_argument("--limit", type=int, default=None, help="first N texts of each set (a quick look)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--sets", nargs="+", choices=("sst2", "imdb"), default=["sst2", "imdb"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    output = Path(args.output)
    folder = output / "model"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(args.model, folder)

    sets = {"SST-2 validation": sst2(split="validation"), "imdb-2k": imdb()}
    # The temperature is always fitted on SST-2 validation; --sets picks what is reported.
    reported = {"SST-2 validation": "sst2" in args.sets, "imdb-2k": "imdb" in args.sets}
    if args.limit:
        sets = {name: (texts[: args.limit], labels[: args.limit]) for name, (texts, labels) in sets.items()}
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    texts, labels = sets["SST-2 validation"]
    fit = fit_model_temperature(model, tokenizer, texts, labels, fit_on="SST-2 validation")
    write_calibration(folder, fit.record)
    model = load_model(folder)
    print(f"temperature {fit.temperature:.3f} fitted on SST-2 validation", flush=True)

    rows = []
    for name, (texts, labels) in sets.items():
        if not reported[name]:
            continue
        started = time.perf_counter()
        Predictor(model, tokenizer).predict(texts)
        prediction_s = time.perf_counter() - started
        started = time.perf_counter()
        report = build_report(model, tokenizer, texts, labels, model_name=args.model, data_name=name)
        report_s = time.perf_counter() - started
        report.write(output / name.split()[0].lower())
        c = report.calibration
        rows.append({"data": name, "texts": len(texts), "prediction_s": prediction_s, "report_s": report_s,
                     "ratio": report_s / prediction_s, "passes": report.seconds, "accuracy": report.metrics.accuracy,
                     "ece_before": c.before.ece, "ece_after": c.after.ece, "nll_before": c.before.nll,
                     "nll_after": c.after.nll, "temperature": c.temperature,
                     "faithfulness": None if report.faithfulness is None else vars(report.faithfulness)})
        print(json.dumps(rows[-1]), flush=True)

    print("\n| data | texts | prediction pass (s) | whole report (s) | ratio | accuracy | ECE raw | ECE T | NLL raw | NLL T |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['data']} | {r['texts']:,} | {r['prediction_s']:.1f} | {r['report_s']:.1f} | **{r['ratio']:.2f}** | "
              f"{r['accuracy']:.4f} | {r['ece_before']:.4f} | {r['ece_after']:.4f} | {r['nll_before']:.4f} | "
              f"{r['nll_after']:.4f} |")
    (output / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
