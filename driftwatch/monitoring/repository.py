"""Every query of monitoring: baselines, labeled predictions, runs, claims and metrics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from driftwatch.core.result import RunResult
from driftwatch.core.specs import FeatureSpec
from driftwatch.core.time import EPOCH
from driftwatch.models import (
    Baseline,
    BaselineColumn,
    BaselineSegmentColumn,
    GroundTruth,
    MonitoredModel,
    Prediction,
    PredictionChunk,
    PredictionKey,
    RejectedRecord,
    Run,
    RunMetric,
    RunMetricDay,
    ShadowPrediction,
)
from driftwatch.models.base import UTCDateTime, utcnow
from driftwatch.models.monitoring import NO_TRAFFIC, SPAN, WINDOW
from driftwatch.monitoring import (
    estimation,
    estimation_multiclass,
    estimation_regression,
    multivariate,
)
from driftwatch.monitoring.accuracy import Labeled
from driftwatch.monitoring.estimation import LabeledScores
from driftwatch.monitoring.estimation_multiclass import LabeledProbabilities
from driftwatch.monitoring.estimation_regression import LabeledRegression
from driftwatch.monitoring.profiles import (
    COUNT,
    FLOAT,
    BaselineProfile,
    ColumnProfile,
    EmbeddingProfile,
)
from driftwatch.monitoring.versions import VersionRows
from driftwatch.stats import multivariate as mv
from driftwatch.storage.postgres import stream_binary

PREDICTION_POSITION = -1
# CONTRACT section 11: the baseline's sample rows for the multivariate detectors, one row of
# baseline_columns: the numerical features' values row-major in sorted_values, the categorical
# features' codes row-major in counts, the features' names (numerical ones, then categorical
# ones) in categories, how many of them are numerical in missing (a column otherwise unused).
JOINT_POSITION = -2
JOINT_KIND = "joint"
DAY_LOCK = 0x64770001  # the advisory lock class of run_metric_days refreshes


# -- baselines ---------------------------------------------------------------------------------


def insert_baseline(
    session: Session, *, model_id: int, name: str, source: str, profile: BaselineProfile,
    columns: dict[str, Any], warnings: list[str],
    window_start: datetime | None = None, window_end: datetime | None = None,
) -> Baseline:  # fmt: skip
    labeled = profile.labeled
    baseline = Baseline(
        model_id=model_id, name=name, source=source, rows=profile.rows,
        columns=columns, warnings=warnings, window_start=window_start, window_end=window_end,
        labeled_scores=_labeled_bytes(labeled),
        calibration=None if labeled is None else labeled.check,
    )  # fmt: skip
    session.add(baseline)
    session.flush()
    prepared = list(enumerate(profile.features))
    if profile.prediction is not None:
        prepared.append((PREDICTION_POSITION, profile.prediction))
    _insert_embeddings(session, baseline.id, profile)
    session.execute(
        insert(BaselineColumn),
        [
            {
                "baseline_id": baseline.id,
                "position": position,
                "name": column.name,
                "kind": column.kind,
                "rows": column.rows,
                "missing": column.missing,
                "sorted_values": (
                    None if column.sorted_values is None
                    else column.sorted_values.astype(FLOAT).tobytes()
                ),
                "categories": column.categories,
                "counts": None if column.counts is None else column.counts.astype(COUNT).tobytes(),
                "cluster_units": (
                    None if column.cluster_units is None
                    else column.cluster_units.astype(UNIT).tobytes()
                ),
            }
            for position, column in prepared
        ] + ([_joint_row(baseline.id, profile.joint)] if profile.joint else []),
    )  # fmt: skip
    return baseline


# Embedding columns of a baseline sit past every feature's position (CONTRACT section 11).
EMBEDDING_POSITION = 1_000_000
VECTOR = np.dtype("<f4")


def _insert_embeddings(session: Session, baseline_id: int, profile: BaselineProfile) -> None:
    """One row per embedding column: its sample's vectors (float32) and the mean of all."""
    for offset, column in enumerate(profile.embeddings):  # one at a time: each some MB
        session.execute(insert(BaselineColumn), [{
            "baseline_id": baseline_id, "position": EMBEDDING_POSITION + offset,
            "name": column.name, "kind": "embedding", "rows": column.rows,
            "missing": column.missing, "vectors": column.sample.astype(VECTOR).tobytes(),
            "vector_mean": column.mean.astype(FLOAT).tobytes(),
        }])  # fmt: skip


def _embedding_column(row: dict[str, Any]) -> EmbeddingProfile:
    mean = np.frombuffer(row["vector_mean"], dtype=FLOAT)
    vectors = np.frombuffer(row["vectors"], dtype=VECTOR).reshape(-1, len(mean))
    return EmbeddingProfile(row["name"], rows=row["rows"], missing=row["missing"],
                            sample=vectors, mean=mean)  # fmt: skip


