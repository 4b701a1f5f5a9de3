"""Evidently's own HTML report for one run's window against its baseline, for teams who know
Evidently and want to dig in with it. Evidently stays behind this module.

The report runs on the same data as the run: the window's predictions and the baseline's own
values, whole, while each side holds at most ``SAMPLE_ROWS`` rows. A larger side is sampled
without replacement (seeded, so the same run gives the same report), and the page says so, since
Evidently's numbers (and, past 1,000 reference rows, even the test its default rule picks) then
differ from the run's. A prepared baseline keeps each column's values, not its rows, so the
reference is laid out column by column: right for per-column drift (what ``DataDriftPreset``
shows), not for anything that looks at several columns together.

Evidently writes its data into inline scripts as JSON, where a ``</script>`` in a feature name or
a categorical value (any upstream producer can send one) would end the script and start the
sender's own. Every such string goes to Evidently as a placeholder, written back into the HTML
as JSON with ``<``, ``>`` and ``&`` escaped (``\u003c``...): the report shows the real strings,
as data. The page is also served as a sandbox (``security.REPORT_POLICY``).
"""

from __future__ import annotations

import json
import re
import secrets
import warnings
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Engine

from driftwatch.core.time import iso
from driftwatch.db import session_scope
from driftwatch.errors import NotFound
from driftwatch.models import Baseline, Run
from driftwatch.monitoring import moving
from driftwatch.monitoring import service as monitoring
from driftwatch.monitoring.profiles import BaselineProfile, ColumnProfile
from driftwatch.registry import service as registry
from driftwatch.storage.chunks import WindowColumns

SAMPLE_ROWS = 5000


def _reference_column(column: ColumnProfile, rows: int) -> Any:
    """The baseline's own values of one column, ``rows`` long (its missing values as missing)."""
    if column.kind == "numerical":
        values = column.sorted_values if column.sorted_values is not None else np.array([])
        out = np.full(rows, np.nan)
        out[: len(values)] = values[:rows]
        return out
    counts = column.counts if column.counts is not None else np.array([], dtype=np.int64)
    names = np.asarray(column.categories or [], dtype=object)
    expanded = np.repeat(names, counts)[:rows]
    out_cat = np.full(rows, None, dtype=object)
    out_cat[: len(expanded)] = expanded
    return out_cat


@dataclass(frozen=True, slots=True)
class Sides:
    current: pd.DataFrame
    reference: pd.DataFrame
    window_rows: int  # of the run's window
    baseline_rows: int  # of its baseline

    @property
    def sampled(self) -> bool:
        return len(self.current) < self.window_rows or len(self.reference) < self.baseline_rows


