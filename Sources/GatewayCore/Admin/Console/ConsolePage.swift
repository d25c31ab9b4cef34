/// The console's page and style sheet (`GET /`, `GET /console.css`, `GET /favicon.svg`), embedded in the binary.
enum ConsolePage {
    static let html = ##"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mtls-gateway console</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console.css">
<script src="/console.js" defer></script>
</head>
<body>
<header>
  <h1>mtls-gateway</h1>
  <span id="version"></span>
  <span id="status" role="status"></span>
</header>
<nav role="tablist">
  <button id="tab-overview" role="tab">Overview</button>
  <button id="tab-clients" role="tab">Client identities</button>
  <button id="tab-refusals" role="tab">Refusals</button>
  <button id="tab-expiry" role="tab">Expiry</button>
  <button id="tab-plugins" role="tab">Plugins &amp; backends</button>
  <button id="tab-reloads" role="tab">Reloads</button>
</nav>
<form id="token-form">
  <div id="token" hidden>
    <label for="token-input">This admin listener needs its bearer token (admin.token_file):</label>
    <input id="token-input" type="password" autocomplete="off">
    <button type="submit">Use token</button>
  </div>
</form>
<main>
  <section id="view-overview" hidden></section>
  <section id="view-clients" hidden>
    <div class="controls">
      <input id="client-search" type="search" placeholder="Search subject, issuer, serial, SAN, fingerprint, address" aria-label="Search clients">
      <select id="client-listener" aria-label="Listener"><option value="">all listeners</option></select>
      <select id="client-order" aria-label="Order">
        <option value="recent">most recent first</option>
        <option value="active">most active first</option>
      </select>
    </div>
    <div id="clients-table"></div>
  </section>
  <section id="view-refusals" hidden></section>
  <section id="view-expiry" hidden></section>
  <section id="view-plugins" hidden></section>
  <section id="view-reloads" hidden>
    <p><button id="reload-button" type="button">Reload configuration</button>
    reads the configuration file again, as SIGHUP does; an invalid one changes nothing.</p>
    <div id="reload-result"></div>
    <h2>History</h2>
    <div id="reload-history"></div>
  </section>
</main>
<footer>Identities shown are those the audit log records: subject, issuer, serial, SANs and fingerprint of verified clients, kept in memory only.</footer>
</body>
</html>
"""##

    static let css = ##"""
:root { --fg: #1d232b; --muted: #5b6570; --line: #d6dbe1; --bg: #f6f7f9; --card: #fff; --c1: #2563eb; --c2: #d97706; --c3: #dc2626; --warn: #fff4d6; --bad: #fde2e1; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1rem; align-items: baseline; padding: .8rem 1.2rem; background: #111827; color: #e5e7eb; }
header h1 { margin: 0; font-size: 1.1rem; }
#version { color: #9ca3af; font-size: .85rem; }
#status { margin-left: auto; font-size: .85rem; color: #9ca3af; }
#status.bad { color: #fca5a5; }
nav { display: flex; gap: .25rem; padding: .5rem 1.2rem 0; border-bottom: 1px solid var(--line); background: var(--card); flex-wrap: wrap; }
nav button { border: 1px solid transparent; border-bottom: none; background: none; padding: .5rem .9rem; cursor: pointer; font: inherit; color: var(--muted); border-radius: 6px 6px 0 0; }
nav button[aria-selected="true"] { border-color: var(--line); background: var(--bg); color: var(--fg); font-weight: 600; margin-bottom: -1px; }
main { padding: 1rem 1.2rem 2rem; }
#token { padding: .8rem 1.2rem; background: var(--warn); display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
h2 { font-size: 1rem; margin: 1.2rem 0 .5rem; }
h3 { font-size: .95rem; margin: 1rem 0 .4rem; }
.listener { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .2rem 1rem 1rem; margin-bottom: 1rem; }
.facts { display: grid; grid-template-columns: repeat(6, auto); gap: .2rem .8rem; justify-content: start; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0 1rem 0 0; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: .8rem; margin-top: .8rem; }
.card { margin: 0; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .5rem; }
.card figcaption { font-size: .85rem; color: var(--muted); }
.chart { width: 100%; height: 110px; display: block; }
.line { fill: none; stroke-width: 1.8; }
.axis { font-size: 10px; fill: var(--muted); }
.line.c1 { stroke: var(--c1); } .line.c2 { stroke: var(--c2); } .line.c3 { stroke: var(--c3); }
.legend { display: flex; gap: .8rem; font-size: .8rem; }
.key::before { content: ""; display: inline-block; width: .7rem; height: .2rem; margin-right: .3rem; vertical-align: middle; }
.key.c1::before { background: var(--c1); } .key.c2::before { background: var(--c2); } .key.c3::before { background: var(--c3); }
table { border-collapse: collapse; width: 100%; background: var(--card); font-size: .85rem; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #eef1f5; font-weight: 600; }
tr.warn td { background: var(--warn); }
tr.expired td { background: var(--bad); }
td ul { margin: 0; padding-left: 1rem; }
.reason { font-family: ui-monospace, monospace; }
code { font-family: ui-monospace, monospace; font-size: .8rem; }
.controls { display: flex; gap: .5rem; margin-bottom: .6rem; flex-wrap: wrap; }
.controls input { flex: 1 1 20rem; padding: .35rem .5rem; font: inherit; }
.controls select, button { font: inherit; padding: .3rem .6rem; }
.note { color: var(--muted); font-size: .85rem; }
.good { color: #15803d; }
.bad { color: #b91c1c; }
footer { padding: 1rem 1.2rem; color: var(--muted); font-size: .8rem; }
"""##

    static let favicon = ##"""
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#111827"/><path d="M4 8l3 3 5-6" stroke="#60a5fa" stroke-width="2" fill="none"/></svg>
"""##
}
