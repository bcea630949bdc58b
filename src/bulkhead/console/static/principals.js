// A tenant admin's users and service accounts (/tenant/v1/principals): list, create, change
// roles, delete (which revokes the principal's keys). The API decides: roles are never handed
// out above the caller's own, nor to the caller itself, and a key held to models, an expiry or
// limits manages no principals; its refusal is shown as a sentence.

import { api } from "/console/static/api.js";
import { button, fail, options, runner, segment } from "/console/static/page.js";
import { el, frame, table } from "/console/static/ui.js";

const ROLES = ["end_user", "model_developer", "tenant_auditor", "tenant_admin"];
const list = document.getElementById("principals");
const status = document.getElementById("status");
const form = document.getElementById("create-principal");
const act = runner(status, render);

function path(principal) {
  return `/tenant/v1/principals/${segment(principal.name)}`;
}

function roles(principal) {
  const select = el("select", { "aria-label": `Role of ${principal.name}` });
  options(select, ROLES, principal.roles[0]);
  select.addEventListener("change", () =>
    act(() => api("PATCH", path(principal), { roles: [select.value] })),
  );
  return principal.roles.length === 1 ? select : principal.roles.join(", ");
}

// Two clicks: "Delete", then "Confirm delete <name>".
function remove(principal) {
  const confirm = button(
    `Confirm delete ${principal.name}`,
    () => act(() => api("DELETE", path(principal))),
    { class: "danger", "data-action": "confirm-delete" },
  );
  const ask = button("Delete", () => ask.replaceWith(confirm), { class: "chip", "data-action": "delete" });
  return ask;
}

async function render() {
  const found = (await api("GET", "/tenant/v1/principals")).data;
  list.replaceChildren(
    table(
      [
        ["Name", (p) => p.name],
        ["Kind", (p) => p.kind],
        ["Roles", roles],
        ["", remove],
      ],
      found,
      "No principals.",
    ),
  );
}

options(form.elements.roles, ROLES);
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const body = {
    name: String(data.get("name")).trim(),
    kind: String(data.get("kind")),
    roles: [String(data.get("roles"))],
  };
  act(async () => {
    await api("POST", "/tenant/v1/principals", body);
    form.reset();
  });
});

try {
  await frame("Principals");
  await render();
} catch (error) {
  fail(status, error);
}
