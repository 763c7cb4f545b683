// Store information: the lake's tables, files, rows, size and time span.
"use strict";

async function render() {
  const store = await Page.api("store");
  const summary = document.getElementById("summary");
  summary.replaceChildren(element("p", {
    textContent: `lake ${store.lake}` + (store.first_flow ? `: flows from ${store.first_flow} to ${store.last_flow}` : ": no flows yet"),
  }));
  table(document.getElementById("tables"), {
    columns: ["table", "partitions", "files", "rows", "MiB", "first day", "last day"],
    rows: store.tables.map((t) => [t.table, t.partitions, t.files, t.rows, Number((t.bytes / 1048576).toFixed(1)), t.first_day, t.last_day]),
  });
}

Page.start("store", {}, render);