def _joint_row(baseline_id: int, joint: multivariate.JointProfile) -> dict[str, Any]:
    rows = joint.detectors.rows
    return {
        "baseline_id": baseline_id, "position": JOINT_POSITION, "name": None,
        "kind": JOINT_KIND, "rows": len(rows), "missing": len(joint.numerical),
        "sorted_values": rows.numerical.astype(FLOAT).tobytes(),
        "categories": joint.names,
        "counts": rows.categorical.astype(COUNT).tobytes(),
        "cluster_units": None,
    }  # fmt: skip


def _joint_profile(row: dict[str, Any], features: list[ColumnProfile]) -> multivariate.JointProfile:
    names: list[str] = list(row["categories"])
    numerical, categorical = names[: row["missing"]], names[row["missing"] :]
    count = row["rows"]
    rows = mv.Rows(
        np.frombuffer(row["sorted_values"], dtype=FLOAT).reshape(count, len(numerical)),
        np.frombuffer(row["counts"], dtype=COUNT).reshape(count, len(categorical)),
    )
    counts = {c.name: c.counts for c in features if c.name is not None and c.counts is not None}
    joint = multivariate.from_rows(numerical, categorical, rows, counts)
    prepared = row.get("prepared")
    if isinstance(prepared, (str, bytes)):  # (Postgres' binary stream may give JSON as text)
        prepared = json.loads(prepared)
    joint.detectors.restore(prepared)
    return joint


def keep_prepared(session: Session, *, baseline_id: int, joint: multivariate.JointProfile) -> None:
    """Stores the multivariate nulls a run measured on the baseline, if it measured any new
    (two processes measuring different sizes at once may each keep only their own: the
    other's is measured again, the same, by the next process that needs it)."""
    prepared = joint.detectors.unsaved()
    if prepared is None:
        return
    session.execute(
        update(BaselineColumn)
        .where(BaselineColumn.baseline_id == baseline_id,
               BaselineColumn.position == JOINT_POSITION)
        .values(prepared=prepared)
    )  # fmt: skip


_COLUMN_FIELDS = (
    "position", "name", "kind", "rows", "missing", "sorted_values", "categories", "counts",
    "cluster_units", "vectors", "vector_mean", "prepared",
)  # fmt: skip
UNIT = np.dtype("<i4")  # a cluster number (at most one per row of a baseline)


def _cluster_units(row: dict[str, Any]) -> npt.NDArray[np.int64] | None:
    if row["cluster_units"] is None:
        return None
    units = np.frombuffer(row["cluster_units"], dtype=UNIT).astype(np.int64)
    return units.reshape(2, -1) if row["kind"] == "categorical" else units


def _baseline_columns(session: Session, baseline_id: int) -> list[dict[str, Any]]:
    if session.get_bind().dialect.name == "postgresql":
        # a column at a time, binary (a 1M-row baseline is 170 MB of buffers)
        return list(
            stream_binary(
                session,
                f"SELECT {', '.join(_COLUMN_FIELDS)} FROM baseline_columns "
                "WHERE baseline_id = %(baseline)s ORDER BY position",
                {"baseline": baseline_id},
                fields=_COLUMN_FIELDS,
                rows_per_fetch=1,
            )
        )
    rows = session.execute(
        select(*(getattr(BaselineColumn, name) for name in _COLUMN_FIELDS))
        .where(BaselineColumn.baseline_id == baseline_id)
        .order_by(BaselineColumn.position)
    )
    return [row._asdict() for row in rows]


def insert_moving_baseline(
    session: Session, *, model_id: int, name: str, source: str, span_seconds: int, rows: int,
    warnings: list[str],
) -> Baseline:  # fmt: skip
    """A trailing or lag baseline: no prepared columns (each run merges its span's summaries)."""
    baseline = Baseline(model_id=model_id, name=name, source=source, span_seconds=span_seconds,
                        rows=rows, columns=None, warnings=warnings)  # fmt: skip
    session.add(baseline)
    session.flush()
    return baseline


def load_profile(session: Session, *, baseline: Baseline) -> BaselineProfile:
    features: list[ColumnProfile] = []
    embeddings: list[EmbeddingProfile] = []
    prediction = None
    joint_row = None
    for row in _baseline_columns(session, baseline.id):
        if row["kind"] == "embedding":
            embeddings.append(_embedding_column(row))
            continue
        if row["position"] == JOINT_POSITION:
            joint_row = row
            continue
        column = ColumnProfile(
            name=row["name"], kind=row["kind"], rows=row["rows"], missing=row["missing"],
            sorted_values=(
                None if row["sorted_values"] is None
                else np.frombuffer(row["sorted_values"], dtype=FLOAT)
            ),
            categories=row["categories"],
            counts=None if row["counts"] is None else np.frombuffer(row["counts"], dtype=COUNT),
            cluster_units=_cluster_units(row),
        )  # fmt: skip
        if row["position"] == PREDICTION_POSITION:
            prediction = column
        else:
            features.append(column)
    return BaselineProfile(
        rows=baseline.rows, features=features, prediction=prediction,
        labeled=_labeled_scores(baseline), embeddings=embeddings,
        joint=None if joint_row is None else _joint_profile(joint_row, features),
    )  # fmt: skip


