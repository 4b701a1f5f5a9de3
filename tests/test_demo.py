"""``driftwatch demo`` end to end, as a new user runs it: the alert fires, the signed retraining
webhook is verified by the demo's sink, the dashboard answers, Ctrl-C ends it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, sign_in


@pytest.fixture(autouse=True)
def _once(pytestconfig: pytest.Config) -> None:
    if pytestconfig.getoption("--db") == "postgres":
        pytest.skip("the demo runs on its own SQLite file: tested in the --db sqlite run")


@pytest.mark.slow
def test_the_demo_fires_an_alert_and_a_verified_retraining_webhook(tmp_path: Path) -> None:
    port, key = free_port(), "dw_demo_test_" + uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-m", "driftwatch.cli", "demo", "--port", str(port)],
        env={**os.environ, "DRIFTWATCH_ADMIN_KEY": key}, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")),  # type: ignore[union-attr]
                              daemon=True)  # fmt: skip
    reader.start()
    began = time.monotonic()

    def seen(text: str) -> bool:
        return any(text in line for line in list(lines))

    try:
        deadline = began + 120  # the issue: the first alert within two minutes
        while time.monotonic() < deadline and not seen("RETRAIN REQUESTED"):
            assert process.poll() is None, "".join(lines)
            time.sleep(0.5)
        output = "".join(lines)
        assert seen("ALERT FIRING (alert.firing, signature verified)"), output
        assert seen("RETRAIN REQUESTED (model.retrain_requested, signature verified)"), output
        assert seen(f"dashboard: http://127.0.0.1:{port}/  (sign in with the API key {key})")
        assert not seen("REJECTED"), output
        # the dashboard answers, signed in with the printed key
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True) as browser:
            signed_in = sign_in(browser, key)
            assert signed_in.status_code == 200
            assert "breast-cancer-screening" in signed_in.text
            page = browser.get("/models/breast-cancer-screening")
            assert page.status_code == 200
            assert "alerting" in page.text
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=5)
    output = "".join(lines)
    assert "done: " in output
    assert "Traceback" not in output, output


@pytest.mark.slow
def test_the_demo_ends_by_itself_after_its_duration(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "demo", "--port", str(free_port()),
         "--duration", "8"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "done: " in finished.stdout
    assert "Traceback" not in finished.stdout + finished.stderr
