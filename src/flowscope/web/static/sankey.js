// Sankey: the heaviest paths between two or three dimensions.
"use strict";

async function setup() {
  const catalogue = await Page.api("dimensions");
  const names = catalogue.dimensions.map((d) => d.name);
  for (const id of ["d1", "d2", "d3"]) Page.options(id, names);
  Page.options("unit", Object.keys(catalogue.units));
  for (const id of ["d1", "d2", "d3", "unit", "count"]) Page.bind(id, id);
}

async function render() {
  const by = [Page.get("d1"), Page.get("d2"), Page.get("d3")].filter((d) => d);
  const data = await Page.api("sankey", { ...Page.window(), by: by.join(","), unit: Page.get("unit"), count: Page.get("count") });
  const trace = {
    type: "sankey", orientation: "h", valueformat: ".3s", valuesuffix: " " + data.unit,
    node: { label: data.nodes.map((n) => n.name), pad: 12, thickness: 16,
      customdata: data.nodes.map((n) => n.dimension), hovertemplate: "%{customdata} %{label}: %{value}<extra></extra>" },
    link: { source: data.links.map((l) => l.source), target: data.links.map((l) => l.target), value: data.links.map((l) => l.value) },
  };
  await plotlyReady;
  await Plotly.react("chart", [trace], { ...PLOT_LAYOUT, margin: { l: 10, r: 10, t: 10, b: 10 } }, PLOT_CONFIG);
}

Page.start("sankey", { d1: "proto", d2: "dst_port", d3: "", unit: "bps", count: "30" }, render, setup);
