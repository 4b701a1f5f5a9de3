/* driftwatch dashboard: draws each [data-chart] element from the page's JSON (#page-data) with
   Apache ECharts (vendored). Every chart instance is kept in window.driftwatch.charts, by name.
   Strings in the data came from traffic, rules or receivers: the tooltips' HTML holds them only
   through esc(), and nothing else here writes HTML (the page's CSP allows no inline script). */
"use strict";

window.driftwatch = { charts: {} };

const COLORS = { accent: "#4f46e5", baseline: "#94a3b8", current: "#4f46e5", bad: "#b91c1c",
                 warn: "#f59e0b", ok: "#15803d", grid: "#e4e7ef", muted: "#6b7185" };
const FONT = { fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" };

// a time in UTC; with seconds for windows shorter than a minute (``precise``) or a time that
// does not fall on a minute
function utc(iso, precise) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  const seconds = precise || d.getUTCSeconds() !== 0 ? `:${pad(d.getUTCSeconds())}` : "";
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
         `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${seconds}`;
}

// text for a tooltip's HTML: a feature named <img onerror=...> shows as its name
function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function num(value) {
  if (value === null || value === undefined) return "–";
  if (value !== 0 && Math.abs(value) < 1e-3) return Number(value).toExponential(1);
  if (Math.abs(value) >= 1000 || value === Math.round(value)) return value.toLocaleString("en");
  return Number(value).toPrecision(4).replace(/\.?0+$/, "");
}

// a log axis's labels: powers of ten as 1e-10, not a clipped 1.0e-10
function logLabel(value) {
  if (value >= 1e-3) return num(value);
  return Number(value).toExponential(0).replace("e-0", "e-").replace("e+", "e");
}

function plural(count, word) {
  return `${count.toLocaleString("en")} ${word}${count === 1 ? "" : "s"}`;
}

function make(el, name, option) {
  const chart = echarts.init(el, null, { renderer: "canvas" });
  chart.setOption({ textStyle: FONT, animation: false, useUTC: true, ...option });
  window.driftwatch.charts[name] = chart;
  window.addEventListener("resize", () => chart.resize());
  return chart;
}

function empty(el, text) {
  el.classList.add("no-data");
  const p = document.createElement("p");
  p.className = "muted empty-chart";
  p.textContent = text;
  el.replaceChildren(p);
}

const timeAxis = { type: "time", axisLabel: { hideOverlap: true }, splitLine: { show: false } };
// the page's range, so that a few windows are drawn where they lie in it; but from the first
// window with a run when that comes later (a model backfilled last month, seen over a year,
// is not a sliver at the right edge)
const rangeStart = (data) => {
  if (!data.range) return null;
  return data.first && Date.parse(data.first) > Date.parse(data.range[0]) ? data.first : data.range[0];
};
const rangeAxis = (data) => ({ ...timeAxis, min: rangeStart(data),
                               max: data.range ? data.range[1] : null });
