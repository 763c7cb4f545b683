// Traffic over time: stacked areas (or lines) of the top series by a dimension, plus "Other".
"use strict";

const UNIT_SUFFIX = { bps: "bps", pps: "pps", fps: "flows/s" };

async function setup() {
  const catalogue = await Page.api("dimensions");
  Page.options("by", catalogue.dimensions.map((d) => d.name));
  Page.options("unit", Object.keys(catalogue.units));
  for (const [id, key] of [["by", "by"], ["unit", "unit"], ["count", "count"], ["kind", "kind"], ["previous", "previous"]]) {
    Page.bind(id, key);
  }
}

async function render() {
  const unit = Page.get("unit");
  const data = await Page.api("timeseries", {
    ...Page.window(), by: Page.get("by"), unit, count: Page.get("count"), previous: Page.get("previous") === "1",
  });
  const stacked = Page.get("kind") === "area";
  const traces = data.series.map((series) => ({
    x: data.times, y: series.values, name: series.name, type: "scatter", mode: "lines",
    line: { width: stacked ? 0.5 : 1.5, shape: "hv" }, ...(stacked ? { stackgroup: "traffic" } : {}),
    hovertemplate: "%{y:.3s}" + UNIT_SUFFIX[unit],
  }));
  if (data.previous) {
    traces.push({
      x: data.times, y: data.previous, name: "previous period (total)", type: "scatter", mode: "lines",
      line: { dash: "dot", color: "#333", width: 1.5, shape: "hv" }, hovertemplate: "%{y:.3s}" + UNIT_SUFFIX[unit],
    });
  }
  const layout = {
    ...PLOT_LAYOUT, hovermode: "x unified", showlegend: true,
    yaxis: { title: { text: UNIT_SUFFIX[unit] + " (" + data.step_seconds + " s buckets)" }, tickformat: ".3s", rangemode: "tozero" },
  };
  await plotlyReady;
  await Plotly.react("chart", traces, layout, PLOT_CONFIG);
}

Page.start("traffic", { by: "proto", unit: "bps", count: "10", kind: "area", previous: "0" }, render, setup);
