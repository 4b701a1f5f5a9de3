"""The dashboard's time series: daily sums kept as runs are computed agree with the runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from driftwatch.dashboard import repository
from tests.conftest import create_model
from tests.factories import MONITORED as FEATURES
from tests.factories import frame, post
from tests.factories import frame_baseline as baseline_records
from tests.factories import frame_records as records

DAY0 = datetime(2026, 10, 3, tzinfo=UTC)


def _run(api: TestClient, model: str, start: datetime) -> dict[str, Any]:
    result: dict[str, Any] = post(
        api,
        f"/api/v1/models/{model}/runs",
        {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
    )
    return result


def test_daily_sums_follow_runs_and_their_recomputations(api: TestClient, engine: Engine) -> None:
    model = create_model(api, features=FEATURES, window="1h")["name"]
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "b", "records": baseline_records(frame(400, seed=1))}, 201)  # fmt: skip
    starts = [DAY0 + timedelta(hours=h) for h in (1, 5, 23, 24, 30)]  # 3 on one day, 2 on the next
    for index, start in enumerate(starts):
        data = frame(50 + 10 * index, seed=10 + index, shift=0.8 * (index % 2))
        post(api, f"/api/v1/models/{model}/predictions",
             {"records": records(data, prefix=f"w{index}", start=start)})  # fmt: skip
        _run(api, model, start)
    # a late batch for the first window: its run is computed again, and its day summed again
    post(api, f"/api/v1/models/{model}/predictions",
         {"records": records(frame(30, seed=99), prefix="late", start=starts[0])})  # fmt: skip
    _run(api, model, starts[0])
    runs = api.get(f"/api/v1/models/{model}/runs").json()
    with Session(engine) as session:
        model_id = next(m.id for m in repository.list_models(session) if m.name == model)
        buckets = repository.bucketed(
            session, model_id=model_id, metrics=["rows", "dataset.drifted_share"],
            start=DAY0, end=DAY0 + timedelta(days=2), bucket_seconds=86400,
        )  # fmt: skip
    by = {(b.metric, b.index): b for b in buckets}
    for day in (0, 1):
        day_runs = [r for r in runs
                    if datetime.fromisoformat(r["window"]["start"]).date()
                    == (DAY0 + timedelta(days=day)).date()]  # fmt: skip
        index = int((DAY0 + timedelta(days=day)).timestamp()) // 86400
        rows = by[("rows", index)]
        assert rows.total == sum(r["rows"] for r in day_runs)
        assert rows.count == len(day_runs)
        shares = [r["dataset"]["drifted_share"] for r in day_runs]
        share = by[("dataset.drifted_share", index)]
        assert (share.low, share.high) == (min(shares), max(shares))
        assert share.mean == pytest.approx(sum(shares) / len(shares))
    assert by[("rows", int(DAY0.timestamp()) // 86400)].total == 50 + 30 + 60 + 70