def _labeled_bytes(
    labeled: LabeledScores | LabeledProbabilities | LabeledRegression | None,
) -> bytes | None:
    if labeled is None or not labeled.usable:
        return None
    if isinstance(labeled, LabeledProbabilities | LabeledRegression):
        return labeled.to_bytes()
    return np.concatenate([labeled.scores, labeled.labels]).astype(FLOAT).tobytes()


def _labeled_scores(
    baseline: Baseline,
) -> LabeledScores | LabeledProbabilities | LabeledRegression | None:
    if baseline.calibration is None:
        return None  # made before estimates
    if baseline.calibration.get("kind") == estimation_regression.KIND:
        if baseline.labeled_scores is None:
            return estimation_regression.unusable(str(baseline.calibration.get("reason")))
        return estimation_regression.from_bytes(baseline.labeled_scores, baseline.calibration)
    if baseline.calibration.get("kind") == estimation_multiclass.KIND:
        if baseline.labeled_scores is None:
            return estimation_multiclass.unusable(str(baseline.calibration.get("reason")))
        return estimation_multiclass.from_bytes(baseline.labeled_scores, baseline.calibration)
    if baseline.labeled_scores is None:
        return estimation.unusable(str(baseline.calibration.get("reason")))
    pairs = np.frombuffer(baseline.labeled_scores, dtype=FLOAT)
    half = len(pairs) // 2
    return LabeledScores(pairs[:half], pairs[half:], dict(baseline.calibration))


def insert_segment_profiles(
    session: Session, *, baseline: Baseline,
    prepared: dict[str, dict[str, BaselineProfile]],
) -> None:  # fmt: skip
    """A baseline's segments (CONTRACT section 10), each prepared as a baseline's columns."""
    baseline.segments = sorted(prepared)
    rows = []
    for feature, values in prepared.items():
        for value, profile in values.items():
            prepared_columns = list(enumerate(profile.features))
            if profile.prediction is not None:
                prepared_columns.append((PREDICTION_POSITION, profile.prediction))
            rows += [
                {
                    "baseline_id": baseline.id, "segment_feature": feature,
                    "segment_value": value, "position": position, "name": column.name,
                    "kind": column.kind, "rows": column.rows, "missing": column.missing,
                    "sorted_values": (None if column.sorted_values is None
                                      else column.sorted_values.astype(FLOAT).tobytes()),
                    "categories": column.categories,
                    "counts": (None if column.counts is None
                               else column.counts.astype(COUNT).tobytes()),
                }
                for position, column in prepared_columns
            ]  # fmt: skip
    if rows:
        session.execute(insert(BaselineSegmentColumn), rows)
    session.flush()


def load_segment_profiles(
    session: Session, *, baseline: Baseline
) -> dict[str, dict[str, BaselineProfile]] | None:
    """The baseline's prepared segments, by feature and value; None: it has none."""
    if baseline.segments is None:
        return None
    out: dict[str, dict[str, BaselineProfile]] = {name: {} for name in baseline.segments}
    rows = session.execute(
        select(BaselineSegmentColumn)
        .where(BaselineSegmentColumn.baseline_id == baseline.id)
        .order_by(
            BaselineSegmentColumn.segment_feature,
            BaselineSegmentColumn.segment_value,
            BaselineSegmentColumn.position,
        )
    ).scalars()
    for row in rows:
        column = ColumnProfile(
            name=row.name, kind=row.kind, rows=row.rows, missing=row.missing,
            sorted_values=(None if row.sorted_values is None
                           else np.frombuffer(row.sorted_values, dtype=FLOAT)),
            categories=row.categories,
            counts=None if row.counts is None else np.frombuffer(row.counts, dtype=COUNT),
        )  # fmt: skip
        values = out.setdefault(row.segment_feature, {})
        profile = values.get(row.segment_value)
        if profile is None:
            profile = values[row.segment_value] = BaselineProfile(
                rows=row.rows, features=[], prediction=None
            )
        if row.position == PREDICTION_POSITION:
            profile.prediction = column
        else:
            profile.features.append(column)
    return out


def baseline_by_id(session: Session, baseline_id: int) -> Baseline | None:
    """Any baseline, deleted ones included (a run names the baseline it was computed with)."""
    return session.get(Baseline, baseline_id)


def get_baseline(session: Session, *, model_id: int, baseline_id: int) -> Baseline | None:
    """A baseline of the model, unless it was deleted."""
    return session.scalars(
        select(Baseline).where(
            Baseline.model_id == model_id, Baseline.id == baseline_id,
            Baseline.deleted_at.is_(None),
        )
    ).one_or_none()  # fmt: skip


def list_baselines(
    session: Session, *, model_id: int, include_deleted: bool = False
) -> list[Baseline]:
    """The model's baselines, newest first; ``include_deleted`` for the names of old runs'."""
    query = select(Baseline).where(Baseline.model_id == model_id)
    if not include_deleted:
        query = query.where(Baseline.deleted_at.is_(None))
    return list(session.scalars(query.order_by(Baseline.id.desc())))