def _sample(rows: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    if rows <= SAMPLE_ROWS:
        return np.arange(rows)
    return np.sort(rng.choice(rows, size=SAMPLE_ROWS, replace=False))


def frames(
    window: WindowColumns, profile: BaselineProfile, features: list[Any], seed: int
) -> Sides:
    """The window and the baseline as Evidently reads them: whole up to ``SAMPLE_ROWS`` rows a
    side, else a sample without replacement of that size."""
    rng = np.random.default_rng(seed)
    rows = _sample(len(window), rng)
    reference_rows = _sample(profile.rows, rng)
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
        # the same rows of every column: a column's values are in sorted order, so a sample of
        # positions is a sample of its values
        reference[feature.name] = _reference_column(column, profile.rows)[reference_rows]
    return Sides(pd.DataFrame(current), pd.DataFrame(reference), len(window), profile.rows)


class _Inert:
    """Stands in for each string holding ``<`` while Evidently renders, and writes it back
    escaped for a script's JSON."""

    def __init__(self) -> None:
        self._token = f"dw{secrets.token_hex(6)}"
        self._originals: list[str] = []
        self._placeholders: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or "<" not in value:
            return value
        if value not in self._placeholders:
            self._placeholders[value] = f"{self._token}x{len(self._originals)}x"
            self._originals.append(value)
        return self._placeholders[value]

    def frame(self, frame: pd.DataFrame, categorical: set[str]) -> pd.DataFrame:
        out = frame.rename(columns=self)
        for name in categorical:
            out[self(name)] = out[self(name)].map(self)
        return out

    def restore(self, html: str) -> str:
        if not self._originals:
            return html

        def escaped(found: re.Match[str]) -> str:
            text = json.dumps(self._originals[int(found.group(1))])[1:-1]
            return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

        return re.sub(rf"{self._token}x(\d+)x", escaped, html)


def _banner(model_name: str, run_id: int, span: tuple[datetime, datetime], sides: Sides) -> str:
    """A line above Evidently's report: what it was computed on, and the way back."""
    link = f"/models/{quote(model_name, safe='')}"
    what = (
        f"a sample of {len(sides.current):,} of the window's {sides.window_rows:,} predictions "
        f"and {len(sides.reference):,} of the baseline's {sides.baseline_rows:,} rows: its "
        "scores (and, past 1,000 baseline rows, its choice of test) may differ from the run's"
        if sides.sampled
        else f"the run's own data: the window's {sides.window_rows:,} predictions and the "
        f"baseline's {sides.baseline_rows:,} rows"
    )
    return (
        '<div data-driftwatch-banner style="font:14px system-ui,sans-serif;padding:10px 16px;'
        'background:#f4f6f8;border-bottom:1px solid #d0d7de">'
        f'<a href="{escape(link)}">&larr; {escape(model_name)} on the dashboard</a> &middot; '
        f"Evidently's report of run {run_id} ({escape(iso(span[0]))} to "
        f"{escape(iso(span[1]))}), computed on {escape(what)}.</div>"
    )


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
        if baseline.source in moving.MOVING:
            raise NotFound(
                f"run {run_id} compared its window with a {baseline.source} baseline "
                f"({baseline.name!r}), merged from summaries: Evidently's report needs the "
                "baseline's rows, which such a baseline does not keep"
            )
        profile = monitoring.PROFILES.get(session, baseline)
        features = [f for f in registry.feature_specs(model)
                    if f.name in {c.name for c in profile.features}]  # fmt: skip
        window = monitoring.read_window(session, model=model, start=run.window_start,
                                        end=run.window_end)  # fmt: skip
        window = monitoring.narrow(window, model, features)
        span = (run.window_start, run.window_end)
        if monitoring.shrunk_since_computed(run, len(window)):
            raise NotFound(
                f"run {run_id}'s raw predictions were removed by the retention policy "
                f"({len(window)} of {run.rows} left): its Evidently report can no longer be "
                "made; the run's own results stay"
            )
    if len(window) == 0:
        raise NotFound(f"run {run_id}'s window has no predictions")
    sides = frames(window, profile, features, seed=run_id)
    inert = _Inert()
    categorical = {f.name for f in features if f.kind == "categorical"}
    definition = DataDefinition(
        numerical_columns=[inert(f.name) for f in features if f.kind == "numerical"],
        categorical_columns=[inert(f.name) for f in features if f.kind == "categorical"],
    )
    with warnings.catch_warnings():  # scipy's divide-by-zero notes from Evidently's tests
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(inert.frame(sides.current, categorical),
                                data_definition=definition),
            Dataset.from_pandas(inert.frame(sides.reference, categorical),
                                data_definition=definition),
        )  # fmt: skip
        html: str = inert.restore(snapshot.get_html_str(as_iframe=False))
    title = f"<title>Evidently: {escape(model_name)}, run {run_id} · driftwatch</title>"
    html = re.sub(r"<title>.*?</title>", "", html, count=1, flags=re.S)
    html = re.sub(r"<head[^>]*>", lambda head: head.group(0) + title, html, count=1)
    banner = _banner(model_name, run_id, span, sides)
    body = re.search(r"<body[^>]*>", html)
    return html[: body.end()] + banner + html[body.end() :] if body else banner + html
