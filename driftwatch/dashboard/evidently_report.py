"""Evidently's own HTML report for one run's window against its baseline, for teams who know
Evidently and want to dig in with it. Evidently stays behind this module.

Both sides are bounded samples (``SAMPLE_ROWS`` rows each, seeded, so the same run gives the
same report). A prepared baseline keeps each column's values, not its rows, so the reference
sample is drawn column by column: right for per-column drift (what ``DataDriftPreset``
shows), not for anything that looks at several columns together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from driftwatch.db import session_scope
from driftwatch.errors import NotFound
from driftwatch.models import Baseline, Run
from driftwatch.monitoring import service as monitoring
from driftwatch.monitoring.profiles import BaselineProfile, ColumnProfile
from driftwatch.registry import service as registry
from driftwatch.storage.chunks import WindowColumns

SAMPLE_ROWS = 5000


def _reference_column(column: ColumnProfile, size: int, rng: np.random.Generator) -> Any:
    missing_share = column.missing / column.rows if column.rows else 0.0
    if column.kind == "numerical":
        values = column.sorted_values if column.sorted_values is not None else np.array([])
        drawn = rng.choice(values, size=size) if len(values) else np.full(size, np.nan)
        drawn = drawn.astype(np.float64)
        drawn[rng.random(size) < missing_share] = np.nan
        return drawn
    counts = column.counts if column.counts is not None else np.array([], dtype=np.int64)
    names = np.asarray(column.categories or [], dtype=object)
    if counts.sum() == 0:
        return np.full(size, None, dtype=object)
    drawn = rng.choice(names, size=size, p=counts / counts.sum()).astype(object)
    drawn[rng.random(size) < missing_share] = None
    return drawn


def _frames(
    window: WindowColumns, profile: BaselineProfile, features: list[Any], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = np.arange(len(window))
    if len(rows) > SAMPLE_ROWS:
        rows = np.sort(rng.choice(rows, size=SAMPLE_ROWS, replace=False))
    size = min(SAMPLE_ROWS, profile.rows) or 1
    current: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    num = cat = 0
    for feature, column in zip(features, profile.features, strict=True):
        if feature.kind == "numerical":
            current[feature.name] = window.num_values[rows, num]
            num += 1
        else:
            names = np.asarray([*window.categories[cat], None], dtype=object)
            current[feature.name] = names[window.cat_codes[rows, cat]]
            cat += 1
        reference[feature.name] = _reference_column(column, size, rng)
    return pd.DataFrame(current), pd.DataFrame(reference)


def render(engine: Engine, *, model_name: str, run_id: int) -> str:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    with session_scope(engine) as session:
        model = registry.get_by_name(session, name=model_name)
        run = session.get(Run, run_id)
        if run is None or run.model_id != model.id:
            raise NotFound(f"model {model_name!r} has no run {run_id}")
        baseline = session.get(Baseline, run.baseline_id)
        if baseline is None:
            raise NotFound(f"the baseline of run {run_id} no longer exists")
        profile = monitoring.PROFILES.get(session, baseline)
        features = [f for f in registry.feature_specs(model)
                    if f.name in {c.name for c in profile.features}]  # fmt: skip
        window = monitoring.read_window(session, model=model, start=run.window_start,
                                        end=run.window_end)  # fmt: skip
        window = monitoring.narrow(window, model, features)
        if monitoring.shrunk_since_computed(run, len(window)):
            raise NotFound(
                f"run {run_id}'s raw predictions were removed by the retention policy "
                f"({len(window)} of {run.rows} left): its Evidently report can no longer be "
                "made; the run's own results stay"
            )
    if len(window) == 0:
        raise NotFound(f"run {run_id}'s window has no predictions")
    current, reference = _frames(window, profile, features, seed=run_id)
    definition = DataDefinition(
        numerical_columns=[f.name for f in features if f.kind == "numerical"],
        categorical_columns=[f.name for f in features if f.kind == "categorical"],
    )
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    html: str = snapshot.get_html_str(as_iframe=False)
    return html
