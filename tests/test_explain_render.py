"""Seeing explanations: escaped self-contained HTML, ANSI colours, the attention figure, and the
`attnlens explain` command on a saved tiny model (once as a real subprocess, the other cases in process)."""

from __future__ import annotations

import html
import io
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from attnlens import BertConfig, BertForSequenceClassification, InputError
from attnlens.explain import explain, plot_attention, to_ansi, to_html

HOSTILE = 'I <3 "this" film & <script>alert(1)</script>\nsecond line — café 😀'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, id2label={0: "negative", 1: "positive"})
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory, model, tokenizer):
    return model.save_pretrained(tmp_path_factory.mktemp("tiny-explain"), tokenizer=tokenizer)


def visible_text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment.replace("<br>", "\n")))


def test_html_escapes_text_and_highlights_every_word(model, tokenizer):
    exp = explain(model, tokenizer, HOSTILE, method="rollout")
    fragment = to_html(exp)
    # "<script>" is three words (<, script, >), each escaped inside its own span.
    assert "<script" not in fragment and "&lt;</span>" in fragment and "&amp;" in fragment
    assert 'data-score=' in fragment and fragment.count('class="attnlens-word"') == len(exp.words)
    # The user's text comes back character for character, after the prediction line.
    assert visible_text(fragment).endswith(HOSTILE)
    page = to_html(exp, full_page=True)
    assert page.startswith("<!DOCTYPE html>") and fragment in page
    assert "<script" not in page and "http" not in page and "<link" not in page  # self-contained, inert
    top = exp.top_words(1)[0]
    assert f'data-score="{top.score:.6f}">{html.escape(top.word)}</span>' in fragment


def test_html_marks_truncation(model, tokenizer):
    exp = explain(model, tokenizer, "word " * 50, method="attention", max_length=8)
    assert exp.truncated and "truncated" in to_html(exp)


def test_ansi_colours_each_word_and_keeps_the_text(model, tokenizer):
    exp = explain(model, tokenizer, HOSTILE, method="grad_rollout")
    coloured = to_ansi(exp)
    assert coloured.count("\x1b[48;2;") == len(exp.words)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).splitlines()[1:] == HOSTILE.splitlines()
    plain = to_ansi(exp, color=False)
    assert "\x1b" not in plain and "top words:" in plain and exp.label in plain


def test_token_and_sentence_levels_colour_their_own_spans(model, tokenizer):
    text = "A fine film. Too long, though!\nStill — café 😀"
    exp = explain(model, tokenizer, text, method="rollout")
    assert [s.text for s in exp.sentences] == ["A fine film.", "Too long, though!", "Still — café 😀"]
    coloured = to_ansi(exp, level="sentence")
    assert coloured.count("\x1b[48;2;") == 3
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).splitlines()[1:] == text.splitlines()
    fragment = to_html(exp, level="sentence")
    assert fragment.count('class="attnlens-sentence"') == 3 and visible_text(fragment).endswith(text)
    top = max(exp.sentences, key=lambda s: s.score)
    assert f'data-score="{top.score:.6f}">{html.escape(top.text)}</span>' in fragment
    assert f"top sentences: {top.text!r} {top.score:.3f}" in to_ansi(exp, color=False, level="sentence")
    real_tokens = [t for t in exp.tokens if not t.special]
    assert to_ansi(exp, level="token").count("\x1b[48;2;") == len(real_tokens)
    assert to_html(exp, level="token").count('class="attnlens-token"') == len(real_tokens)
    with pytest.raises(InputError, match="level='paragraph' is not one of word, token, sentence"):
        to_ansi(exp, level="paragraph")


