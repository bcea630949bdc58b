// A tenant admin's own Cedar policies: read, edit, save. The API validates them (a policy that
// does not parse, or names another tenant, is refused with the reason) and they only ever
// narrow what the platform's policies allow.

import { api } from "/console/static/api.js";
import { fail, runner } from "/console/static/page.js";
import { el, frame } from "/console/static/ui.js";

const status = document.getElementById("status");
const form = document.getElementById("set-policies");
const ids = document.getElementById("policy-ids");

function show(found) {
  form.elements.policies.value = found.policies;
  const named = found.ids.length ? found.ids.join(", ") : "no policies";
  ids.replaceChildren(el("p", { class: "hint" }, `Version ${found.version}: ${named}.`));
}

const act = runner(status, async () => show(await api("GET", "/tenant/v1/policies")));

form.addEventListener("submit", (event) => {
  event.preventDefault();
  act(() => api("PUT", "/tenant/v1/policies", { policies: form.elements.policies.value }));
});

try {
  await frame("Policies");
  show(await api("GET", "/tenant/v1/policies"));
} catch (error) {
  fail(status, error);
}
