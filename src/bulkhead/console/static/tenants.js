// A platform admin's tenants: list, create, suspend and resume.

import { api } from "/console/static/api.js";
import { el, frame, showError, table, when } from "/console/static/ui.js";

const TIERS = ["shared", "mig", "dedicated"];
const list = document.getElementById("tenants");
const status = document.getElementById("status");
const form = document.getElementById("create-tenant");

async function act(work) {
  status.replaceChildren();
  try {
    await work();
    await render();
  } catch (error) {
    showError(status, error);
  }
}

function toggle(tenant) {
  const next = tenant.status === "active" ? "suspended" : "active";
  const label = next === "suspended" ? "Suspend" : "Resume";
  const button = el("button", { type: "button", class: next === "suspended" ? "danger" : null }, label);
  button.addEventListener("click", () =>
    act(() => api("PATCH", `/admin/v1/tenants/${encodeURIComponent(tenant.name)}`, { status: next })),
  );
  return button;
}

async function render() {
  const tenants = (await api("GET", "/admin/v1/tenants")).data;
  list.replaceChildren(
    table(
      [
        ["Name", (t) => t.name],
        ["Tier", (t) => t.tier],
        ["Status", (t) => t.status],
        ["Created", (t) => when(t.created_at)],
        ["", toggle],
      ],
      tenants,
      "No tenants yet.",
    ),
  );
}

form.elements.tier.replaceChildren(...TIERS.map((tier) => el("option", { value: tier }, tier)));
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
  showError(status, error);
}