def test_plot_attention_draws_layers_by_heads(model, tokenizer, tmp_path):
    figure = plot_attention(model, tokenizer, "a fine film", path=tmp_path / "heat.png")
    assert len(figure.axes) == model.config.num_hidden_layers * model.config.num_attention_heads
    assert (tmp_path / "heat.png").read_bytes()[:8] == PNG_MAGIC


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`attnlens explain` as a real subprocess (the first test), as users run it."""
    env = {**os.environ, "NO_COLOR": ""}
    return subprocess.run([sys.executable, "-m", "attnlens", "explain", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture
def cli(capsys, monkeypatch):
    """`attnlens explain` in this process (the same `main`, without a new interpreter's start-up)."""
    from attnlens.cli import main

    monkeypatch.setenv("NO_COLOR", "")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        code = main(["explain", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["attnlens", "explain", *args], code, out, err)

    return run


def test_cli_prints_coloured_words_and_writes_html_heatmap_json(saved_model_dir, tmp_path):
    result = run_cli("--model", str(saved_model_dir), "--method", "grad_rollout", "--html", str(tmp_path / "e.html"),
                     "--heatmap", str(tmp_path / "e.png"), "--json", str(tmp_path / "e.json"), HOSTILE)
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith("prediction: ") and "method: grad_rollout" in first
    assert "\x1b[48;2;" in "\n".join(rest)
    page = (tmp_path / "e.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "&lt;</span>" in page
    assert (tmp_path / "e.png").read_bytes()[:8] == PNG_MAGIC
    payload = json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))
    assert payload["text"] == HOSTILE and payload["method"] == "grad_rollout"
    assert sum(w["score"] for w in payload["words"]) == pytest.approx(1.0)


def test_cli_target_and_errors(saved_model_dir, tmp_path, cli):
    result = cli("--model", str(saved_model_dir), "--method", "occlusion", "--target", "1", "--no-color",
                     "--json", "-", stdin="a fine film\n")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and '"target": 1' in result.stdout

    bad_target = cli("--model", str(saved_model_dir), "--target", "7", "a fine film")
    assert bad_target.returncode == 2
    assert bad_target.stderr.strip() == "attnlens explain: error: target=7 is not a class index in [0, 1]"

    missing = cli("--model", str(tmp_path / "nowhere"), "a fine film")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nowhere" in missing.stderr


def test_cli_rule_chooses_grad_rollouts_rule_and_is_refused_for_other_methods(saved_model_dir, model, tokenizer, cli):
    text = "a fine film, though far too long"
    for rule in ("chefer", None):
        result = cli("--model", str(saved_model_dir), "--json", "-", *(["--rule", rule] if rule else []), text)
        assert result.returncode == 0, result.stderr
        payload = json.loads(result.stdout[result.stdout.index("{"):])
        expected = explain(model, tokenizer, text, method="grad_rollout", **({"rule": rule} if rule else {}))
        assert [w["attribution"] for w in payload["words"]] == pytest.approx(
            [w.attribution for w in expected.words], rel=1e-4, abs=1e-10)  # this tiny model's are ~1e-5
    chefer = explain(model, tokenizer, text, method="grad_rollout", rule="chefer")
    default = explain(model, tokenizer, text, method="grad_rollout")
    assert [w.attribution for w in chefer.words] != pytest.approx([w.attribution for w in default.words], rel=0.1)

    refused = cli("--model", str(saved_model_dir), "--method", "rollout", "--rule", "chefer", text)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "attnlens explain: error: --rule applies to grad_rollout only, not to method 'rollout'"


def test_cli_sentence_level_colours_sentences_and_json_lists_them(saved_model_dir, model, tokenizer, cli):
    text = "A fine film. Too long, though!"
    result = cli("--model", str(saved_model_dir), "--method", "occlusion", "--level", "sentence", "--json", "-",
                     text)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first_json_line = lines.index("{")
    assert "\n".join(lines[1:first_json_line]).count("\x1b[48;2;") == 2  # one colour per sentence
    payload = json.loads("\n".join(lines[first_json_line:]))
    expected = explain(model, tokenizer, text, method="occlusion").sentences
    assert [(s["text"], s["start"], s["end"]) for s in payload["sentences"]] == [
        ("A fine film.", 0, 12), ("Too long, though!", 13, 30)]
    assert [s["score"] for s in payload["sentences"]] == pytest.approx([s.score for s in expected], abs=1e-6)
    assert sum(s["score"] for s in payload["sentences"]) == pytest.approx(1.0)


def test_cli_long_text_chunk_explains_the_whole_text(saved_model_dir, model, tokenizer, cli):
    text = "A fine film. " * 6 + "Far too long, though!"
    result = cli("--model", str(saved_model_dir), "--max-length", "12", "--long-text", "chunk", "--json", "-", text)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout[result.stdout.index("\n{") + 1 :])
    expected = explain(model, tokenizer, text, max_length=12, long_text="chunk")
    assert payload["num_windows"] == expected.num_windows > 1 and payload["truncated"] is False
    assert payload["words"][-1]["word"] == "!" and payload["sentences"][-1]["text"] == "Far too long, though!"
    assert [w["score"] for w in payload["words"]] == pytest.approx([w.score for w in expected.words], abs=1e-6)
    cut = cli("--model", str(saved_model_dir), "--max-length", "12", "--json", "-", text)
    assert json.loads(cut.stdout[cut.stdout.index("\n{") + 1 :])["truncated"] is True