const shareAxis = { type: "value", min: 0, max: 1, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` },
                    splitLine: { lineStyle: { color: COLORS.grid } } };
const grid = { left: 48, right: 20, top: 30, bottom: 30 };

function spark(el) {
  const series = JSON.parse(el.dataset.series || "[]");
  if (!series.length) {
    const note = document.createElement("span");
    note.className = "muted small";
    note.textContent = "no runs yet";
    el.replaceChildren(note);
    return;
  }
  make(el, `spark:${el.closest("[data-model]")?.dataset.model || ""}`, {
    grid: { left: 2, right: 2, top: 3, bottom: 3 },
    xAxis: { type: "time", show: false }, yAxis: { type: "value", min: 0, max: 1, show: false },
    series: [{ type: "line", data: series, showSymbol: false, lineStyle: { width: 1.5, color: COLORS.accent },
               areaStyle: { color: "rgba(79,70,229,.12)" } }],
    tooltip: { trigger: "axis", formatter: (p) => `${utc(p[0].value[0])}<br>${Math.round(p[0].value[1] * 100)}% drifted` },
  });
}

function heatmap(el, data) {
  const h = data.heatmap;
  if (!h || !h.cells.length) { empty(el, data.empty || "No runs in this range."); return; }
  const windows = h.mode === "windows";  // a column a window; else a column of several windows
  const drifted = h.cells.filter((c) => c[4]).map((c) => [c[0], c[1]]);
  // the calibrated verdict's "insufficient" (too few rows to tell), drawn hatched grey apart
  // from "no drift": a window's own verdict, or every window of a column's
  const unsure = (c) => !c[4] && (windows ? Boolean(c[6]) : c[5] !== null && c[5] !== undefined && c[5] >= 1);
  const untold = h.cells.filter(unsure);  // drawn over their cells (the first series has all)
  const narrow = el.clientWidth < 500;
  const cellAt = new Map(h.cells.map((c) => [`${c[0]},${c[1]}`, c]));
  const chart = make(el, "heatmap", {
    grid: { left: narrow ? 84 : 130, right: narrow ? 8 : 20, top: 10, bottom: 70 },
    xAxis: { type: "category", data: h.times, splitArea: { show: false },
             // a column a day or a week: its date (each starts at 00:00 UTC)
             axisLabel: { formatter: (v) => utc(v, data.precise).slice(5, data.point && data.point.kind === "span" ? 10 : undefined),
                          hideOverlap: true } },
    yAxis: { type: "category", data: h.features, inverse: true,
             axisLabel: { width: narrow ? 76 : 120, overflow: "truncate" } },
    visualMap: { min: 0, max: h.max, calculable: false, orient: "horizontal", left: "center", bottom: 0,
                 itemHeight: 160, textGap: 8, seriesIndex: 0,
                 text: windows ? ["far past threshold", "no drift"] : ["drifted in every window", "in none"],
                 inRange: { color: ["#eef2ff", "#c7d2fe", "#fcd34d", "#f97316", "#b91c1c"] } },
    tooltip: {
      formatter: (p) => {
        const cell = cellAt.get(`${p.value[0]},${p.value[1]}`);
        if (!cell) return "";
        const span = data.point && data.point.kind === "span";  // a column a day or a week
        const when = `${utc(h.times[cell[0]], data.precise)} UTC`;
        const head = `<b>${esc(h.features[cell[1]])}</b><br>` +
          (span ? `${esc(data.point.name || "span")} from ${when} (${plural(data.point.windows, "window")})<br>` : `${when}<br>`);
        const verdict = cell[4] ? '<br><b style="color:#b91c1c">drifted</b>' : "";
        if (!windows) {
          const few = cell[5] ? `<br>not enough rows to tell in ${Math.round(cell[5] * 100)}% of them` : "";
          return head + `drifted in ${Math.round(cell[2] * 100)}% of ${plural(cell[3], "window")}` +
                 ` (each by its run's test and threshold)` + few;
        }
        const test = h.tests[cell[5]];
        let calibrated = cell[8] !== null && cell[8] !== undefined ? `<br>p-value ${num(cell[8])}` : "";
        if (unsure(cell)) {
          calibrated += test.pvalue
            ? `<br><b>not enough rows to tell a change worth an alarm from noise</b>; drift at p ≤ ${num(cell[7])}`
            : `<br><b>not enough rows to tell a change of ${num(test.threshold)} from noise</b>; detectable ${num(cell[7])}`;
        }
        const bound = cell[9] !== null && cell[9] !== undefined && cell[9] > 0 ? `; ± ${num(cell[9])} from summaries` : "";
        return head + `${esc(test.stattest)}: ${num(cell[3])} (threshold ${num(test.threshold)}${bound})` + calibrated + verdict;
      },
    },
    series: [
      { type: "heatmap", data: h.cells.map((c) => [c[0], c[1], c[2]]), itemStyle: { borderColor: "#fff", borderWidth: 1 },
        emphasis: { itemStyle: { borderColor: "#111" } } },
      { type: "scatter", name: "drifted", data: drifted, symbolSize: 5, itemStyle: { color: "#111827" },
        silent: true, z: 3 },
      { type: "heatmap", name: "not enough rows", data: untold.map((c) => [c[0], c[1], c[2]]),
        itemStyle: { color: "#e2e8f0", borderColor: "#fff", borderWidth: 1,
                     decal: { symbol: "rect", symbolSize: 1, color: "#94a3b8", dashArrayX: [1, 0],
                              dashArrayY: [2, 4], rotation: Math.PI / 4 } },
        emphasis: { itemStyle: { borderColor: "#111" } }, z: 2 },
    ],
  });
  chart.on("click", (p) => {
    const feature = h.features[p.value[1]];
    const link = feature !== undefined && (data.feature_urls || {})[feature];
    if (link) window.location.href = link;
  });
}

