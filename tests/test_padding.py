"""attnlens.padding: padded model inputs and length-sorted batches, the helpers every caller shares."""

from __future__ import annotations

from types import SimpleNamespace

from attnlens.padding import (
    forward_passes,
    length_sorted_batches,
    pad_sequences,
    padded_inputs,
    padding_id,
    sorted_by_length,
)


def test_pad_sequences_right_pads_to_the_longest_and_masks():
    input_ids, attention_mask = pad_sequences([[101, 7, 102], [101, 102]], pad_id=9)
    assert input_ids.tolist() == [[101, 7, 102], [101, 102, 9]]
    assert attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_padded_inputs_add_zero_token_types():
    inputs = padded_inputs([[5], [5, 6]], pad_id=0, device="cpu")
    assert sorted(inputs) == ["attention_mask", "input_ids", "token_type_ids"]
    assert inputs["token_type_ids"].tolist() == [[0, 0], [0, 0]]


def test_padding_id_falls_back_to_zero():
    assert padding_id(SimpleNamespace(pad_token_id=1)) == 1
    assert padding_id(SimpleNamespace(pad_token_id=None)) == 0
    assert padding_id(SimpleNamespace()) == 0


def test_sorted_by_length_is_stable_both_ways():
    lengths = [3, 1, 3, 2]
    assert sorted_by_length(lengths) == [1, 3, 0, 2]
    assert sorted_by_length(lengths, longest_first=True) == [0, 2, 3, 1]
    assert sorted_by_length(lengths, [2, 1, 0]) == [1, 2, 0]


def test_forward_passes_respect_both_limits_and_keep_order():
    assert forward_passes([2, 3, 3, 5, 9], max_tokens=10) == [[0, 1, 2], [3], [4]]
    assert forward_passes([2, 3, 3, 5, 9], max_rows=2) == [[0, 1], [2, 3], [4]]
    assert forward_passes([20], max_tokens=10) == [[0]]  # one row even past the limit
    assert forward_passes([4, 1, 1], max_tokens=8) == [[0, 1], [2]]  # the pass's longest counts
    assert forward_passes([]) == []


def test_length_sorted_batches_sort_then_cut():
    lengths = [9, 2, 5, 3, 3]
    assert length_sorted_batches(lengths, max_rows=2) == [[1, 3], [4, 2], [0]]
    assert length_sorted_batches(lengths, max_tokens=10) == [[1, 3, 4], [2], [0]]
    assert length_sorted_batches(lengths, [0, 2, 4], max_rows=2) == [[4, 2], [0]]