def delete_baseline(session: Session, *, baseline: Baseline, queue_to: int) -> None:
    """Remove a baseline's prepared data, keeping its row for the runs computed against it.
    Windows queued against it and never computed move to baseline ``queue_to`` (or go, where
    that one has the window already)."""
    baseline.deleted_at = utcnow()
    session.execute(delete(BaselineColumn).where(BaselineColumn.baseline_id == baseline.id))
    session.execute(
        delete(BaselineSegmentColumn).where(BaselineSegmentColumn.baseline_id == baseline.id)
    )
    never_computed = (Run.baseline_id == baseline.id, Run.status == "pending",
                      Run.computations == 0)  # fmt: skip
    queued = aliased(Run)
    session.execute(
        update(Run)
        .where(
            *never_computed,
            ~exists().where(
                queued.model_id == Run.model_id, queued.baseline_id == queue_to,
                queued.window_start == Run.window_start, queued.window_end == Run.window_end,
            ),
        )
        .values(baseline_id=queue_to)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    session.execute(delete(Run).where(*never_computed).execution_options(synchronize_session=False))
    session.flush()


# -- what a window holds --------------------------------------------------------------------


def labeled(
    session: Session, *, model_id: int, start: datetime, end: datetime, scores: bool = False
) -> Labeled:
    """The window's predictions that have labels; ``scores``: with their per-class
    probabilities (a multiclass model's), read from their chunks."""
    rows = session.execute(
        select(
            Prediction.prediction_value, Prediction.prediction_class,
            GroundTruth.label_value, GroundTruth.label_class, Prediction.model_version,
            Prediction.chunk_id, Prediction.chunk_row,
        )
        .join(
            GroundTruth,
            (GroundTruth.model_id == Prediction.model_id)
            & (GroundTruth.prediction_id == Prediction.prediction_id),
        )
        .where(Prediction.model_id == model_id, Prediction.ts >= start, Prediction.ts < end)
    ).all()  # fmt: skip
    return Labeled(
        prediction_values=np.array([np.nan if r[0] is None else r[0] for r in rows]),
        prediction_classes=[r[1] for r in rows],
        label_values=np.array([np.nan if r[2] is None else r[2] for r in rows]),
        label_classes=[r[3] for r in rows],
        versions=[r[4] for r in rows],
        chunk_ids=np.array([r[5] for r in rows], dtype=np.int64),
        chunk_rows=np.array([r[6] for r in rows], dtype=np.int64),
        **(_labeled_probabilities(session, model_id, [(r[5], r[6]) for r in rows], start, end)
           if scores else {}),
    )  # fmt: skip


def _labeled_probabilities(
    session: Session,
    model_id: int,
    positions: list[tuple[int, int]],
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    """``prediction_scores`` and ``score_classes`` of the predictions at these (chunk, row)
    positions: NaN rows for those without (or whose classes are not the first chunk's)."""
    chunk_ids = sorted({chunk for chunk, _ in positions})
    found: dict[int, tuple[npt.NDArray[np.float64], list[str]]] = {}
    for part in range(0, len(chunk_ids), 1000):
        for chunk_id, rows, dictionary, buffer in session.execute(
            select(PredictionChunk.id, PredictionChunk.rows, PredictionChunk.dictionary,
                   PredictionChunk.prediction_scores)
            .where(PredictionChunk.model_id == model_id,
                   PredictionChunk.id.in_(chunk_ids[part : part + 1000]),
                   PredictionChunk.prediction_scores.is_not(None),
                   # the window's chunks: on Postgres only its days' partitions are read
                   PredictionChunk.ts_min < end,
                   PredictionChunk.ts_min >= start - timedelta(days=1))
        ):  # fmt: skip
            names = list(dictionary.get("score_classes") or ())
            matrix = np.frombuffer(buffer, dtype=FLOAT).reshape(len(names), rows).T
            found[int(chunk_id)] = (matrix, names)
    if not found:
        return {}
    classes = next(iter(found.values()))[1]
    out = np.full((len(positions), len(classes)), np.nan)
    for index, (chunk, row) in enumerate(positions):
        entry = found.get(chunk)
        if entry is not None and entry[1] == classes:
            out[index] = entry[0][row]
    return {"prediction_scores": out, "score_classes": classes}


def version_counts(
    session: Session, *, model_id: int, start: datetime, end: datetime
) -> dict[str | None, int]:
    """How many of the window's predictions each model_version logged (one aggregate)."""
    rows = session.execute(
        select(Prediction.model_version, func.count())
        .where(Prediction.model_id == model_id, Prediction.ts >= start, Prediction.ts < end)
        .group_by(Prediction.model_version)
    ).all()
    return {version: int(count) for version, count in rows}


def shadowed(session: Session, *, model_id: int, start: datetime, end: datetime) -> list[Any]:
    """The shadow predictions of the window's served predictions, joined by id, with the
    served prediction and the label where there is one: rows (shadow version, shadow value,
    shadow class, served value, served class, label value, label class)."""
    return list(
        session.execute(
            select(
                ShadowPrediction.model_version, ShadowPrediction.prediction_value,
                ShadowPrediction.prediction_class, Prediction.prediction_value,
                Prediction.prediction_class, GroundTruth.label_value, GroundTruth.label_class,
            )
            .join(
                Prediction,
                (Prediction.model_id == ShadowPrediction.model_id)
                & (Prediction.prediction_id == ShadowPrediction.prediction_id),
            )
            .outerjoin(
                GroundTruth,
                (GroundTruth.model_id == Prediction.model_id)
                & (GroundTruth.prediction_id == Prediction.prediction_id),
            )
            .where(ShadowPrediction.model_id == model_id, Prediction.ts >= start,
                   Prediction.ts < end)
        ).all()
    )  # fmt: skip


def version_predictions(
    session: Session, *, model_id: int, start: datetime, end: datetime
) -> VersionRows:
    """Each of the window's predictions: its model_version, value and class, and where its
    features are (chunk and row: the window read from chunks holds them in that order). Read
    only when the window holds more than one version."""
    rows = session.execute(
        select(
            Prediction.model_version, Prediction.prediction_value, Prediction.prediction_class,
            Prediction.chunk_id, Prediction.chunk_row,
        ).where(Prediction.model_id == model_id, Prediction.ts >= start, Prediction.ts < end)
    ).all()  # fmt: skip
    return VersionRows(
        versions=[r[0] for r in rows], values=[r[1] for r in rows], classes=[r[2] for r in rows],
        chunk_ids=np.fromiter((r[3] for r in rows), dtype=np.int64, count=len(rows)),
        chunk_rows=np.fromiter((r[4] for r in rows), dtype=np.int64, count=len(rows)),
    )  # fmt: skip


def count_rejected(session: Session, *, model_id: int, start: datetime, end: datetime) -> int:
    query = select(func.count()).where(
        RejectedRecord.model_id == model_id,
        RejectedRecord.kind == "prediction",
        RejectedRecord.received_at >= start,
        RejectedRecord.received_at < end,
    )
    return int(session.scalar(query) or 0)


def first_prediction_time(session: Session, *, model_id: int) -> datetime | None:
    return session.scalar(
        select(func.min(PredictionChunk.ts_min)).where(PredictionChunk.model_id == model_id)
    )


def _window_number(session: Session, column: Any, seconds: int) -> Any:
    """Which window of this length (counted from the epoch) a timestamp column falls in."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / seconds), BigInteger)
    return cast(func.strftime("%s", column), Integer) / seconds  # SQLite keeps UTC as text


def _chunks_reaching(model_id: int, start: datetime, end: datetime) -> Any:
    return and_(
        PredictionChunk.model_id == model_id,
        # a chunk lies within one UTC day (a constant bound: Postgres reads those days only)
        PredictionChunk.ts_min >= start - timedelta(days=1),
        PredictionChunk.ts_min < end,
        PredictionChunk.ts_max >= start,
    )


def busy_windows(
    session: Session, *, model_id: int, start: datetime, end: datetime, length: timedelta
) -> list[datetime]:
    """The starts of the windows from ``start`` to ``end`` that may hold predictions, oldest
    first: those the time span of a stored batch (chunk) reaches; every other window surely
    holds none. The database answers one row per distinct pair of windows a chunk starts and
    ends in, so the answer stays small however many batches a window received."""
    seconds = int(length.total_seconds())
    first, last = (_window_number(session, column, seconds)
                   for column in (PredictionChunk.ts_min, PredictionChunk.ts_max))  # fmt: skip
    query = select(first, last).where(_chunks_reaching(model_id, start, end)).group_by(first, last)
    low, high = ((moment - EPOCH) // length for moment in (start, end))
    busy: set[int] = set()
    for chunk_first, chunk_last in session.execute(query):
        busy.update(range(max(int(chunk_first), low), min(int(chunk_last) + 1, high)))
    return [EPOCH + number * length for number in sorted(busy)]


def any_predictions(session: Session, *, model_id: int, start: datetime, end: datetime) -> bool:
    """Whether a stored batch reaches the span (then it may hold predictions)."""
    return bool(session.scalar(select(exists().where(_chunks_reaching(model_id, start, end)))))


# -- runs ---------------------------------------------------------------------------------------


def get_run(session: Session, *, model_id: int, run_id: int) -> Run | None:
    return session.scalars(
        select(Run).where(Run.model_id == model_id, Run.id == run_id)
    ).one_or_none()


def lock_run(
    session: Session, *, model_id: int, baseline_id: int, start: datetime, end: datetime
) -> Run | None:
    """The window's run, read fresh and locked (``FOR UPDATE`` on Postgres; SQLite's write
    lock) until the transaction, or the savepoint it is read in, ends."""
    return session.scalars(
        select(Run)
        .where(
            Run.model_id == model_id, Run.baseline_id == baseline_id,
            Run.window_start == start, Run.window_end == end,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()  # fmt: skip


def list_runs(
    session: Session, *, model_id: int, start: datetime | None, end: datetime | None, limit: int,
    kind: str | None = None,
) -> list[Run]:  # fmt: skip
    query = select(Run).where(Run.model_id == model_id)
    if kind is not None:
        query = query.where(Run.kind == kind)
    if start is not None:
        query = query.where(Run.window_start >= start)
    if end is not None:
        query = query.where(Run.window_end <= end)
    return list(
        session.scalars(query.order_by(Run.window_start.desc(), Run.id.desc()).limit(limit))
    )


def has_runs(session: Session, *, model_id: int, kind: str) -> bool:
    """Whether the model has a run of this kind."""
    return bool(session.scalar(select(exists().where(Run.model_id == model_id,
                                                     Run.kind == kind))))  # fmt: skip


def computations(
    session: Session, *, model_id: int, baseline_id: int, start: datetime, end: datetime
) -> int:
    """How many times the run of this span and baseline was computed (0: no such run)."""
    found = session.scalar(
        select(Run.computations).where(
            Run.model_id == model_id, Run.baseline_id == baseline_id,
            Run.window_start == start, Run.window_end == end,
        )
    )  # fmt: skip
    return int(found or 0)


def enqueue(
    session: Session,
    *,
    model_id: int,
    baseline_id: int,
    windows: Sequence[tuple[datetime, datetime]],
    kind: str = WINDOW,
) -> int:
    """Queue these windows (or, ``kind`` custom, spans) unless already queued; how many were
    new. The unique key makes
    replicas and requests agree: an insert that meets another transaction's uncommitted row of
    the same window waits for it, then does nothing."""
    if not windows:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = session.scalars(
        dialect.insert(Run)
        .on_conflict_do_nothing(
            index_elements=["model_id", "window_start", "window_end", "baseline_id"]
        )
        .returning(Run.id),
        [
            {"model_id": model_id, "baseline_id": baseline_id, "window_start": start,
             "window_end": end, "kind": kind, "status": "pending"}
            for start, end in windows
        ],
    ).all()  # fmt: skip
    return len(inserted)


def window_runs_between(
    session: Session, *, model_id: int, start: datetime, end: datetime
) -> set[datetime]:
    """The starts of the model's window runs (any baseline) from ``start`` to ``end``."""
    return set(session.scalars(select(Run.window_start).where(
        Run.model_id == model_id, Run.kind == WINDOW,
        Run.window_start >= start, Run.window_start < end,
    )))  # fmt: skip


def record_no_traffic(
    session: Session, *, model_id: int, baseline_id: int,
    spans: Sequence[tuple[datetime, datetime]], now: datetime, features: Sequence[FeatureSpec],
) -> list[tuple[Run, datetime, datetime]]:  # fmt: skip
    """Record each stretch of windows without predictions as one row, never computed, with the
    empty result of such a window (``RunResult.empty``; the records refused in it counted); a
    stretch that begins where one of the model's stretches ends makes that one longer.
    Returns each span recorded with the row that holds it."""
    recorded = []
    for start, end in spans:
        adjoining = (Run.model_id == model_id, Run.kind == NO_TRAFFIC, Run.window_end == start)
        before = session.scalars(select(Run).where(*adjoining)).first()
        rejected = count_rejected(session, model_id=model_id, start=start, end=end)
        try:
            with session.begin_nested():
                if before is not None:
                    earlier = (
                        before.result.quality.rejected if before.result is not None
                        else count_rejected(session, model_id=model_id,
                                            start=before.window_start, end=start)
                    )  # fmt: skip
                    before.window_end = end
                    before.result = RunResult.empty(features, rejected=earlier + rejected)
                    row = before
                else:
                    row = Run(
                        model_id=model_id, baseline_id=baseline_id, kind=NO_TRAFFIC,
                        window_start=start, window_end=end, status="done", rows=0,
                        labeled_rows=0, computed_at=now,
                        result=RunResult.empty(features, rejected=rejected),
                    )  # fmt: skip
                    session.add(row)
                session.flush()
            recorded.append((row, start, end))
        except IntegrityError:  # a run of this very span and baseline was computed on demand
            continue
    return recorded


def no_traffic_overlapping(
    session: Session, *, model_id: int, start: datetime, end: datetime, lock: bool = False
) -> list[Run]:
    """The model's stretches without traffic that share some time with ``start``-``end``;
    ``lock``: locked (``FOR UPDATE``) and read fresh."""
    query = select(Run).where(
        Run.model_id == model_id, Run.kind == NO_TRAFFIC, Run.window_start < end,
        Run.window_end > start,
    ).order_by(Run.window_start)  # fmt: skip
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(query))


