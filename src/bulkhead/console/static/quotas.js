// Quota requests, one page for both roles. A tenant admin asks for more (its own requests
// only: `/tenant/v1` is scoped to the caller's tenant); a platform admin decides. Approving a
// raise above the tenant's tier needs a grant (the API says so, and the page shows it).

import { api } from "/console/static/api.js";
import { button, fail, fields, options, runner, segment } from "/console/static/page.js";
import { el, frame, table, when } from "/console/static/ui.js";

const QUOTAS = ["requests_per_minute", "tokens_per_minute", "concurrency", "storage_bytes"];
const list = document.getElementById("quotas");
const status = document.getElementById("status");
const form = document.getElementById("request-quota");
let platform = false;

const act = runner(status, render);

function decide(request) {
  if (!platform || request.status !== "pending") {
    return request.decision_reason || "";
  }
  const path = `/admin/v1/quota-requests/${segment(request.id)}`;
  const body = { reason: "decided in the console" };
  return el(
    "span",
    { class: "actions" },
    button("Approve", () => act(() => api("POST", `${path}/approve`, body)), { "data-request": request.id }),
    button("Deny", () => act(() => api("POST", `${path}/deny`, body)), {
      class: "danger",
      "data-request": request.id,
    }),
  );
}

async function render() {
  const path = platform ? "/admin/v1/quota-requests" : "/tenant/v1/quota-requests";
  const requests = (await api("GET", path)).data;
  const columns = [
    ["Id", (r) => r.id],
    ["Quota", (r) => r.quota],
    ["Value", (r) => String(r.value)],
    ["Reason", (r) => r.reason],
    ["Status", (r) => (r.privileged ? `${r.status} (above tier: needs a grant)` : r.status)],
    ["Requested", (r) => when(r.created_at)],
    ["Decided", (r) => when(r.decided_at)],
    ["", decide],
  ];
  if (platform) {
    columns.splice(1, 0, ["Tenant", (r) => r.tenant ?? "—"]);
  }
  list.replaceChildren(table(columns, requests, "No quota requests."));
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = fields(form);
  act(async () => {
    await api("POST", "/tenant/v1/quota-requests", {
      quota: data.quota,
      value: Number(data.value),
      reason: data.reason || "",
    });
    form.reset();
  });
});

try {
  const me = await frame("Quota requests");
  platform = me.tenant === null;
  if (!platform) {
    options(form.elements.quota, QUOTAS);
    form.hidden = false;
  }
  await render();
} catch (error) {
  fail(status, error);
}
