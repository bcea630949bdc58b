// Charts as inline SVG built with DOM calls (createElementNS, setAttribute, textContent):
// no chart library, no markup parsed. Each chart is an image with a name and a caption
// for screen readers, and its numbers are also given as a table beside it.

import { el, table } from "/console/static/ui.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 220;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };
// Colours told apart by people with the common colour-vision deficiencies (Okabe-Ito).
const COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function niceMax(value) {
  if (value <= 0) {
    return 1;
  }
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

function label(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function axes(max, xs, format) {
  const bottom = HEIGHT - PAD.bottom;
  const parts = [
    svg("line", { x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom, class: "axis" }),
    svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom, class: "axis" }),
  ];
  for (const fraction of [0, 0.5, 1]) {
    const y = bottom - fraction * (bottom - PAD.top);
    parts.push(
      svg("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, label(max * fraction)),
    );
  }
  const ends = xs.length > 1 ? [0, xs.length - 1] : [0];
  for (const i of ends) {
    parts.push(
      svg(
        "text",
        { x: xOf(i, xs.length), y: HEIGHT - 8, "text-anchor": i ? "end" : "start" },
        format(xs[i]),
      ),
    );
  }
  return parts;
}

function xOf(i, count) {
  const span = WIDTH - PAD.left - PAD.right;
  return PAD.left + (count > 1 ? (i / (count - 1)) * span : span / 2);
}

function yOf(value, max) {
  return HEIGHT - PAD.bottom - (value / max) * (HEIGHT - PAD.bottom - PAD.top);
}

function legend(names) {
  return el(
    "ul",
    { class: "legend" },
    ...names.map((name, i) => el("li", { "data-colour": i % COLOURS.length }, name)),
  );
}

function figure(id, title, chart, names, rows) {
  return el(
    "figure",
    { class: "chart", id },
    el("figcaption", {}, title),
    chart,
    legend(names),
    el("details", {}, el("summary", {}, `${title}: the numbers`), rows),
  );
}

// Lines over time: `xs` the buckets, `series` [name, values per bucket].
export function lineChart(id, title, xs, series, format) {
  const max = niceMax(Math.max(0, ...series.flatMap(([, values]) => values)));
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${id}-title` },
    svg(
      "title",
      { id: `${id}-title` },
      `${title}, ${series.length} series over ${xs.length} buckets`,
    ),
    ...axes(max, xs, format),
  );
  series.forEach(([name, values], s) => {
    const points = values.map((v, i) => `${xOf(i, xs.length)},${yOf(v, max)}`).join(" ");
    const colour = COLOURS[s % COLOURS.length];
    chart.append(
      svg(
        "polyline",
        { points, fill: "none", stroke: colour, "stroke-width": 2 },
        svg("title", {}, name),
      ),
    );
    values.forEach((v, i) =>
      chart.append(svg("circle", { cx: xOf(i, xs.length), cy: yOf(v, max), r: 3, fill: colour })),
    );
  });
  const columns = [
    ["Time", (row) => format(row.x)],
    ...series.map(([name], s) => [name, (row) => label(row.values[s])]),
  ];
  const rows = xs.map((x, i) => ({ x, values: series.map(([, values]) => values[i]) }));
  return figure(
    id,
    title,
    chart,
    series.map(([name]) => name),
    table(columns, rows, "No data."),
  );
}

// Horizontal bars: `bars` [name, value].
export function barChart(id, title, bars) {
  const max = niceMax(Math.max(0, ...bars.map(([, v]) => v)));
  const row = 26;
  const height = Math.max(row * bars.length + PAD.top, 40);
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-labelledby": `${id}-title` },
    svg("title", { id: `${id}-title` }, `${title}, ${bars.length} bars`),
  );
  const span = WIDTH - 200 - PAD.right;
  bars.forEach(([name, value], i) => {
    const y = PAD.top + i * row;
    chart.append(
      svg("text", { x: 192, y: y + 15, "text-anchor": "end" }, name),
      svg("rect", {
        x: 200,
        y,
        width: Math.max(1, (value / max) * span),
        height: row - 8,
        fill: COLOURS[i % COLOURS.length],
      }),
      svg("text", { x: 206 + (value / max) * span, y: y + 15 }, label(value)),
    );
  });
  const columns = [
    ["Name", ([name]) => name],
    ["Value", ([, value]) => label(value)],
  ];
  return figure(id, title, chart, [], table(columns, bars, "No data."));
}
