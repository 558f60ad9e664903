"""The inference engine (`attnlens.inference.engine.classify`): packed oneDNN products (stacked
query/key/value, fused GELU), true unpadding, [CLS]-only last layer, attention chunks and the
opt-in int8 model. Float32 must equal `transformers` (and our reference model) within 1e-5; int8
must agree with float32 on the decision for most inputs. Other families: tests/test_model_families.py. No timings here: speed is
measured side by side by benchmarks/inference.py.
"""

from __future__ import annotations

import copy
import csv
import subprocess
import sys

import pytest
import torch
import transformers

import attnlens.inference.packing
from attnlens import BertConfig, BertForSequenceClassification, load_tokenizer
from attnlens.errors import ConfigError
from attnlens.inference.engine import FUSED_QKV_ATTRIBUTE, classify
from attnlens.inference.kernels import ONEDNN_AVAILABLE, input_gradients_only
from attnlens.inference.packing import MIN_PADDING_TO_UNPAD, Packing
from attnlens.inference.quantize import (
    Int8Linear,
    apply_quantization,
    onednn_int8_available,
    quantize_activations,
    quantize_int8,
)
from attnlens.models.pretrained import load_weights
from attnlens.predict import Predictor
from tests.conftest import SHARED_DATA, save_hf_classifier, tiny_hf_config

ATOL = 1e-5
PACKED_CACHE = "_attnlens_packed_linear"


def classifier_pair(kind: str, minilm_dir):
    """(transformers eager reference, ours) with identical weights and a head with real margins."""
    torch.manual_seed(0)
    if kind == "minilm":
        ref = transformers.BertForSequenceClassification.from_pretrained(minilm_dir, attn_implementation="eager")
        torch.nn.init.normal_(ref.classifier.weight, std=0.5)
    else:
        config = tiny_hf_config()
        config._attn_implementation = "eager"
        ref = transformers.BertForSequenceClassification(config)
    ref.eval()
    ours = BertForSequenceClassification(BertConfig.from_dict(ref.config.to_dict()))
    load_weights(ours, ref.state_dict(), source=f"{kind} reference")
    return ref, ours.eval()


