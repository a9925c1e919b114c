// The dashboard's one stylesheet and one script, embedded in the binary (no build step: read them here).
// The script only enhances: every page reads and every action works without it. It follows the API's
// Server-Sent Events (`data-stream` on <body>): on a state change it re-reads the page and swaps the
// regions marked `data-live` (not while runs are selected), appends a run's new log lines, ticks the
// durations of running runs, filters logs by level, copies commands, and asks before batch actions.
enum DashboardAssets {
    static let css = #"""
:root{--bg:#fff;--fg:#1b1f24;--muted:#5c6570;--line:#d5dae0;--panel:#f5f7f9;--link:#0b57d0;--ok:#1a7f37;--bad:#cf222e;--wait:#b58300;--run:#0969da;--gray:#6e7781;--paused:#8250df;--focus:#0b57d0}
@media (prefers-color-scheme:dark){:root{--bg:#0f1216;--fg:#e6e9ed;--muted:#9aa4af;--line:#2d333b;--panel:#161b22;--link:#7cb1ff;--ok:#3fb950;--bad:#f85149;--wait:#d29922;--run:#58a6ff;--gray:#8b949e;--paused:#bc8cff;--focus:#7cb1ff}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
a{color:var(--link)}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible,summary:focus-visible{outline:2px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px 8px;z-index:9}
.top{border-bottom:1px solid var(--line);background:var(--panel)}.top nav{display:flex;flex-wrap:wrap;align-items:center;gap:12px;padding:8px 16px}
.top ul{display:flex;flex-wrap:wrap;gap:4px 14px;list-style:none;margin:0;padding:0;flex:1}.top a[aria-current=page]{font-weight:600;text-decoration:none;color:var(--fg)}
.brand{font-weight:700;text-decoration:none;color:var(--fg)!important;font-size:16px}.who{color:var(--muted)}.warn{color:var(--bad)!important;font-weight:600}
main{padding:16px;max-width:1400px;margin:0 auto}h1{font-size:22px;margin:4px 0 12px}h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}th{font-weight:600;color:var(--muted);white-space:nowrap}
.scroll{overflow-x:auto}.muted{color:var(--muted)}.num{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;padding:0 7px;border-radius:9px;border:1px solid currentColor;font-size:12px;font-weight:600;white-space:nowrap}
.s-COMPLETED{color:var(--ok)}.s-FAILED,.s-CRASHED{color:var(--bad)}.s-SCHEDULED{color:var(--wait)}.s-PENDING,.s-RUNNING{color:var(--run)}.s-CANCELLED,.s-CANCELLING{color:var(--gray)}.s-PAUSED{color:var(--paused)}
.b-COMPLETED{fill:var(--ok)}.b-FAILED,.b-CRASHED{fill:var(--bad)}.b-SCHEDULED{fill:var(--wait)}.b-RUNNING,.b-PENDING{fill:var(--run)}.b-CANCELLED,.b-CANCELLING{fill:var(--gray)}.b-PAUSED{fill:var(--paused)}
.chart{width:100%;height:140px;display:block;border-bottom:1px solid var(--line)}.axis{display:flex;justify-content:space-between;color:var(--muted);font-size:12px}
.legend,.counts{display:flex;flex-wrap:wrap;gap:6px 16px;list-style:none;padding:0;margin:8px 0}.counts li{display:flex;gap:6px;align-items:center}.counts strong{font-size:18px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:0 24px}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:10px}.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--muted)}
input,select,textarea,button{font:inherit;color:inherit;background:var(--bg);border:1px solid var(--line);border-radius:5px;padding:4px 8px}
button{cursor:pointer;background:var(--panel)}button.danger{color:var(--bad);border-color:var(--bad)}button.primary{background:var(--run);color:#fff;border-color:var(--run)}
.actions{display:flex;flex-wrap:wrap;gap:6px;margin:8px 0}form.inline{display:inline}
.notice{border-left:4px solid var(--ok);padding:6px 10px;background:var(--panel)}.error{border-left:4px solid var(--bad);padding:6px 10px;background:var(--panel)}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}dl.meta dt{color:var(--muted)}dl.meta dd{margin:0}
pre{background:var(--panel);border:1px solid var(--line);padding:8px;overflow:auto;max-height:420px;margin:0}
.sql{margin:14px 0}.sql summary{cursor:pointer;color:var(--muted)}.sql pre{margin:6px 0}
.logs td{font-family:ui-monospace,Menlo,monospace;font-size:12px;white-space:pre-wrap}.lv-40,.lv-50{color:var(--bad)}.lv-30{color:var(--wait)}.lv-10{color:var(--muted)}
.tl{width:220px;height:12px}.tl rect.bg{fill:var(--panel)}.indent-1{padding-left:22px}.indent-2{padding-left:40px}.indent-3{padding-left:58px}.indent-4{padding-left:76px}
.login{max-width:420px;margin:40px auto}.login form{display:flex;flex-direction:column;gap:8px}code.cmd{background:var(--panel);padding:2px 6px;border-radius:4px}
.pager{display:flex;gap:16px;margin:10px 0}.live-note{font-size:12px;color:var(--muted)}
"""#

    static let js = #"""
