"""Valid predictions in storage form: what validation produces and the storage codecs write."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Float32Matrix = npt.NDArray[np.float32]


@dataclass(slots=True)
class PredictionColumns:
    """Valid predictions in storage form, one entry per record."""

    prediction_ids: list[str]
    timestamps_us: IntArray  # microseconds since the Unix epoch, UTC
    model_versions: list[str | None]
    prediction_values: FloatArray  # NaN where the prediction is a class name
    prediction_classes: list[str | None]
    num_values: FloatArray  # (records, numerical features) in model order, NaN = missing
    cat_values: list[list[str | None]]  # one list per categorical feature, in model order
    # one (records, dimensions) float32 matrix per embedding feature (CONTRACT section 11), in
    # model order, a row of NaN where a record gives none; and those features' names
    emb_values: list[Float32Matrix] = field(default_factory=list)
    emb_names: list[str] = field(default_factory=list)
    # a multiclass model's per-class probabilities: (records, classes), NaN rows for records
    # that gave a class; the classes sorted
    prediction_scores: FloatArray | None = None
    score_classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.prediction_ids)

    def take(self, keep: list[int]) -> PredictionColumns:
        """Only the records at these positions, in this order."""
        return PredictionColumns(
            prediction_ids=[self.prediction_ids[i] for i in keep],
            timestamps_us=self.timestamps_us[keep],
            model_versions=[self.model_versions[i] for i in keep],
            prediction_values=self.prediction_values[keep],
            prediction_classes=[self.prediction_classes[i] for i in keep],
            # column-major kept (as chunks store it), without a copy in the other order
            # (mode "clip": the positions are valid, and "raise" would buffer ``out`` once more)
            num_values=np.take(
                self.num_values,
                keep,
                axis=0,
                mode="clip",
                out=np.empty((len(keep), self.num_values.shape[1]), order="F"),
            ),
            cat_values=[[column[i] for i in keep] for column in self.cat_values],
            emb_values=[matrix[keep] for matrix in self.emb_values],
            emb_names=list(self.emb_names),
            prediction_scores=(
                None if self.prediction_scores is None else self.prediction_scores[keep]
            ),
            score_classes=self.score_classes,
        )