def reference_forward_only(model) -> None:
    """Training mode without dropout: the engine hands every call to the model's own (padded)
    forward, which must then serve the same hooks in the same shapes."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout_p"):
            module.dropout_p = 0.0


def make_batch(case: str):
    g = torch.Generator().manual_seed(11)
    if case == "padding":  # ragged right padding, one row without any
        ids = torch.randint(1000, 30000, (4, 23), generator=g)
        mask = torch.ones_like(ids)
        for row, length in enumerate((23, 9, 3, 17)):
            mask[row, length:] = 0
        ids[mask == 0] = 0
        return ids, mask, None
    if case == "holes":  # padding in the middle: only keys are masked, positions stay columns
        ids = torch.randint(1000, 30000, (2, 12), generator=g)
        mask = torch.ones_like(ids)
        mask[0, 4:7] = 0
        mask[1, 10:] = 0
        return ids, mask, None
    if case == "token_types":
        ids = torch.randint(1000, 30000, (3, 14), generator=g)
        types = torch.zeros_like(ids)
        types[:, 7:] = 1
        mask = torch.ones_like(ids)
        mask[2, 11:] = 0
        return ids, mask, types
    if case == "max_length":
        ids = torch.randint(1000, 30000, (2, 512), generator=g)
        mask = torch.ones_like(ids)
        mask[1, 300:] = 0
        return ids, mask, None
    if case == "little_padding":  # below MIN_PADDING_TO_UNPAD: computed padded, mask still applied
        ids = torch.randint(1000, 30000, (4, 30), generator=g)
        mask = torch.ones_like(ids)
        mask[3, 28:] = 0
        ids[mask == 0] = 0
        return ids, mask, None
    if case == "left_padding":  # a first column of padding: the engine leaves it to the model's forward
        ids = torch.randint(1000, 30000, (4, 23), generator=g)
        mask = torch.ones_like(ids)
        mask[1, :5] = 0
        mask[2, 20:] = 0
        return ids, mask, None
    if case == "no_padding":
        ids = torch.randint(1000, 30000, (3, 10), generator=g)
        return ids, torch.ones_like(ids), None
    raise ValueError(case)


CASES = ["padding", "holes", "token_types", "max_length", "little_padding", "no_padding"]


@pytest.mark.parametrize("kind", ["tiny", "minilm"])
@pytest.mark.parametrize("case", CASES)
def test_fast_inference_path_equals_transformers(kind, case, minilm_dir):
    ref, ours = classifier_pair(kind, minilm_dir)
    ids, mask, types = make_batch(case)
    with torch.inference_mode():
        expected = ref(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        got = classify(ours, ids, mask, types)
        # The same call through our reference model.
        padded = ours(ids, mask, types).logits
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(padded, expected, atol=ATOL, rtol=0)
    if ONEDNN_AVAILABLE:  # the packed weights exist only if the fast kernels really ran
        assert PACKED_CACHE in ours.bert.encoder.layer[0].__dict__  # query, key and value stacked
        assert PACKED_CACHE in ours.bert.encoder.layer[0].intermediate.dense.__dict__


def test_batches_are_unpadded_only_where_it_pays():
    mask = torch.ones(4, 30, dtype=torch.long)
    mask[3, 28:] = 0  # 1.7% padding: kept
    assert Packing.from_mask(mask, 4, 30, torch.device("cpu")).indices is None
    assert Packing.from_mask(mask, 4, 30, torch.device("cpu"), min_padding=0.0).indices.numel() == 118
    mask[:, 20:] = 0  # a third padding: unpadded
    packing = Packing.from_mask(mask, 4, 30, torch.device("cpu"))
    assert packing.num_tokens == 80 and packing.first_token_rows.tolist() == [0, 20, 40, 60]
    assert pytest.approx(0.1) == MIN_PADDING_TO_UNPAD
    assert Packing.from_mask(torch.ones(2, 5), 2, 5, torch.device("cpu")).indices is None


def test_sequences_are_chunked_by_the_size_of_their_maps():
    lengths = (10, 10, 4, 20, 3, 3)
    mask = (torch.arange(20)[None, :] < torch.tensor(lengths)[:, None]).long()
    packing = Packing.from_mask(mask, len(lengths), 20, torch.device("cpu"), min_padding=0.0)
    # 2 heads, room for 400 floats: two 10-token maps (2 x 2 x 10²), not a third; 20 tokens alone.
    chunks = packing.chunks(heads=2, max_map_elements=400)
    assert [(first, chunk.lengths) for first, chunk in chunks] == [(0, (10, 10)), (2, (4,)), (3, (20,)), (4, (3, 3))]
    assert chunks[0][1].indices is None and chunks[0][1].key_mask() is None  # equal lengths: no padding
    assert packing.chunks(heads=2, max_map_elements=400) is chunks  # computed once, used by every layer
    assert [c.lengths for _, c in packing.chunks(heads=2, max_map_elements=1)] == [(n,) for n in lengths]
    together = packing.chunks(heads=2, max_map_elements=10**6)
    assert len(together) == 1 and together[0][1].key_mask()[:, 0, 0].sum(1).tolist() == list(lengths)


@pytest.mark.parametrize("budget", ["default", "each alone", "pairs"])
@pytest.mark.parametrize("path", ["unpadded", "unpadded-autograd", "padded"])
@pytest.mark.parametrize("case", ["padding", "holes"])
def test_chunk_hook_hands_each_example_its_maps_over_its_real_tokens(minilm_dir, monkeypatch, budget, path, case):
    ref, ours = classifier_pair("minilm", minilm_dir)
    ids, mask, types = make_batch(case)
    if path == "padded":
        reference_forward_only(ours)
    heads, last = ours.config.num_attention_heads, ours.config.num_hidden_layers - 1
    lengths = mask.sum(1).tolist()
    if budget != "default":
        monkeypatch.setattr(attnlens.inference.packing, "CHUNK_MAP_ELEMENTS",
                            1 if budget == "each alone" else 2 * heads * max(lengths) ** 2)
    seen: dict[tuple[int, int], torch.Tensor] = {}

    def hook(layer: int, first: int, probs: torch.Tensor) -> None:
        for j in range(probs.shape[0]):
            assert (layer, first + j) not in seen
            seen[(layer, first + j)] = probs[j].detach()

    with torch.set_grad_enabled(path == "unpadded-autograd"):
        logits = classify(ours, ids, mask, types, attention_chunk_hook=hook, last_layer_cls_only=True)
    assert logits.requires_grad == (path == "unpadded-autograd")
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask, output_attentions=True)
    torch.testing.assert_close(logits.detach(), expected.logits, atol=ATOL, rtol=0)
    assert sorted(seen) == [(layer, e) for layer in range(last + 1) for e in range(len(lengths))]
    for (layer, example), probs in seen.items():
        real = mask[example].bool()
        theirs = expected.attentions[layer][example][:, real][:, :, real]  # (heads, length, length)
        rows = 1 if layer == last else lengths[example]
        torch.testing.assert_close(probs[:, :rows, : lengths[example]], theirs[:, :rows], atol=ATOL, rtol=0)
        assert torch.all(probs[:, :rows, lengths[example]:] == 0)  # keys past its tokens: chunk padding


def test_one_attention_hook_at_a_time(minilm_dir):
    _, ours = classifier_pair("tiny", minilm_dir)
    ids, mask, types = make_batch("padding")
    with pytest.raises(ValueError, match="pass attention_hook or attention_chunk_hook, not both"):
        classify(ours, ids, mask, types, attention_hook=lambda *a: None, attention_chunk_hook=lambda *a: None)


def test_engine_runs_the_last_feed_forward_on_cls_rows_only(minilm_dir, monkeypatch):
    import attnlens.inference.kernels

    # Without oneDNN every product is a module call, so a hook sees the rows it gets.
    monkeypatch.setattr(attnlens.inference.kernels, "ONEDNN_AVAILABLE", False)
    _, ours = classifier_pair("minilm", minilm_dir)
    ids, mask, types = make_batch("padding")
    with torch.no_grad():
        rows_seen = []
        last_ffn = ours.bert.encoder.layer[-1].intermediate.dense
        handle = last_ffn.register_forward_hook(lambda module, args, out: rows_seen.append(args[0].shape[0]))
        unpadded = classify(ours, ids, mask, types)
        handle.remove()
        padded = ours(ids, mask, types).logits
    torch.testing.assert_close(unpadded, padded, atol=ATOL, rtol=0)
    # The last layer's feed-forward ran on the [CLS] rows only: nothing else reaches the pooler.
    assert rows_seen == [ids.shape[0]], (rows_seen, int(mask.sum()))


def test_packed_weights_follow_parameter_updates(minilm_dir):
    """An in-place update (optimizer step, load_state_dict) must not leave a stale packed copy."""
    ref, ours = classifier_pair("tiny", minilm_dir)
    ids, mask, types = make_batch("padding")
    with torch.no_grad():
        classify(ours, ids, mask, types)  # fills the caches
        for model in (ref, ours):
            model.bert.encoder.layer[1].attention.self.key.weight.mul_(1.5)
            model.bert.encoder.layer[0].intermediate.dense.bias.add_(0.25)
        torch.testing.assert_close(classify(ours, ids, mask, types), ref(ids, mask, types).logits, atol=ATOL, rtol=0)
        ours.load_state_dict(ref.state_dict())
        torch.testing.assert_close(classify(ours, ids, mask, types), ref(ids, mask, types).logits, atol=ATOL, rtol=0)


def test_speed_paths_leave_state_dict_and_gradients_alone(minilm_dir):
    ref, ours = classifier_pair("tiny", minilm_dir)
    keys = list(ours.state_dict())
    ids, mask, types = make_batch("padding")
    with torch.no_grad():
        classify(ours, ids, mask, types)
    assert list(ours.state_dict()) == keys == list(ref.state_dict())
    # With autograd on (and no input_gradients_only), plain products run and gradients reach
    # every query weight.
    loss = classify(ours, ids, mask, types).sum()
    loss.backward()
    assert all(layer.attention.self.query.weight.grad is not None for layer in ours.bert.encoder.layer)


def test_input_gradients_only_keeps_the_packed_kernels_and_the_input_gradient(minilm_dir):
    _, ours = classifier_pair("tiny", minilm_dir)
    ids, mask, types = make_batch("padding")
    dense = ours.bert.encoder.layer[0].intermediate.dense

    def logits_and_embedding_gradient():
        captured = {}
        handle = ours.bert.embeddings.register_forward_hook(
            lambda module, args, out: captured.setdefault("x", out.detach().requires_grad_()))
        try:
            logits = classify(ours, ids, mask, types)
            logits[:, 1].sum().backward()
        finally:
            handle.remove()
        return logits.detach(), captured["x"].grad

    expected_logits, expected = logits_and_embedding_gradient()  # F.linear under autograd
    assert dense.weight.grad is not None
    ours.zero_grad(set_to_none=True)
    with input_gradients_only():
        logits, got = logits_and_embedding_gradient()
    torch.testing.assert_close(logits, expected_logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert got.abs().max() > 1e-3  # a real gradient, not zeros on both sides
    if ONEDNN_AVAILABLE:  # the products really ran packed: no weight gradient, as documented
        assert dense.weight.grad is None
        assert {PACKED_CACHE, PACKED_CACHE + "_transposed"} <= set(dense.__dict__)


def test_hooks_and_attentions_still_see_every_layer_under_no_grad(minilm_dir):
    ref, ours = classifier_pair("minilm", minilm_dir)
    ids, mask, types = make_batch("padding")
    seen = []
    with torch.no_grad():
        hooked = classify(ours, ids, mask, types, attention_hook=lambda i, probs: seen.append((i, probs.shape)))
        expected = ref(input_ids=ids, attention_mask=mask, output_attentions=True)
        got = ours(ids, mask, types, output_attentions=True)
    assert [i for i, _ in seen] == list(range(ours.config.num_hidden_layers))
    torch.testing.assert_close(hooked, expected.logits, atol=ATOL, rtol=0)
    for mine, theirs in zip(got.attentions, expected.attentions, strict=True):
        torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)
    # Under no_grad the hooked forward runs unpadded: every real token's row is the reference's.
    rows: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        classify(ours, ids, mask, types, attention_hook=lambda i, probs: rows.__setitem__(i, probs))
    real = mask.bool()
    for index, theirs in enumerate(expected.attentions):
        torch.testing.assert_close(rows[index].transpose(1, 2)[real], theirs.transpose(1, 2)[real],
                                   atol=ATOL, rtol=0)


@pytest.mark.parametrize("path", ["unpadded", "unpadded-autograd", "padded"])
def test_last_layer_cls_only_hands_the_hook_the_cls_row_on_every_path(minilm_dir, path):
    ref, ours = classifier_pair("minilm", minilm_dir)
    ids, mask, types = make_batch("padding")
    if path == "padded":
        reference_forward_only(ours)
    last = ours.config.num_hidden_layers - 1
    rows: dict[int, torch.Tensor] = {}
    with torch.set_grad_enabled(path == "unpadded-autograd"):
        logits = classify(ours, ids, mask, types, attention_hook=lambda i, probs: rows.__setitem__(i, probs.detach()),
                          last_layer_cls_only=True)
    assert logits.requires_grad == (path == "unpadded-autograd")
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask, output_attentions=True)
    torch.testing.assert_close(logits.detach(), expected.logits, atol=ATOL, rtol=0)
    assert sorted(rows) == list(range(last + 1))
    assert rows[last].shape == (ids.shape[0], ours.config.num_attention_heads, 1, ids.shape[1])
    torch.testing.assert_close(rows[last], expected.attentions[last][:, :, :1], atol=ATOL, rtol=0)
    real = mask.bool()
    for index in range(last):  # every other layer: every real token's row, as without the option
        torch.testing.assert_close(rows[index].transpose(1, 2)[real],
                                   expected.attentions[index].transpose(1, 2)[real], atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------ int8


def read_sst2(split: str, count: int) -> tuple[list[str], list[int]]:
    with (SHARED_DATA / "sst2" / f"{split}.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[:count]
    return [row["sentence"] for row in rows], [int(row["label"]) for row in rows]


@pytest.fixture(scope="module")
def sentiment_model(minilm_dir):
    """MiniLM with a head fitted (ridge regression on pooled outputs) to 192 SST-2 training
    sentences: a fine-tuned-like model whose decisions carry real margins, in a few seconds."""
    tokenizer = load_tokenizer(minilm_dir)
    model = BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=2).eval()
    texts, labels = read_sst2("train", 192)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        pooled = model.bert(batch["input_ids"], batch["attention_mask"]).pooler_output
        features = torch.cat([pooled, torch.ones(len(texts), 1)], dim=1)  # (n, hidden + 1)
        targets = torch.nn.functional.one_hot(torch.tensor(labels), 2).float() * 2 - 1
        gram = features.T @ features + torch.eye(features.shape[1])  # ridge: 192 examples, 385 weights
        solution = torch.linalg.solve(gram, features.T @ targets)  # (hidden + 1, 2)
        model.classifier.weight.copy_(solution[:-1].T)
        model.classifier.bias.copy_(solution[-1])
    return model, tokenizer


def test_int8_agrees_with_float32_on_most_decisions(sentiment_model):
    model, tokenizer = sentiment_model
    texts, _ = read_sst2("validation", 96)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    quantized = quantize_int8(model)
    with torch.inference_mode():
        fp32 = classify(model, batch["input_ids"], batch["attention_mask"])
        int8 = classify(quantized, batch["input_ids"], batch["attention_mask"])
        padded_int8 = quantized(batch["input_ids"], batch["attention_mask"]).logits  # its reference forward
    agreement = float((fp32.argmax(-1) == int8.argmax(-1)).float().mean())
    assert agreement >= 0.9, f"int8 agrees with float32 on {agreement:.0%} of decisions"
    assert not torch.equal(fp32, int8)  # it really is another (quantised) computation
    # The padded path quantises padding positions too (activation ranges are per tensor), so it
    # is another approximation of the same float32 model; it must agree just as well.
    assert float((fp32.argmax(-1) == padded_int8.argmax(-1)).float().mean()) >= 0.9
    # The float32 model was copied, not modified; its query/key/value stayed float nn.Linear.
    assert type(model.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear
    assert isinstance(quantized.bert.encoder.layer[0].__dict__[FUSED_QKV_ATTRIBUTE], Int8Linear)
    assert FUSED_QKV_ATTRIBUTE not in model.bert.encoder.layer[0].__dict__
    assert list(quantized.state_dict()) != list(model.state_dict())  # int8 modules, packed state
    assert not any(FUSED_QKV_ATTRIBUTE in key for key in quantized.state_dict())  # the stack is no state


def test_activation_quantisation_roundtrip():
    """uint8 per tensor over the whole range: every value within half a step, zero exact."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(64, 48) * 3, torch.zeros(1, 48)])
    values, scale, zero_point = quantize_activations(x)
    assert values.dtype == torch.uint8 and values.shape == x.shape
    assert int(values.min()) == 0 and int(values.max()) == 255  # all 8 bits used
    restored = (values.float() - zero_point) * scale
    assert float((restored - x).abs().max()) <= scale / 2 + 1e-6
    assert torch.equal(restored[-1], torch.zeros(48))  # zero (e.g. padding) is exact
    positive = quantize_activations(torch.rand(8, 8) + 1)  # the range still includes 0
    assert positive[2] == 0
    assert quantize_activations(torch.zeros(3, 4))[1] == 1.0  # no division by a zero range


