"""The calibrated verdict (CONTRACT section 7): p-values at the window's sizes, checked by
simulation, Benjamini-Hochberg against scipy, and the verdicts a window gets."""

from __future__ import annotations

import gc
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from driftwatch.core.result import RunResult
from driftwatch.core.settings import DriftSettings
from driftwatch.core.specs import FeatureSpec
from driftwatch.monitoring import accuracy, compute, profiles
from driftwatch.registry import schemas
from driftwatch.stats import calibration, registry
from driftwatch.stats.samples import CategoricalPair, NumericalPair, Pair
from driftwatch.storage.chunks import WindowColumns
from tests.conftest import create_model
from tests.factories import MONITORED, T0, frame, log, post
from tests.factories import frame_baseline as baseline_records
from tests.factories import frame_records as records

PROPORTIONS = np.array([0.4, 0.3, 0.2, 0.1])


def numerical(rng: np.random.Generator, n: int, m: int, shift: float = 0.0) -> NumericalPair:
    return NumericalPair.from_unsorted(rng.normal(0, 1, n), rng.normal(shift, 1, m))


def categorical(rng: np.random.Generator, n: int, m: int) -> CategoricalPair:
    return CategoricalPair(
        rng.multinomial(n, PROPORTIONS), rng.multinomial(m, PROPORTIONS), list("abcd")
    )


def evidence(
    pair: Pair, name: str, threshold: float | None = None, *, interval: bool = False
) -> calibration.ColumnEvidence:
    test = registry.get(name)
    limit = test.default_threshold if threshold is None else threshold
    return calibration.evidence(pair, test, test.score(pair), limit, interval=interval)


@pytest.mark.parametrize("seed", range(6))
def test_benjamini_hochberg_agrees_with_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p_values = np.concatenate((rng.uniform(size=20), rng.uniform(0, 0.01, size=seed)))
    expected = stats.false_discovery_control(p_values) <= 0.05
    assert calibration.benjamini_hochberg(p_values.tolist(), 0.05) == expected.tolist()


@pytest.mark.parametrize(
    ("name", "kind", "n", "m"),
    [
        ("jensenshannon", "numerical", 500, 300),
        ("psi", "numerical", 500, 300),
        ("hellinger", "numerical", 500, 300),
        ("kl_div", "numerical", 500, 300),
        ("jensenshannon", "categorical", 300, 200),
        ("psi", "categorical", 300, 200),
    ],
)
def test_p_values_are_uniform_under_no_drift(name: str, kind: str, n: int, m: int) -> None:
    rng = np.random.default_rng(7)
    make = numerical if kind == "numerical" else categorical
    p_values = np.array([evidence(make(rng, n, m), name).p_value for _ in range(150)])
    assert stats.kstest(p_values, "uniform").pvalue > 0.001
    assert np.mean(p_values <= 0.05) < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 150)


@pytest.mark.parametrize(
    ("name", "n", "m"),
    [
        ("wasserstein", 200, 100),
        ("wasserstein", 3000, 1500),  # above the simulated cap: scaled to the real sizes
        ("wasserstein", 100_000, 20),  # the smallest windows, at their exact size
        ("ed", 200, 100),
    ],
)
def test_bootstrapped_p_values_are_uniform_under_no_drift(name: str, n: int, m: int) -> None:
    """30 baselines (each prepares its null once) and 10 windows each."""
    rng = np.random.default_rng(10)
    p_values = []
    for _ in range(30):
        baseline = np.sort(rng.normal(size=n))
        for _ in range(10):
            current = np.sort(rng.normal(size=m))
            p_values.append(evidence(NumericalPair(baseline, current), name).p_value)
    assert stats.kstest(p_values, "uniform").pvalue > 0.001
    assert np.mean(np.array(p_values) <= 0.05) < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300)