def no_traffic_starting(session: Session, *, model_id: int, start: datetime) -> Run | None:
    """The model's stretch without traffic that begins at ``start``, if any."""
    return session.scalars(
        select(Run).where(Run.model_id == model_id, Run.kind == NO_TRAFFIC,
                          Run.window_start == start)
    ).first()  # fmt: skip


def set_apart(
    session: Session, *, stretch: Run, windows: Sequence[tuple[datetime, datetime]],
    now: datetime, features: Sequence[FeatureSpec],
) -> None:  # fmt: skip
    """Take these spans (windows that have, or are about to have, a run of their own) out of a
    stretch without traffic. What remains of it stays without traffic: its first part in the
    stretch's own row (so that alerts naming that row still find it), every further part in a
    row of its own; a stretch nothing remains of is deleted."""
    parts = []
    cursor = stretch.window_start
    for start, end in sorted(windows):
        if start > cursor:
            parts.append((cursor, min(start, stretch.window_end)))
        cursor = max(cursor, end)
    if cursor < stretch.window_end:
        parts.append((cursor, stretch.window_end))
    if not parts:
        session.delete(stretch)
        session.flush()
        return
    for index, (start, end) in enumerate(parts):
        result = RunResult.empty(
            features, rejected=count_rejected(session, model_id=stretch.model_id, start=start,
                                              end=end),
        )  # fmt: skip
        if index == 0:
            stretch.window_start, stretch.window_end = start, end
            stretch.result, stretch.computed_at = result, now
            session.flush()  # its old span is free for the parts after it
        else:
            session.add(Run(
                model_id=stretch.model_id, baseline_id=stretch.baseline_id, kind=NO_TRAFFIC,
                window_start=start, window_end=end, status="done", rows=0, labeled_rows=0,
                computed_at=now, result=result,
            ))  # fmt: skip
    session.flush()