def test_activation_quantisation_without_quantised_dtypes(monkeypatch):
    """Where torch drops its deprecated quantised dtypes, plain arithmetic gives the same bytes
    (up to a tie rounding the other way)."""
    torch.manual_seed(0)
    x = torch.randn(33, 70) * 5
    fast = quantize_activations(x)

    def removed(*args, **kwargs):
        raise RuntimeError("quantize_per_tensor was removed")

    monkeypatch.setattr(torch, "quantize_per_tensor", removed)
    plain = quantize_activations(x)
    assert plain[1:] == fast[1:] and plain[0].dtype == torch.uint8
    assert int((plain[0].int() - fast[0].int()).abs().max()) <= 1
    assert float((plain[0] != fast[0]).float().mean()) < 0.01


@pytest.mark.parametrize("backend", ["onednn", "fbgemm"])
def test_int8_linear_backends_compute_the_quantised_product(backend):
    """Both kernels: close to the float product (int8 error bound), GELU fused = GELU after,
    3-D inputs keep their shape, the two kernels agree, and a deep copy computes the same."""
    if backend == "onednn" and not onednn_int8_available():
        pytest.skip("oneDNN int8 needs a CPU with VNNI (this one lacks it)")
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 160)
    x = torch.randn(4, 13, 96)
    # fbgemm takes the CPU's own rule: 7-bit activations without VNNI, whose 16-bit
    # intermediates saturate on 8-bit ones (what production does, attnlens.inference.quantize).
    reduce_range = False if backend == "onednn" else None
    quantised = Int8Linear(linear, reduce_range=reduce_range, backend=backend)
    with torch.inference_mode():
        reference = linear(x)
        out = quantised(x)
        fused = quantised(x, gelu=True)
        other = Int8Linear(linear, backend="fbgemm")(x)
        copied = copy.deepcopy(quantised)(x)  # the packed weight is a cache, rebuilt on copy
    assert torch.equal(copied, out)
    assert out.shape == (4, 13, 160)
    # Error of x·W with 8-bit x (step s_x) and per-row 8-bit W: |Δ| ≲ Σ|x|·s_w/2 + Σ|W|·s_x/2.
    relative = float((out - reference).abs().max() / reference.abs().max())
    assert relative < 0.02, f"int8 product off by {relative:.1%} of the largest output"
    assert not torch.equal(out, reference)
    torch.testing.assert_close(fused, torch.nn.functional.gelu(out), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, other, atol=0.02 * float(reference.abs().max()), rtol=0)


