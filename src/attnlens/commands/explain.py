"""`attnlens explain --model SPEC --method grad_rollout "text"`: why the model predicted what it did.

Prints the prediction and the text with each word's (`--level token`: word piece's, `--level
sentence`: sentence's) background coloured by importance (ANSI 24-bit colour; `--no-color` or
$NO_COLOR for plain text with the top ones listed), and can write a self-contained HTML page
(`--html`, same level), a layer x head attention figure (`--heatmap`) and the explanation as JSON
(`--json`: tokens, words and sentences). `--long-text chunk` explains a text past the model's
window whole (every window, combined as the chunked prediction weighs them). With `--min-confidence P` a prediction whose (calibrated)
probability is below P is marked uncertain, as the service's `min_confidence` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from attnlens.commands.predict import min_confidence
    from attnlens.explain.api import DEFAULT_METHOD, METHODS, MODEL_SPECIFIC_METHODS
    from attnlens.explain.grad_rollout import RULES
    from attnlens.explain.render import LEVELS

    parser = subparsers.add_parser("explain", help="explain a prediction: words coloured by importance")
    parser.add_argument("text", nargs="?", help="text to explain; '-' or none: read it from stdin")
    parser.add_argument("--model", default=None,
                        help="folder, Hub repo id[@revision] or BentoML store tag (default: $ATTNLENS_MODEL, "
                             "then the store's attnlens-sentiment)")
    parser.add_argument("--method", choices=METHODS + MODEL_SPECIFIC_METHODS, default=DEFAULT_METHOD,
                        help="native: the own attention of birnn_attention / han models")
    parser.add_argument("--target", type=int, default=None, help="class index to explain (default: the prediction)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="the window's length in tokens (default: the model's limit)")
    parser.add_argument("--long-text", choices=("truncate", "chunk"), default="truncate",
                        help="a text past the window: explain its first window, or every window combined "
                             "(as `attnlens predict --long-text chunk` scores it)")
    parser.add_argument("--ig-steps", type=int, default=None, help="integration steps for integrated_gradients")
    parser.add_argument("--rule", choices=RULES, default=None,
                        help=f"grad_rollout's rule (default: {RULES[0]}; chefer: Chefer et al. as published)")
    parser.add_argument("--level", choices=LEVELS, default="word",
                        help="what to colour: words, word pieces or sentences (HAN: its own split and, "
                             "with native, its sentence attention)")
    parser.add_argument("--html", type=Path, default=None, help="write a self-contained HTML page here")
    parser.add_argument("--heatmap", type=Path, default=None, help="write a layer x head attention PNG here")
    parser.add_argument("--json", type=Path, default=None, help="write the explanation as JSON here ('-': stdout)")
    parser.add_argument("--no-color", action="store_true", help="plain text (also when $NO_COLOR is set)")
    parser.add_argument("--min-confidence", type=min_confidence, default=None, metavar="P",
                        help="say so when the predicted class's (calibrated) probability is below P; "
                             "the JSON carries `uncertain`")
    parser.set_defaults(func=run)


def _read_text(text: str | None) -> str:
    from attnlens.errors import InputError

    if text is None or text == "-":
        text = sys.stdin.read()
    if not text.strip():
        raise InputError("no text given (argument or stdin)")
    return text


def _write(path: Path, write) -> None:
    from attnlens.errors import InputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    except OSError as error:
        raise InputError(f"{path}: cannot write ({error.strerror or error})") from None


def run(args: argparse.Namespace) -> int:
    from attnlens import load_tokenizer
    from attnlens.calibration import is_uncertain
    from attnlens.errors import InputError
    from attnlens.explain import explain, plot_attention, to_ansi, to_html
    from attnlens.loading import load_model
    from attnlens.model_source import resolve_model

    if args.rule is not None and args.method != "grad_rollout":
        raise InputError(f"--rule applies to grad_rollout only, not to method {args.method!r}")
    text = _read_text(args.text)
    source = resolve_model(args.model)
    model = load_model(source.name_or_path, revision=source.revision)
    tokenizer = load_tokenizer(source.name_or_path, revision=source.revision)
    kwargs = {"n_steps": args.ig_steps} if args.method == "integrated_gradients" and args.ig_steps else {}
    if args.rule is not None:
        kwargs["rule"] = args.rule
    explanation = explain(model, tokenizer, text, method=args.method, target=args.target,
                          max_length=args.max_length, long_text=args.long_text, **kwargs)

    score = explanation.probabilities.get(explanation.label, 0.0)
    uncertain = is_uncertain(score, args.min_confidence)
    color = not args.no_color and not os.environ.get("NO_COLOR")
    print(to_ansi(explanation, color=color, level=args.level))
    if uncertain:
        print(f"uncertain: {explanation.label} at {score:.1%} is below --min-confidence {args.min_confidence:g}")
    if args.html is not None:
        page = to_html(explanation, full_page=True, level=args.level)
        _write(args.html, lambda p: p.write_text(page, encoding="utf-8"))
        print(f"wrote {args.html}", file=sys.stderr)
    if args.heatmap is not None:
        _write(args.heatmap, lambda p: plot_attention(model, tokenizer, text, max_length=args.max_length, path=p))
        print(f"wrote {args.heatmap}", file=sys.stderr)
    if args.json is not None:
        payload = json.dumps({**explanation.to_dict(), "uncertain": uncertain}, ensure_ascii=False, indent=2)
        if str(args.json) == "-":
            print(payload)
        else:
            _write(args.json, lambda p: p.write_text(payload + "\n", encoding="utf-8"))
    return 0
