"""The storage codecs: binary COPY streams and prediction chunks (pure, no database)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from driftwatch.storage import chunks, copy_binary
from driftwatch.storage.columns import PredictionColumns


def make_columns(rows: int, *, num: int = 3, cat: int = 2, seed: int = 0) -> PredictionColumns:
    rng = np.random.default_rng(seed)
    values = rng.random(rows)
    numbers = rng.normal(size=(rows, num))
    numbers[rng.random((rows, num)) < 0.1] = np.nan
    categories = [
        [None if rng.random() < 0.1 else f"c{rng.integers(5)}é" for _ in range(rows)]
        for _ in range(cat)
    ]
    return PredictionColumns(
        prediction_ids=[f"{i:032x}" for i in rng.integers(0, 2**62, size=rows)],
        timestamps_us=rng.integers(1_700_000_000_000_000, 1_800_000_000_000_000, size=rows),
        model_versions=["v3"] * rows,
        prediction_values=values,
        prediction_classes=[None] * rows,
        num_values=numbers,
        cat_values=categories,
    )


@pytest.mark.parametrize("version", ["v3", None])
def test_the_vectorised_copy_stream_equals_the_row_by_row_one(version: str | None) -> None:
    columns = make_columns(50)
    columns.model_versions = [version] * 50
    uniform = copy_binary._encode_uniform(7, 42, columns)
    assert uniform is not None
    assert uniform == copy_binary._encode_rows(7, 42, columns)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.prediction_ids.__setitem__(3, "short"),
        lambda c: c.prediction_ids.__setitem__(3, "é" * 32),
        lambda c: c.model_versions.__setitem__(3, "v4"),
        lambda c: c.prediction_classes.__setitem__(3, "cat"),
        lambda c: c.prediction_values.__setitem__(3, math.nan),
    ],
)
def test_rows_of_different_layouts_take_the_row_by_row_path(change: object) -> None:
    columns = make_columns(10)
    change(columns)  # type: ignore[operator]
    assert copy_binary._encode_uniform(1, 1, columns) is None
    stream = copy_binary.encode_predictions(1, 1, columns)
    assert stream.startswith(copy_binary.HEADER)
    assert stream.endswith(copy_binary.TRAILER)


def test_a_chunk_round_trips() -> None:
    columns = make_columns(200)
    encoded = chunks.encode(columns)
    decoded = chunks.decode(
        rows=encoded.rows, timestamps=encoded.timestamps, num_values=encoded.num_values,
        num_width=encoded.num_width, cat_codes=encoded.cat_codes, cat_width=encoded.cat_width,
        prediction_values=encoded.prediction_values,
        prediction_classes=encoded.prediction_classes, dictionary=encoded.dictionary,
    )  # fmt: skip
    np.testing.assert_array_equal(decoded.timestamps_us, columns.timestamps_us)
    np.testing.assert_array_equal(decoded.num_values, columns.num_values)
    for position, values in enumerate(columns.cat_values):
        names = [*decoded.categories[position], None]
        assert [names[c] for c in decoded.cat_codes[:, position]] == values
    np.testing.assert_array_equal(decoded.prediction_values, columns.prediction_values)
    assert encoded.ts_min_us == columns.timestamps_us.min()
    assert encoded.ts_max_us == columns.timestamps_us.max()


def _decoded(columns: PredictionColumns) -> chunks.DecodedChunk:
    e = chunks.encode(columns)
    return chunks.decode(
        rows=e.rows, timestamps=e.timestamps, num_values=e.num_values, num_width=e.num_width,
        cat_codes=e.cat_codes, cat_width=e.cat_width, prediction_values=e.prediction_values,
        prediction_classes=e.prediction_classes, dictionary=e.dictionary,
    )  # fmt: skip


def test_merging_chunks_keeps_the_window_and_unifies_categories() -> None:
    early = make_columns(100, num=2, cat=1, seed=1)  # stored before a feature was added
    late = make_columns(100, num=3, cat=2, seed=2)
    late.prediction_classes = ["yes" if i % 2 else None for i in range(100)]
    start_us, end_us = 1_720_000_000_000_000, 1_780_000_000_000_000
    window = chunks.merge(
        [_decoded(early), _decoded(late)], num_width=3, cat_width=2,
        start_us=start_us, end_us=end_us,
    )  # fmt: skip
    in_early = (early.timestamps_us >= start_us) & (early.timestamps_us < end_us)
    in_late = (late.timestamps_us >= start_us) & (late.timestamps_us < end_us)
    assert len(window) == in_early.sum() + in_late.sum()
    np.testing.assert_array_equal(
        window.timestamps_us,
        np.concatenate([early.timestamps_us[in_early], late.timestamps_us[in_late]]),
    )
    early_rows = int(in_early.sum())
    np.testing.assert_array_equal(window.num_values[:early_rows, :2], early.num_values[in_early])
    assert np.isnan(window.num_values[:early_rows, 2]).all()  # the added feature: missing
    expected_first = [v for v, keep in zip(early.cat_values[0], in_early, strict=True) if keep]
    expected_first += [v for v, keep in zip(late.cat_values[0], in_late, strict=True) if keep]
    assert window.category_values(0) == expected_first
    assert window.category_values(1)[:early_rows] == [None] * early_rows
    late_classes = [c for c, keep in zip(late.prediction_classes, in_late, strict=True) if keep]
    names = [*window.classes, None]
    assert [names[c] for c in window.class_codes[early_rows:]] == late_classes


def test_an_empty_window_has_the_model_shape() -> None:
    start = chunks.to_us(datetime(2020, 1, 1, tzinfo=UTC))
    window = chunks.merge(
        [_decoded(make_columns(5))], num_width=3, cat_width=2, start_us=start, end_us=start + 1
    )
    assert len(window) == 0
    assert window.num_values.shape == (0, 3)
    assert window.cat_codes.shape == (0, 2)
