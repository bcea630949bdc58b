// A platform admin's fellow principals (/admin/v1/principals): list, create an admin or an
// auditor, change roles, disable, enable, delete. A new principal's one-time enrolment secret
// is shown once, in this page's DOM only, until dismissed or the page is left; the person
// enrols with it (`bulkhead login --enrol`: password and authenticator). Adding an admin,
// re-enabling, removing an admin and the like need a grant a second admin approved: the
// refusal links to the access request form, filled in with what the API named.

import { api } from "/console/static/api.js";
import { button, fail, grantNeeded, options, runner, segment } from "/console/static/page.js";
import { el, frame, table, when } from "/console/static/ui.js";

const ROLES = ["platform_auditor", "platform_admin", "platform_admin,platform_auditor"];
const list = document.getElementById("principals");
const secret = document.getElementById("secret");
const status = document.getElementById("status");
const form = document.getElementById("create-principal");
const act = runner(status, render);

function guarded(action, target, work) {
  return act(async () => {
    try {
      await work();
    } catch (error) {
      grantNeeded(status, error, action, target);
    }
  });
}

function path(principal, rest = "") {
  return `/admin/v1/principals/${segment(principal.name)}${rest}`;
}

function showSecret(created) {
  const done = button("I have handed it over", () => secret.replaceChildren());
  secret.replaceChildren(
    el(
      "div",
      { class: "once", role: "status" },
      el(
        "p",
        {},
        `${created.name} created. Its enrolment secret is shown this once: hand it over; ` +
          `they set their password and authenticator with \`bulkhead login --enrol\`.`,
      ),
      el("code", { id: "secret-value" }, created.enrolment_secret),
      done,
    ),
  );
}

function roles(principal) {
  const select = el("select", { "aria-label": `Roles of ${principal.name}` });
  options(select, ROLES, principal.roles.join(","));
  select.addEventListener("change", () =>
    guarded("admin:platform_principals.roles.set", principal.name, () =>
      api("PUT", path(principal, "/roles"), { roles: select.value.split(",") }),
    ),
  );
  return select;
}

function toggle(principal) {
  const disabling = principal.status === "active";
  const verb = disabling ? "disable" : "enable";
  return button(
    disabling ? "Disable" : "Enable",
    () =>
      guarded(`admin:platform_principals.${verb}`, principal.name, () =>
        api("POST", path(principal, `/${verb}`)),
      ),
    { class: disabling ? "danger" : null, "data-action": verb },
  );
}

// Two clicks: "Delete", then "Confirm delete <name>".
function remove(principal) {
  const confirm = button(
    `Confirm delete ${principal.name}`,
    () =>
      guarded("admin:platform_principals.delete", principal.name, () =>
        api("DELETE", path(principal)),
      ),
    { class: "danger", "data-action": "confirm-delete" },
  );
  const ask = button("Delete", () => ask.replaceWith(confirm), { class: "chip", "data-action": "delete" });
  return ask;
}

function enrolled(principal) {
  if (principal.enrolled) {
    return "yes";
  }
  return principal.enrolment_expires_at ? `no (secret good until ${when(principal.enrolment_expires_at)})` : "no";
}

async function render() {
  const found = (await api("GET", "/admin/v1/principals")).data;
  list.replaceChildren(
    table(
      [
        ["Name", (p) => p.name],
        ["Roles", roles],
        ["Status", (p) => p.status],
        ["Enrolled", enrolled],
        ["Keys", (p) => String(p.keys)],
        ["Created", (p) => when(p.created_at)],
        ["", (p) => el("span", { class: "actions" }, toggle(p), remove(p))],
      ],
      found,
      "No platform principals.",
    ),
  );
}

// Leaving the page (a link, back, reload) drops the secret, even from the back-forward cache.
window.addEventListener("pagehide", () => secret.replaceChildren());
options(form.elements.roles, ROLES);
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const body = { name: String(data.get("name")).trim(), roles: String(data.get("roles")).split(",") };
  const email = String(data.get("email") || "").trim();
  if (email) {
    body.email = email;
  }
  guarded("admin:platform_principals.create", body.name, async () => {
    const created = await api("POST", "/admin/v1/principals", body);
    form.reset();
    showSecret(created);
  });
});

try {
  await frame("Platform principals");
  await render();
} catch (error) {
  fail(status, error);
}
