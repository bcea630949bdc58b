// A platform admin's tenants: list, create, move between tiers, suspend and resume, delete.
// Deleting (and a tier move that leaves the tenant's limits above the new tier) needs a grant
// approved by a second admin: the refusal links to the access request form, filled in.

import { api } from "/console/static/api.js";
import { button, fail, options, runner, segment } from "/console/static/page.js";
import { el, frame, table, when } from "/console/static/ui.js";

const TIERS = ["shared", "mig", "dedicated"];
const list = document.getElementById("tenants");
const status = document.getElementById("status");
const form = document.getElementById("create-tenant");

const act = runner(status, render);

// A refused privileged action: the refusal, and where to ask for the grant.
function guarded(action, target, work) {
  return act(async () => {
    try {
      await work();
    } catch (error) {
      if (error.code !== "privileged_access_required") {
        throw error;
      }
      fail(status, error);
      const query = `action=${segment(action)}&target=${segment(target)}`;
      const link = el("a", { href: `/console/access?${query}` }, `Request access: ${action} on ${target}`);
      status.append(el("p", {}, link));
    }
  });
}

function toggle(tenant) {
  const next = tenant.status === "active" ? "suspended" : "active";
  const label = next === "suspended" ? "Suspend" : "Resume";
  return button(
    label,
    () => act(() => api("PATCH", `/admin/v1/tenants/${segment(tenant.name)}`, { status: next })),
    { class: next === "suspended" ? "danger" : null, "data-action": "status" },
  );
}

function tier(tenant) {
  const select = el("select", { "aria-label": `Tier of ${tenant.name}` });
  options(select, TIERS, tenant.tier);
  select.addEventListener("change", () =>
    guarded("admin:quota_requests.approve", tenant.name, () =>
      api("PATCH", `/admin/v1/tenants/${segment(tenant.name)}`, { tier: select.value }),
    ),
  );
  return select;
}

// Two clicks: "Delete", then "Confirm delete <name>" (no dialog to click through blindly).
function remove(tenant) {
  const confirm = button(`Confirm delete ${tenant.name}`, () =>
    guarded("admin:tenants.delete", tenant.name, () =>
      api("DELETE", `/admin/v1/tenants/${segment(tenant.name)}`),
    ),
    { class: "danger", "data-action": "confirm-delete" },
  );
  const ask = button("Delete", () => ask.replaceWith(confirm), { class: "chip", "data-action": "delete" });
  return ask;
}

async function render() {
  const tenants = (await api("GET", "/admin/v1/tenants")).data;
  list.replaceChildren(
    table(
      [
        ["Name", (t) => t.name],
        ["Tier", tier],
        ["Status", (t) => t.status],
        ["Created", (t) => when(t.created_at)],
        ["", (t) => el("span", { class: "actions" }, toggle(t), remove(t))],
      ],
      tenants,
      "No tenants yet.",
    ),
  );
}

options(form.elements.tier, TIERS);
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(form);
  act(async () => {
    await api("POST", "/admin/v1/tenants", {
      name: String(data.get("name")),
      tier: String(data.get("tier")),
    });
    form.reset();
  });
});

try {
  await frame("Tenants");
  await render();
} catch (error) {
  fail(status, error);
}