def computing_before(session: Session, *, model_id: int, moment: datetime) -> bool:
    """Whether a window of the model starting before ``moment`` waits to be computed for the
    first time (queued or being computed)."""
    return bool(session.scalar(select(exists().where(
        Run.model_id == model_id, Run.kind == WINDOW, Run.computations == 0,
        Run.status.in_(("pending", "running")), Run.window_start < moment,
    ))))  # fmt: skip


def rejected_by_window(
    session: Session, *, model_id: int, start: datetime, end: datetime, length: timedelta
) -> dict[datetime, int]:
    """Prediction records refused from ``start`` to ``end``, per window of this length (by the
    window's start; windows without any are left out)."""
    number = _window_number(session, RejectedRecord.received_at, int(length.total_seconds()))
    rows = session.execute(
        select(number, func.count())
        .where(RejectedRecord.model_id == model_id, RejectedRecord.kind == "prediction",
               RejectedRecord.received_at >= start, RejectedRecord.received_at < end)
        .group_by(number)
    )  # fmt: skip
    return {EPOCH + int(index) * length: int(count) for index, count in rows}


def lock_model(session: Session, *, model_id: int) -> None:
    """Take the model's row lock that planning takes (``FOR NO KEY UPDATE``, Postgres), so
    that its stretches without traffic are changed by one transaction at a time."""
    session.execute(
        select(MonitoredModel.id).where(MonitoredModel.id == model_id)
        .with_for_update(key_share=True)
    )  # fmt: skip