def test_int8_linear_rejects_impossible_settings():
    linear = torch.nn.Linear(8, 8)
    with pytest.raises(ValueError, match="backend='cuda'"):
        Int8Linear(linear, backend="cuda")
    with pytest.raises(ValueError, match="reduce_range"):
        Int8Linear(linear, reduce_range=True, backend="onednn")


def test_apply_quantization_modes(sentiment_model):
    model, _ = sentiment_model
    assert apply_quantization(model, None) is model
    assert apply_quantization(model, "none") is model
    assert apply_quantization(model, "INT8") is not model
    with pytest.raises(ConfigError, match="quantize='int4'"):
        apply_quantization(model, "int4")


def test_predictor_and_evaluate_command_take_int8(tmp_path, tokenizer):
    model_dir = save_hf_classifier(tmp_path / "tiny", tokenizer, tiny_hf_config(num_labels=2))
    texts = ["a fine film", "dull", "an endless, pointless slog of a movie"]
    fp32 = Predictor.from_pretrained(str(model_dir)).predict(texts)
    int8 = Predictor.from_pretrained(str(model_dir), quantize="int8").predict(texts)
    assert [p.num_tokens for p in int8] == [p.num_tokens for p in fp32]
    assert all(abs(a.score - b.score) < 0.05 for a, b in zip(fp32, int8, strict=True))

    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",{i % 2}\n' for i, t in enumerate(texts)), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "attnlens", "evaluate", "--model", str(model_dir), "--data", str(data),
         "--quantize", "int8", "--output", str(tmp_path / "metrics.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = (tmp_path / "metrics.json").read_text(encoding="utf-8")
    assert '"quantize": "int8"' in metrics and '"num_examples": 3' in metrics


def test_unpadded_path_without_fast_kernels_equals_transformers(minilm_dir, monkeypatch):
    """Where oneDNN does not apply (CUDA, bfloat16, builds without it) unpadding still holds."""
    import attnlens.inference.kernels

    monkeypatch.setattr(attnlens.inference.kernels, "ONEDNN_AVAILABLE", False)
    ref, ours = classifier_pair("minilm", minilm_dir)
    ids, mask, types = make_batch("padding")
    with torch.inference_mode():
        expected = ref(input_ids=ids, attention_mask=mask).logits
        got = classify(ours, ids, mask, types)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    assert PACKED_CACHE not in ours.bert.encoder.layer[0].__dict__