// CONTRACT section 10: the last window's segments (rows) against its features (columns) for
// one metric of the features' entries; a click opens that segment's drift heatmap
function segments(el, data) {
  const m = data.segment_matrix;
  if (!m || !m.cells.length) { empty(el, "No segment in the last window."); return; }
  const known = m.cells.filter((c) => c[2] !== null && c[2] !== undefined);
  const values = known.map((c) => c[2]);
  const pvalue = m.metric === "p_value";
  const intensity = m.metric === "score";  // the score against its own threshold, as the heatmap
  const low = intensity ? 0 : values.length ? Math.min(...values) : 0;
  const high = intensity ? m.max : values.length ? Math.max(...values) : 1;
  const narrow = el.clientWidth < 500;
  const label = (i) => `${m.segments[i]} (${m.rows[i].toLocaleString("en")} rows)`;
  const chart = make(el, "segments", {
    grid: { left: narrow ? 110 : 190, right: narrow ? 8 : 20, top: 10, bottom: 90 },
    xAxis: { type: "category", data: m.features, axisLabel: { rotate: 30, hideOverlap: false } },
    yAxis: { type: "category", data: m.segments.map((_, i) => label(i)), inverse: true,
             axisLabel: { width: narrow ? 100 : 180, overflow: "truncate" } },
    visualMap: { min: pvalue ? 0 : low, max: pvalue ? 1 : Math.max(high, low + 1e-9),
                 calculable: false, orient: "horizontal", left: "center", bottom: 0,
                 itemHeight: 160, textGap: 8, seriesIndex: 0,
                 text: intensity ? ["far past threshold", "no drift"] : pvalue ? ["1", "0"] : [num(high), num(low)],
                 inRange: { color: pvalue ? ["#b91c1c", "#f97316", "#fcd34d", "#c7d2fe", "#eef2ff"]
                                          : ["#eef2ff", "#c7d2fe", "#fcd34d", "#f97316", "#b91c1c"] } },
    tooltip: {
      formatter: (p) => {
        const cell = m.cells.find((c) => c[0] === p.value[0] && c[1] === p.value[1]);
        if (!cell) return "";
        const share = m.drifted_share[cell[1]];
        const against = m.baseline[cell[1]] === "whole" ? "the whole baseline" : "its own segment of the baseline";
        const shown = intensity ? `${esc(cell[5])}: ${num(cell[4])} (threshold ${num(cell[6])})` : `${esc(m.metric)}: ${num(cell[2])}`;
        const few = cell[7] ? "<br><b>not enough rows to tell</b>" : "";
        return `<b>${esc(m.segments[cell[1]])}</b> · ${esc(m.features[cell[0]])}<br>${shown}${few}` +
               (cell[3] ? '<br><b style="color:#b91c1c">drifted</b>' : "") +
               `<br>segment drifted share ${share === null ? "–" : Math.round(share * 100) + "%"}, against ${against}`;
      },
    },
    series: [
      { type: "heatmap", data: known.map((c) => [c[0], c[1], c[2]]), itemStyle: { borderColor: "#fff", borderWidth: 1 },
        emphasis: { itemStyle: { borderColor: "#111" } } },
      { type: "scatter", name: "drifted", data: m.cells.filter((c) => c[3]).map((c) => [c[0], c[1]]),
        symbolSize: 5, itemStyle: { color: "#111827" }, silent: true, z: 3 },
      { type: "heatmap", name: "not enough rows", data: known.filter((c) => c[7] && !c[3]).map((c) => [c[0], c[1], c[2]]),
        itemStyle: { color: "#e2e8f0", borderColor: "#fff", borderWidth: 1,
                     decal: { symbol: "rect", symbolSize: 1, color: "#94a3b8", dashArrayX: [1, 0],
                              dashArrayY: [2, 4], rotation: Math.PI / 4 } },
        emphasis: { itemStyle: { borderColor: "#111" } }, z: 2 },
    ],
  });
  chart.on("click", (p) => {
    const segment = m.segments[p.value[1]];
    if (segment !== undefined && data.segment_url) {
      const query = new URLSearchParams(window.location.search);
      query.set("segment", segment);
      window.location.href = `${data.segment_url}?${query}`;
    }
  });
}

