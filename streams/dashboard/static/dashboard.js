// Draws a dashboard page from its JSON answer: a plotly chart (values on hover) and a sortable table per panel.
// Filters are the page's query string (the form submits with GET), passed on unchanged to /api/<page>.
"use strict";

function cellText(value) {
  return value === null || value === undefined ? "" : String(value);
}

function compare(a, b) {
  const x = a === "" ? NaN : Number(a), y = b === "" ? NaN : Number(b);
  if (!Number.isNaN(x) && !Number.isNaN(y)) return x - y;
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortTable(table, index, th) {
  const body = table.tBodies[0];
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const rows = Array.from(body.rows);
  rows.sort((r, s) => compare(r.cells[index].dataset.value, s.cells[index].dataset.value) * (ascending ? 1 : -1));
  for (const row of rows) body.appendChild(row);
}

function entityHref(row, columns) {
  const type = row[columns.indexOf("scope_type")], id = row[columns.indexOf("scope_id")];
  return "/entity?type=" + encodeURIComponent(type) + "&id=" + encodeURIComponent(id);
}

function renderTable(panel) {
  const table = document.createElement("table");
  table.className = "data";
  table.dataset.panel = panel.key;
  const head = table.createTHead().insertRow();
  panel.columns.forEach((name, index) => {
    const th = document.createElement("th");
    th.textContent = name;
    th.dataset.column = name;
    th.title = "sort";
    th.addEventListener("click", () => sortTable(table, index, th));
    head.appendChild(th);
  });
  const body = table.createTBody();
  for (const row of panel.rows) {
    const tr = body.insertRow();
    row.forEach((value, index) => {
      const td = tr.insertCell();
      td.dataset.value = cellText(value);
      td.dataset.column = panel.columns[index];
      if (panel.entity_links && panel.columns[index] === "name") {
        const a = document.createElement("a");
        a.href = entityHref(row, panel.columns);
        a.textContent = cellText(value) || row[panel.columns.indexOf("scope_id")];
        td.appendChild(a);
      } else {
        td.textContent = cellText(value);
      }
      if (typeof value === "number") td.className = "number";
    });
  }
  return table;
}

function column(panel, name) {
  const index = panel.columns.indexOf(name);
  return panel.rows.map((row) => row[index]);
}

function traces(panel) {
  const chart = panel.chart;
  const xs = column(panel, chart.x);
  const groups = new Map();
  if (chart.series) {
    column(panel, chart.series).forEach((s, i) => (groups.get(s) || groups.set(s, []).get(s)).push(i));
  } else {
    groups.set("", panel.rows.map((_, i) => i));
  }
  const result = [];
  for (const [series, indexes] of groups) {
    for (const y of chart.ys) {
      const ys = column(panel, y);
      const name = [series, chart.ys.length > 1 || !series ? y : ""].filter(Boolean).join(" ");
      const points = indexes.filter((i) => ys[i] !== null);
      result.push({
        type: chart.kind === "line" ? "scatter" : "bar", mode: "lines+markers", name: name,
        x: points.map((i) => xs[i]), y: points.map((i) => ys[i]),
      });
    }
  }
  return result;
}

function markerTrace(chart, markerPanel) {
  const [x, y, label] = chart.marker_columns;
  return {
    type: "scatter", mode: "markers", name: "alerts", x: column(markerPanel, x), y: column(markerPanel, y),
    text: column(markerPanel, label), hovertemplate: "alert %{text}<br>%{x}: %{y}<extra></extra>",
    marker: { symbol: "x", size: 14, color: "#c0392b", line: { width: 2 } },
  };
}

function renderChart(panel, byKey) {
  const div = document.createElement("div");
  div.className = "chart";
  div.dataset.panel = panel.key;
  const data = traces(panel);
  const layout = {
    margin: { t: 10, r: 10, b: 60, l: 60 }, height: 340, hovermode: "closest",
    barmode: panel.chart.kind === "stack" ? "stack" : "group", legend: { orientation: "h" },
    xaxis: { type: "category" }, shapes: [],
  };
  if (panel.chart.markers && byKey[panel.chart.markers]) {
    const markers = byKey[panel.chart.markers];
    data.push(markerTrace(panel.chart, markers));
    layout.xaxis = { type: "date" };
    layout.shapes = column(markers, panel.chart.marker_columns[0]).map((x) => ({
      type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1,
      line: { color: "#c0392b", width: 1, dash: "dot" },
    }));
  }
  return [div, data, layout];
}

function renderPanels(answer) {
  const main = document.getElementById("panels");
  main.replaceChildren();
  const byKey = Object.fromEntries(answer.panels.map((p) => [p.key, p]));
  for (const panel of answer.panels) {
    const section = document.createElement("section");
    section.className = "panel";
    section.dataset.panel = panel.key;
    const h2 = document.createElement("h2");
    h2.textContent = panel.title + " (" + panel.rows.length + " rows)";
    section.appendChild(h2);
    main.appendChild(section);
    if (panel.chart && panel.rows.length) {
      const [div, data, layout] = renderChart(panel, byKey);
      section.appendChild(div);
      Plotly.newPlot(div, data, layout, { displaylogo: false, responsive: true });
    }
    if (!panel.rows.length) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "no rows for these filters";
      section.appendChild(p);
    }
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    wrap.appendChild(renderTable(panel));
    section.appendChild(wrap);
  }
  document.getElementById("answered").textContent = "Answered in " + Math.round(answer.seconds * 1000) + " ms.";
  document.body.dataset.ready = "1";
}

async function load() {
  const response = await fetch(document.body.dataset.api + window.location.search);
  const answer = await response.json();
  if (!response.ok) {
    const main = document.getElementById("panels");
    main.replaceChildren();
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = answer.error || response.statusText;
    main.appendChild(p);
    document.body.dataset.ready = "error";
    return;
  }
  renderPanels(answer);
}

load();
