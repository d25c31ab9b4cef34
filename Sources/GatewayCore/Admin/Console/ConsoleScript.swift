/// The console's script (`GET /console.js`), embedded in the binary: no CDN, no build step.
enum ConsoleScript {
    static let text = ##"""
// The operator's console of mtls-gateway. Plain JavaScript, no library, no inline code (the page's
// Content-Security-Policy allows scripts, styles and requests from this listener only). Every value from the
// gateway is set with textContent: certificate subjects and plugin reasons are client-controlled text.
"use strict";

const TOKEN_KEY = "mtls-gateway-admin-token";
const views = ["overview", "clients", "refusals", "expiry", "plugins", "reloads"];
let current = "overview";
let timer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: headers(), cache: "no-store" }, options || {}));
  if (response.status === 401) {
    showTokenForm();
    throw new Error("this admin listener needs its token");
  }
  const body = await response.json();
  return { status: response.status, body };
}

function showTokenForm() {
  document.getElementById("token").hidden = false;
}

function setStatus(text, bad) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = bad ? "bad" : "";
}

function time(text) {
  if (!text) return "";
  const date = new Date(text);
  return isNaN(date) ? text : date.toLocaleString();
}

function number(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 1 : digits });
}

function table(columns, rows, rowClass) {
  const head = el("tr", {}, ...columns.map(([title]) => el("th", {}, title)));
  const body = rows.map((row) => {
    const tr = el("tr", {}, ...columns.map(([, cell]) => {
      const value = cell(row);
      return el("td", {}, value instanceof Node ? value : value === undefined || value === null ? "" : String(value));
    }));
    if (rowClass) {
      const name = rowClass(row);
      if (name) tr.className = name;
    }
    return tr;
  });
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

// MARK: charts

const SVG = "http://www.w3.org/2000/svg";

function chart(title, series, points, unit) {
  const width = 320, height = 110, pad = 4;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  let max = 0;
  for (const [key] of series) for (const p of points) if (p[key] !== null && p[key] > max) max = p[key];
  const peak = max;
  max = max > 0 ? max * 1.1 : 1;
  const top = document.createElementNS(SVG, "text");
  top.setAttribute("x", String(pad));
  top.setAttribute("y", "11");
  top.setAttribute("class", "axis");
  top.textContent = `max ${number(peak, 2)}${unit}`;
  svg.append(top);
  const start = points.length ? points[0].t : 0;
  const end = points.length ? points[points.length - 1].t : 1;
  const span = Math.max(end - start, 1);
  for (const [key, , cls] of series) {
    const line = document.createElementNS(SVG, "polyline");
    const coordinates = points.filter((p) => p[key] !== null).map((p) => {
      const x = pad + ((p.t - start) / span) * (width - 2 * pad);
      const y = height - pad - (p[key] / max) * (height - 2 * pad);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    line.setAttribute("points", coordinates.join(" "));
    line.setAttribute("class", "line " + cls);
    svg.append(line);
  }
  const last = points.length ? points[points.length - 1] : null;
  const legend = el("div", { class: "legend" }, ...series.map(([key, label, cls]) =>
    el("span", { class: "key " + cls }, `${label} ${last ? number(last[key], 2) : "–"}${unit}`)));
  return el("figure", { class: "card" }, el("figcaption", {}, title), svg, legend);
}

// MARK: views

async function overview() {
  const { body } = await api("/api/overview");
  const root = document.getElementById("view-overview");
  root.replaceChildren();
  document.getElementById("version").textContent = `v${body.version} · started ${time(body.started)} · configuration loaded ${time(body.config_loaded)}`;
  for (const listener of body.listeners) {
    const points = listener.series;
    const last = points.length ? points[points.length - 1] : null;
    const facts = el("dl", { class: "facts" },
      el("dt", {}, "protocol"), el("dd", {}, `${listener.protocol} · client_auth ${listener.client_auth}`),
      el("dt", {}, "open connections"), el("dd", { "data-field": "active" }, number(listener.active_connections, 0)),
      el("dt", {}, "requests"), el("dd", { "data-field": "requests" }, number(listener.requests, 0)),
      el("dt", {}, "handshakes accepted"), el("dd", { "data-field": "accepted" }, number(listener.handshakes_accepted, 0)),
      el("dt", {}, "handshakes refused"), el("dd", { "data-field": "refused", class: listener.handshakes_refused > 0 ? "bad" : "" }, number(listener.handshakes_refused, 0)),
      el("dt", {}, "error rate (last interval)"), el("dd", {}, last && last.rps > 0 ? `${number(100 * (last.errors_4xx_ps + last.errors_5xx_ps) / last.rps, 1)} %` : "–"));
    const charts = el("div", { class: "charts" },
      chart("Requests per second", [["rps", "req/s", "c1"]], points, ""),
      chart("Errors per second", [["errors_4xx_ps", "4xx", "c2"], ["errors_5xx_ps", "5xx", "c3"]], points, ""),
      chart("Latency", [["p50_ms", "p50", "c1"], ["p99_ms", "p99", "c3"]], points, " ms"),
      chart("TLS handshakes per second", [["handshakes_ps", "accepted", "c1"], ["refused_handshakes_ps", "refused", "c3"]], points, ""));
    root.append(el("section", { class: "listener", "data-listener": listener.name },
      el("h2", {}, `Listener ${listener.name}`), facts, charts,
      el("p", { class: "note" }, `${points.length} samples, one every ${body.interval_seconds} s (the last 15 minutes at most)`)));
  }
}

async function clients() {
  const params = new URLSearchParams();
  const query = document.getElementById("client-search").value;
  const listener = document.getElementById("client-listener").value;
  if (query) params.set("q", query);
  if (listener) params.set("listener", listener);
  params.set("order", document.getElementById("client-order").value);
  params.set("limit", "200");
  const { body } = await api("/api/identities?" + params.toString());
  const root = document.getElementById("clients-table");
  root.replaceChildren(
    el("p", { class: "note" }, `${body.matched} matching of the identities remembered (at most ${body.capacity}; the least recently seen are forgotten first)`),
    table([
      ["Listener", (c) => c.listener],
      ["Subject", (c) => c.subject],
      ["Issuer", (c) => c.issuer],
      ["Serial", (c) => c.serial],
      ["SANs", (c) => c.sans.join(", ")],
      ["SHA-256", (c) => el("code", { title: c.sha256 }, c.sha256.slice(0, 16) + "…")],
      ["First seen", (c) => time(c.first_seen)],
      ["Last seen", (c) => time(c.last_seen)],
      ["Connections", (c) => number(c.connections, 0)],
      ["Requests", (c) => number(c.requests, 0)],
      ["Denied by", (c) => c.denied_by ? `${c.denied_by} (${c.denials}×): ${c.denial_reason || ""}` : ""],
    ], body.clients, (c) => (c.denied_by ? "warn" : "")));
}

async function refusals() {
  const { body } = await api("/api/refusals?limit=200");
  const root = document.getElementById("view-refusals");
  root.replaceChildren(
    el("h2", {}, "By reason (since start)"),
    table([
      ["Stage", (r) => r.stage],
      ["Reason", (r) => el("span", { class: "reason" }, r.reason)],
      ["Listener", (r) => r.listener],
      ["Count", (r) => number(r.count, 0)],
    ], body.counts),
    el("h2", {}, `Latest (the last ${body.capacity} are kept)`),
    table([
      ["Time", (r) => time(r.time)],
      ["Listener", (r) => r.listener],
      ["Client", (r) => r.client],
      ["Stage", (r) => r.stage],
      ["Reason", (r) => el("span", { class: "reason" }, r.reason)],
      ["Plugin", (r) => r.plugin || ""],
      ["Subject", (r) => r.subject || ""],
      ["Detail", (r) => r.detail],
    ], body.latest));
}

async function expiry() {
  const { body } = await api("/api/expiry");
  const root = document.getElementById("view-expiry");
  root.replaceChildren(
    el("p", { class: "note" }, `Highlighted: fewer than ${body.warning_days} days left (admin.console.expiry_warning_days). CRLs: the date is their nextUpdate.`),
    table([
      ["Days left", (i) => number(i.days_left, 1)],
      ["Expires", (i) => time(i.expires)],
      ["Kind", (i) => i.kind],
      ["Subject / issuer", (i) => i.subject],
      ["Listener", (i) => i.listener],
      ["File or URL", (i) => i.file],
      ["Configured at", (i) => el("code", {}, i.key_path)],
    ], body.items, (i) => (i.days_left < 0 ? "expired" : i.warning ? "warn" : "")));
}

async function plugins() {
  const [{ body: chains }, { body: backends }] = await Promise.all([api("/api/plugins"), api("/api/backends")]);
  const root = document.getElementById("view-plugins");
  root.replaceChildren(el("h2", {}, "Plugin chains"));
  for (const listener of chains.listeners) {
    root.append(el("h3", {}, `Listener ${listener.listener}`),
      listener.chain.length === 0 ? el("p", { class: "note" }, "no plugins") : table([
        ["#", (p) => listener.chain.indexOf(p) + 1],
        ["Plugin", (p) => p.plugin],
        ["Version", (p) => p.version],
        ["on_error", (p) => p.on_error],
        ["Calls", (p) => number(p.calls, 0)],
        ["Denials", (p) => number(p.denials, 0)],
        ["Failures", (p) => number(p.failures, 0)],
        ["µs per call", (p) => number(p.mean_us, 2)],
        ["Ready", (p) => (p.ready ? "yes" : "no")],
      ], listener.chain, (p) => (!p.ready || p.failures > 0 ? "warn" : "")),
      el("p", { class: "note" }, `counted since ${time(listener.since)} (the last reload)`));
  }
  root.append(el("h2", {}, "Backends"));
  const rows = [];
  for (const backend of backends.backends) for (const server of backend.servers) rows.push(Object.assign({ backend: backend.name, tls: backend.tls }, server));
  root.append(table([
    ["Backend", (s) => s.backend],
    ["Server", (s) => s.server],
    ["Address", (s) => s.address],
    ["TLS", (s) => (s.tls ? "yes" : "no")],
    ["Health", (s) => s.health],
    ["In rotation", (s) => (s.in_rotation ? "yes" : "no")],
    ["Active requests", (s) => number(s.active_requests, 0)],
  ], rows, (s) => (s.in_rotation ? "" : "expired")));
}

async function reloads() {
  const { body } = await api("/api/reloads");
  const root = document.getElementById("reload-history");
  root.replaceChildren(body.reloads.length === 0 ? el("p", { class: "note" }, "no reload since start") : table([
    ["Time", (r) => time(r.time)],
    ["Result", (r) => (r.success ? "success" : "failed")],
    ["Errors", (r) => el("ul", {}, ...r.errors.map((e) => el("li", {}, e)))],
  ], body.reloads, (r) => (r.success ? "" : "expired")));
}

async function reload() {
  const button = document.getElementById("reload-button");
  const result = document.getElementById("reload-result");
  button.disabled = true;
  result.replaceChildren(el("p", {}, "reloading…"));
  try {
    const { body } = await api("/reload", { method: "POST" });
    result.replaceChildren(body.success
      ? el("p", { class: "good" }, "Reloaded: new connections use the new configuration.")
      : el("div", { class: "bad" }, el("p", {}, "The configuration is invalid; the gateway still serves the previous one:"),
        el("ul", { id: "reload-errors" }, ...body.errors.map((e) => el("li", {}, e)))));
  } catch (error) {
    result.replaceChildren(el("p", { class: "bad" }, String(error)));
  } finally {
    button.disabled = false;
  }
  await reloads();
}

const loaders = { overview, clients, refusals, expiry, plugins, reloads };

async function refresh() {
  try {
    await loaders[current]();
    setStatus(`updated ${new Date().toLocaleTimeString()}`, false);
  } catch (error) {
    setStatus(String(error.message || error), true);
  }
}

function show(view) {
  current = views.includes(view) ? view : "overview";
  for (const name of views) {
    document.getElementById("view-" + name).hidden = name !== current;
    document.getElementById("tab-" + name).setAttribute("aria-selected", String(name === current));
  }
  if (location.hash !== "#" + current) history.replaceState(null, "", "#" + current);
  refresh();
}

async function listenerNames() {
  try {
    const { body } = await api("/api/overview");
    const select = document.getElementById("client-listener");
    for (const listener of body.listeners) select.append(el("option", { value: listener.name }, listener.name));
  } catch (error) {
    // The token form is showing; the names come with the next load.
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const name of views) document.getElementById("tab-" + name).addEventListener("click", () => show(name));
  document.getElementById("client-search").addEventListener("input", () => clients().catch(() => {}));
  document.getElementById("client-listener").addEventListener("change", () => clients().catch(() => {}));
  document.getElementById("client-order").addEventListener("change", () => clients().catch(() => {}));
  document.getElementById("reload-button").addEventListener("click", reload);
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    document.getElementById("token").hidden = true;
    listenerNames();
    refresh();
  });
  listenerNames();
  show(location.hash.slice(1));
  timer = setInterval(refresh, 5000);
});
"""##
}
