"""`attnlens predict --input FILE --output FILE` (attnlens.batch): every input and output format,
bad rows, `--strict`, and resuming a job killed mid-way, with a tiny random model."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from service_harness import save_tiny_classifier

from attnlens.cli import main
from attnlens.predict import Predictor

# A lone quote (GLUE TSVs have them), words pyarrow would read as null or a number, and a text past
# the tiny model's 32-token window.
TEXTS = ['a "gripping film', "NA", "123", "null", "dull, flat and far too long",
         " ".join(["word"] * 40), "great", "not bad at all"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("batch") / "tiny", max_position_embeddings=32)


@pytest.fixture(scope="module")
def predictor(model_dir) -> Predictor:
    return Predictor.from_pretrained(str(model_dir))


def write_input(path: Path, rows: list[dict]) -> Path:
    """`rows` as a file of the format `path`'s extension names."""
    kind = path.suffix
    if kind in (".jsonl", ".json"):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif kind == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif kind == ".tsv":  # no quoting, as in GLUE
        names = list(rows[0])
        lines = ["\t".join(names)] + ["\t".join(str(row[name]) for name in names) for row in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def read_output(path: Path) -> list[dict]:
    """Output rows with `probabilities` as a dict and numbers as numbers, whatever the format."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = [_typed_csv_row(row) for row in csv.DictReader(handle)]
    for row in rows:
        probabilities = {key[2:]: row.pop(key) for key in list(row) if key.startswith("p_")}
        row["probabilities"] = None if row["error"] else probabilities
    return rows


def _typed_csv_row(row: dict[str, str]) -> dict:
    typed: dict = dict(row)
    typed["row"] = int(row["row"])
    for key in ("score", "num_tokens", *(k for k in row if k.startswith("p_"))):
        typed[key] = None if row[key] == "" else float(row[key])
    for key in ("truncated", "uncertain"):
        typed[key] = None if row[key] == "" else row[key] == "True"
    typed["error"] = row["error"] or None
    if "explanation" in row:
        typed["explanation"] = row["explanation"] or None
    return typed


def run_cli(model_dir: Path, input_path: Path, output_path: Path, *extra: str) -> int:
    return main(["predict", "--model", str(model_dir), "--input", str(input_path), "--output", str(output_path),
                 *extra])


def assert_predictions_match(rows: list[dict], texts: list[str], predictor: Predictor) -> None:
    expected = predictor.predict(texts)
    assert len(rows) == len(expected)
    for row, prediction in zip(rows, expected, strict=True):
        assert row["error"] is None
        assert row["label"] == prediction.label
        assert row["num_tokens"] == prediction.num_tokens
        assert row["truncated"] == prediction.truncated
        for label, probability in prediction.probabilities.items():
            assert row["probabilities"][label] == pytest.approx(probability, abs=1e-6)


@pytest.mark.parametrize(("input_name", "output_name"), [
    ("in.csv", "out.jsonl"), ("in.tsv", "out.csv"), ("in.jsonl", "out.parquet"), ("in.parquet", "out.csv"),
    ("in.json", "out.jsonl"), ("in.csv", "out.parquet"),
])
def test_every_format_keeps_rows_ids_and_predictions(tmp_path, model_dir, predictor, capsys, input_name,
                                                     output_name):
    rows = [{"ref": f"r{index}", "text": text, "split": "test" if index % 2 else "dev"}
            for index, text in enumerate(TEXTS)]
    input_path = write_input(tmp_path / input_name, rows)
    output_path = tmp_path / output_name
    code = run_cli(model_dir, input_path, output_path, "--id-column", "ref", "--keep-columns", "split",
                   "--window-rows", "3", "--batch-size", "2")
    assert code == 0, capsys.readouterr().err
    written = read_output(output_path)
    assert [row["row"] for row in written] == list(range(1, len(TEXTS) + 1))
    assert [row["id"] for row in written] == [row["ref"] for row in rows]
    assert [row["split"] for row in written] == [row["split"] for row in rows]
    assert_predictions_match(written, TEXTS, predictor)
    assert not (tmp_path / f"{output_name}.parts").exists()
    assert f"{len(TEXTS)} rows" in capsys.readouterr().err


def test_bad_rows_become_error_rows_and_the_rest_is_predicted(tmp_path, model_dir, predictor, capsys):
    lines = [json.dumps({"text": "good film"}), json.dumps({"text": ""}), json.dumps({"other": "x"}),
             json.dumps({"text": 5}), '{"text": "broken', json.dumps({"text": "   "}), json.dumps(["a list"]),
             json.dumps({"text": "bad film"})]
    input_path = tmp_path / "in.jsonl"
    input_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run_cli(model_dir, input_path, tmp_path / "out.jsonl", "--window-rows", "3") == 0
    written = read_output(tmp_path / "out.jsonl")
    assert [row["row"] for row in written] == list(range(1, 9))
    good = [written[0], written[7]]
    assert_predictions_match(good, ["good film", "bad film"], predictor)
    problems = {2: "empty", 3: "missing", 4: "int", 5: "not valid JSON", 6: "empty", 7: "list"}
    for number, problem in problems.items():
        row = written[number - 1]
        assert row["error"].startswith(f"row {number}: ") and problem in row["error"], row["error"]
        assert row["label"] is None and row["probabilities"] is None
    assert "6 errors" in capsys.readouterr().err


def test_strict_stops_at_the_first_bad_row(tmp_path, model_dir, capsys):
    input_path = write_input(tmp_path / "in.csv", [{"text": "fine"}, {"text": "good"}, {"text": ""},
                                                   {"text": "bad"}])
    assert run_cli(model_dir, input_path, tmp_path / "out.csv", "--strict") == 2
    error = capsys.readouterr().err
    assert str(input_path) in error and "row 3" in error and "'text'" in error
    assert not (tmp_path / "out.csv").exists()


def test_a_missing_column_stops_before_predicting(tmp_path, model_dir, capsys):
    input_path = write_input(tmp_path / "in.csv", [{"sentence": "fine"}])
    assert run_cli(model_dir, input_path, tmp_path / "out.csv") == 2
    error = capsys.readouterr().err
    assert str(input_path) in error and "'text'" in error and "'sentence'" in error


def test_parts_of_another_job_are_refused_and_resume_never_starts_over(tmp_path, model_dir, capsys):
    texts = [f"review number {index}" for index in range(23)]
    texts[11] = ""
    input_path = write_input(tmp_path / "in.jsonl", [{"text": text} for text in texts])
    output_path = tmp_path / "out.jsonl"
    parts = tmp_path / "out.jsonl.parts"
    # A strict run stops at row 12 after writing windows 1 and 2: a real, unfinished job.
    assert run_cli(model_dir, input_path, output_path, "--window-rows", "5", "--strict") == 2
    assert sorted(path.name for path in parts.glob("window-*")) == ["window-000001.jsonl", "window-000002.jsonl"]
    capsys.readouterr()

    assert run_cli(model_dir, input_path, output_path, "--window-rows", "4") == 2
    error = capsys.readouterr().err
    assert str(parts) in error and "window_rows" in error and "--resume never" in error

    assert run_cli(model_dir, input_path, output_path, "--window-rows", "4", "--resume", "never") == 0
    written = read_output(output_path)
    assert [row["row"] for row in written] == list(range(1, 24))
    assert written[11]["error"].startswith("row 12: ")
    assert not parts.exists()

    # A finished output is kept as it is unless --resume never.
    before = output_path.stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(model_dir, input_path, output_path, "--window-rows", "4") == 0
    assert "complete" in capsys.readouterr().err
    assert output_path.stat().st_mtime_ns == before


def test_a_killed_job_resumes_to_exactly_one_row_per_input_row(tmp_path, model_dir, capsys):
    count = 3000
    input_path = write_input(tmp_path / "in.csv", [{"id": f"id{index}", "text": f"film {index} was fine"}
                                                   for index in range(count)])
    output_path = tmp_path / "out.jsonl"
    parts = tmp_path / "out.jsonl.parts"
    arguments = ["predict", "--model", str(model_dir), "--input", str(input_path), "--output", str(output_path),
                 "--id-column", "id", "--window-rows", "200", "--batch-size", "16"]
    environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "attnlens", *arguments], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list(parts.glob("window-*.jsonl")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    done = list(parts.glob("window-*.jsonl"))
    assert 1 <= len(done) < count // 200, process.stderr.read().decode() if process.stderr else ""
    assert not output_path.exists()

    assert main(arguments) == 0
    assert "resumed from parts" in capsys.readouterr().err
    assert main([*arguments[:6], str(tmp_path / "reference.jsonl"), *arguments[7:]]) == 0
    resumed, reference = read_output(output_path), read_output(tmp_path / "reference.jsonl")
    assert [row["id"] for row in resumed] == [f"id{index}" for index in range(count)]
    assert [row["row"] for row in resumed] == list(range(1, count + 1))
    for row, expected in zip(resumed, reference, strict=True):
        assert row["label"] == expected["label"] and row["num_tokens"] == expected["num_tokens"]
        assert row["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert not parts.exists()


def test_lines_with_the_wrong_number_of_cells_become_error_rows_in_place(tmp_path, model_dir, predictor, capsys):
    # Quoted cells with newlines and commas around the malformed lines: rows are records, not lines.
    lines = ['ref,text', 'r1,"a gripping,\nfunny film"', 'r2,too,many,cells', 'r3', 'r4,"dull\n\nand flat"',
             'r5,great', '"r6\nstill r6",not bad', 'r7,"one","two"', 'r8,fine']
    input_path = tmp_path / "in.csv"
    input_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output_path = tmp_path / "out.jsonl"
    assert run_cli(model_dir, input_path, output_path, "--id-column", "ref", "--window-rows", "2") == 0
    written = read_output(output_path)
    assert [row["row"] for row in written] == list(range(1, 9))
    assert [row["id"] for row in written] == ["r1", None, None, "r4", "r5", "r6\nstill r6", None, "r8"]
    assert written[1]["error"] == "row 2: the line has 4 cells where the header has 2"
    assert written[2]["error"] == "row 3: the line has 1 cell where the header has 2"
    assert written[6]["error"] == "row 7: the line has 3 cells where the header has 2"
    good = [written[index] for index in (0, 3, 4, 5, 7)]
    assert_predictions_match(good, ["a gripping,\nfunny film", "dull\n\nand flat", "great", "not bad", "fine"],
                             predictor)
    assert "3 errors" in capsys.readouterr().err

    # A tsv line with an extra tab, and --strict, which stops at the first such line.
    tsv = tmp_path / "in.tsv"
    tsv.write_text('text\tlabel\ngood "film\t1\nbad\tfilm\t0\n', encoding="utf-8")
    assert run_cli(model_dir, tsv, tmp_path / "out.csv", "--strict") == 2
    assert f"{tsv}: row 2: the line has 3 cells where the header has 2" in capsys.readouterr().err


def test_rows_are_placed_exactly_across_the_readers_blocks(tmp_path):
    """A file larger than pyarrow's 1 MB block, with quoted newlines and malformed lines throughout,
    read as Python's csv module reads it."""
    from attnlens.batch.reading import BadLine, read_windows

    lines, expected = ["text,id"], []
    for index in range(1, 45_001):
        if index % 997 == 0:
            lines.append(f"bad {index},{index},extra")
            expected.append(None)
        elif index % 3 == 0:
            lines.append(f'"film {index},\nwith a newline",{index}')
            expected.append({"text": f"film {index},\nwith a newline", "id": str(index)})
        else:
            lines.append(f"film {index} was fine,{index}")
            expected.append({"text": f"film {index} was fine", "id": str(index)})
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > 1_100_000
    with path.open(encoding="utf-8", newline="") as handle:
        assert sum(1 for _ in csv.reader(handle)) == len(expected) + 1

    rows = [row for _, window in read_windows(path, 4096) for row in window]
    assert len(rows) == len(expected)
    for number, (row, wanted) in enumerate(zip(rows, expected, strict=True), start=1):
        if wanted is None:
            assert isinstance(row, BadLine) and "3 cells" in row.problem, number
        else:
            assert row == wanted, number


def test_a_file_or_a_hub_dataset_id_is_told_apart_before_anything_is_read(tmp_path, model_dir, capsys):
    input_path = write_input(tmp_path / "in.csv", [{"text": "fine"}])
    assert run_cli(model_dir, input_path, tmp_path / "out.jsonl", "--split", "test") == 2
    assert f"{input_path}: --split and --dataset-config are for Hub dataset ids" in capsys.readouterr().err
    assert run_cli(model_dir, "org/reviews", tmp_path / "out.jsonl") == 2
    assert "org/reviews: no such file; to score it as a Hub dataset id, name the split" in capsys.readouterr().err
    assert run_cli(model_dir, tmp_path / "missing.csv", tmp_path / "out.jsonl") == 2
    assert "missing.csv: no such input file" in capsys.readouterr().err


def test_a_hub_dataset_split_is_scored_offline_from_the_datasets_cache(tmp_path, model_dir, predictor):
    """The datasets cache that `load_dataset` leaves behind, filled here by `datasets` itself from a
    folder in the Hub repo layout; the runs are offline, elsewhere, so only the cache can answer."""
    import datasets

    texts = ["a gripping film", "dull", "great", "", "not bad at all", None, "fine"]
    repo = tmp_path / "attnlens_reviews"  # a Hub id without an owner, as "imdb"
    (repo / "data").mkdir(parents=True)
    pq.write_table(pa.table({"text": texts, "stars": [5, 1, 2, 3, 5, 4, 4]}),
                   repo / "data" / "test-00000-of-00001.parquet")
    cache = tmp_path / "datasets-cache"
    filled = datasets.load_dataset(str(repo), split="test", cache_dir=str(cache))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(cache),
           "HF_HUB_CACHE": str(tmp_path / "hub-cache"), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    output = elsewhere / "scored.jsonl"
    arguments = [sys.executable, "-m", "attnlens", "predict", "--model", str(model_dir), "--input", "attnlens_reviews",
                 "--split", "test", "--output", str(output), "--keep-columns", "stars", "--window-rows", "3"]

    # --strict stops at row 4 after window 1: its job.json names the dataset, not a file.
    strict = subprocess.run([*arguments, "--strict"], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=120)
    assert strict.returncode == 2, strict.stderr[-2000:]
    assert "attnlens_reviews (test split): row 4: text column 'text' is empty" in strict.stderr
    job = json.loads((elsewhere / "scored.jsonl.parts" / "job.json").read_text(encoding="utf-8"))
    assert job["input"] == {"dataset": "attnlens_reviews", "config": None, "split": "test",
                            "fingerprint": filled._fingerprint}

    resumed = subprocess.run(arguments, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "4 rows (3 more resumed from parts)" in resumed.stderr
    written = read_output(output)
    assert [row["row"] for row in written] == list(range(1, 8))
    assert [row["stars"] for row in written] == [5, 1, 2, 3, 5, 4, 4]
    assert written[3]["error"] == "row 4: text column 'text' is empty"
    assert written[5]["error"] == "row 6: text column 'text' is missing"
    good = [written[index] for index in (0, 1, 2, 4, 6)]
    assert_predictions_match(good, [text for text in texts if text], predictor)


@pytest.mark.parametrize(("output_name", "level", "long_text"), [
    ("out.jsonl", "word", "chunk"), ("out.csv", "sentence", "truncate"), ("out.parquet", "token", "chunk")])
def test_explain_adds_each_rows_explanation(tmp_path, model_dir, predictor, capsys, output_name, level, long_text):
    """`--explain METHOD --level L`: each good row carries the explanation `explain_batch` gives (the
    whole text with `--long-text chunk`), and its prediction is the explained pass's; bad rows
    carry none."""
    from attnlens.explain import explain_batch

    texts = [*TEXTS[:6], "A fine film. Far too long, though!"]
    rows = [{"text": text} for text in texts[:3]] + [{"text": "  "}] + [{"text": text} for text in texts[3:]]
    input_path = write_input(tmp_path / "in.jsonl", rows)
    output_path = tmp_path / output_name
    assert run_cli(model_dir, input_path, output_path, "--explain", "occlusion", "--level", level,
                   "--long-text", long_text, "--window-rows", "4") == 0, capsys.readouterr().err
    written = read_output(output_path)
    assert written[3]["error"] and written[3]["explanation"] is None
    good = written[:3] + written[4:]
    expected = explain_batch(predictor.model, predictor.tokenizer, texts, method="occlusion", long_text=long_text)
    predictions = predictor.predict(texts, long_text=long_text)
    def served_explanation(row: dict) -> dict:  # jsonl holds an object, csv and parquet its JSON text
        return row["explanation"] if isinstance(row["explanation"], dict) else json.loads(row["explanation"])

    for row, explanation, prediction in zip(good, expected, predictions, strict=True):
        served = served_explanation(row)
        assert served["method"] == "occlusion" and served["level"] == level
        assert served["target"] == explanation.target
        items = {"word": explanation.words, "sentence": explanation.sentences,
                 "token": [t for t in explanation.tokens if not t.special]}[level]
        assert [(i["start"], i["end"]) for i in served["importances"]] == [(i.start, i.end) for i in items]
        # Batched otherwise than here: float rounding only.
        assert [i["score"] for i in served["importances"]] == pytest.approx([i.score for i in items], abs=1e-4)
        assert row["label"] == prediction.label and row["num_tokens"] == prediction.num_tokens
        assert row["truncated"] == prediction.truncated
        for label, probability in prediction.probabilities.items():
            assert row["probabilities"][label] == pytest.approx(probability, abs=1e-5)
    long_row = good[5]  # 40 words past the 32-token window
    assert long_row["truncated"] is (long_text == "truncate")
    last = served_explanation(long_row)["importances"][-1]["end"]
    assert (last == len(texts[5])) is (long_text == "chunk")


def test_explain_refuses_int8_and_texts_without_a_file(tmp_path, model_dir, capsys):
    input_path = write_input(tmp_path / "in.csv", [{"text": "fine"}])
    assert run_cli(model_dir, input_path, tmp_path / "out.jsonl", "--explain", "grad_rollout", "--quantize",
                   "int8") == 2
    assert "--explain needs the float32 model" in capsys.readouterr().err
    assert main(["predict", "--model", str(model_dir), "--explain", "grad_rollout", "fine"]) == 2
    assert "for texts use `attnlens explain`" in capsys.readouterr().err
