"""The one metric vocabulary: the names ``RunResult.metrics()`` produces, which rules test,
the dashboard charts, ``/metrics`` exports and webhook payloads carry. The README's list of
metrics is checked against ``METRICS`` (``tests/test_vocabulary.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
ACCURACY_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
# CONTRACT section 9: what is estimated before labels arrive (classification: CBPE;
# regression: direct loss estimation).
ESTIMATED_METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall", "mae", "rmse")


SEGMENT_METRIC = "segment[<feature>=<value>].<metric of the window>"
_SEGMENT = re.compile(r"^segment\[(?P<feature>[^=\]]+)=(?P<value>[^\]]*)\]\.(?P<metric>.+)$")


def split_segment(metric: str) -> tuple[str, str, str] | None:
    """``segment[region=EU].dataset.drifted_share`` as (feature, value, metric); None for a
    metric of the whole window."""
    match = _SEGMENT.match(metric)
    return None if match is None else (match["feature"], match["value"], match["metric"])


@dataclass(frozen=True, slots=True)
class Metric:
    name: str  # as written in a rule; <name> and <metric> are placeholders
    meaning: str

    @property
    def pattern(self) -> re.Pattern[str]:
        if self.name == SEGMENT_METRIC:
            return _SEGMENT
        escaped = re.escape(self.name).replace(re.escape("<name>"), r"(?P<name>.+)")
        escaped = escaped.replace(re.escape("<metric>"), r"(?P<metric>[a-z0-9_]+)")
        escaped = escaped.replace(re.escape("<version>"), r"(?P<version>[^\]]+)")
        return re.compile(f"^{escaped}$")


METRICS: tuple[Metric, ...] = (
    Metric("rows", "predictions in the window"),
    Metric("labeled_rows", "the window's predictions that have a label"),
    Metric(
        "baseline_rows",
        "rows of the baseline compared with (a trailing or lag baseline: the predictions in "
        "its span for this window)",
    ),
    Metric("dataset.drifted_share", "drifted features over tested features"),
    Metric("dataset.drifted_features", "how many features drifted"),
    Metric("dataset.drifted", "1 if drifted_share reached the model's drift_share, else 0"),
    Metric(
        "dataset.insufficient_share",
        "calibrated verdict: features whose window cannot tell a change of the threshold's "
        "size from noise, over tested features",
    ),
    Metric("prediction.score", "the prediction's drift score (a p-value or a distance)"),
    Metric("prediction.drifted", "1 if the prediction drifted, else 0"),
    Metric(
        "prediction.p_value",
        "calibrated verdict: the prediction's p-value at the window's sample sizes",
    ),
    Metric("feature.<name>.score", "the feature's drift score (a p-value or a distance)"),
    Metric("feature.<name>.drifted", "1 if the feature drifted, else 0"),
    Metric(
        "feature.<name>.p_value",
        "calibrated verdict: the feature's p-value at the window's sample sizes",
    ),
    Metric(
        "feature.<name>.insufficient",
        "calibrated verdict: 1 if the window cannot tell a change of the threshold's size "
        "from noise, else 0",
    ),
    Metric("feature.<name>.missing_share", "share of the window's rows without the feature"),
    Metric(
        "feature.<name>.out_of_range",
        "share of the window's rows outside the baseline's range (numerical features)",
    ),
    Metric("quality.missing_share", "missing cells over rows x features"),
    Metric("quality.rejected", "prediction records refused in the window"),
    Metric(
        "quality.new_categories",
        "how many categories, over all features, the baseline never saw (all counted; the run "
        "names the 20 most frequent of each feature)",
    ),
    Metric(
        "accuracy.<metric>",
        "over the labeled predictions: " + ", ".join(ACCURACY_METRICS),
    ),
    Metric("labels.coverage", "the window's labeled predictions over its predictions"),
    Metric(
        "estimated.<metric>",
        "before labels arrive: classification metrics estimated from the calibrated scores "
        "(CBPE): " + ", ".join(ESTIMATED_METRICS[:5]) + "; regression errors estimated by "
        "loss models (direct loss estimation): " + ", ".join(ESTIMATED_METRICS[5:]),
    ),
    Metric(
        "estimated.<metric>.lower",
        "the lower end of a 95% interval for the value the realized metric will take",
    ),
    Metric(
        "estimated.<metric>.upper",
        "the upper end of a 95% interval for the value the realized metric will take",
    ),
    Metric(
        "multivariate.classifier.score",
        "the cross-validated ROC AUC of a classifier told apart the window's rows from the "
        "baseline's (0.5: indistinguishable)",
    ),
    Metric(
        "multivariate.classifier.threshold",
        "the AUC that calls drift at this sample size and level, from the baseline's own "
        "no-drift AUCs",
    ),
    Metric("multivariate.classifier.drifted", "1 if that AUC reached its threshold, else 0"),
    Metric(
        "multivariate.classifier.p_value",
        "calibrated verdict: the AUC's p-value against the baseline's own no-drift AUCs",
    ),
    Metric(
        "multivariate.reconstruction.score",
        "the window's mean PCA reconstruction error against the baseline's components",
    ),
    Metric(
        "multivariate.reconstruction.threshold",
        "the error that calls drift at this sample size and level, from the baseline's own errors",
    ),
    Metric("multivariate.reconstruction.drifted", "1 if that error reached its threshold, else 0"),
    Metric(
        "multivariate.reconstruction.p_value",
        "calibrated verdict: the error's p-value against the baseline's own errors",
    ),
    Metric("version[<version>].rows", "the window's predictions logged with that model_version"),
    Metric("version[<version>].labeled_rows", "those of them that have a label"),
    Metric("version[<version>].accuracy.<metric>", "accuracy.<metric> over that version's rows"),
    Metric(
        "version[<version>].prediction.score",
        "that version's prediction drift score against the baseline's predictions",
    ),
    Metric("version[<version>].prediction.drifted", "1 if that version's prediction drifted"),
    Metric(
        "version[<version>].dataset.drifted_share",
        "served version: drifted features over tested ones, that version's rows against the "
        "baseline",
    ),
    Metric("version[<version>].dataset.drifted", "1 if that version's dataset verdict is drift"),
    Metric(
        "version[<version>].agreement",
        "shadow version: share of the shared prediction ids where its class agrees with the "
        "served one (regression: 1 - mean absolute difference / the served predictions' sd)",
    ),
    Metric(
        "version[<version>].delta.<metric>",
        "shadow version: its accuracy.<metric> minus the served model's on the same labeled ids",
    ),
    Metric("version[<version>].delta.<metric>.lower", "the paired 95% interval's lower end"),
    Metric("version[<version>].delta.<metric>.upper", "the paired 95% interval's upper end"),
    Metric(
        SEGMENT_METRIC,
        "CONTRACT section 10: every metric above except version[...] ones, computed on the "
        "window's rows whose segment feature has that value (a segment of the model's "
        "segments), against the same segment of the baseline",
    ),
)


def metric_problem(metric: str) -> str | None:
    """Why ``metric`` is not a name of the vocabulary, or None."""
    if metric.startswith("segment["):
        parts = split_segment(metric)
        if parts is None:
            return (f"{metric!r}: a segment's metric reads "
                    "segment[<feature>=<value>].<metric>, such as "
                    "'segment[region=EU].dataset.drifted_share'")  # fmt: skip
        inner = parts[2]
        if inner.startswith(("segment[", "version[")):
            return f"{metric!r}: a segment has the window's metrics, not {inner!r}"
        return metric_problem(inner)
    for known in METRICS:
        if known.name == SEGMENT_METRIC:
            continue
        match = known.pattern.match(metric)
        if match is None:
            continue
        known_names = ESTIMATED_METRICS if metric.startswith("estimated.") else ACCURACY_METRICS
        if "metric" in match.groupdict() and match["metric"] not in known_names:
            what = "estimated" if metric.startswith("estimated.") else "accuracy"
            return f"unknown {what} metric {match['metric']!r} (known: {', '.join(known_names)})"
        return None
    names = ", ".join(m.name for m in METRICS)
    return f"unknown metric {metric!r}; the metrics are: {names}"


def markdown_table() -> str:
    """The vocabulary as the README lists it."""
    lines = ["| metric | meaning |", "|---|---|"]
    lines += [f"| `{m.name}` | {m.meaning} |" for m in METRICS]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m driftwatch.core.vocabulary: the README's table
    print(markdown_table())
