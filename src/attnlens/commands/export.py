"""`attnlens export --model PATH [--name attnlens-sentiment]`: put a model folder into the BentoML
model store, where the service finds it by default (ATTNLENS_MODEL unset) and `bentoml build`
packs it into the Bento."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="save a model folder into the BentoML model store")
    parser.add_argument("--model", required=True, help="model folder (Hub layout: config.json, model.safetensors, tokenizer)")
    parser.add_argument("--name", default=None, help="store name (default: attnlens-sentiment)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlens.model_source import DEFAULT_STORE_NAME, export_to_store

    stored = export_to_store(args.model, args.name or DEFAULT_STORE_NAME)
    print(f"saved {args.model} as {stored.tag} in the BentoML model store ({stored.path})")
    print(f"serve it with: ATTNLENS_MODEL={stored.tag} bentoml serve serving.service:AttnlensService")
    return 0
