"""Model configurations (placeholder: the family configs move here)."""

from attnlens.config import BertConfig

__all__ = ["BertConfig"]
