"""The ``driftwatch`` command meets mistakes as a newcomer makes them: a time, a port, a duration
or an id it cannot read, a model that does not exist, a model without a baseline, a database it
cannot reach. Each is one line that says what was given and what is expected, never a
traceback: exit code 2 for an argument that cannot be read, 1 for one that names nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from tests.conftest import create_model, free_port
from tests.factories import MONITORED as FEATURES

pytestmark = pytest.mark.slow  # a browser, a server or the command line in processes


def driftwatch(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", *args],
        env={**os.environ, "DRIFTWATCH_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The command's only line of output (on stderr), after it exited with ``code``."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    return line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--start", "yesterday"), "argument --start: 'yesterday' is not an ISO 8601 time: give "
                                   "one such as 2026-11-20T10:00:00Z"),
        (("--end", "2026-13-01"), "argument --end: '2026-13-01' is not an ISO 8601 time"),
        (("--start", "2026-02-01T00:00:00Z", "--end", "2026-01-01T00:00:00Z"),
         "--end 2026-01-01T00:00:00Z must be after --start 2026-02-01T00:00:00Z"),
    ],
)  # fmt: skip
def test_run_with_a_time_it_cannot_read_says_so_in_one_line(
    api: TestClient, database_url: str, args: tuple[str, ...], expected: str
) -> None:
    model = create_model(api, features=FEATURES)["name"]
    line = one_line(driftwatch(database_url, "run", model, *args), 2)
    assert line.startswith("driftwatch run: ")
    assert expected in line


def test_run_of_a_model_that_does_not_exist_or_has_no_baseline_says_so(
    api: TestClient, database_url: str
) -> None:
    line = one_line(driftwatch(database_url, "run", "no-such-model"), 1)
    assert line == "driftwatch run: model 'no-such-model' does not exist"
    model = create_model(api, features=FEATURES)["name"]
    line = one_line(driftwatch(database_url, "run", model, "--start", "2026-11-20T10:00"), 1)
    assert f"model {model!r} has no baseline yet" in line
    assert f"driftwatch baselines create {model} --name NAME --file PATH" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("serve", "--port", "99999"), "argument --port: '99999' is not a port: give a number "
                                      "from 1 to 65535"),
        (("serve", "--port", "http"), "argument --port: 'http' is not a port"),
        (("demo", "--duration", "-3"), "argument --duration: '-3' is not a duration: give a "
                                      "number of seconds above 0, such as 120"),
        (("demo", "--duration", "2m"), "argument --duration: '2m' is not a duration"),
        (("run",), "the following arguments are required: model"),
        (("keys", "create", "--name", "k", "--scope", "root"), "argument --scope: invalid "
                                                              "choice: 'root'"),
    ],
)  # fmt: skip
def test_arguments_it_cannot_read_are_one_line_and_exit_2(
    database_url: str, args: tuple[str, ...], expected: str
) -> None:
    line = one_line(driftwatch(database_url, *args), 2)
    assert expected in line
    assert line.endswith(" --help)")


def test_a_key_id_too_large_for_any_key_is_no_such_key(database_url: str) -> None:
    line = one_line(driftwatch(database_url, "keys", "revoke", "9" * 30), 1)
    assert line == f"driftwatch keys revoke: no active key with id or name {'9' * 30!r}"


def test_a_database_it_cannot_reach_is_one_line_naming_it(tmp_path: object) -> None:
    url = f"postgresql+psycopg://postgres:secret@127.0.0.1:{free_port()}/none"
    line = one_line(driftwatch(url, "keys", "list"), 1)
    assert line.startswith("driftwatch keys list: cannot use the database "
                           "postgresql+psycopg://postgres:***@127.0.0.1:")  # fmt: skip
    assert "(DRIFTWATCH_DATABASE_URL): " in line
    assert "secret" not in line
