// Usage charts for whoever may read usage: requests, tokens, latency and refusals by
// reason over time, split by model or key, from the durable usage data (the usage API:
// /tenant/v1/usage for a tenant's own, /admin/v1/tenants/{name}/usage on the platform,
// each judged by its own action). Drawn by charts.js as inline SVG.

import { api } from "/console/static/api.js";
import { barChart, lineChart } from "/console/static/charts.js";
import { el, frame, showError } from "/console/static/ui.js";

const MAX_SERIES = 7;
const status = document.getElementById("status");
const charts = document.getElementById("charts");
const form = document.getElementById("range");
let platform = false;

function path(tenant) {
  return platform ? `/admin/v1/tenants/${encodeURIComponent(tenant)}/usage` : "/tenant/v1/usage";
}

function bucketLabel(bucket) {
  return (start) =>
    new Date(start)
      .toISOString()
      .slice(0, bucket === "hour" ? 13 : 10)
      .replace("T", " ") + (bucket === "hour" ? ":00" : "");
}

// Every bucket of the period, so that a quiet hour is a zero, not a gap.
function buckets(since, bucket) {
  const step = bucket === "hour" ? 3600_000 : 86400_000;
  const first = Math.floor((since * 1000) / step) * step;
  const out = [];
  for (let t = first; t <= Date.now(); t += step) {
    out.push(t);
  }
  return out;
}

// Lines per name of `split` (a model, key or reason) with `value(line)` summed per bucket,
// or with `mean`, averaged weighted by requests. The six biggest by requests keep their
// own line; the rest are summed as "other", so a chart stays legible.
function series(lines, split, xs, value, mean = false) {
  const nameOf = (line) => line[split] ?? "—";
  const totals = new Map();
  for (const line of lines) {
    totals.set(nameOf(line), (totals.get(nameOf(line)) || 0) + line.requests);
  }
  const kept = [...totals.keys()]
    .sort((a, b) => totals.get(b) - totals.get(a))
    .slice(0, MAX_SERIES - 1);
  const index = new Map(xs.map((x, i) => [x, i]));
  const cells = new Map(kept.map((name) => [name, xs.map(() => [0, 0])]));
  for (const line of lines) {
    const name = kept.includes(nameOf(line)) ? nameOf(line) : "other";
    if (!cells.has(name)) {
      cells.set(
        name,
        xs.map(() => [0, 0]),
      );
    }
    const at = index.get(new Date(line.start).getTime());
    if (at !== undefined) {
      const weight = mean ? line.requests : 1;
      cells.get(name)[at][0] += value(line) * weight;
      cells.get(name)[at][1] += weight;
    }
  }
  const result = ([sum, weight]) => (mean ? (weight ? sum / weight : 0) : sum);
  return [...cells].map(([name, values]) => [name, values.map(result)]);
}

async function render() {
  status.replaceChildren();
  const data = new FormData(form);
  const bucket = String(data.get("bucket"));
  const split = String(data.get("split"));
  const tenant = String(data.get("tenant") || "");
  if (platform && !tenant) {
    charts.replaceChildren(el("p", { class: "empty" }, "No tenant to show."));
    return;
  }
  const since = Math.floor(Date.now() / 1000) - Number(data.get("period"));
  const ask = (groups) =>
    api("GET", `${path(tenant)}?since=${since}&group_by=${groups}&limit=10000`);
  const [byName, byReason] = await Promise.all([
    ask(`${bucket},${split}`),
    ask(`${bucket},reason`),
  ]);
  const lines = byName.data;
  const refused = byReason.data.filter((line) => line.refusals > 0 && line.reason);
  const xs = buckets(since, bucket);
  const format = bucketLabel(bucket);
  const totals = new Map();
  for (const line of refused) {
    totals.set(line.reason, (totals.get(line.reason) || 0) + line.refusals);
  }
  const tokens = (line) => line.prompt_tokens + line.completion_tokens;
  const per = `per ${bucket}, by ${split}`;
  charts.replaceChildren(
    lineChart(
      "requests",
      `Requests ${per}`,
      xs,
      series(lines, split, xs, (l) => l.requests),
      format,
    ),
    lineChart(
      "tokens",
      `Tokens (prompt + completion) ${per}`,
      xs,
      series(lines, split, xs, tokens),
      format,
    ),
    lineChart(
      "latency",
      `Average latency in ms ${per}`,
      xs,
      series(lines, split, xs, (l) => l.latency_ms_avg, true),
      format,
    ),
    lineChart(
      "refusals",
      `Refusals per ${bucket}, by reason`,
      xs,
      series(refused, "reason", xs, (l) => l.refusals),
      format,
    ),
    barChart(
      "refusal-reasons",
      "Refusals by reason over the period",
      [...totals].sort((a, b) => b[1] - a[1]),
    ),
  );
}

async function tenants() {
  const listed = (await api("GET", "/admin/v1/tenants")).data;
  const choice = form.elements.tenant;
  choice.replaceChildren(...listed.map((t) => el("option", { value: t.name }, t.name)));
  document.getElementById("tenant-choice").hidden = false;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  render().catch((error) => showError(status, error));
});

try {
  const me = await frame("Usage");
  platform = me.tenant === null;
  if (platform) {
    await tenants();
  }
  await render();
} catch (error) {
  showError(status, error);
}
