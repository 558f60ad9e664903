"""Loading by Hub repo id and pinned revision from a Hub cache the test fills, offline.

The cache is laid out exactly as `huggingface_hub` writes it (blobs, snapshots/<commit>,
refs/<branch>), so the real `snapshot_download(local_files_only=True)` resolves it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnlens import BertForSequenceClassification, ModelNotFoundError, load_tokenizer
from tests.conftest import REPO_ROOT, save_hf_classifier

REPO_ID = "attnlens-test/tiny-sentiment"
COMMIT_V1 = "1" * 40
COMMIT_V2 = "2" * 40


def add_snapshot(cache: Path, repo_id: str, commit: str, folder: Path, refs: tuple[str, ...] = ()) -> None:
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in folder.iterdir():
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, tokenizer) -> Path:
    """main -> v2, and an older v1 reachable only by its commit (different weights)."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    v1 = save_hf_classifier(root / "v1", tokenizer, seed=1)
    v2 = save_hf_classifier(root / "v2", tokenizer, seed=2)
    add_snapshot(cache, REPO_ID, COMMIT_V1, v1)
    add_snapshot(cache, REPO_ID, COMMIT_V2, v2, refs=("main",))
    return cache


def classifier_weight(folder: Path) -> torch.Tensor:
    return BertForSequenceClassification.from_pretrained(folder).classifier.weight


def test_repo_id_resolves_main_from_cache(hub_cache, tmp_path):
    model = BertForSequenceClassification.from_pretrained(REPO_ID, local_files_only=True, cache_dir=hub_cache)
    snapshot = hub_cache / "models--attnlens-test--tiny-sentiment" / "snapshots" / COMMIT_V2
    assert torch.equal(model.classifier.weight, classifier_weight(snapshot))
    assert load_tokenizer(REPO_ID, local_files_only=True, cache_dir=hub_cache).is_fast


def test_pinned_revision_loads_that_commit(hub_cache):
    v1 = BertForSequenceClassification.from_pretrained(REPO_ID, revision=COMMIT_V1, local_files_only=True,
                                                       cache_dir=hub_cache)
    main = BertForSequenceClassification.from_pretrained(REPO_ID, local_files_only=True, cache_dir=hub_cache)
    assert not torch.equal(v1.classifier.weight, main.classifier.weight)
    snapshot = hub_cache / "models--attnlens-test--tiny-sentiment" / "snapshots" / COMMIT_V1
    assert torch.equal(v1.classifier.weight, classifier_weight(snapshot))


def test_hf_hub_offline_and_cache_env_are_respected(hub_cache):
    """A fresh process configured only by the standard environment variables."""
    code = (
        "import attnlens, torch;"
        f"m = attnlens.BertForSequenceClassification.from_pretrained({REPO_ID!r}, revision={COMMIT_V1!r});"
        "print(float(m.classifier.weight.sum()))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache)}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = classifier_weight(hub_cache / "models--attnlens-test--tiny-sentiment" / "snapshots" / COMMIT_V1)
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(float(expected.detach().sum()), abs=1e-6)


def test_repo_not_in_offline_cache_names_the_repo(hub_cache):
    with pytest.raises(ModelNotFoundError, match="attnlens-test/absent: .*not in the Hub cache"):
        BertForSequenceClassification.from_pretrained("attnlens-test/absent", local_files_only=True,
                                                      cache_dir=hub_cache)


def test_unknown_revision_names_repo_and_revision(hub_cache):
    with pytest.raises(ModelNotFoundError, match=f"{REPO_ID}@{'9' * 40}"):
        BertForSequenceClassification.from_pretrained(REPO_ID, revision="9" * 40, local_files_only=True,
                                                      cache_dir=hub_cache)


def test_invalid_reference_is_neither_folder_nor_repo():
    with pytest.raises(ModelNotFoundError, match="neither an existing folder nor a valid Hub repo id"):
        BertForSequenceClassification.from_pretrained("not a repo!!", local_files_only=True)


def test_revision_with_local_folder_is_refused(tiny_classifier_dir):
    with pytest.raises(ModelNotFoundError, match="applies to Hub repo ids, not local folders"):
        BertForSequenceClassification.from_pretrained(tiny_classifier_dir, revision="main")


def test_unreachable_hub_is_a_one_line_error(tmp_path):
    """Online mode with the Hub endpoint on a closed loopback port: a clear error, no traceback."""
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}",
           "HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_ETAG_TIMEOUT": "5",
           "HF_HUB_DOWNLOAD_TIMEOUT": "5"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("attnlens")), "predict", "--model", "attnlens-test/absent@v1", "hi"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "attnlens-test/absent@v1 could not be fetched (ConnectError" in result.stderr
