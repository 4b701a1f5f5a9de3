"""Performance estimates before labels (CONTRACT section 9) against NannyML 0.13, window by window.

Usage: python benchmarks/estimates.py --nannyml-python /path/to/nannyml-venv/bin/python
       [--datasets binary multiclass regression] [--rows-per-window 5000]
       [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--serve-log serve.log]

NannyML's own synthetic datasets, as its wheel ships them (CSV files under
``nannyml/datasets/data/``, found through the interpreter given by ``--nannyml-python``, which
runs in a NannyML 0.13 environment of its own, since its dependencies clash with ours; NannyML
0.13 imports ``statsmodels`` without requiring it, so install that there too, and its DLE fails on
pandas 3's arrow strings, which the NannyML side turns off):
- binary: the car loan set (``synthetic_car_loan_*``), metrics roc_auc, f1, accuracy;
- multiclass: the credit card set (``mc_*``, probabilities ``y_pred_proba_<class>``), metrics
  roc_auc, f1, accuracy (macro);
- regression: the car price set (``regression_synthetic_*``), metrics mae, rmse.

In one invocation, for each dataset:
- NannyML, in a subprocess of that interpreter with ``NML_DISABLE_USAGE_LOGGING=1``: CBPE
  (binary, multiclass) or DLE (regression) fitted on the reference set, estimating the analysis
  set in chunks of --rows-per-window rows; its per-chunk estimates and confidence bands come back
  as JSON;
- driftwatch, through the HTTP API of a real ``driftwatch serve`` process (a scratch SQLite file,
  or with --postgres a scratch Postgres database it creates and drops): a model registered with
  the dataset's features and a window of 1h, the reference set uploaded as a baseline with its
  labels (multiclass: ``prediction`` as the object of per-class probabilities), the analysis
  rows logged as predictions, each consecutive --rows-per-window chunk of them inside one hourly
  window (so driftwatch's windows are NannyML's chunks), each window computed
  (``POST .../runs``) and its ``estimated`` block read; then the analysis targets sent as
  ground truth, each window computed again and its realized ``accuracy`` read (cross-checked
  against scikit-learn on the same rows).

Both sides estimate the same realized metric: the binary model's ``decision_threshold`` is set
between the highest score the dataset's ``y_pred`` calls 0 and the lowest it calls 1 (the car
loan set's scores are cut at 0.65, not 0.5), and NannyML's multiclass ``y_pred`` is the class
driftwatch predicts (the most probable, the first in sorted order among tied probabilities;
the dataset's own ``y_pred`` breaks some ties otherwise).

Prints per dataset and metric a table of windows (driftwatch's estimate [lower, upper],
NannyML's estimate [lower, upper], the realized value, whether it is inside driftwatch's
bounds), then per dataset and metric a summary line: the mean absolute error of each side's
estimates against the realized values, the windows inside driftwatch's bounds, and the
seconds each side took (driftwatch: the baseline's upload and the runs before labels, which
between them fit its calibration or loss models; NannyML: fit and estimate). The issue's goals:
driftwatch's error no worse than NannyML's on every dataset, the realized value inside
driftwatch's bounds in at least 90% of the windows. A window without an estimate
(``"estimated": null``: its ``estimated_reason`` is shown) counts as a miss. NannyML's bounds are
its confidence band (the estimate +- 3 sampling errors), not a 95% interval.

Both methods assume what the reference set learned holds in the window (P(label | scores) for
CBPE, the expected loss given the features and prediction for DLE). The multiclass set's second
half breaks it (a concept shift: rows whose top probability is 0.8 to 0.9 are right 74% of the
time there, 86% in the reference), which no estimate from the scores can see: its last six
windows are missed by both sides alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from driftwatch.testing import scratch_database, start_serve

ADMIN_KEY = "bench-admin-" + uuid.uuid4().hex
WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Dataset:
    kind: str  # binary, multiclass, regression
    task: str
    reference: str
    analysis: str
    targets: str
    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str
    metrics: tuple[str, ...]

    @property
    def features(self) -> list[str]:
        return [*self.numerical, *self.categorical]


DATASETS = {
    "binary": Dataset(
        kind="binary", task="binary_classification",
        reference="synthetic_car_loan_reference.csv", analysis="synthetic_car_loan_analysis.csv",
        targets="synthetic_car_loan_analysis_target.csv",
        numerical=("car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"),
        categorical=("salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"),
        target="repaid", metrics=("roc_auc", "f1", "accuracy"),
    ),
    "multiclass": Dataset(
        kind="multiclass", task="multiclass_classification",
        reference="mc_reference.csv", analysis="mc_analysis.csv", targets="mc_analysis_gt.csv",
        numerical=("app_behavioral_score", "requested_credit_limit", "credit_bureau_score",
                   "stated_income"),
        categorical=("acq_channel", "app_channel", "is_customer"),
        target="y_true", metrics=("roc_auc", "f1", "accuracy"),
    ),
    "regression": Dataset(
        kind="regression", task="regression",
        reference="regression_synthetic_reference.csv",
        analysis="regression_synthetic_analysis.csv",
        targets="regression_synthetic_analysis_targets.csv",
        numerical=("car_age", "km_driven", "price_new", "accident_count", "door_count"),
        categorical=("fuel", "transmission"),
        target="y_true", metrics=("mae", "rmse"),
    ),
}  # fmt: skip
PROBA = "y_pred_proba_"

# Run by the NannyML interpreter: argv[1] is a JSON job, argv[2] the file to write results to.
NANNYML_CHILD = r"""
import json, os, sys, time, warnings
import nannyml as nml
import pandas as pd

