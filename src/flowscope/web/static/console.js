// flowscope console: what every page shares. The page's state lives in the query string (shareable URLs);
// the header (pages, time range, filter, auto-refresh) is built here; data comes only from /api.
"use strict";

const PAGES = [
  ["traffic", "Traffic"], ["sankey", "Sankey"], ["top", "Top-N"], ["flows", "Flow search"],
  ["exporters", "Exporters"], ["store", "Store"],
];
const RANGES = ["15m", "1h", "6h", "24h", "2d", "3d", "7d", "30d"];
const REFRESH = [["0", "off"], ["10", "10 s"], ["30", "30 s"], ["60", "1 min"], ["300", "5 min"]];
const SHARED = { since: "24h", until: "", filter: "", refresh: "0" };

// plotly.js (4.8 MB, about 1.1 s to parse in headless chromium) loads async on the chart pages, so the page asks
// for its data meanwhile; drawing waits for it. Pages without charts do not load it at all.
const plotlyReady = new Promise((resolve, reject) => {
  const script = document.querySelector('script[src$="plotly.min.js"]');
  if (!script || window.Plotly) {
    resolve();
    return;
  }
  script.addEventListener("load", () => resolve(), { once: true });
  script.addEventListener("error", () => reject(new Error("plotly.js did not load")), { once: true });
});

const Page = {
  defaults: { ...SHARED },
  render: null,
  timer: null,

  // page state: the query string over the defaults
  get(key) {
    const value = new URLSearchParams(location.search).get(key);
    return value === null ? this.defaults[key] : value;
  },

  set(changes, { render = true } = {}) {
    const params = new URLSearchParams(location.search);
    for (const [key, value] of Object.entries(changes)) {
      if (value === null || value === undefined || String(value) === String(this.defaults[key])) {
        params.delete(key);
      } else {
        params.set(key, value);
      }
    }
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    this.linkPages();
    if (render) this.refresh();
  },

  window() {
    const params = { since: this.get("since"), filter: this.get("filter") };
    if (this.get("until")) params.until = this.get("until");
    return params;
  },

  async api(path, params = {}) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== undefined));
    const response = await fetch("/api/" + path + (query.toString() ? "?" + query : ""));
    const body = await response.json();
    if (!response.ok) {
      const error = new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
      error.position = body.position;
      throw error;
    }
    return body;
  },

  async refresh() {
    this.showError(null);
    document.body.classList.add("loading");
    try {
      await this.render();
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      this.showError(error);
    } finally {
      document.body.classList.remove("loading");
    }
    clearTimeout(this.timer);
    const seconds = Number(this.get("refresh"));
    if (seconds > 0) this.timer = setTimeout(() => this.refresh(), seconds * 1000);
  },

  showError(error) {
    const box = document.getElementById("error");
    box.textContent = "";
    box.hidden = !error;
    if (!error) return;
    box.append(error.message);
    if (error.position !== undefined) {
      const text = this.get("filter");
      const pre = document.createElement("pre");
      pre.textContent = text + "\n" + " ".repeat(error.position) + "^";
      box.append(pre);
    }
  },

  // the header: page links (keeping the shared state), time range, filter, auto-refresh
  header(page) {
    const bar = document.getElementById("bar");
    const nav = element("nav");
    for (const [name, title] of PAGES) {
      const link = element("a", { href: name + ".html", textContent: title, "data-page": name });
      if (name === page) link.className = "current";
      nav.append(link);
    }
    const range = element("select", { id: "range", title: "time range (ending now)" });
    for (const value of RANGES) range.append(element("option", { value, textContent: "last " + value }));
    range.append(element("option", { value: "custom", textContent: "custom" }));
    const since = element("input", { id: "since", placeholder: "since", size: 22 });
    const until = element("input", { id: "until", placeholder: "until (now)", size: 22 });
    const filter = element("input", {
      id: "filter", placeholder: "filter, e.g. src_addr << 10.0.0.0/8 and proto in (tcp, udp)", spellcheck: false,
    });
    const apply = element("button", { id: "apply", textContent: "Apply" });
    const refresh = element("select", { id: "refresh", title: "auto-refresh" });
    for (const [value, text] of REFRESH) refresh.append(element("option", { value, textContent: "refresh: " + text }));
    const controls = element("div", { className: "controls" });
    controls.append(range, since, until, filter, apply, refresh, element("span", { id: "updated" }));
    bar.append(nav, controls);
    bar.after(element("div", { id: "error", hidden: true }));

    const show = () => {
      const preset = RANGES.includes(this.get("since")) && !this.get("until");
      range.value = preset ? this.get("since") : "custom";
      since.value = this.get("since");
      until.value = this.get("until");
      since.hidden = until.hidden = preset;
      filter.value = this.get("filter");
      refresh.value = this.get("refresh");
    };
    show();
    range.addEventListener("change", () => {
      if (range.value === "custom") {
        since.hidden = until.hidden = false;
        since.focus();
      } else {
        this.set({ since: range.value, until: "", offset: null });
        show();
      }
    });
    // a new window or filter starts flow search at its first page again (offset: null drops it)
    const applyAll = () => this.set({
      since: since.value || SHARED.since, until: until.value, filter: filter.value, offset: null,
    });
    apply.addEventListener("click", applyAll);
    for (const input of [since, until, filter]) {
      input.addEventListener("keydown", (event) => { if (event.key === "Enter") applyAll(); });
    }
    refresh.addEventListener("change", () => this.set({ refresh: refresh.value }));
    this.linkPages();
  },

  linkPages() {
    const shared = new URLSearchParams();
    for (const key of Object.keys(SHARED)) {
      const value = new URLSearchParams(location.search).get(key);
      if (value !== null) shared.set(key, value);
    }
    for (const link of document.querySelectorAll("nav a")) {
      link.href = link.dataset.page + ".html" + (shared.toString() ? "?" + shared : "");
    }
  },

  // a select bound to a state key
  bind(id, key) {
    const input = document.getElementById(id);
    const value = this.get(key);
    if (input.type === "checkbox") {
      input.checked = value === "1";
      input.addEventListener("change", () => this.set({ [key]: input.checked ? "1" : "0" }));
    } else {
      input.value = value;
      input.addEventListener("change", () => this.set({ [key]: input.value }));
    }
  },

  options(id, values, labels = {}) {
    const select = document.getElementById(id);
    for (const value of values) select.append(element("option", { value, textContent: labels[value] || value }));
  },

  // set the page up (its own controls, from the API) once, then render now and on every change
  async start(page, defaults, render, setup = null) {
    this.defaults = { ...SHARED, ...defaults };
    this.render = render;
    this.header(page);
    if (setup) {
      try {
        await setup();
      } catch (error) {
        this.showError(error);
        return;
      }
    }
    await this.refresh();
  },
};

