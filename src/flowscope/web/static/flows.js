// Flow search: the flows that pass the filter, newest first, a page at a time.
"use strict";

const PAGE_ROWS = 100;

async function render() {
  const offset = Number(Page.get("offset"));
  const data = await Page.api("flows", { ...Page.window(), limit: PAGE_ROWS, offset });
  table(document.getElementById("table"), data);
  document.getElementById("newer").disabled = offset === 0;
  document.getElementById("older").disabled = !data.more;
  document.getElementById("page").textContent = data.rows.length ? `flows ${offset + 1}-${offset + data.rows.length}` : "";
}

document.getElementById("newer").addEventListener("click", () => Page.set({ offset: Math.max(0, Number(Page.get("offset")) - PAGE_ROWS) }));
document.getElementById("older").addEventListener("click", () => Page.set({ offset: Number(Page.get("offset")) + PAGE_ROWS }));
Page.start("flows", { offset: "0" }, render);