if int(pd.__version__.split(".")[0]) >= 3:  # NannyML 0.13's DLE cannot reshape arrow strings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.set_option("future.infer_string", False)
job = json.loads(sys.argv[1])
folder = os.path.join(os.path.dirname(nml.__file__), "datasets", "data")
out = {"version": nml.__version__, "datasets": {}}
for d in job["datasets"]:
    reference = pd.read_csv(os.path.join(folder, d["reference"]))
    analysis = pd.read_csv(os.path.join(folder, d["analysis"]))
    if d["kind"] == "multiclass":  # driftwatch's predicted class: first in sorted order on ties
        classes = d["classes"]
        columns = ["y_pred_proba_" + c for c in classes]
        for frame in (reference, analysis):
            frame["y_pred"] = [classes[i] for i in frame[columns].to_numpy().argmax(axis=1)]
    started = time.perf_counter()
    if d["kind"] == "regression":
        estimator = nml.DLE(feature_column_names=d["features"], y_pred="y_pred",
                            y_true=d["target"], metrics=d["metrics"],
                            chunk_size=job["chunk_size"])
    else:
        proba = ({c: "y_pred_proba_" + c for c in d["classes"]} if d["kind"] == "multiclass"
                 else "y_pred_proba")
        estimator = nml.CBPE(
            problem_type="classification_" + d["kind"], y_pred_proba=proba, y_pred="y_pred",
            y_true=d["target"], metrics=d["metrics"], chunk_size=job["chunk_size"])
    estimator.fit(reference)
    result = estimator.estimate(analysis)
    seconds = time.perf_counter() - started
    frame = result.filter(period="analysis").to_df()
    chunks = []
    for _, row in frame.iterrows():
        chunk = {"start": int(row[("chunk", "start_index")]),
                 "end": int(row[("chunk", "end_index")]) + 1}
        for metric in d["metrics"]:
            chunk[metric] = {
                "value": float(row[(metric, "value")]),
                "lower": float(row[(metric, "lower_confidence_boundary")]),
                "upper": float(row[(metric, "upper_confidence_boundary")]),
            }
        chunks.append(chunk)
    out["datasets"][d["kind"]] = {"seconds": seconds, "chunks": chunks}
with open(sys.argv[2], "w") as handle:
    json.dump(out, handle)
"""


@dataclass
class Side:
    """One side's figures for a dataset: per window and metric (value, lower, upper) or None."""

    estimates: list[dict[str, tuple[float, float | None, float | None] | None]] = field(
        default_factory=list
    )
    reasons: list[str | None] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""