function element(tag, properties = {}) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(properties)) {
    if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  return node;
}

// 1234567 bps -> "1.23 Mbps"
function rate(value, unit) {
  const prefixes = ["", "k", "M", "G", "T", "P"];
  let index = 0;
  while (Math.abs(value) >= 1000 && index < prefixes.length - 1) {
    value /= 1000;
    index += 1;
  }
  return value.toFixed(value >= 100 || index === 0 ? 0 : 2) + " " + prefixes[index] + unit;
}

function table(container, result, { empty = "no flows match" } = {}) {
  const view = element("table");
  const head = element("tr");
  for (const name of result.columns) head.append(element("th", { textContent: name }));
  const thead = element("thead");
  thead.append(head);
  view.append(thead);
  const body = element("tbody");
  for (const row of result.rows) {
    const line = element("tr");
    row.forEach((value, index) => {
      const cell = element("td", { textContent: value === null ? "" : String(value) });
      if (typeof value === "number") cell.className = "number";
      line.append(cell);
    });
    body.append(line);
  }
  view.append(body);
  container.replaceChildren(view);
  if (!result.rows.length) container.append(element("p", { className: "empty", textContent: empty }));
}

const PLOT_LAYOUT = {
  margin: { l: 70, r: 20, t: 10, b: 40 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  legend: { orientation: "h", y: -0.15 },
};
const PLOT_CONFIG = { displaylogo: false, responsive: true };
