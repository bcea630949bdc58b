// A tenant admin's own API keys: list, create (the secret shown once), rotate, revoke.
// The secret lives only in this page's DOM until it is dismissed or the page is left:
// the API never gives it again.

import { api } from "/console/static/api.js";
import { el, frame, showError, table, when } from "/console/static/ui.js";

const ROLES = ["end_user", "model_developer", "tenant_auditor", "tenant_admin"];
const list = document.getElementById("keys");
const secret = document.getElementById("secret");
const status = document.getElementById("status");
const form = document.getElementById("create-key");

function showSecret(created, verb) {
  const value = el("code", { id: "secret-value" }, created.secret);
  const done = el("button", { type: "button" }, "I have stored it");
  done.addEventListener("click", () => secret.replaceChildren());
  secret.replaceChildren(
    el(
      "div",
      { class: "once", role: "status" },
      el("p", {}, `Key ${created.key.id} ${verb}. Copy its secret now: it is shown this once.`),
      value,
      done,
    ),
  );
}

async function act(work) {
  status.replaceChildren();
  try {
    await work();
    await render();
  } catch (error) {
    showError(status, error);
  }
}

function actions(key) {
  if (key.revoked_at) {
    return "revoked";
  }
  const rotate = el("button", { type: "button", "data-key": key.id }, "Rotate");
  rotate.addEventListener("click", () =>
    act(async () => showSecret(await api("POST", `/tenant/v1/keys/${key.id}/rotate`, {}), "rotated")),
  );
  const revoke = el("button", { type: "button", class: "danger", "data-key": key.id }, "Revoke");
  revoke.addEventListener("click", () => act(() => api("POST", `/tenant/v1/keys/${key.id}/revoke`)));
  return el("span", { class: "actions" }, rotate, revoke);
}

async function render() {
  const keys = (await api("GET", "/tenant/v1/keys")).data;
  list.replaceChildren(
    table(
      [
        ["Id", (k) => k.id],
        ["Name", (k) => k.name || "—"],
        ["Role", (k) => k.role],
        ["Created", (k) => when(k.created_at)],
        ["Expires", (k) => when(k.expires_at)],
        ["", actions],
      ],
      keys,
      "No keys yet.",
    ),
  );
}

// Leaving the page (a link, back, reload) drops the secret, even where the browser keeps the
// page in its back-forward cache.
window.addEventListener("pagehide", () => secret.replaceChildren());
form.elements.role.replaceChildren(...ROLES.map((role) => el("option", { value: role }, role)));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(form);
  act(async () => {
    const created = await api("POST", "/tenant/v1/keys", {
      name: String(data.get("name") || ""),
      role: String(data.get("role")),
    });
    form.reset();
    showSecret(created, "created");
  });
});

try {
  await frame("API keys");
  await render();
} catch (error) {
  showError(status, error);
}
