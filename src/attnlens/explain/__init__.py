"""Explanations of predictions: which words made the model decide, by five methods.

```python
from attnlens.explain import explain, explain_batch, METHODS, to_html, plot_attention
exp = explain(model, tokenizer, "a gripping, beautifully shot film", method="grad_rollout")
exp.label, exp.probabilities, exp.words   # words with char offsets and scores summing to 1
```

Methods (see docs/explanations.md): `attention` (last layer's [CLS] row), `rollout`
(Abnar & Zuidema), `grad_rollout` (gradient-weighted attention, by default each token's share
of the target's log-odds under a conservative backward, Ali et al. 2022; opt-in `rule="chefer"`,
Chefer et al.'s rollout as published, and `rule="deletion"`, the first-order effect of deleting
each token), `integrated_gradients` (Captum) and `occlusion` (leave one word out).
"""

from attnlens.explain.api import (
    DEFAULT_METHOD,
    METHODS,
    explain,
    explain_batch,
    explain_encoded,
    sentence_importances,
)
from attnlens.explain.explanation import Explanation, SentenceImportance, TokenImportance, WordImportance
from attnlens.explain.faithfulness import (
    PERCENTAGES,
    Faithfulness,
    eraser_aopc,
    random_ranking,
    ranking_from_explanation,
)
from attnlens.explain.heatmap import plot_attention
from attnlens.explain.render import to_ansi, to_html

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "PERCENTAGES",
    "Explanation",
    "Faithfulness",
    "SentenceImportance",
    "TokenImportance",
    "WordImportance",
    "eraser_aopc",
    "explain",
    "explain_batch",
    "explain_encoded",
    "plot_attention",
    "random_ranking",
    "ranking_from_explanation",
    "sentence_importances",
    "to_ansi",
    "to_html",
]
