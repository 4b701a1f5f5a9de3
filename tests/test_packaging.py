"""The service as the Dockerfile packages it: a wheel built from the source tree, installed on
its own and run from a directory that holds only the rules, with the database from the
environment. (No Docker engine is needed: this is the image's build and run stages, step by step,
without the base image.)

It catches what an editable install hides: a migration, template, static file or vendored
script left out of the wheel, or code that finds its files through the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftwatch.testing import start_serve
from tests.conftest import ADMIN_KEY, free_port, sign_in

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, check=False, **kwargs)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_the_wheel_serves_from_a_directory_of_its_own(empty_database: str, tmp_path: Path) -> None:
    # build stage: the files the Dockerfile copies, and nothing else
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "alembic.ini"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("driftwatch", "migrations"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
        "--wheel-dir", str(wheels), str(source))  # fmt: skip
    [wheel] = wheels.glob("driftwatch-*.whl")

    # run stage: the wheel installed apart (its dependencies are this environment's), run from
    # a directory with the rules only, the settings from the environment
    site = tmp_path / "site"
    run(sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
        str(wheel))  # fmt: skip
    app = tmp_path / "app"
    shutil.copytree(ROOT / "rules", app / "rules")
    env = {
        "PYTHONPATH": str(site),
        "PYTHONSAFEPATH": "1",  # not the working directory either
        "DRIFTWATCH_ADMIN_KEY": ADMIN_KEY,
        "DRIFTWATCH_RULES_DIR": str(app / "rules"),
    }
    where = run(sys.executable, "-c", "import driftwatch; print(driftwatch.__file__)",
                cwd=app, env={**os.environ, **env})  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout

    port = free_port()
    server = start_serve(empty_database, port, tmp_path / "serve.log", env=env, cwd=app)
    try:
        base = f"http://127.0.0.1:{port}"
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert httpx.get(f"{base}/healthz").status_code == 200
        # the migrations came with the wheel: the empty database is now usable
        created = admin.post("/api/v1/models", json={
            "name": "packaged", "task": "binary_classification", "window": "1h",
            "features": [{"name": "x", "kind": "numerical"}],
        })  # fmt: skip
        assert created.status_code == 201, created.text
        logged = admin.post("/api/v1/models/packaged/predictions", json={"records": [
            {"prediction_id": "p1", "features": {"x": 1.5}, "prediction": 0.7},
        ]})  # fmt: skip
        assert logged.status_code == 200, logged.text
        assert logged.json()["accepted"] == 1
        # templates, static files and the vendored chart library came too
        signed_in = httpx.Client(base_url=base, follow_redirects=True)
        page = sign_in(signed_in)
        assert page.status_code == 200
        assert "packaged" in page.text, page.text[:500]
        for asset in ("/static/app.js", "/static/app.css", "/static/vendor/echarts/echarts.min.js"):
            response = httpx.get(base + asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 100, asset
        assert "driftwatch_ingested_records_total" in httpx.get(f"{base}/metrics").text
        admin.close()
        signed_in.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
