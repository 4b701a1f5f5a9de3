"""Which columns of baseline data are used (features, prediction, label) and which are ignored,
decided from their names and the model's features, with a warning for each surprise and a
refusal for what cannot be right. Pure: no database.

A model with features uses those among the columns and ignores the others. A model without
any takes every column as a feature except the reserved names (``prediction``, ``label``,
``prediction_id``, ``timestamp``, ``model_version``) and what looks like a misnamed prediction
or label: a prediction column named ``pred`` or ``score`` is refused, since it would otherwise
be compared as a feature (or not at all) while the runs find no baseline prediction to test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from driftwatch.errors import InvalidPayload

PREDICTION = "prediction"
LABEL = "label"
UNUSED = ("prediction_id", "timestamp", "model_version")  # logged with traffic, not baselines
RESERVED = (PREDICTION, LABEL, *UNUSED)

# Names that a prediction (a score, a probability, a class) is commonly given instead.
PREDICTION_LIKE = frozenset({
    "pred", "preds", "predicted", "predictions", "y_pred", "ypred", "y_hat", "yhat",
    "score", "scores", "proba", "probability", "probabilities", "prob", "output",
})  # fmt: skip
PREDICTION_PREFIXES = ("prediction_", "predicted_", "pred_")
# ... and a label (not "y" or "class": too often real features).
LABEL_LIKE = frozenset({
    "labels", "target", "targets", "y_true", "ytrue", "ground_truth", "groundtruth", "truth",
    "actual", "actuals",
})  # fmt: skip
MAX_NAMES_SHOWN = 20


def normal(name: str) -> str:
    """A column name compared loosely: case, surrounding spaces, '-' and ' ' for '_'."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def looks_like_prediction(name: str) -> bool:
    loose = normal(name)
    return (
        loose == PREDICTION
        or loose in PREDICTION_LIKE
        or (loose.startswith(PREDICTION_PREFIXES) and loose not in RESERVED)
    )


def looks_like_label(name: str) -> bool:
    loose = normal(name)
    return loose == LABEL or loose in LABEL_LIKE


def listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    more = len(names) - MAX_NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "") if names else "none"


@dataclass(slots=True)
class ColumnUse:
    """What a baseline takes from its data: ``summary()`` is the API's ``columns``."""

    features: list[str]
    prediction: str | None
    label: str | None
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "prediction": self.prediction,
            "label": self.label,
            "ignored": self.ignored,
        }


@dataclass(frozen=True, slots=True)
class Source:
    """How the data's parts are named in messages: a file's columns, or records' keys."""

    column: str  # "column" or "key"
    place: str
    features_of: str  # where a feature is looked for
    no_prediction: str


FILE = Source("column", "the file", "a column of the file", "no column 'prediction'")
RECORDS = Source(
    "key", "the records", "a key of the records' 'features'", "no record has a 'prediction'"
)


def choose(
    names: Sequence[str],
    *,
    model: str,
    declared: Sequence[str],
    given_features: Sequence[str] | None = None,
    source: Source = FILE,
) -> ColumnUse:
    """Sort the data's ``names`` into used and ignored ones.

    ``names``: a file's columns, or the top-level keys of records. ``given_features``: the
    records' feature keys (None for a file, whose every column may be a feature).
    ``declared``: the model's features; empty when they are to be inferred from this data.
    Raises InvalidPayload for a misnamed prediction, or data holding none of the features.
    """
    present = set(names)
    use = ColumnUse(
        features=[],
        prediction=PREDICTION if PREDICTION in present else None,
        label=LABEL if LABEL in present else None,
    )
    candidates: list[str] = [] if given_features is None else list(given_features)
    for name in names:
        if name in (PREDICTION, LABEL):
            continue
        if given_features is None and name in declared:
            candidates.append(name)
        elif name in UNUSED or normal(name) in UNUSED:
            use.ignored.append(name)
        elif use.prediction is None and looks_like_prediction(name):
            raise InvalidPayload(_misnamed_prediction(name, model, declared, source))
        elif use.label is None and looks_like_label(name):
            use.ignored.append(name)
            use.warnings.append(
                f"{source.column} {name!r} is not used: name the label {source.column} 'label'"
            )
        elif given_features is None:
            candidates.append(name)  # a feature, unless the model declares others
        else:
            use.ignored.append(name)
            use.warnings.append(
                f"key {name!r} is not used (a baseline record has 'features', 'prediction' "
                "and 'label')"
            )
    if declared:
        _declared_features(use, candidates, model=model, declared=declared, source=source)
    elif candidates:
        use.features = candidates
    else:
        raise InvalidPayload(
            f"there are no features in {source.place} (found: {listing(list(names))}), and "
            f"model {model!r} declares none"
        )
    order = {name: position for position, name in enumerate(names)}
    use.ignored.sort(key=lambda name: order.get(name, len(order)))  # as the data has them
    if use.prediction is None:
        use.warnings.append(
            f"{source.no_prediction}: runs against this baseline do not test the prediction's drift"
        )
    return use


def _declared_features(
    use: ColumnUse, candidates: list[str], *, model: str, declared: Sequence[str], source: Source
) -> None:
    known = set(candidates)
    use.features = [name for name in declared if name in known]
    if not use.features:
        raise InvalidPayload(
            f"none of model {model!r}'s features ({listing(list(declared))}) is "
            f"{source.features_of} (found: {listing(candidates)})"
        )
    for name in candidates:
        if name not in declared:
            misnamed = [f for f in declared if normal(f) == normal(name) and f not in known]
            if misnamed:  # a feature the data lacks under another spelling: surely a mistake
                raise InvalidPayload(
                    f"{source.column} {name!r} is not a feature of model {model!r}, whose "
                    f"feature {misnamed[0]!r} {source.place} lacks: name the {source.column} "
                    f"{misnamed[0]!r} (names are exact)"
                )
            use.ignored.append(name)
            use.warnings.append(_unknown(name, model, declared, source))
    for name in declared:
        if name not in known:
            use.warnings.append(
                f"feature {name!r} is not in {source.place}: runs against this baseline do not "
                "test its drift"
            )


def _unknown(name: str, model: str, declared: Sequence[str], source: Source) -> str:
    alike = [f for f in declared if normal(f) == normal(name)]
    hint = f"; did you mean {alike[0]!r}?" if alike else ""
    return (
        f"{source.column} {name!r} is not a feature of model {model!r} (its features: "
        f"{listing(list(declared))}): ignored{hint}"
    )


def _misnamed_prediction(name: str, model: str, declared: Sequence[str], source: Source) -> str:
    message = (
        f"{source.column} {name!r} is not used: name the prediction {source.column} 'prediction'"
    )
    if declared:
        return f"{message} (it is not one of model {model!r}'s features either)"
    return (
        f"{message}; or, if {name!r} is a feature, declare model {model!r}'s features first "
        f"(PATCH /api/v1/models/{model})"
    )
