// A platform admin's models: each model's kind, owner and where it runs, and the grants of
// shared models to tenants (grant, revoke). Registering a model stays with the CLI and the API
// (`bulkhead model add`, `POST /admin/v1/models`): its many fields are not a console form yet.

import { api } from "/console/static/api.js";
import { button, fail, options, runner, segment } from "/console/static/page.js";
import { el, frame, table } from "/console/static/ui.js";

const list = document.getElementById("models");
const status = document.getElementById("status");
const form = document.getElementById("grant-model");

const act = runner(status, render);

function grants(model) {
  if (!model.shared) {
    return `owned by ${model.owner ?? "—"}`;
  }
  const revokes = model.granted_to.map((tenant) =>
    button(
      `Revoke ${tenant}`,
      () => act(() => api("DELETE", `/admin/v1/models/${segment(model.name)}/grants/${segment(tenant)}`)),
      { class: "chip", title: `Revoke ${tenant}'s grant of ${model.name}` },
    ),
  );
  return revokes.length ? el("span", { class: "actions" }, ...revokes) : "no tenant";
}

async function render() {
  const [models, tenants] = await Promise.all([
    api("GET", "/admin/v1/models"),
    api("GET", "/admin/v1/tenants"),
  ]);
  list.replaceChildren(
    table(
      [
        ["Name", (m) => m.name],
        ["Kind", (m) => m.kind],
        ["Runs on", (m) => m.worker || m.upstream || "—"],
        ["Upstream model", (m) => m.upstream_model || "—"],
        ["Endpoints", (m) => m.endpoints.join(", ")],
        ["Granted to", grants],
      ],
      models.data,
      "No models.",
    ),
  );
  const shared = models.data.filter((m) => m.shared).map((m) => m.name);
  options(form.elements.model, shared, form.elements.model.value);
  options(form.elements.tenant, tenants.data.map((t) => t.name), form.elements.tenant.value);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const model = form.elements.model.value;
  const tenant = form.elements.tenant.value;
  act(() => api("POST", `/admin/v1/models/${segment(model)}/grants`, { tenant }));
});

try {
  await frame("Models and grants");
  await render();
} catch (error) {
  fail(status, error);
}