def test_the_tail_is_calibrated_at_small_levels() -> None:
    """Where the empirical p-value runs out (p < 10 / 401), the gamma tail: the share of
    no-drift windows below 0.005 is 0.005 within binomial error (JS, many windows)."""
    rng = np.random.default_rng(3)
    p_values = np.array(
        [evidence(categorical(rng, 400, 400), "jensenshannon").p_value for _ in range(2000)]
    )
    observed = np.mean(p_values <= 0.005)
    assert observed < 0.005 + 3 * np.sqrt(0.005 / 2000), observed


@pytest.mark.parametrize("m", [100, 500, 2000])
def test_windows_with_any_false_alarm_are_alpha(m: int) -> None:
    """No drift, 20 baselines of 4 columns and 20 windows of m rows each, BH at alpha 0.1
    (threshold 0, so that only the p-values decide): windows with any drifted column ~ alpha."""
    rng = np.random.default_rng(m)
    n, alpha, repetitions = 4000, 0.1, 400
    draws = [lambda size: rng.normal(size=size), lambda size: rng.gamma(2.0, size=size)]
    alarms = 0
    for repetition in range(repetitions):
        if repetition % 20 == 0:
            baselines = [np.sort(draw(n)) for draw in draws]
        columns = []
        for baseline, draw in zip(baselines, draws, strict=True):
            current = np.sort(draw(m))
            columns.append(evidence(NumericalPair(baseline, current), "wasserstein", 0.0))
        columns.append(evidence(categorical(rng, n, m), "jensenshannon", 0.0))
        columns.append(evidence(numerical(rng, n, m), "ks"))
        alarms += any(v.drifted for v in calibration.verdicts(columns, alpha))
    share = alarms / repetitions
    assert abs(share - alpha) < 3 * np.sqrt(alpha * (1 - alpha) / repetitions), share


def test_a_half_sd_shift_at_500_rows_is_found() -> None:
    rng = np.random.default_rng(1)
    alpha = 1 / 720
    found = 0
    for _ in range(20):  # among 26 columns (25 without drift), at an hourly model's level
        columns = [evidence(numerical(rng, 500, 500, shift=0.5), "wasserstein")]
        columns += [evidence(numerical(rng, 500, 500), "ks") for _ in range(25)]
        found += calibration.verdicts(columns, alpha)[0].verdict == "drift"
    assert found >= 19


def test_a_change_below_the_threshold_is_never_drift() -> None:
    """A 0.05 sd shift at 100,000 rows is certain (p ~ 0) but smaller than the threshold."""
    rng = np.random.default_rng(2)
    column = evidence(numerical(rng, 100_000, 100_000, shift=0.05), "wasserstein")
    assert column.p_value < 1e-6
    (verdict,) = calibration.verdicts([column], 0.05)
    assert (verdict.drifted, verdict.verdict, verdict.detectable) == (False, "no_drift", 0.1)


@pytest.mark.parametrize(("name", "kind"), [("wasserstein", "numerical"), ("ks", "numerical"),
                                            ("chisquare", "categorical"),
                                            ("jensenshannon", "categorical")])  # fmt: skip
def test_thirty_rows_are_insufficient_and_five_thousand_are_not(name: str, kind: str) -> None:
    rng = np.random.default_rng(4)
    make = numerical if kind == "numerical" else categorical
    alpha = 1 / 720 / 26
    (small,) = calibration.verdicts([evidence(make(rng, 5000, 30), name)], alpha)
    (large,) = calibration.verdicts([evidence(make(rng, 5000, 5000), name)], alpha)
    assert small.verdict == "insufficient"
    assert large.verdict == "no_drift"
    if registry.get(name).pvalue:
        assert small.detectable == pytest.approx(alpha)
    else:
        assert small.detectable > 0.1
        assert large.detectable == 0.1


