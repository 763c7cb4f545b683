// Top-N: the table flowscope top prints, and a bar chart of its metric.
"use strict";

async function setup() {
  const catalogue = await Page.api("dimensions");
  Page.options("by", catalogue.top_groupings);
  Page.options("metric", catalogue.top_metrics);
  for (const id of ["by", "metric", "count"]) Page.bind(id, id);
}

async function render() {
  const metric = Page.get("metric");
  const data = await Page.api("top", { ...Page.window(), by: Page.get("by"), metric, count: Page.get("count") });
  table(document.getElementById("table"), data);
  const keys = data.columns.slice(0, data.columns.indexOf("flows"));
  const labels = data.rows.map((row) => keys.map((k) => row[data.columns.indexOf(k)]).join(" ")).reverse();
  const values = data.rows.map((row) => row[data.columns.indexOf(metric)]).reverse();
  const trace = { type: "bar", orientation: "h", x: values, y: labels, marker: { color: "#4fa3e0" }, hovertemplate: "%{x:,}<extra></extra>" };
  const layout = { ...PLOT_LAYOUT, margin: { l: 260, r: 20, t: 10, b: 40 }, xaxis: { title: { text: metric }, tickformat: ".3s" }, yaxis: { automargin: true } };
  await plotlyReady;
  await Plotly.react("chart", [trace], layout, PLOT_CONFIG);
}

Page.start("top", { by: "src", metric: "bytes", count: "10" }, render, setup);