def no_traffic_since(session: Session, *, model_id: int) -> datetime | None:
    """When the model's traffic stopped, if the newest windows recorded for it held no
    predictions: the end of its last window with data (the start of the first window recorded,
    when none had any). None while its newest window has data, or before any is recorded."""
    series = (Run.model_id == model_id, Run.kind.in_((WINDOW, NO_TRAFFIC)), Run.rows.is_not(None))
    newest = session.scalars(
        select(Run).where(*series).order_by(Run.window_end.desc()).limit(1)
    ).first()
    if newest is None or newest.rows:
        return None
    last_end = session.scalar(
        select(Run.window_end).where(*series, Run.rows > 0)
        .order_by(Run.window_end.desc()).limit(1)
    )  # fmt: skip
    if last_end is not None:
        return last_end
    return session.scalar(select(func.min(Run.window_start)).where(*series))


def claim(session: Session, *, owner: str, now: datetime, lease_until: datetime) -> Run | None:
    """Take the oldest pending run, or one whose lease ran out (its replica died)."""
    candidates = (
        select(Run.id)
        .where(
            or_(
                # pending, unless a failed attempt asked to wait (its lease is its back-off)
                and_(
                    Run.status == "pending", or_(Run.lease_until.is_(None), Run.lease_until < now)
                ),
                and_(Run.status == "running", Run.lease_until < now),
            )
        )
        .order_by(Run.window_start, Run.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    run_id = session.scalar(candidates)
    if run_id is None:
        return None
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(status="running", owner=owner, lease_until=lease_until, attempts=Run.attempts + 1)
    )
    session.flush()
    return session.get(Run, run_id, populate_existing=True)


def store_metrics(session: Session, *, run: Run, metrics: dict[str, float | None]) -> None:
    """The run's numbers as its window's point of the time series: one window, one point,
    whichever baseline it was computed against last (the charts and daily sums count a window
    once)."""
    session.execute(
        delete(RunMetric).where(
            or_(RunMetric.run_id == run.id,
                and_(RunMetric.model_id == run.model_id, RunMetric.metric.in_(list(metrics)),
                     RunMetric.window_start == run.window_start))
        )
    )  # fmt: skip
    session.execute(
        insert(RunMetric),
        [
            {"run_id": run.id, "metric": name, "model_id": run.model_id,
             "window_start": run.window_start, "value": value}
            for name, value in metrics.items()
        ],
    )  # fmt: skip
    refresh_day(session, model_id=run.model_id, moment=run.window_start)


def refresh_day(session: Session, *, model_id: int, moment: datetime) -> None:
    """Sum the model's metrics up again for the UTC day of ``moment`` (``run_metric_days``)."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if session.get_bind().dialect.name == "postgresql":
        # runs of one day computed at once by two replicas take turns here; the second one's
        # statements then see the first one's committed metrics
        session.execute(select(func.pg_advisory_xact_lock(DAY_LOCK, model_id)))
    session.execute(delete(RunMetricDay).where(RunMetricDay.model_id == model_id,
                                               RunMetricDay.day == day))  # fmt: skip
    summed = (
        select(
            RunMetric.model_id, RunMetric.metric, literal(day, UTCDateTime()),
            func.min(RunMetric.value), func.max(RunMetric.value), func.sum(RunMetric.value),
            func.count(RunMetric.value),
        )
        .where(RunMetric.model_id == model_id, RunMetric.window_start >= day,
               RunMetric.window_start < day + timedelta(days=1))
        .group_by(RunMetric.model_id, RunMetric.metric)
    )  # fmt: skip
    session.execute(
        insert(RunMetricDay).from_select(
            ["model_id", "metric", "day", "low", "high", "total", "count"], summed
        )
    )


def _late_predictions(model_id: int, since: datetime) -> Any:
    """Whether a run's span received predictions after it was computed (or recorded)."""
    return exists(
        select(1).where(
            PredictionChunk.model_id == model_id,
            # a chunk lies within one UTC day: those of windows after ``since`` start less than
            # a day before it (a constant bound, so Postgres reads only those days' partitions)
            PredictionChunk.ts_min >= since - timedelta(days=1),
            PredictionChunk.created_at > Run.computed_at,
            PredictionChunk.ts_min < Run.window_end,
            PredictionChunk.ts_max >= Run.window_start,
        )
    )


def stale_runs(session: Session, *, model_id: int, since: datetime) -> list[int]:
    """Done window (and span) runs starting after ``since`` that received labels,
    predictions or shadow predictions after they were computed. (A custom range is computed
    again only when asked for.)"""
    late_labels = exists(
        select(1)
        .select_from(GroundTruth)
        .join(
            PredictionKey,
            (PredictionKey.model_id == GroundTruth.model_id)
            & (PredictionKey.prediction_id == GroundTruth.prediction_id),
        )
        .where(
            GroundTruth.model_id == model_id,
            GroundTruth.received_at > Run.computed_at,
            PredictionKey.ts >= Run.window_start,
            PredictionKey.ts < Run.window_end,
        )
    )
    deleted_baselines = select(Baseline.id).where(
        Baseline.model_id == model_id, Baseline.deleted_at.is_not(None)
    )
    query = select(Run.id).where(
        Run.model_id == model_id,
        Run.kind.in_((WINDOW, SPAN)),
        Run.status == "done",
        Run.window_start >= since,
        # a run of a deleted baseline is history: its baseline's data is gone
        Run.baseline_id.not_in(deleted_baselines),
        or_(late_labels, _late_predictions(model_id, since), _late_shadows(model_id)),
    )
    return list(session.scalars(query))


def _late_shadows(model_id: int) -> Any:
    """Whether a run's window received shadow predictions after it was computed (a shadow
    may come after its served prediction's window was computed, as a label may): found by
    their time of receipt, placed in a window by their served prediction's key."""
    return exists(
        select(1)
        .select_from(ShadowPrediction)
        .join(
            PredictionKey,
            (PredictionKey.model_id == ShadowPrediction.model_id)
            & (PredictionKey.prediction_id == ShadowPrediction.prediction_id),
        )
        .where(
            ShadowPrediction.model_id == model_id,
            ShadowPrediction.received_at > Run.computed_at,
            PredictionKey.ts >= Run.window_start,
            PredictionKey.ts < Run.window_end,
        )
    )


def no_traffic_with_late_predictions(
    session: Session, *, model_id: int, since: datetime
) -> list[Run]:
    """The model's stretches without traffic, ending after ``since``, into which predictions
    came since they were recorded."""
    query = select(Run).where(
        Run.model_id == model_id,
        Run.kind == NO_TRAFFIC,
        Run.window_end > since,
        _late_predictions(model_id, since),
    )
    return list(session.scalars(query.order_by(Run.window_start)))


def requeue(session: Session, *, run_ids: Sequence[int]) -> None:
    if run_ids:
        session.execute(
            update(Run).where(Run.id.in_(run_ids), Run.status == "done").values(status="pending")
        )


def models_to_schedule(session: Session) -> list[MonitoredModel]:
    return list(session.scalars(select(MonitoredModel).order_by(MonitoredModel.id)))