# --- the data -------------------------------------------------------------------------------


def nannyml_data_folder(python: str) -> Path:
    found = subprocess.run(
        [python, "-c", "import nannyml, os; print(os.path.dirname(nannyml.__file__))"],
        env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if found.returncode != 0:
        sys.exit(f"{python} cannot import nannyml:\n{found.stderr[-2000:]}")
    return Path(found.stdout.strip().splitlines()[-1]) / "datasets" / "data"


def load(folder: Path, spec: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference set, and the analysis set with its targets joined by id (in its order)."""
    reference = pd.read_csv(folder / spec.reference)
    analysis = pd.read_csv(folder / spec.analysis)
    targets = pd.read_csv(folder / spec.targets)
    analysis = analysis.merge(targets[["id", spec.target]], on="id", how="left", validate="1:1")
    return reference, analysis


def classes_of(frame: pd.DataFrame) -> list[str]:
    return sorted(c[len(PROBA) :] for c in frame.columns if c.startswith(PROBA))


def predicted_classes(frame: pd.DataFrame, classes: list[str]) -> np.ndarray[Any, Any]:
    """The most probable class, the first in sorted order among tied ones (driftwatch's rule)."""
    scores = frame[[PROBA + c for c in classes]].to_numpy()
    chosen: np.ndarray[Any, Any] = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
    return chosen


def binary_threshold(reference: pd.DataFrame) -> float:
    """A decision threshold that reproduces the dataset's ``y_pred`` from its scores."""
    below = reference.loc[reference["y_pred"] == 0, "y_pred_proba"].max()
    above = reference.loc[reference["y_pred"] == 1, "y_pred_proba"].min()
    return float((below + above) / 2) if below < above else 0.5


def _value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def feature_dicts(frame: pd.DataFrame, spec: Dataset) -> list[dict[str, Any]]:
    columns = {name: frame[name].astype(float).tolist() for name in spec.numerical}
    columns |= {name: frame[name].astype(str).tolist() for name in spec.categorical}
    names = list(columns)
    return [
        {name: _value(values[i]) for name, values in zip(names, columns.values(), strict=True)}
        for i in range(len(frame))
    ]


def predictions_of(frame: pd.DataFrame, spec: Dataset, classes: list[str]) -> list[Any]:
    """Scores (binary), numbers (regression) or class -> probability objects (multiclass)."""
    if spec.kind != "multiclass":
        column = "y_pred_proba" if spec.kind == "binary" else "y_pred"
        return list(frame[column].to_numpy(dtype=float).tolist())
    scores = frame[[PROBA + c for c in classes]].to_numpy(dtype=float)
    return [dict(zip(classes, row, strict=True)) for row in scores.tolist()]


def labels_of(frame: pd.DataFrame, spec: Dataset) -> list[Any]:
    values = frame[spec.target]
    if spec.kind == "binary":
        return list(values.to_numpy(dtype=int).tolist())
    if spec.kind == "regression":
        return list(values.to_numpy(dtype=float).tolist())
    return [str(value) for value in values]


def sklearn_realized(
    frame: pd.DataFrame, spec: Dataset, classes: list[str], threshold: float
) -> dict[str, float]:
    """The realized metrics of one window's rows, as scikit-learn computes them."""
    if spec.kind == "binary":
        truth = frame[spec.target].astype(int).to_numpy()
        scores = frame["y_pred_proba"].to_numpy()
        predicted = (scores >= threshold).astype(int)
        return {
            "roc_auc": float(skm.roc_auc_score(truth, scores)),
            "f1": float(skm.f1_score(truth, predicted, zero_division=0)),
            "accuracy": float(skm.accuracy_score(truth, predicted)),
        }
    if spec.kind == "multiclass":
        truth = frame[spec.target].astype(str).to_numpy()
        predicted = predicted_classes(frame, classes)
        scores = frame[[PROBA + c for c in classes]].to_numpy()
        return {
            "roc_auc": float(skm.roc_auc_score(truth, scores, multi_class="ovr",
                                               average="macro", labels=classes)),
            "f1": float(skm.f1_score(truth, predicted, average="macro", zero_division=0)),
            "accuracy": float(skm.accuracy_score(truth, predicted)),
        }  # fmt: skip
    truth = frame[spec.target].to_numpy(dtype=float)
    predicted = frame["y_pred"].to_numpy(dtype=float)
    return {
        "mae": float(skm.mean_absolute_error(truth, predicted)),
        "rmse": float(math.sqrt(skm.mean_squared_error(truth, predicted))),
    }


# --- NannyML ---------------------------------------------------------------------------------


def run_nannyml(
    python: str, specs: list[Dataset], classes: dict[str, list[str]], chunk_size: int, work: Path
) -> tuple[dict[str, Any], float]:
    job = {
        "chunk_size": chunk_size,
        "datasets": [
            {"kind": s.kind, "reference": s.reference, "analysis": s.analysis,
             "features": s.features, "target": s.target, "metrics": list(s.metrics),
             "classes": classes.get(s.kind, [])}
            for s in specs
        ],
    }  # fmt: skip
    out = work / "nannyml.json"
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-c", NANNYML_CHILD, json.dumps(job), str(out)],
        env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"},
        capture_output=True, text=True, check=False, cwd=work,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"NannyML failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(out.read_text()), wall


def nannyml_side(found: dict[str, Any], spec: Dataset, windows: list[tuple[int, int]]) -> Side:
    side = Side(seconds=found["seconds"])
    by_start = {chunk["start"]: chunk for chunk in found["chunks"]}
    for start, end in windows:
        chunk = by_start.get(start)
        if chunk is None or chunk["end"] != end:
            side.estimates.append(dict.fromkeys(spec.metrics))
            side.reasons.append("no chunk of these rows")
            continue
        side.estimates.append({
            m: (chunk[m]["value"], _finite(chunk[m]["lower"]), _finite(chunk[m]["upper"]))
            for m in spec.metrics
        })  # fmt: skip
        side.reasons.append(None)
    return side


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# --- driftwatch ------------------------------------------------------------------------------


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    for _ in range(60):
        response = http.post(path, json=body)
        if response.status_code in (429, 503):
            time.sleep(float(response.headers.get("retry-after") or 1))
            continue
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:2000]}")
        answer: dict[str, Any] = response.json()
        return answer
    raise RuntimeError(f"POST {path}: still refused after 60 tries")


def _batch(http: httpx.Client, path: str, records: list[dict[str, Any]]) -> None:
    for start in range(0, len(records), 5000):
        answer = _post(http, path, {"records": records[start : start + 5000]})
        if answer["rejected"] or answer["duplicates"]:
            raise RuntimeError(f"POST {path}: {answer['duplicates']} duplicates, rejected "
                               f"{answer['rejected'][:3]}")  # fmt: skip


def _windows_of(
    http: httpx.Client, name: str, t0: datetime, count: int
) -> tuple[list[dict[str, Any]], float]:
    runs, started = [], time.perf_counter()
    for index in range(count):
        start = t0 + index * WINDOW
        body = {"start": start.isoformat(), "end": (start + WINDOW).isoformat()}
        runs.append(_post(http, f"/api/v1/models/{name}/runs", body))
    return runs, time.perf_counter() - started


def driftwatch_side(
    http: httpx.Client,
    spec: Dataset,
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    windows: list[tuple[int, int]],
    classes: list[str],
    threshold: float,
    t0: datetime,
) -> tuple[Side, list[dict[str, float] | None], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Estimates before labels, and driftwatch's realized metrics once they are sent."""
    name = f"estimates-{spec.kind}-{uuid.uuid4().hex[:6]}"
    model: dict[str, Any] = {
        "name": name, "task": spec.task, "window": "1h",
        "features": [{"name": f, "kind": "numerical"} for f in spec.numerical]
        + [{"name": f, "kind": "categorical"} for f in spec.categorical],
    }  # fmt: skip
    if spec.kind == "binary":
        model["decision_threshold"] = threshold
    _post(http, "/api/v1/models", model)

    started = time.perf_counter()
    baseline = _post(http, f"/api/v1/models/{name}/baselines", {"name": "reference", "records": [
        {"features": features, "prediction": prediction, "label": label}
        for features, prediction, label in zip(
            feature_dicts(reference, spec), predictions_of(reference, spec, classes),
            labels_of(reference, spec), strict=True)
    ]})  # fmt: skip
    baseline_seconds = time.perf_counter() - started
    calibration = baseline.get("calibration")
    shown: Any = calibration
    if isinstance(calibration, dict) and calibration.keys() & {"calibrator", "per_class"}:
        shown = {k: calibration[k] for k in ("calibrator", "p_value") if k in calibration}
        if "per_class" in calibration:
            shown["per_class"] = {c: (v or {}).get("calibrator")
                                  for c, v in calibration["per_class"].items()}  # fmt: skip
    print(f"  baseline: {baseline['rows']:,} rows, calibration {json.dumps(shown)[:300]}")
    for warning in baseline.get("warnings") or []:
        print(f"  baseline warning: {warning}")

    started = time.perf_counter()
    ids = [f"a-{row_id}" for row_id in analysis["id"].tolist()]
    stamps: list[str] = []
    for index, (first, end) in enumerate(windows):
        step = WINDOW.total_seconds() * 0.999 / (end - first)
        window_start = t0 + index * WINDOW
        stamps += [(window_start + timedelta(seconds=i * step)).isoformat()
                   for i in range(end - first)]  # fmt: skip
    _batch(http, f"/api/v1/models/{name}/predictions", [
        {"prediction_id": pid, "timestamp": stamp, "features": features, "prediction": prediction}
        for pid, stamp, features, prediction in zip(
            ids, stamps, feature_dicts(analysis, spec), predictions_of(analysis, spec, classes),
            strict=True)
    ])  # fmt: skip
    ingest_seconds = time.perf_counter() - started

    before, run_seconds = _windows_of(http, name, t0, len(windows))
    side = Side(seconds=baseline_seconds + run_seconds)
    side.detail = (f"baseline {baseline_seconds:.1f} s + {len(windows)} runs {run_seconds:.1f} s"
                   f"; logging the predictions {ingest_seconds:.1f} s")  # fmt: skip
    for run in before:
        estimated = run.get("estimated")
        side.reasons.append(None if estimated else run.get("estimated_reason") or "null")
        side.estimates.append({
            m: (estimated[m]["value"], estimated[m]["lower"], estimated[m]["upper"])
            if estimated and estimated.get(m) else None for m in spec.metrics
        })  # fmt: skip

    label_stamp = (t0 + len(windows) * WINDOW).isoformat()
    _batch(http, f"/api/v1/models/{name}/ground-truth", [
        {"prediction_id": pid, "label": label, "timestamp": label_stamp}
        for pid, label in zip(ids, labels_of(analysis, spec), strict=True)
    ])  # fmt: skip
    after, _ = _windows_of(http, name, t0, len(windows))
    realized: list[dict[str, float] | None] = [run.get("accuracy") for run in after]
    return side, realized, list(zip(before, after, strict=True))


# --- the report ------------------------------------------------------------------------------


def _cell(estimate: tuple[float, float | None, float | None] | None, digits: int) -> str:
    if estimate is None:
        return "-".ljust(27)
    value, lower, upper = estimate
    if lower is None or upper is None:
        return f"{value:.{digits}f}".ljust(27)
    return f"{value:.{digits}f} [{lower:.{digits}f}, {upper:.{digits}f}]".ljust(27)


def _errors(errors: list[float], n: int) -> str:
    """Mean absolute error (and mean signed error, estimate minus realized) over the windows."""
    if not errors:
        return "n/a"
    shown = f"{np.mean(np.abs(errors)):.5g} (bias {np.mean(errors):+.2g})"
    return shown if len(errors) == n else f"{shown} over {len(errors)}/{n} windows"


def report(
    spec: Dataset,
    windows: list[tuple[int, int]],
    ours: Side,
    theirs: Side,
    realized: list[dict[str, float] | None],
) -> list[str]:
    summaries = []
    digits = 1 if spec.kind == "regression" else 4
    for metric in spec.metrics:
        print(f"\n  {spec.kind} {metric}")
        print(f"  {'window':>6} {'rows':>11}  {'driftwatch [lower, upper]':27} "
              f"{'NannyML [lower, upper]':27} {'realized':>9}  inside")  # fmt: skip
        errors_ours, errors_theirs, inside, theirs_inside = [], [], 0, 0
        for index, (first, end) in enumerate(windows):
            truth = (realized[index] or {}).get(metric)
            mine, other = ours.estimates[index][metric], theirs.estimates[index][metric]
            verdict = "no"
            if mine is None:
                verdict = f"no estimate ({ours.reasons[index]})"
            if truth is not None and mine is not None:
                errors_ours.append(mine[0] - truth)
                if mine[1] is not None and mine[2] is not None and mine[1] <= truth <= mine[2]:
                    inside, verdict = inside + 1, "yes"
            if truth is not None and other is not None:
                errors_theirs.append(other[0] - truth)
                if other[1] is not None and other[2] is not None:
                    theirs_inside += other[1] <= truth <= other[2]
            shown = "-" if truth is None else f"{truth:.{digits}f}"
            print(f"  {index:>6} {first:>5}-{end:<5}  {_cell(mine, digits)} {_cell(other, digits)} "
                  f"{shown:>9}  {verdict}")  # fmt: skip
        n = len(windows)
        better = ""
        if errors_ours and errors_theirs and len(errors_ours) == n:
            ours_mae, theirs_mae = np.mean(np.abs(errors_ours)), np.mean(np.abs(errors_theirs))
            ratio = float(ours_mae) / max(float(theirs_mae), 1e-300)
            verdict = "no worse than" if ratio <= 1 else "WORSE than"
            better = f" ({verdict} NannyML: x{ratio:.3f})"
        summaries.append(
            f"{spec.kind:>10} {metric:8} MAE driftwatch {_errors(errors_ours, n)}, NannyML "
            f"{_errors(errors_theirs, n)}{better}"
            f"; inside driftwatch's bounds {inside}/{n} ({inside / n:.0%}), inside NannyML's "
            f"{theirs_inside}/{n}; time driftwatch {ours.seconds:.1f} s, NannyML "
            f"{theirs.seconds:.1f} s"
        )
    return summaries


def cross_check(
    spec: Dataset,
    analysis: pd.DataFrame,
    windows: list[tuple[int, int]],
    classes: list[str],
    threshold: float,
    realized: list[dict[str, float] | None],
) -> str:
    worst, missing = 0.0, 0
    for index, (first, end) in enumerate(windows):
        expected = sklearn_realized(analysis.iloc[first:end], spec, classes, threshold)
        for metric, value in expected.items():
            got = (realized[index] or {}).get(metric)
            if got is None:
                missing += 1
            else:
                worst = max(worst, abs(got - value))
    verdict = "match" if worst < 1e-9 and not missing else "MISMATCH"
    return (f"realized vs scikit-learn on the same rows: {verdict} (largest difference "
            f"{worst:.2e}{f', {missing} missing' if missing else ''})")  # fmt: skip


def compare(
    http: httpx.Client,
    spec: Dataset,
    frames: tuple[pd.DataFrame, pd.DataFrame],
    classes: dict[str, list[str]],
    found: dict[str, Any],
    size: int,
    t0: datetime,
) -> list[str]:
    """One dataset: driftwatch's windows beside NannyML's chunks; returns the summary lines."""
    reference, analysis = frames
    names = classes.get(spec.kind, [])
    n = len(analysis)
    windows = [(s, min(s + size, n)) for s in range(0, n, size)]
    threshold = binary_threshold(reference) if spec.kind == "binary" else 0.5
    print(f"\n{spec.kind}: reference {len(reference):,} rows, analysis {n:,} rows in "
          f"{len(windows)} windows of {size:,}", flush=True)  # fmt: skip
    if spec.kind == "binary":
        off = int(((analysis["y_pred_proba"] >= threshold).astype(int)
                   != analysis["y_pred"]).sum())  # fmt: skip
        print(f"  decision_threshold {threshold:.4f} (the analysis set's y_pred differs from "
              f"it on {off} rows)")  # fmt: skip
    if spec.kind == "multiclass":
        ties = int((predicted_classes(analysis, names) != analysis["y_pred"]).sum())
        print(f"  classes {names}; the dataset's y_pred breaks {ties} ties of the analysis "
              f"set otherwise")  # fmt: skip
    ours, realized, runs = driftwatch_side(http, spec, reference, analysis, windows, names,
                                           threshold, t0)  # fmt: skip
    theirs = nannyml_side(found["datasets"][spec.kind], spec, windows)
    summaries = report(spec, windows, ours, theirs, realized)
    print("\n  " + cross_check(spec, analysis, windows, names, threshold, realized))
    moved = [i for i, (b, a) in enumerate(runs) if b.get("estimated") != a.get("estimated")]
    print(f"  estimates unchanged once labels arrived: "
          f"{'yes' if not moved else f'NO (windows {moved})'}")  # fmt: skip
    print(f"  driftwatch: {ours.detail}; NannyML fit + estimate {theirs.seconds:.1f} s",
          flush=True)  # fmt: skip
    return summaries


@contextmanager
def database(postgres: str | None, work: Path) -> Iterator[str]:
    if postgres is None:
        yield f"sqlite:///{work / 'estimates.db'}"
    else:
        with scratch_database(postgres, prefix="driftwatch_bench") as url:
            yield url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--nannyml-python", required=True, help="the python of an environment with nannyml 0.13"
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--rows-per-window", type=int, default=5000)
    parser.add_argument(
        "--postgres", default=None, help="a libpq URL: a scratch Postgres database, not SQLite"
    )
    parser.add_argument("--serve-log", type=Path, default=None,
                        help="keep driftwatch serve's log in this file")  # fmt: skip
    args = parser.parse_args()
    began = time.perf_counter()
    folder = nannyml_data_folder(args.nannyml_python)
    specs = [DATASETS[kind] for kind in dict.fromkeys(args.datasets)]
    frames = {spec.kind: load(folder, spec) for spec in specs}
    classes = {s.kind: classes_of(frames[s.kind][0]) for s in specs if s.kind == "multiclass"}
    size = args.rows_per_window
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        print(f"NannyML ({args.nannyml_python}): CBPE / DLE, chunk_size {size} ...", flush=True)
        found, nannyml_wall = run_nannyml(args.nannyml_python, specs, classes, size, work)
        print(f"NannyML {found['version']}: done in {nannyml_wall:.1f} s (process, with its "
              f"imports and CSV reads)", flush=True)  # fmt: skip
        (work / "rules").mkdir()
        env = {"DRIFTWATCH_ADMIN_KEY": ADMIN_KEY, "DRIFTWATCH_RULES_DIR": str(work / "rules")}
        t0 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0,
                                                             microsecond=0)  # fmt: skip
        summaries: list[str] = []
        with database(args.postgres, work) as url:
            port = free_port()
            log = args.serve_log or work / "serve.log"
            serve = start_serve(url, port, log, env=env, cwd=work)
            try:
                headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                  timeout=600) as http:  # fmt: skip
                    for spec in specs:
                        summaries += compare(http, spec, frames[spec.kind], classes, found,
                                             size, t0)  # fmt: skip
            except Exception:
                print(f"driftwatch serve's log:\n{log.read_text()[-3000:]}")
                raise
            finally:
                serve.terminate()
                serve.wait(timeout=30)
    print(f"\nsummary (chunks of {size:,} rows; goals: driftwatch's MAE <= NannyML's, "
          f"realized inside driftwatch's bounds in >= 90% of windows)")  # fmt: skip
    for line in summaries:
        print(line)
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
