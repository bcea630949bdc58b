// Usage as a table: requests, tokens, latency and refusals, grouped by model, key, reason or
// day, from the durable usage data. A tenant admin sees its own tenant's (`/tenant/v1/usage`);
// a platform admin picks a tenant. (Charts over time are the usage page's; this is the table.)

import { api } from "/console/static/api.js";
import { fail, options, param, runner, segment } from "/console/static/page.js";
import { frame, table, when } from "/console/static/ui.js";

const GROUPS = ["model", "key", "reason", "day"];
const list = document.getElementById("usage");
const status = document.getElementById("status");
const picker = document.getElementById("pick-tenant");
const by = document.getElementById("usage-by");

const act = runner(status, render);

function path() {
  if (picker.hidden) {
    return "/tenant/v1/usage";
  }
  return `/admin/v1/tenants/${segment(picker.elements.tenant.value)}/usage`;
}

async function render() {
  const group = by.elements.group_by.value;
  const rows = (await api("GET", `${path()}?group_by=${segment(group)}`)).data;
  list.replaceChildren(
    table(
      [
        [group === "day" ? "Day" : group, (r) => (group === "day" ? when(r.start) : (r[group] ?? "—"))],
        ["Requests", (r) => String(r.requests)],
        ["Errors", (r) => String(r.errors)],
        ["Refusals", (r) => String(r.refusals)],
        ["Prompt tokens", (r) => String(r.prompt_tokens)],
        ["Completion tokens", (r) => String(r.completion_tokens)],
        ["Latency avg (ms)", (r) => r.latency_ms_avg.toFixed(1)],
        ["Latency max (ms)", (r) => r.latency_ms_max.toFixed(1)],
      ],
      rows,
      "No usage recorded yet.",
    ),
  );
}

by.elements.group_by.addEventListener("change", () => act(async () => {}));
picker.elements.tenant.addEventListener("change", () => act(async () => {}));

try {
  const me = await frame("Usage");
  options(by.elements.group_by, GROUPS, "model");
  if (me.tenant === null) {
    const tenants = (await api("GET", "/admin/v1/tenants")).data.map((t) => t.name);
    const chosen = param("tenant") || tenants[0] || "";
    options(picker.elements.tenant, tenants.includes(chosen) ? tenants : [chosen, ...tenants], chosen);
    picker.hidden = false;
  }
  await render();
} catch (error) {
  fail(status, error);
}
