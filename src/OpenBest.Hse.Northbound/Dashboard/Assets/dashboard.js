// The OpenBest HSE dashboard: plain JavaScript, no library, nothing fetched from elsewhere.
// Snapshots arrive as server-sent events (/dashboard/events); the page redraws in place, never reloads.
// Every value from the server is put in the page as text (textContent, SVG attributes): an EAS Id comes from a device.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f6feb", "#d9480f", "#2b8a3e", "#ae3ec9"];
  const W = 480, H = 200, LEFT = 48, RIGHT = 12, TOP = 10, BOTTOM = 28;

  let source = null;
  let last = null;
  let picked = new URLSearchParams(location.search).get("enterprise") || "";

  function $(id) { return document.getElementById(id); }

  function el(name, text, cls) {
    const node = document.createElement(name);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  function svg(name, attributes, text) {
    const node = document.createElementNS(SVG, name);
    for (const key of Object.keys(attributes || {})) { node.setAttribute(key, String(attributes[key])); }
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function clock(ms, seconds) {
    const d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + (seconds ? ":" + pad(d.getSeconds()) : "");
  }

  function number(n) { return Number(n).toLocaleString("en-US"); }

  function rate(n) {
    if (n === 0) { return "0"; }
    if (n >= 100) { return n.toFixed(0); }
    if (n >= 10) { return n.toFixed(1); }
    if (n >= 1) { return n.toFixed(2); }
    return n.toPrecision(2);
  }

  // The top of a y axis with four equal steps, each a round number (1, 2, 2.5 or 5 times a power of ten).
  function niceTop(value) {
    if (!(value > 0)) { return 1; }
    const quarter = value / 4;
    const power = Math.pow(10, Math.floor(Math.log10(quarter)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= quarter) { return 4 * step * power; }
    }
    return 40 * power;
  }

  // --- connection ---------------------------------------------------------------------------------------------------

  function connect() {
    if (source) { source.close(); }
    const query = picked ? "?enterprise=" + encodeURIComponent(picked) : "";
    source = new EventSource("/dashboard/events" + query);
    source.addEventListener("open", () => live(true));
    source.addEventListener("error", () => live(false));
    source.addEventListener("snapshot", (event) => {
      live(true);
      render(JSON.parse(event.data));
    });
  }

  function live(on) {
    const badge = $("live");
    badge.textContent = on ? "live" : "reconnecting";
    badge.className = "live " + (on ? "on" : "off");
  }

  // --- rendering ----------------------------------------------------------------------------------------------------

  function render(s) {
    last = s;
    document.body.dataset.version = String(s.version);
    $("caller").textContent = s.caller.kind + " " + s.caller.name;
    $("updated").textContent = "updated " + clock(Date.parse(s.at), true);
    renderPicker(s);
    renderTotals(s);
    renderCounts(s);
    renderCharts(s);
    renderEnterprises(s);
    renderSessions(s);
    renderAudit();
  }

  function pick(easId) {
    picked = easId;
    const url = new URL(location.href);
    if (picked) { url.searchParams.set("enterprise", picked); } else { url.searchParams.delete("enterprise"); }
    history.replaceState(null, "", url);
    $("picker").value = picked;
    connect();
  }

  // The operator's whole-HSE view: one row per enterprise (and HSE channel) with its last hour.
  function renderEnterprises(s) {
    const section = $("enterprises-section");
    const rows = s.caller.kind === "operator" && !s.view && s.enterprises ? s.enterprises : null;
    section.hidden = !rows;
    if (!rows) { return; }
    const body = $("enterprises").tBodies[0];
    const trs = rows.map((e) => {
      const tr = el("tr");
      tr.dataset.enterprise = e.id;
      const name = el("td");
      const button = el("button", e.label, "link" + (e.channel ? " channel" : ""));
      button.type = "button";
      button.addEventListener("click", () => pick(e.id));
      name.append(button);
      tr.append(name);
      for (const key of ["sessions", "uplink", "acknowledged", "refreshes", "rejects", "drops", "started", "ended"]) {
        tr.append(el("td", number(e[key]), "num"));
      }
      return tr;
    });
    if (!trs.length) {
      const td = el("td", "no enterprise yet", "empty");
      td.colSpan = 9;
      const tr = el("tr");
      tr.append(td);
      trs.push(tr);
    }
    body.replaceChildren(...trs);
  }

  function renderPicker(s) {
    const label = $("picker-label");
    if (s.caller.kind !== "operator" || !s.enterprises) {
      label.hidden = true;
      return;
    }
    label.hidden = false;
    const select = $("picker");
    const options = [{ id: "", label: "all enterprises" }].concat(s.enterprises);
    if (picked && !s.enterprises.some((e) => e.id === picked)) { options.push({ id: picked, label: picked }); }
    fillSelect(select, options.map((e) => [e.id, e.label]), picked);
  }

  function fillSelect(select, pairs, value) {
    const same = select.options.length === pairs.length && pairs.every((p, i) => select.options[i].value === p[0] && select.options[i].textContent === p[1]);
    if (!same) {
      select.replaceChildren(...pairs.map((p) => { const o = el("option", p[1]); o.value = p[0]; return o; }));
    }
    select.value = value;
  }

  function renderTotals(s) {
    const t = s.totals;
    for (const key of ["sessions", "established", "suspended", "received", "sent", "refreshes", "rejects", "drops"]) {
      $("total-" + key).textContent = number(t[key]);
    }
    $("total-received-name").textContent = s.seriesLabels.received + ", last hour";
    $("total-sent-name").textContent = s.seriesLabels.sent + ", last hour";
    const view = s.caller.kind === "operator"
      ? (s.view ? "Showing enterprise " + s.viewLabel + " only." : "Showing the whole HSE: every enterprise and the HSE's own channels.")
      : "Showing your enterprise's sessions, rates and audit lines only.";
    $("view-line").textContent = view + " Samples every " + s.intervalSeconds + " s." + (s.lost ? " " + number(s.lost) + " session events could not be counted (the dashboard fell behind)." : "");
  }

  function renderCounts(s) {
    for (const key of ["state", "service", "suite", "mode", "enterprise"]) {
      const list = $("count-" + key);
      const rows = s.counts[key];
      if (key === "enterprise") { $("card-enterprise").hidden = !rows; }
      if (!rows) { continue; }
      const max = rows.reduce((m, r) => Math.max(m, r.count), 0);
      const items = rows.map((r) => {
        const li = el("li");
        li.append(el("span", r.key, "label"), el("span", number(r.count), "count"));
        const track = el("span", null, "track");
        const fill = el("span", null, "fill");
        fill.style.width = (max ? Math.max(2, 100 * r.count / max) : 0) + "%";
        track.append(fill);
        li.append(track);
        return li;
      });
      list.replaceChildren(...(items.length ? items : [el("li", "no sessions", "empty")]));
    }
  }

  function renderCharts(s) {
    const labels = s.seriesLabels;
    chart("chart-messages", s, [["received", labels.received], ["sent", labels.sent]]);
    chart("chart-refreshes", s, [["refreshes", "key refreshes"]]);
    chart("chart-rejects", s, [["rejects", "rejects"]]);
    chart("chart-drops", s, [["drops", "drops"]]);
    chart("chart-sessions", s, [["started", "started"], ["ended", "ended"]]);
  }

  // A line chart of rates (count / interval length) with axes, grid, tick labels and a legend.
  function chart(id, s, series) {
    const node = $(id);
    const at = s.series.at;
    const seconds = s.series.seconds;
    const lines = series.map(([key, label], i) => ({
      key, label, color: COLORS[i % COLORS.length],
      counts: s.series[key],
      rates: s.series[key].map((v, j) => v / (seconds[j] || 1)),
    }));
    const end = at.length ? at[at.length - 1] : Date.parse(s.at);
    const span = Math.min(3600 * 1000, Math.max(60 * 1000, at.length ? end - at[0] : 0));
    const start = end - span;
    const top = niceTop(Math.max(0, ...lines.flatMap((l) => l.rates)));
    const px = (t) => LEFT + (W - LEFT - RIGHT) * (t - start) / span;
    const py = (v) => H - BOTTOM - (H - TOP - BOTTOM) * v / top;
    const parts = [];

    for (let i = 0; i <= 4; i++) {
      const v = top * i / 4;
      parts.push(svg("line", { x1: LEFT, x2: W - RIGHT, y1: py(v), y2: py(v), class: i ? "grid" : "axis" }));
      parts.push(svg("text", { x: LEFT - 6, y: py(v) + 4, "text-anchor": "end", class: "tick" }, rate(v)));
    }
    parts.push(svg("line", { x1: LEFT, x2: LEFT, y1: TOP, y2: H - BOTTOM, class: "axis" }));
    for (let i = 0; i <= 4; i++) {
      const t = start + span * i / 4;
      parts.push(svg("line", { x1: px(t), x2: px(t), y1: H - BOTTOM, y2: H - BOTTOM + 4, class: "axis" }));
      parts.push(svg("text", { x: px(t), y: H - BOTTOM + 16, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "tick" }, clock(t, span < 20 * 60 * 1000)));
    }

    const legend = node.parentElement.querySelector(".legend");
    const keys = [];
    for (const l of lines) {
      const points = at.map((t, j) => px(t).toFixed(1) + "," + py(l.rates[j]).toFixed(1)).join(" ");
      if (at.length > 1) {
        parts.push(svg("polyline", { points, stroke: l.color, class: "line", "data-series": l.key }));
      } else if (at.length === 1) {
        parts.push(svg("circle", { cx: px(at[0]), cy: py(l.rates[0]), r: 3, fill: l.color, "data-series": l.key }));
      }
      const current = l.rates.length ? l.rates[l.rates.length - 1] : 0;
      const key = el("span", null, "key");
      const swatch = el("span", null, "swatch");
      swatch.style.background = l.color;
      key.append(swatch, el("span", l.label), el("span", "now " + rate(current) + "/s", "now"));
      keys.push(key);
    }
    if (legend) { legend.replaceChildren(...keys); }

    if (!at.length) {
      parts.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "tick" }, "waiting for the first sample…"));
    }

    node.replaceChildren(...parts);
    node.dataset.points = String(at.length);
    node.dataset.total = String(lines.reduce((sum, l) => sum + l.counts.reduce((a, b) => a + b, 0), 0));
    node.dataset.lastAt = String(end);
  }

  function renderSessions(s) {
    const body = $("sessions").tBodies[0];
    const rows = s.sessions.map((x) => {
      const tr = el("tr");
      tr.dataset.sessionId = String(x.id);
      const enterprise = el("td");
      enterprise.append(x.channel ? el("span", x.enterpriseLabel, "tag channel") : document.createTextNode(x.enterpriseLabel));
      const state = el("td");
      state.append(el("span", x.state, "tag " + x.state));
      tr.append(el("td", x.id, "num"), state, el("td", x.service), el("td", x.suite), el("td", x.mode), enterprise);
      return tr;
    });
    if (!rows.length) {
      const td = el("td", "no live sessions", "empty");
      td.colSpan = 6;
      const tr = el("tr");
      tr.append(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    $("sessions-note").textContent = s.sessionsShown < s.totals.sessions
      ? "the first " + number(s.sessionsShown) + " of " + number(s.totals.sessions)
      : number(s.totals.sessions) + " live";
  }

  function renderAudit() {
    const s = last;
    if (!s) { return; }
    const eventSelect = $("audit-event");
    fillSelect(eventSelect, [["", "any"]].concat(s.auditEvents.map((e) => [e, e])), eventSelect.value);
    const byEnterprise = s.caller.kind === "operator" && !s.view;
    $("audit-enterprise-label").hidden = !byEnterprise;
    const enterpriseSelect = $("audit-enterprise");
    if (byEnterprise) {
      const names = [...new Set(s.audit.map((a) => a.enterprise))].sort();
      fillSelect(enterpriseSelect, [["", "any"]].concat(names.map((n) => [n, n])), names.includes(enterpriseSelect.value) ? enterpriseSelect.value : "");
    } else {
      fillSelect(enterpriseSelect, [["", "any"]], "");
    }

    const event = eventSelect.value;
    const enterprise = enterpriseSelect.value;
    const text = $("audit-text").value.trim().toLowerCase();
    const shown = s.audit.filter((a) => (!event || a.event === event) && (!enterprise || a.enterprise === enterprise) && (!text || a.event.toLowerCase().includes(text)));
    const rows = shown.map((a) => {
      const tr = el("tr");
      tr.dataset.seq = String(a.seq);
      const d = new Date(Date.parse(a.at));
      tr.append(el("td", d.toISOString().slice(0, 10) + " " + clock(d.getTime(), true), "num"), el("td", a.event), el("td", a.enterprise), el("td", a.detail === null ? "" : a.detail));
      return tr;
    });
    if (!rows.length) {
      const td = el("td", "no audit lines", "empty");
      td.colSpan = 4;
      const tr = el("tr");
      tr.append(td);
      rows.push(tr);
    }
    $("audit").tBodies[0].replaceChildren(...rows);
    $("audit-note").textContent = number(shown.length) + " of the newest " + number(s.audit.length) + " lines" + (s.auditAvailable ? "" : " (the store is unavailable: not current)");
  }

  // --- wiring -------------------------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("picker").addEventListener("change", (e) => pick(e.target.value));
    for (const id of ["audit-event", "audit-enterprise"]) { $(id).addEventListener("change", renderAudit); }
    $("audit-text").addEventListener("input", renderAudit);
    connect();
  });
})();
