"""Starting a real `bentoml serve` for the service tests: tiny models, free loopback ports, cleanup."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
BENTOML = str(Path(sys.executable).with_name("bentoml"))


def save_tiny_classifier(directory: Path, *, hidden_size: int = 32, num_hidden_layers: int = 2,
                         max_position_embeddings: int = 128, seed: int = 0) -> Path:
    """A random attnlens classifier + the MiniLM tokenizer, with a head scaled up so that different
    texts get clearly different probabilities (a fresh head gives ~0.5 for everything)."""
    from attnlens import DEFAULT_BASE_MODEL, BertConfig, BertForSequenceClassification, load_tokenizer

    tokenizer = load_tokenizer(DEFAULT_BASE_MODEL)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden_size,
                        num_hidden_layers=num_hidden_layers, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=max_position_embeddings,
                        id2label={0: "negative", 1: "positive"})
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.mul_(100.0)
    model.save_pretrained(directory, tokenizer=tokenizer)
    return directory


def load_library(model_dir: Path):
    """(model, tokenizer, Predictor) of a saved model of any family, in this process: what the
    service must equal."""
    from attnlens import load_model, load_tokenizer
    from attnlens.predict import Predictor

    model = load_model(str(model_dir)).eval()
    tokenizer = load_tokenizer(str(model_dir))
    return model, tokenizer, Predictor(model, tokenizer)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"server at {url} not ready after {timeout} s:\n{log_path.read_text()[-4000:]}")


def start_server(tmp_dir: Path, model: str, wait: bool = True, **env: str) -> Server:
    """`bentoml serve serving.service:AttnlensService` from the repo root on a free loopback port;
    with `wait`, returns once /readyz says 200."""
    port = free_port()
    environment = {**os.environ, "BENTOML_HOME": str(tmp_dir / "bentoml"), "ATTNLENS_MODEL": model,
                   "ATTNLENS_THREADS": "1", "BENTOML_DO_NOT_TRACK": "true", "TOKENIZERS_PARALLELISM": "false",
                   "PYTHONPATH": str(REPO_ROOT), **env}
    log_path = tmp_dir / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [BENTOML, "serve", "serving.service:AttnlensService", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        if wait:
            wait_ready(url, process, log_path)
    except BaseException:
        stop_server(process)
        raise
    return Server(url, process, log_path)


def stop_server(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Stop the server (and its worker processes, which share its session) and return its exit code."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the process group
    return process.returncode


@contextlib.contextmanager
def running_server(tmp_dir: Path, model: str, **env: str) -> Iterator[Server]:
    server = start_server(tmp_dir, model, **env)
    try:
        yield server
    finally:
        stop_server(server.process)
