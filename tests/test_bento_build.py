"""`bentoml build` from the repository root works offline and the Bento it makes serves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from service_harness import (
    BENTOML,
    REPO_ROOT,
    free_port,
    save_tiny_classifier,
    stop_server,
    wait_ready,
)


def test_bentoml_build_offline_then_serve_the_bento(tmp_path):
    home = tmp_path / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true",
           # Any download attempt (pip, uv, the Hub) fails fast instead of silently succeeding.
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "PIP_NO_INDEX": "1",
           "UV_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    # A separate process: BentoML caches its store location for the life of a process.
    export = subprocess.run([str(Path(sys.executable).with_name("attnlens")), "export", "--model",
                             str(save_tiny_classifier(tmp_path / "tiny"))], env=env, capture_output=True, text=True,
                            timeout=120)
    assert export.returncode == 0, export.stderr

    build = subprocess.run([BENTOML, "build", "--output", "tag"], cwd=REPO_ROOT, env=env,
                           capture_output=True, text=True, timeout=180)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("attnlens:")
    bento_dir = home / "bentos" / "attnlens" / tag.split(":")[1]
    assert (bento_dir / "src" / "serving" / "service.py").is_file()
    assert (bento_dir / "src" / "serving" / "static" / "index.html").is_file()
    assert (bento_dir / "src" / "src" / "attnlens" / "predict.py").is_file()
    assert not list(bento_dir.rglob("test_*.py"))
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text()
    assert "torch" in requirements and "transformers" in requirements
    assert list((home / "models" / "attnlens-sentiment").iterdir())

    port = free_port()
    log_path = tmp_path / "bento-serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([BENTOML, "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
                                   cwd=tmp_path, env={**env, "ATTNLENS_THREADS": "1"}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log_path)
        response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"texts": ["a fine film"]}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()[0]["label"] in ("negative", "positive")
        assert "bentoml-store:" in log_path.read_text()  # ATTNLENS_MODEL=attnlens-sentiment from bentofile
    finally:
        stop_server(process)
