/* driftwatch dashboard: draws each [data-chart] element from the page's JSON (#page-data) with
   Apache ECharts (vendored). Every chart instance is kept in window.driftwatch.charts, by name. */
"use strict";

window.driftwatch = { charts: {} };

const COLORS = { accent: "#4f46e5", baseline: "#94a3b8", current: "#4f46e5", bad: "#b91c1c",
                 warn: "#f59e0b", ok: "#15803d", grid: "#e4e7ef", muted: "#6b7185" };
const FONT = { fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" };

function utc(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
         `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

function num(value) {
  if (value === null || value === undefined) return "–";
  if (value !== 0 && Math.abs(value) < 1e-3) return Number(value).toExponential(1);
  if (Math.abs(value) >= 1000 || value === Math.round(value)) return value.toLocaleString("en");
  return Number(value).toPrecision(4).replace(/\.?0+$/, "");
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
  el.innerHTML = `<p class="muted" style="padding:30px 0;text-align:center">${text}</p>`;
}

const timeAxis = { type: "time", axisLabel: { hideOverlap: true }, splitLine: { show: false } };
const shareAxis = { type: "value", min: 0, max: 1, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` },
                    splitLine: { lineStyle: { color: COLORS.grid } } };
const grid = { left: 48, right: 20, top: 30, bottom: 30 };

function spark(el) {
  const series = JSON.parse(el.dataset.series || "[]");
  if (!series.length) { el.innerHTML = '<span class="muted small">no runs yet</span>'; return; }
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
  if (!h || !h.cells.length) { empty(el, "No runs in this range."); return; }
  const drifted = h.cells.filter((c) => c[4]).map((c) => [c[0], c[1]]);
  const chart = make(el, "heatmap", {
    grid: { left: 130, right: 20, top: 10, bottom: 70 },
    xAxis: { type: "category", data: h.times, axisLabel: { formatter: (v) => utc(v).slice(5), hideOverlap: true },
             splitArea: { show: false } },
    yAxis: { type: "category", data: h.features, inverse: true, axisLabel: { width: 120, overflow: "truncate" } },
    visualMap: { min: 0, max: h.max, calculable: false, orient: "horizontal", left: "center", bottom: 0,
                 itemHeight: 160, text: ["far past threshold", "no drift"], textGap: 8,
                 inRange: { color: ["#eef2ff", "#c7d2fe", "#fcd34d", "#f97316", "#b91c1c"] }, seriesIndex: 0 },
    tooltip: {
      formatter: (p) => {
        const cell = h.cells.find((c) => c[0] === p.value[0] && c[1] === p.value[1]);
        if (!cell) return "";
        const feature = h.features[cell[1]];
        const test = h.tests[feature] || {};
        return `<b>${feature}</b><br>${utc(h.times[cell[0]])} UTC<br>` +
               `${test.stattest}: ${num(cell[3])} (threshold ${num(test.threshold)})` +
               (cell[4] ? '<br><b style="color:#b91c1c">drifted</b>' : "");
      },
    },
    series: [
      { type: "heatmap", data: h.cells.map((c) => [c[0], c[1], c[2]]), itemStyle: { borderColor: "#fff", borderWidth: 1 },
        emphasis: { itemStyle: { borderColor: "#111" } } },
      { type: "scatter", name: "drifted", data: drifted, symbolSize: 5, itemStyle: { color: "#111827" },
        silent: true, z: 3 },
    ],
  });
  chart.on("click", (p) => {
    const feature = h.features[p.value[1]];
    if (feature) window.location.href = `${window.location.pathname}/features/${encodeURIComponent(feature)}`;
  });
}

function drift(el, data) {
  const d = data.drifted_share;
  if (!d || !d.mean.length) { empty(el, "No runs in this range."); return; }
  make(el, "drift", {
    grid, xAxis: timeAxis, yAxis: shareAxis, legend: { top: 0, right: 0 },
    tooltip: { trigger: "axis", valueFormatter: (v) => `${Math.round(v * 100)}%` },
    series: [
      { name: "mean", type: "line", data: d.mean, showSymbol: d.mean.length < 60, lineStyle: { color: COLORS.accent },
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
    grid: { ...grid, right: 48 }, xAxis: timeAxis, legend: { top: 0, type: "scroll" },
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

function bars(el, name, dist, title) {
  if (!dist) { empty(el, "No distribution stored for this window."); return; }
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

function score(el, data) {
  if (!data.score.length) { empty(el, "No runs in this range."); return; }
  const drifted = new Set(data.drifted_times);
  make(el, "score", {
    grid, xAxis: timeAxis, legend: { top: 0, right: 0 },
    yAxis: { type: data.pvalue ? "log" : "value", scale: true, splitLine: { lineStyle: { color: COLORS.grid } },
             axisLabel: { formatter: (v) => num(v) } },
    tooltip: { trigger: "axis", valueFormatter: (v) => num(v) },
    series: [
      { name: data.pvalue ? "p-value (worst)" : "distance (worst)", type: "line",
        data: data.score.map(([t, v]) => [t, data.pvalue ? Math.max(v, 1e-300) : v]),
        showSymbol: true, symbolSize: (v) => (drifted.has(v[0]) ? 7 : 3),
        itemStyle: { color: (p) => (drifted.has(p.value[0]) ? COLORS.bad : COLORS.accent) },
        lineStyle: { color: COLORS.accent },
        markLine: data.threshold === null ? undefined : {
          symbol: "none", label: { formatter: `threshold ${num(data.threshold)}`, position: "insideEndTop" },
          lineStyle: { color: COLORS.bad, type: "dashed" }, data: [{ yAxis: data.threshold }] } },
    ],
  });
}

function missing(el, data) {
  if (!data.missing_share.length) { empty(el, "No runs in this range."); return; }
  make(el, "missing", {
    grid: { ...grid, top: 10 }, xAxis: timeAxis, yAxis: { ...shareAxis, max: null },
    tooltip: { trigger: "axis", valueFormatter: (v) => `${(v * 100).toFixed(1)}%` },
    series: [{ name: "missing", type: "line", data: data.missing_share, showSymbol: false,
               lineStyle: { color: COLORS.warn }, areaStyle: { color: "rgba(245,158,11,.12)" } }],
  });
}

const DRAW = {
  spark: (el) => spark(el),
  heatmap, drift, accuracy, score, missing,
  prediction: (el, data) => bars(el, "prediction", data.prediction, "last window"),
  distribution: (el, data) => bars(el, "distribution", data.distribution, "this window"),
};

document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("page-data");
  const data = source ? JSON.parse(source.textContent) : {};
  for (const el of document.querySelectorAll(".time[data-time]")) el.textContent = `${utc(el.dataset.time)} UTC`;
  for (const el of document.querySelectorAll("[data-chart]")) DRAW[el.dataset.chart](el, data);
  document.body.dataset.chartsReady = "true";
});
