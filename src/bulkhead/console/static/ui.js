// DOM helpers. Text only ever goes in through textContent: nothing a tenant or an API
// answer holds is parsed as HTML (and the CSP runs no inline script anyway).

import { session, signOut } from "/console/static/api.js";

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

export function when(value) {
  return value ? new Date(value).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";
}

// A table of `rows` with `columns`: [heading, row => text or Node].
export function table(columns, rows, empty) {
  if (rows.length === 0) {
    return el("p", { class: "empty" }, empty);
  }
  const head = el("tr", {}, ...columns.map(([heading]) => el("th", { scope: "col" }, heading)));
  const body = rows.map((row) => el("tr", {}, ...columns.map(([, cell]) => el("td", {}, cell(row)))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

export function showError(region, error) {
  region.replaceChildren(el("p", { class: "error", role: "alert" }, error.message || String(error)));
}

const TENANT_PAGES = [
  ["/console/keys", "API keys"],
  ["/console/principals", "Principals"],
  ["/console/versions", "Model versions"],
  ["/console/quotas", "Quota requests"],
  ["/console/settings", "Limits and guard"],
  ["/console/policies", "Policies"],
  ["/console/audit", "Audit log"],
  ["/console/usage", "Usage"],
  ["/console/usage-table", "Usage table"],
];
const PLATFORM_PAGES = [
  ["/console/tenants", "Tenants"],
  ["/console/platform-principals", "Platform principals"],
  ["/console/models", "Models"],
  ["/console/settings", "Limits and guard"],
  ["/console/capacity", "GPUs and workers"],
  ["/console/access", "Access requests"],
  ["/console/quotas", "Quota requests"],
  ["/console/key-status", "Keys and certificates"],
  ["/console/audit", "Audit log"],
  ["/console/usage", "Usage"],
  ["/console/usage-table", "Usage table"],
];
// A platform auditor reads: the audit log, usage, the record of grants and the keys' status.
// The admin pages (tenants, models, settings, principals, capacity, quota decisions) are for
// changing the platform, which its role is refused; they are not offered to it.
const AUDITOR_PAGES = [
  ["/console/audit", "Audit log"],
  ["/console/access", "Access requests"],
  ["/console/key-status", "Keys and certificates"],
  ["/console/usage", "Usage"],
  ["/console/usage-table", "Usage table"],
];

// A model developer or end user calls models (`/v1`) with keys its admin made; no tenant API
// route is theirs (`platform.cedar`), so no page is offered beyond the overview.
const BUILDER_ROLES = ["model_developer", "end_user"];

function pagesOf(me) {
  if (me.tenant !== null) {
    return BUILDER_ROLES.includes(me.role) ? [] : TENANT_PAGES;
  }
  return me.role === "platform_admin" ? PLATFORM_PAGES : AUDITOR_PAGES;
}

// The page's frame: who is signed in, the pages of that role, sign-out. Returns the session.
export async function frame(title) {
  const me = await session();
  const links = pagesOf(me).map(([href, label]) =>
    el("a", { href, "aria-current": window.location.pathname === href ? "page" : null }, label),
  );
  const out = el("button", { type: "button", id: "sign-out" }, "Sign out");
  out.addEventListener("click", () => signOut());
  const who = `${me.principal} · ${me.tenant ?? "platform"} · ${me.role}`;
  document.getElementById("top").replaceChildren(
    el("a", { href: "/console", class: "brand" }, "Bulkhead"),
    el("nav", { "aria-label": "Pages" }, ...links),
    el("span", { class: "who" }, who),
    out,
  );
  document.title = `${title} · Bulkhead`;
  return me;
}
