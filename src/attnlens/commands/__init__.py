"""Subcommands of the `attnlens` CLI; each module exposes `register(subparsers)`."""