function drift(el, data) {
  const d = data.drifted_share;
  if (!d || !d.mean.length) { empty(el, data.empty || "No runs in this range."); return; }
  make(el, "drift", {
    grid, xAxis: rangeAxis(data), yAxis: shareAxis, legend: { top: 0, right: 0 },
    tooltip: { trigger: "axis", valueFormatter: (v) => `${Math.round(v * 100)}%` },
    series: [
      { name: data.point && data.point.kind === "span" ? `the ${data.point.name || "span"}` : "mean",
        type: "line", data: d.mean, showSymbol: d.mean.length < 60, lineStyle: { color: COLORS.accent },
        itemStyle: { color: COLORS.accent }, areaStyle: { color: "rgba(79,70,229,.08)" } },
      { name: "worst window", type: "line", data: d.max, showSymbol: false, lineStyle: { type: "dashed", width: 1, color: COLORS.bad },
        itemStyle: { color: COLORS.bad } },
    ],
  });
}

function accuracy(el, data) {
  const metrics = Object.entries(data.accuracy || {});
  if (!metrics.length && !(data.coverage || []).length) { empty(el, "No labels yet in this range."); return; }
  const palette = ["#4f46e5", "#0891b2", "#16a34a", "#db2777", "#ea580c", "#7c3aed"];
  make(el, "accuracy", {
    grid: { ...grid, right: 48 }, xAxis: rangeAxis(data), legend: { top: 0, type: "scroll" },
    yAxis: [{ type: "value", scale: true, splitLine: { lineStyle: { color: COLORS.grid } } },
            { ...shareAxis, name: "", position: "right", splitLine: { show: false } }],
    tooltip: { trigger: "axis", valueFormatter: (v) => num(v) },
    series: [
      ...metrics.map(([name, series], i) => ({ name, type: "line", data: series, showSymbol: series.length < 60,
                                               lineStyle: { color: palette[i % palette.length] },
                                               itemStyle: { color: palette[i % palette.length] } })),
      { name: "labeled", type: "bar", yAxisIndex: 1, data: data.coverage, barMaxWidth: 8,
        itemStyle: { color: "rgba(148,163,184,.35)" } },
    ],
  });
}

// the estimate (CBPE, or a regression's direct loss estimation) with its band, the realized
// metric, and label coverage below, for the metric the card's select names (the first listed)
function performance(el, data) {
  const estimated = data.estimated || {};
  // the contract's order (the page's JSON sorts its keys)
  const names = ["roc_auc", "accuracy", "f1", "precision", "recall", "mae", "rmse"].filter((name) => estimated[name]);
  const select = document.getElementById("estimated-metric");
  if (!names.length) {
    if (select) select.hidden = true;
    empty(el, "No estimate in this range: it needs a baseline with labels (and a classifier's scores or probabilities; a regression's numeric predictions).");
    return;
  }
  if (select && !select.options.length) {
    for (const name of names) select.add(new Option(name, name));
    select.addEventListener("change", () => {
      window.driftwatch.charts.performance.dispose();
      performance(el, data);
    });
  }
  const metric = select ? select.value || names[0] : names[0];
  const e = estimated[metric];
  const upper = new Map(e.upper.map(([t, v]) => [t, v]));
  const band = e.lower.map(([t, v]) => [t, (upper.get(t) ?? v) - v]);
  const symbols = e.value.length < 60;
  make(el, "performance", {
    grid: [{ left: 48, right: 20, top: 30, height: "58%" }, { left: 48, right: 20, top: "76%", bottom: 24 }],
    xAxis: [{ ...rangeAxis(data) }, { ...rangeAxis(data), gridIndex: 1, axisLabel: { show: false } }],
    yAxis: [{ type: "value", scale: true, name: metric, splitLine: { lineStyle: { color: COLORS.grid } } },
            { ...shareAxis, gridIndex: 1, max: 1, splitNumber: 1 }],
    legend: { top: 0, right: 0, data: ["estimated", "95% band", "realized", "labeled"] },
    tooltip: { trigger: "axis", formatter: (items) => {
      const low = items.find((i) => i.seriesName === "band-low");
      const lines = items.filter((i) => i.seriesName !== "band-low").map((i) => {
        const value = i.value[1];
        const shown = i.seriesName === "95% band" && low
          ? `${num(low.value[1])} – ${num(low.value[1] + value)}`
          : i.seriesName === "labeled" ? `${Math.round(value * 100)}%` : num(value);
        return `${i.marker}${esc(i.seriesName)}: ${esc(shown)}`;
      });
      return [`${esc(metric)}, ${esc(utc(items[0].value[0], data.precise))} UTC`, ...lines].join("<br>");
    } },
    axisPointer: { link: [{ xAxisIndex: "all" }] },
    series: [
      { name: "band-low", type: "line", data: e.lower, stack: "band", stackStrategy: "all", symbol: "none",
        lineStyle: { opacity: 0 } },
      { name: "95% band", type: "line", data: band, stack: "band", stackStrategy: "all", symbol: "none",
        lineStyle: { opacity: 0 }, areaStyle: { color: "rgba(79,70,229,.16)" }, itemStyle: { color: "rgba(79,70,229,.3)" } },
      { name: "estimated", type: "line", data: e.value, showSymbol: symbols,
        lineStyle: { color: COLORS.accent, type: "dashed" }, itemStyle: { color: COLORS.accent } },
      { name: "realized", type: "line", data: (data.accuracy || {})[metric] || [], showSymbol: symbols,
        lineStyle: { color: COLORS.ok }, itemStyle: { color: COLORS.ok } },
      { name: "labeled", type: "bar", xAxisIndex: 1, yAxisIndex: 1, data: data.coverage || [], barMaxWidth: 8,
        itemStyle: { color: "rgba(148,163,184,.6)" } },
    ],
  });
}

