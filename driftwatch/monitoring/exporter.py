"""Prometheus gauges of what the database holds, read when Prometheus scrapes: every replica
reports the same values."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import JSON, Engine, func, select, type_coerce


class StateCollector(Collector):
    """Last window with data per model (every number of the metric vocabulary, and the older
    gauges of drift scores, verdicts, accuracy and rows), since when traffic stopped, and every
    alert's state, read from the database when Prometheus scrapes: at most once every
    ``cache_seconds`` per process, however many scrapers there are (``/metrics`` needs no key,
    and each read costs queries over every model)."""

    def __init__(self, engine: Engine, cache_seconds: float = 0.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, list[Any]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        with self._lock:  # one read at a time; scrapes that wait get its families
            cached = self._cached
            if cached is None or time.monotonic() - cached[0] >= self.cache_seconds:
                cached = (time.monotonic(), list(self._read()))
                self._cached = cached if self.cache_seconds > 0 else None
        yield from cached[1]

    def _read(self) -> Iterator[Any]:
        from sqlalchemy.orm import Session

        from driftwatch.models import AlertRuleState, MonitoredModel, Run, RunMetric
        from driftwatch.models.monitoring import WINDOW
        from driftwatch.monitoring import repository as monitoring

        score = GaugeMetricFamily("driftwatch_feature_drift_score",
                                  "Drift score of each feature in the latest window",
                                  labels=["model", "feature", "stattest"])  # fmt: skip
        drifted = GaugeMetricFamily("driftwatch_feature_drifted",
                                    "1 if the feature drifted in the latest window",
                                    labels=["model", "feature"])  # fmt: skip
        share = GaugeMetricFamily(
            "driftwatch_drifted_share",
            "Share of drifted features in the latest window",
            labels=["model"],
        )
        accuracy = GaugeMetricFamily("driftwatch_accuracy",
                                     "Accuracy metrics of the latest window with labels",
                                     labels=["model", "metric"])  # fmt: skip
        rows = GaugeMetricFamily("driftwatch_window_rows", "Predictions in the latest window",
                                 labels=["model"])  # fmt: skip
        window_end = GaugeMetricFamily(
            "driftwatch_window_end_timestamp_seconds",
            "End of the latest computed window with data",
            labels=["model"],
        )
        quiet = GaugeMetricFamily(
            "driftwatch_no_traffic_since_timestamp_seconds",
            "When traffic stopped, for a model whose newest windows hold no predictions",
            labels=["model"],
        )
        every = GaugeMetricFamily(
            "driftwatch_run_metric",
            "Every number of the latest window with data, by its name in the metric vocabulary "
            "(the names rules test)",
            labels=["model", "metric"],
        )
        alerts = GaugeMetricFamily("driftwatch_alert_state",
                                   "Each rule's state per model: 0 ok, 1 pending, 2 firing",
                                   labels=["model", "rule"])  # fmt: skip
        with Session(self.engine) as session:
            # the last window with data of each model (never a custom range)
            with_data = (Run.kind == WINDOW, Run.rows > 0)
            latest = (
                select(Run.model_id, func.max(Run.window_end).label("end"))
                .where(*with_data)
                .group_by(Run.model_id)
                .subquery()
            )
            # Not whole results (a run's segments and versions repeat its features many
            # times): its numbers from run_metrics, and only the features' part of it, for the
            # drift gauges' labels.
            features = type_coerce(Run.result, JSON)["features"]
            query = (
                select(MonitoredModel.name, Run.model_id, Run.window_start, Run.window_end,
                       Run.rows, features)
                .join(latest, (Run.model_id == latest.c.model_id)
                      & (Run.window_end == latest.c.end))
                .join(MonitoredModel, MonitoredModel.id == Run.model_id)
                .where(*with_data)
                .order_by(Run.id.desc())
            )  # fmt: skip
            newest: dict[tuple[int, datetime], str] = {}  # the window each model's gauges show
            seen: set[str] = set()
            for name, model_id, start, end, count, entries in session.execute(query):
                if name in seen:
                    continue
                seen.add(name)
                newest[(model_id, start)] = name
                for entry in entries if isinstance(entries, list) else ():
                    if entry.get("score") is not None:
                        score.add_metric([name, entry["name"], entry.get("stattest") or ""],
                                         entry["score"])  # fmt: skip
                    if entry.get("drifted") is not None:
                        drifted.add_metric([name, entry["name"]], float(entry["drifted"]))
                rows.add_metric([name], count or 0)
                window_end.add_metric([name], end.timestamp())
            numbers = (
                select(RunMetric.model_id, RunMetric.window_start, RunMetric.metric,
                       RunMetric.value)
                .join(Run, (Run.model_id == RunMetric.model_id)
                      & (Run.window_start == RunMetric.window_start))
                .join(latest, (Run.model_id == latest.c.model_id)
                      & (Run.window_end == latest.c.end))
                .where(*with_data, RunMetric.value.is_not(None))
                .distinct()
            )  # fmt: skip
            for model_id, start, metric, value in session.execute(numbers):
                name = newest.get((model_id, start))
                if name is None or value is None:
                    continue
                every.add_metric([name, metric], value)
                if metric == "dataset.drifted_share":
                    share.add_metric([name], value)
                elif metric.startswith("accuracy."):
                    accuracy.add_metric([name, metric.removeprefix("accuracy.")], value)
            for model_id, name in session.execute(select(MonitoredModel.id, MonitoredModel.name)):
                since = monitoring.no_traffic_since(session, model_id=model_id)
                if since is not None:
                    quiet.add_metric([name], since.timestamp())
            states = session.execute(
                select(MonitoredModel.name, AlertRuleState.rule, AlertRuleState.state)
                .join(MonitoredModel, MonitoredModel.id == AlertRuleState.model_id)
            )  # fmt: skip
            worst: dict[tuple[str, str], int] = {}  # a per_segment rule: its worst segment
            for name, rule, state in states:
                level = {"ok": 0, "pending": 1, "firing": 2}.get(state, 0)
                worst[(name, rule)] = max(level, worst.get((name, rule), 0))
            for (name, rule), level in worst.items():
                alerts.add_metric([name, rule], level)
        yield from (every, score, drifted, share, accuracy, rows, window_end, quiet, alerts)