"use strict";
(function () {
  var cur = location.pathname;
  document.querySelectorAll("[data-section]").forEach(function (a) {
    var s = a.getAttribute("data-section");
    if (s === cur || (s !== "/" && cur.indexOf(s) === 0)) a.setAttribute("aria-current", "page");
  });
  document.addEventListener("click", function (e) {
    var b = e.target.closest("[data-copy]");
    if (b && navigator.clipboard) { navigator.clipboard.writeText(b.getAttribute("data-copy")).then(function () { b.textContent = "Copied"; }, function () {}); }
  });
  document.addEventListener("submit", function (e) {
    var f = e.target, q = e.submitter && e.submitter.getAttribute("data-confirm");
    if (q && !window.confirm(q)) e.preventDefault();
    if (f.id === "batch" && e.submitter && /selected/.test(e.submitter.value) && !f.querySelector("input[name=id]:checked")) {
      e.preventDefault(); window.alert("Select runs first (or use the buttons for all runs matching the filter).");
    }
  });
  var all = document.getElementById("select-all");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll("input[name=id]").forEach(function (c) { c.checked = all.checked; });
  });
  function tick() {
    document.querySelectorAll(".dur[data-start]").forEach(function (el) {
      var s = Math.max(0, (Date.now() - Number(el.getAttribute("data-start"))) / 1000), t;
      if (s < 60) t = s.toFixed(1) + " s"; else if (s < 3600) t = Math.floor(s / 60) + " m " + Math.floor(s % 60) + " s";
      else t = Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " m";
      el.textContent = t;
    });
  }
  setInterval(tick, 1000);
  var level = document.getElementById("log-level");
  function filterLogs() {
    if (!level) return;
    var min = Number(level.value || 0);
    document.querySelectorAll("#log-lines tr[data-level]").forEach(function (r) { r.hidden = Number(r.getAttribute("data-level")) < min; });
  }
  if (level) { level.addEventListener("change", filterLogs); var lb = document.getElementById("log-filter-go"); if (lb) lb.hidden = true; }
  var names = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"};
  function addLog(d) {
    var body = document.getElementById("log-lines");
    if (!body || document.getElementById("log-" + d.id)) return;
    var empty = document.getElementById("logs-empty"); if (empty) empty.hidden = true;
    var tr = document.createElement("tr");
    tr.id = "log-" + d.id; tr.setAttribute("data-level", d.level); tr.className = "lv-" + d.level;
    [String(d.timestamp).replace("T", " ").slice(0, 19) + "Z", names[d.level] || String(d.level), d.name || "", d.message].forEach(function (v) {
      var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    });
    body.appendChild(tr); filterLogs();
  }
  var pending = false, busy = false;
  function refresh() {
    if (busy) { pending = true; return; }
    if (document.querySelector("input[name=id]:checked")) { var n = document.getElementById("live-note"); if (n) n.textContent = "Live updates paused while runs are selected."; return; }
    busy = true;
    fetch(location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}}).then(function (r) { return r.ok ? r.text() : null; }).then(function (text) {
      if (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh) el.innerHTML = fresh.innerHTML;
        });
        tick();
      }
    }).catch(function () {}).then(function () {
      busy = false;
      if (pending) { pending = false; setTimeout(refresh, 1000); }
    });
  }
  var timer = null;
  function soon() { if (!timer) timer = setTimeout(function () { timer = null; refresh(); }, 700); }
  var stream = document.body.getAttribute("data-stream");
  // A browser allows 6 connections per host over HTTP/1.1. Leaving a page does not always close its stream
  // (Chromium keeps a page with an open EventSource alive for a while), so after a handful of pages the next
  // one waited a minute for a free connection: close the stream when the page is hidden, reopen on return.
  var es = null;
  function open() {
    if (!stream || !window.EventSource || es) return;
    es = new EventSource(stream);
    es.addEventListener("state", soon);
    es.addEventListener("log", function (e) { try { addLog(JSON.parse(e.data)); } catch (x) {} });
  }
  window.addEventListener("pagehide", function () { if (es) { es.close(); es = null; } });
  window.addEventListener("pageshow", function (e) { if (e.persisted) { open(); refresh(); } });
  open();
})();
"""#
}
