"""attnlens.classifier: label names and eval mode, shared by prediction, explanation and evaluation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from torch import nn

from attnlens.classifier import eval_mode, label_names


def with_config(**config) -> nn.Module:
    model = nn.Sequential(nn.Dropout(0.1))
    model.config = SimpleNamespace(**config)
    return model


def test_label_names_read_int_or_str_keys_and_fill_gaps():
    assert label_names(with_config(id2label={0: "neg", 1: "pos"}, num_labels=2)) == ["neg", "pos"]
    assert label_names(with_config(id2label={"0": "neg"}, num_labels=2)) == ["neg", "LABEL_1"]
    assert label_names(with_config(num_labels=1)) == ["LABEL_0"]


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_restores_the_callers_mode_even_on_error(training):
    model = with_config(num_labels=2).train(training)
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not model.training and not model[0].training
        raise RuntimeError("inside")
    assert model.training is training and model[0].training is training
