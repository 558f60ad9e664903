"""`plot_attention`: a layer x head grid of attention maps for one text (matplotlib, Agg).

For looking, not measuring: it stores every layer's map (output_attentions), which the
explanation methods avoid. Rows are layers, columns heads; each cell is a (query x key) map over
the non-padding tokens, with token labels on the first column and last row when they fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import torch

from attnlens.classifier import eval_mode
from attnlens.explain.inputs import encode_texts, resolve_max_length

MAX_LABELLED_TOKENS = 40  # beyond this, tick labels overlap into a black bar


def plot_attention(model, tokenizer, text: str, max_length: int | None = None, path: str | Path | IO[bytes] | None = None):
    """Draw every layer's and head's attention for `text`; save a PNG to `path` if given; return the Figure."""
    # A bare Figure renders with Agg and never touches pyplot's global backend or GUI state.
    from matplotlib.figure import Figure

    batch = encode_texts(tokenizer, [text], resolve_max_length(model, max_length), next(model.parameters()).device)
    with eval_mode(model), torch.no_grad():
        attentions = model(**batch.model_inputs(), output_attentions=True).attentions
    layers, heads = len(attentions), attentions[0].shape[1]
    tokens = batch.tokens[0]
    labelled = len(tokens) <= MAX_LABELLED_TOKENS

    cell = 1.6 if not labelled else max(1.6, 0.12 * len(tokens))
    figure = Figure(figsize=(cell * heads + 1, cell * layers + 1), dpi=100)
    axes = figure.subplots(layers, heads, squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer][head]
            ax.imshow(attentions[layer][0, head].float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
            if labelled and head == 0:
                ax.set_yticks(range(len(tokens)), tokens, fontsize=5)
            if labelled and layer == layers - 1:
                ax.set_xticks(range(len(tokens)), tokens, fontsize=5, rotation=90)
    figure.suptitle("attention probabilities (rows: queries, columns: keys)", fontsize=10)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, format="png")
    return figure