// CONTRACT section 10: each served version's share of the rows over time (a rollout), and
// below it each shadow version's difference from the served model in the headline metric
// with its paired 95% band (0: as good as the served model)
function versions(el, data) {
  const v = data.versions || { served: {}, shadow: {} };
  const served = Object.entries(v.served || {});
  const shadows = Object.entries(v.shadow || {}).filter(([, s]) => s.value.length);
  if (!served.length && !shadows.length) { empty(el, "No model_version in this range."); return; }
  const palette = ["#4f46e5", "#0891b2", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#ca8a04", "#64748b"];
  const both = served.length && shadows.length;
  const grids = both
    ? [{ left: 56, right: 20, top: 30, height: "34%" }, { left: 56, right: 20, top: "58%", bottom: 28 }]
    : [{ left: 56, right: 20, top: 30, bottom: 28 }];
  const bottom = both ? 1 : 0;
  const series = served.map(([name, points], i) => ({
    name, type: "line", stack: "served", data: points, symbol: "none", step: "middle",
    lineStyle: { width: 0 }, areaStyle: { color: palette[i % palette.length], opacity: 0.75 },
    itemStyle: { color: palette[i % palette.length] },
  }));
  shadows.forEach(([name, s], i) => {
    const color = palette[(served.length + i) % palette.length];
    const upper = new Map(s.upper.map(([t, value]) => [t, value]));
    const band = s.lower.map(([t, value]) => [t, (upper.get(t) ?? value) - value]);
    series.push(
      { name: `${name} low`, type: "line", xAxisIndex: bottom, yAxisIndex: bottom, data: s.lower,
        stack: `band-${name}`, stackStrategy: "all", symbol: "none", lineStyle: { opacity: 0 }, tooltip: { show: false } },
      { name: `${name} 95%`, type: "line", xAxisIndex: bottom, yAxisIndex: bottom, data: band,
        stack: `band-${name}`, stackStrategy: "all", symbol: "none", lineStyle: { opacity: 0 },
        areaStyle: { color, opacity: 0.18 }, itemStyle: { color }, tooltip: { show: false } },
      { name: `${name} − served`, type: "line", xAxisIndex: bottom, yAxisIndex: bottom, data: s.value,
        showSymbol: s.value.length < 60, lineStyle: { color }, itemStyle: { color },
        markLine: i ? undefined : { silent: true, symbol: "none", data: [{ yAxis: 0 }],
                                    lineStyle: { color: COLORS.muted, type: "dashed", width: 1 },
                                    label: { show: false } } },
    );
  });
  const xAxis = [{ ...rangeAxis(data) }];
  const yAxis = [];
  if (served.length) yAxis.push({ ...shareAxis, name: "share of rows", nameTextStyle: { align: "left" } });
  if (shadows.length) {
    if (both) xAxis.push({ ...rangeAxis(data), gridIndex: 1 });
    yAxis.push({ type: "value", scale: true, gridIndex: bottom, name: `${v.metric} − served`,
                 nameTextStyle: { align: "left" }, splitLine: { lineStyle: { color: COLORS.grid } } });
  }
  make(el, "versions", {
    grid: grids, xAxis, yAxis, axisPointer: { link: [{ xAxisIndex: "all" }] },
    legend: { top: 0, type: "scroll", data: [...served.map(([name]) => name),
                                              ...shadows.map(([name]) => `${name} − served`)] },
    tooltip: { trigger: "axis", valueFormatter: (value) => num(value) },
    series,
  });
}

// an embedding's vectors on the baseline's first two principal components (CONTRACT section 11)
function projection(el, name, p, title) {
  const pct = (share) => `${(share * 100).toFixed(1)}%`;
  make(el, name, {
    grid: { ...grid, left: 44, right: 12, bottom: 40, containLabel: true }, legend: { top: 0, right: 0 },
    xAxis: { type: "value", scale: true, name: `PC 1 (${pct(p.explained[0])} of variance)`, nameLocation: "middle", nameGap: 24,
             splitLine: { lineStyle: { color: COLORS.grid } } },
    yAxis: { type: "value", scale: true, name: `PC 2 (${pct(p.explained[1])})`, nameLocation: "middle", nameGap: 28, nameRotate: 90,
             splitLine: { lineStyle: { color: COLORS.grid } } },
    tooltip: { trigger: "item", formatter: (i) => `${esc(i.seriesName)}: ${num(i.value[0])}, ${num(i.value[1])}` },
    series: [
      { name: "baseline", type: "scatter", data: p.reference, symbolSize: 4, itemStyle: { color: COLORS.baseline, opacity: 0.6 } },
      { name: title, type: "scatter", data: p.current, symbolSize: 4, itemStyle: { color: COLORS.current, opacity: 0.6 } },
    ],
  });
}

// CONTRACT section 11: the classifier's AUC above, the reconstruction error below, each with
// its threshold (dashed) and the windows it called drifted (red points)
function multivariate(el, data) {
  const m = data.multivariate || {};
  const c = m.classifier || {}, r = m.reconstruction || {};
  if (!(c.score || []).length && !(r.score || []).length) {
    empty(el, "No multivariate scores in this range: they need two or more features, a baseline stored since they exist, and windows of 100 rows or more computed from rows.");
    return;
  }
  const drifted = (d) => {
    const at = new Map((d.drifted || []).map(([t, v]) => [t, v]));
    return (d.score || []).filter(([t]) => (at.get(t) || 0) > 0);
  };
  const symbols = (c.score || []).length < 60;
  // a new category can raise the error tenfold: a log axis keeps the smaller changes visible
  const errors = [...(r.score || []), ...(r.threshold || [])].map(([, v]) => v).filter((v) => v > 0);
  const logErrors = errors.length > 0 && Math.max(...errors) / Math.min(...errors) > 5;
  const line = (name, series, color, axis, dashed) => ({
    name, type: "line", data: series || [], xAxisIndex: axis, yAxisIndex: axis, showSymbol: !dashed && symbols,
    step: dashed ? "middle" : false, lineStyle: { color, type: dashed ? "dashed" : "solid", width: dashed ? 1 : 2 },
    itemStyle: { color },
  });
  make(el, "multivariate", {
    grid: [{ left: 56, right: 20, top: 30, height: "36%" }, { left: 56, right: 20, top: "60%", bottom: 24 }],
    xAxis: [{ ...rangeAxis(data), axisLabel: { show: false } }, { ...rangeAxis(data), gridIndex: 1 }],
    yAxis: [{ type: "value", scale: true, name: "classifier AUC", nameTextStyle: { align: "left" },
              splitLine: { lineStyle: { color: COLORS.grid } } },
            { type: logErrors ? "log" : "value", scale: true, gridIndex: 1,
              ...(logErrors ? { min: (v) => v.min / 1.3, max: (v) => v.max * 1.3 } : {}),
              name: logErrors ? "reconstruction error (log scale)" : "reconstruction error", nameTextStyle: { align: "left" },
              axisLabel: { formatter: (v) => num(v), showMinLabel: !logErrors, showMaxLabel: !logErrors }, splitLine: { lineStyle: { color: COLORS.grid } } }],
    legend: { top: 0, right: 0, data: ["classifier AUC", "reconstruction error", "threshold", "drifted"] },
    tooltip: { trigger: "axis", valueFormatter: (v) => num(v) },
    axisPointer: { link: [{ xAxisIndex: "all" }] },
    series: [
      line("classifier AUC", c.score, COLORS.accent, 0, false),
      line("threshold", c.threshold, "#64748b", 0, true),
      line("reconstruction error", r.score, "#0891b2", 1, false),
      line("threshold", r.threshold, "#64748b", 1, true),
      { name: "drifted", type: "scatter", data: drifted(c), symbolSize: 7, itemStyle: { color: COLORS.bad }, z: 3 },
      { name: "drifted", type: "scatter", data: drifted(r), xAxisIndex: 1, yAxisIndex: 1, symbolSize: 7,
        itemStyle: { color: COLORS.bad }, z: 3 },
    ],
  });
}

function bars(el, name, dist, title, missing) {
  if (!dist) { empty(el, missing || "No distribution stored for this window."); return; }
  if (dist.projection) { projection(el, name, dist.projection, title); return; }
  const share = (counts, extra) => {
    const total = counts.reduce((a, b) => a + b, 0) + (extra || []).reduce((a, b) => a + b, 0);
    return counts.map((c) => (total ? c / total : 0));
  };
  let labels, reference, current;
  if (dist.categories) {
    labels = [...dist.categories, ...(dist.other[0] || dist.other[1] ? ["(other)"] : [])];
    const refCounts = [...dist.reference, ...(labels.length > dist.categories.length ? [dist.other[0]] : [])];
    const curCounts = [...dist.current, ...(labels.length > dist.categories.length ? [dist.other[1]] : [])];
    reference = share(refCounts); current = share(curCounts);
  } else {
    const e = dist.edges;
    labels = e.slice(0, -1).map((lo, i) => `${num(lo)} – ${num(e[i + 1])}`);
    const refCounts = [dist.below[0], ...dist.reference, dist.above[0]];
    const curCounts = [dist.below[1], ...dist.current, dist.above[1]];
    labels = [`< ${num(e[0])}`, ...labels, `> ${num(e[e.length - 1])}`];
    reference = share(refCounts); current = share(curCounts);
  }
  make(el, name, {
    grid: { ...grid, bottom: 60 }, legend: { top: 0, right: 0 },
    xAxis: { type: "category", data: labels, axisLabel: { rotate: 35, fontSize: 10, hideOverlap: true } },
    yAxis: { ...shareAxis, max: null },
    tooltip: { trigger: "axis", valueFormatter: (v) => `${(v * 100).toFixed(1)}%` },
    series: [
      { name: "baseline", type: "bar", data: reference, itemStyle: { color: COLORS.baseline }, barGap: "5%" },
      { name: title, type: "bar", data: current, itemStyle: { color: COLORS.current } },
    ],
  });
}

// each test the feature's runs used is a series, with its runs' own thresholds as a line:
// p-values on a log axis, distances on a linear one
function score(el, data) {
  if (data.mode === "share") { windowShare(el, data); return; }
  if (!data.scores.length) { empty(el, "No tested window in this range."); return; }
  const kinds = [...new Set(data.scores.map((s) => s.pvalue))];
  const axisOf = (pvalue) => kinds.indexOf(pvalue);
  const palette = ["#4f46e5", "#0891b2", "#7c3aed", "#16a34a"];
  const series = [];
  data.scores.forEach((s, i) => {
    const color = palette[i % palette.length];
    const label = s.label || `${s.stattest} ${s.pvalue ? "p-value" : "distance"}`;
    series.push({ name: label, type: "line", yAxisIndex: axisOf(s.pvalue), showSymbol: true,
                  data: s.points.map(([t, v, , d, few]) => ({ value: [t, s.pvalue ? Math.max(v, 1e-300) : v],
                                                             drifted: d, few,
                                                             ...(few ? { symbol: "emptyCircle" } : {}) })),
                  symbolSize: (v, p) => (p.data.drifted ? 7 : p.data.few ? 6 : 4), lineStyle: { color },
                  itemStyle: { color: (p) => (p.data.drifted ? COLORS.bad : p.data.few ? COLORS.baseline : color) } });
    series.push({ name: `${s.stattest} threshold`, type: "line", step: "middle", yAxisIndex: axisOf(s.pvalue),
                  data: s.points.map(([t, , threshold]) => [t, threshold]), showSymbol: false,
                  lineStyle: { color: COLORS.bad, type: "dashed", width: 1 }, itemStyle: { color: COLORS.bad } });
  });
  make(el, "score", {
    grid: { ...grid, left: 12, right: 12, containLabel: true }, xAxis: rangeAxis(data),
    legend: { top: 0, right: 0, type: "scroll" },
    yAxis: kinds.map((pvalue, i) => ({
      type: pvalue ? "log" : "value", scale: !pvalue, position: i ? "right" : "left",
      splitLine: { show: i === 0, lineStyle: { color: COLORS.grid } },
      axisLabel: { formatter: (v) => (pvalue ? logLabel(v) : num(v)) } })),
    tooltip: { trigger: "axis", formatter: (items) => {
      const lines = items.map((p) => {
        const drifted = p.data && p.data.drifted ? ' <b style="color:#b91c1c">drifted</b>'
          : p.data && p.data.few ? " <b>not enough rows to tell</b>" : "";
        return `${p.marker}${esc(p.seriesName)}: ${num(p.value[1])}${drifted}`;
      });
      const span = data.point && data.point.kind === "span";
      const when = `${utc(items[0].value[0], data.precise)} UTC`;
      return [span ? `${esc(data.point.name || "span")} from ${when}` : when, ...lines].join("<br>");
    } },
    series,
  });
}

// ranges of more windows than columns: the share of each column's windows whose run found
// the feature drifted
function windowShare(el, data) {
  if (!data.drifted_share.length) { empty(el, "No tested window in this range."); return; }
  make(el, "score", {
    grid, xAxis: rangeAxis(data), yAxis: shareAxis, legend: { top: 0, right: 0 },
    tooltip: { trigger: "axis", formatter: (items) => {
      const [t, share, count] = items[0].value;
      return `${utc(t, data.precise)} UTC<br>drifted in ${Math.round(share * 100)}% of ${plural(count, "window")}`;
    } },
    series: [{ name: "windows drifted", type: "bar", data: data.drifted_share, barMaxWidth: 8,
               itemStyle: { color: (p) => (p.value[1] > 0 ? COLORS.bad : COLORS.baseline) } }],
  });
}

function missing(el, data) {
  if (!data.missing_share.length) { empty(el, "No runs in this range."); return; }
  make(el, "missing", {
    grid: { ...grid, top: 10 }, xAxis: rangeAxis(data), yAxis: { ...shareAxis, max: null },
    tooltip: { trigger: "axis", valueFormatter: (v) => `${(v * 100).toFixed(1)}%` },
    series: [{ name: "missing", type: "line", data: data.missing_share, showSymbol: false,
               lineStyle: { color: COLORS.warn }, areaStyle: { color: "rgba(245,158,11,.12)" } }],
  });
}

const DRAW = {
  spark: (el) => spark(el),
  heatmap, drift, accuracy, performance, multivariate, score, missing, versions, segments,
  prediction: (el, data) => bars(el, "prediction", data.prediction, "last window",
                                   data.prediction_missing || data.empty),
  distribution: (el, data) => bars(el, "distribution", data.distribution, "this window"),
};

document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("page-data");
  const data = source ? JSON.parse(source.textContent) : {};
  for (const el of document.querySelectorAll(".time[data-time]")) {
    el.textContent = `${utc(el.dataset.time, data.precise || el.dataset.precise === "s")} UTC`;
  }
  for (const el of document.querySelectorAll("[data-chart]")) DRAW[el.dataset.chart](el, data);
  // a select that submits its form when changed (no inline handlers: the CSP allows none)
  for (const el of document.querySelectorAll("select[data-submit-on-change]")) {
    el.addEventListener("change", () => el.form.submit());
  }
  document.body.dataset.chartsReady = "true";
});