@pytest.mark.parametrize("name", sorted(calibration.BINNED))
@pytest.mark.parametrize("kind", ["numerical", "categorical"])
def test_binned_scores_are_the_tests_own(name: str, kind: str) -> None:
    rng = np.random.default_rng(5)
    pair = numerical(rng, 700, 300, 0.3) if kind == "numerical" else categorical(rng, 700, 30)
    reference, current = calibration._binned_counts(pair, registry.get(name))
    scores = calibration.binned_scores(name, reference[None, :], current[None, :])
    assert scores[0] == pytest.approx(registry.get(name).score(pair), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", sorted(calibration.BOOTSTRAPPED))
@pytest.mark.parametrize(("n", "m"), [(300, 300), (300, 181), (64, 1000)])
def test_batch_scores_are_the_tests_own(name: str, n: int, m: int) -> None:
    """The bootstrap null scores a stack of samples at once (of equal sizes, wasserstein as the
    mean gap between order statistics): each row is the test's own score of that pair."""
    rng = np.random.default_rng(11)
    reference = np.sort(rng.lognormal(0, 0.8, (5, n)), axis=1)
    current = np.sort(rng.lognormal(0.1, 0.8, (5, m)), axis=1)
    scores = calibration._batch_scores(registry.get(name), reference, current)
    for row, score in enumerate(scores):
        own = registry.get(name).score(NumericalPair(reference[row], current[row]))
        assert score == pytest.approx(own, rel=1e-12)


def test_bootstrap_samples_draw_every_baseline_row_alike() -> None:
    """Samples drawn with replacement from the sorted baseline come out sorted, each of its
    rows drawn equally often (chi-square over 1000 samples of 200), and the reference's and the
    current's draws are independent streams."""
    values = np.arange(50, dtype=np.float64)
    drawn = calibration._resampled(values, calibration._sorted_uniforms(1000, 200, 0))
    assert drawn.shape == (1000, 200)
    assert np.all(np.diff(drawn, axis=1) >= 0)
    counts = np.bincount(drawn.astype(np.int64).ravel(), minlength=50)
    assert stats.chisquare(counts).pvalue > 0.001
    other = calibration._resampled(values, calibration._sorted_uniforms(1000, 200, 1))
    means = (drawn.mean(axis=1), other.mean(axis=1))
    assert abs(stats.pearsonr(*means).statistic) < 0.15  # 1000 pairs: sd 0.03
    assert calibration._sorted_uniforms(1000, 200, 0) is calibration._sorted_uniforms(1000, 200, 0)


def _scipy_pareto_fit(excesses: np.ndarray) -> tuple[float, float]:
    shape, _, scale = stats.genpareto.fit(excesses, floc=0)
    return (float(shape), float(scale)) if shape > 0 else (0.0, float(excesses.mean()))


@pytest.mark.parametrize("source", ["normal", "lognormal", "uniform", "t3", "pareto"])
def test_the_pareto_tail_is_scipys_maximum_likelihood(source: str) -> None:
    """The tail fitted to the top 10% of null draws is the maximum likelihood fit scipy's
    ``genpareto.fit`` finds, shape clipped at 0: at least as likely, the same exponential or
    Pareto choice, and survival beyond the draws within 5% of scipy's (its optimizer stops at
    a tolerance)."""
    rng = np.random.default_rng(12)
    for attempt in range(8):
        if source == "pareto":
            excesses = stats.genpareto.rvs(0.05 + 0.1 * attempt, scale=2, size=100,
                                           random_state=rng)  # fmt: skip
        else:
            draw = {"normal": rng.normal, "lognormal": rng.lognormal, "uniform": rng.random,
                    "t3": lambda size: rng.standard_t(3, size)}[source]  # fmt: skip
            baseline = np.sort(draw(size=3000))
            null = calibration._bootstrap_null(baseline, registry.get("wasserstein"), 181, 724)
            kept = int(null.draws.size * calibration.PARETO_TAIL_SHARE)
            excesses = null.draws[-kept:] - null.threshold
        ours, theirs = calibration.pareto_fit(excesses), _scipy_pareto_fit(excesses)
        if theirs[0] > 0.002:  # near 0 either choice is the same tail
            assert ours[0] > 0
        if theirs[0] == 0:
            assert ours[0] < 0.002

        def loss(shape: float, scale: float, excesses: np.ndarray = excesses) -> float:
            return -float(stats.genpareto.logpdf(excesses, shape, scale=scale).sum())

        assert loss(*ours) <= loss(*theirs) + 1e-6
        far = np.max(excesses) * np.array([1.0, 3.0, 10.0])
        assert stats.genpareto.sf(far, ours[0], scale=ours[1]) == pytest.approx(
            stats.genpareto.sf(far, theirs[0], scale=theirs[1]), rel=0.05
        )


def test_effect_interval_covers_the_score_it_estimates() -> None:
    """The 95% interval of the normed Wasserstein distance of a 0.3 sd shift covers the
    population value (0.3 / 1, for big samples where the estimator's bias is small) in most
    windows, capped sizes and scaling included."""
    rng = np.random.default_rng(6)
    covered = 0
    for _ in range(40):
        column = evidence(numerical(rng, 20_000, 5000, shift=0.3), "wasserstein", interval=True)
        assert column.effect_interval is not None
        low, high = column.effect_interval
        covered += low <= 0.3 <= high
    assert covered >= 34


def test_p_value_tests_have_no_interval_and_their_own_p_value() -> None:
    rng = np.random.default_rng(8)
    pair = numerical(rng, 300, 300)
    column = evidence(pair, "ks")
    assert column.p_value == registry.get("ks").score(pair)
    assert column.effect_interval is None


def test_a_prepared_null_is_reused_for_its_baseline_only() -> None:
    rng = np.random.default_rng(9)
    cache = calibration.NULL_CACHE
    baseline = np.sort(rng.normal(size=3000))
    before = cache.prepared
    for _ in range(3):  # windows of one size class: one null
        evidence(NumericalPair(baseline, np.sort(rng.normal(size=500))), "wasserstein")
    assert cache.prepared == before + 1
    changed = np.sort(rng.normal(5, 3, size=3000))  # a new baseline: its own null
    evidence(NumericalPair(changed, np.sort(rng.normal(size=500))), "wasserstein")
    assert cache.prepared == before + 2
    changed_id = id(changed)
    assert any(key[0] == changed_id for key in cache._items)
    del changed
    gc.collect()
    assert not any(key[0] == changed_id for key in cache._items)  # freed: its nulls go too


# -- through compute() and the API --------------------------------------------------------------

SPECS = [FeatureSpec("x", "numerical"), FeatureSpec("y", "numerical"),
         FeatureSpec("c", "categorical")]  # fmt: skip


def columns(rows: int, seed: int, shift: float = 0.0) -> WindowColumns:
    rng = np.random.default_rng(seed)
    num = np.column_stack((rng.normal(shift, 1, rows), rng.normal(0, 1, rows)))
    codes = rng.choice(4, size=(rows, 1), p=PROPORTIONS).astype(np.int32)
    return WindowColumns(np.arange(rows, dtype=np.int64), num, codes, [list("abcd")],
                         rng.beta(2, 5, rows), np.full(rows, -1, dtype=np.int32), [])  # fmt: skip


def run(
    settings: DriftSettings, window: WindowColumns, baseline: profiles.BaselineProfile
) -> RunResult:
    labeled = accuracy.Labeled(np.empty(0), [], np.empty(0), [])
    result, _ = compute.compute(task="regression", features=SPECS, settings=settings,
                                baseline=baseline, window=window, labeled=labeled,
                                rejected=0)  # fmt: skip
    return result


def test_compute_gives_every_column_a_calibrated_verdict() -> None:
    baseline = profiles.profile(columns(3000, 1), SPECS)
    settings = DriftSettings.from_model({"verdict": "calibrated"}, timedelta(days=1))
    result = run(settings, columns(2000, 2, shift=0.6), baseline)
    by_name = {f.name: f for f in result.features}
    assert by_name["x"].verdict == "drift"
    assert by_name["x"].drifted
    assert by_name["y"].verdict == "no_drift"
    assert result.prediction is not None
    for column in [*result.features, result.prediction]:
        assert column.p_value is not None
        assert column.detectable is not None
        assert column.effect_interval is not None  # wasserstein and jensenshannon
    assert result.dataset.drifted_features == 1
    assert result.dataset.insufficient_share == 0
    metrics = result.metrics()
    assert metrics["feature.x.insufficient"] == 0
    assert metrics["feature.x.p_value"] == by_name["x"].p_value
    assert metrics["prediction.p_value"] == result.prediction.p_value
    small = run(settings, columns(20, 3), baseline)
    assert small.dataset.insufficient_share == 1
    assert small.metrics()["feature.y.insufficient"] == 1


def test_the_next_run_against_a_baseline_prepares_no_null() -> None:
    """The bootstrap nulls are prepared by a baseline's first calibrated run and only then:
    the next window of a size class already seen prepares none, and gets the same p-value from
    the same null; a window of another size class prepares its own, once."""
    baseline = profiles.profile(columns(3000, 1), SPECS)
    settings = DriftSettings.from_model({"verdict": "calibrated"}, timedelta(days=1))
    cache = calibration.NULL_CACHE
    before = cache.prepared
    first = run(settings, columns(2000, 2), baseline)
    prepared = cache.prepared - before
    assert prepared == 3  # x, y and the prediction (wasserstein; c is jensenshannon, per window)
    again = run(settings, columns(2000, 2), baseline)
    assert cache.prepared - before == prepared
    assert [f.p_value for f in again.features] == [f.p_value for f in first.features]
    run(settings, columns(1500, 3), baseline)  # 1500 rows: the 1000-row class, as 2000
    assert cache.prepared - before == prepared
    run(settings, columns(200, 4), baseline)  # the 181-row class: its own nulls
    assert cache.prepared - before == 2 * prepared
    run(settings, columns(5000, 5), baseline)
    run(settings, columns(190, 6), baseline)
    assert cache.prepared - before == 2 * prepared


def test_compute_under_evidently_leaves_the_calibrated_fields_null() -> None:
    baseline = profiles.profile(columns(3000, 1), SPECS)
    result = run(DriftSettings(), columns(100, 2), baseline)
    for column in [*result.features, result.prediction]:
        assert column is not None
        assert (column.p_value, column.verdict, column.detectable, column.effect_interval) == (
            None, None, None, None)  # fmt: skip
    assert result.dataset.insufficient_share is None
    assert result.metrics()["feature.x.insufficient"] is None
    assert result.metrics()["dataset.insufficient_share"] is None


@pytest.mark.skipif(
    "verdict" not in schemas.DriftSettings.model_fields,
    reason="the API takes drift.verdict once the models branch is merged",
)
def test_a_calibrated_model_runs_through_the_api(api: TestClient) -> None:
    model = create_model(api, features=MONITORED, window="1h",
                         drift={"verdict": "calibrated"})["name"]  # fmt: skip
    post(api, f"/api/v1/models/{model}/baselines",
         {"name": "training", "records": baseline_records(frame(3000, seed=1))}, 201)  # fmt: skip
    log(api, model, records(frame(40, seed=2), prefix="p"))
    run = post(api, f"/api/v1/models/{model}/runs",
               {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
    assert run["rows"] == 40
    for feature in run["features"]:
        assert feature["verdict"] in {"drift", "no_drift", "insufficient"}
        assert 0 <= feature["p_value"] <= 1
        assert feature["detectable"] is not None
    assert run["dataset"]["insufficient_share"] is not None
