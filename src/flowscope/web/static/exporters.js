// Exporter health: what the collector recorded (flowscope exporters), refreshed with the page.
"use strict";

function counts(mapping) {
  return Object.entries(mapping).filter(([, n]) => n).map(([unit, n]) => `${n.toLocaleString()} ${unit}`).join(", ") || "0";
}

function sampling(entries) {
  return (entries || []).map((e) => `${e.rate ? "1:" + e.rate.toLocaleString() + " " : ""}${e.source} (${e.flows.toLocaleString()})`).join(", ");
}

function seen(ns) {
  if (!ns) return "";
  return new Date(ns / 1e6).toISOString().replace(".000", "");
}

async function render() {
  const health = await Page.api("exporters");
  document.getElementById("none").hidden = health.exporters.length > 0 || Object.keys(health.listeners).length > 0;
  table(document.getElementById("exporters"), {
    columns: ["exporter", "protocol", "datagrams", "flows", "lost", "late", "restarts", "decode errors", "sampling", "first seen", "last seen"],
    rows: health.exporters.map((e) => [e.exporter, e.protocol, e.datagrams, e.flows, counts(e.lost), counts(e.late),
      e.resets, counts(e.errors), sampling(e.sampling), seen(e.first_seen_ns), seen(e.last_seen_ns)]),
  }, { empty: "no exporter" });
  table(document.getElementById("listeners"), {
    columns: ["listener", "datagrams", "bytes", "socket drops", "receive buffer", "processes"],
    rows: Object.entries(health.listeners).map(([name, l]) => [name, l.datagrams, l.bytes, l.kernel_drops, l.receive_buffer, l.processes]),
  }, { empty: "no listener (exports read from captures have none)" });
  const rows = [
    ...Object.entries(health.templates).map(([name, n]) => ["templates: " + name, n]),
    ...Object.entries(health.skips).map(([name, n]) => ["skipped: " + name, n]),
    ...Object.entries(health.rows_written).map(([name, n]) => ["rows written: " + name, n]),
  ];
  table(document.getElementById("templates"), { columns: ["what", "count"], rows }, { empty: "nothing recorded" });
}

Page.start("exporters", {}, render);
