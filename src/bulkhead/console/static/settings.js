// Limits and guard settings. A platform admin picks a tenant (`?tenant=` preselects it) and
// sets its limits and its guard floor; a tenant admin sees its own limits (read-only: more is a
// quota request) and tightens its own guard settings on top of the platform's floor, which the
// API enforces (a looser value is refused, naming the setting). A tenant admin's page reads
// `/tenant/v1` only: whatever `?tenant=` says, the API answers for the caller's own tenant.

import { api } from "/console/static/api.js";
import { fail, options, param, runner, segment } from "/console/static/page.js";
import { el, frame, table } from "/console/static/ui.js";

const ACTIONS = ["off", "detect", "mask", "redact", "pseudonymize", "block"];
const GUARD = {
  pii: ACTIONS,
  secrets: ACTIONS,
  injection: ["off", "flag", "block"],
  scan_output: ["true", "false"],
  strip_images: ["true", "false"],
  strip_links: ["true", "false"],
  canary: ["true", "false"],
  allow_logprobs: ["true", "false"],
};
const status = document.getElementById("status");
const picker = document.getElementById("pick-tenant");
const limitForm = document.getElementById("set-limit");
const guardForm = document.getElementById("set-guard");
const limits = document.getElementById("limits");
const guard = document.getElementById("guard");
let base = "/tenant/v1";
let limitsPath = "/tenant/v1/limits";

const act = runner(status, render);

function shown(value) {
  return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value ?? "—");
}

async function render() {
  const [lim, grd] = await Promise.all([api("GET", limitsPath), api("GET", `${base}/guard`)]);
  const failing = lim.limits_fail_open ? "fails open" : "fails closed";
  const rows = Object.entries(lim.limits).map(([name, v]) => ({ name, ...v }));
  limits.replaceChildren(
    el("p", { class: "hint" }, `Tenant ${lim.tenant}, tier ${lim.tier}; ${failing} without the limiter.`),
    table(
      [
        ["Limit", (r) => r.name],
        ["Value", (r) => shown(r.value)],
        ["From", (r) => r.source],
        ["Tier default", (r) => shown(r.tier_default)],
      ],
      rows,
      "No limits.",
    ),
  );
  options(limitForm.elements.limit, rows.map((r) => r.name), limitForm.elements.limit.value);
  const own = new Set(grd.set);
  const floor = new Set(grd.platform);
  const settings = Object.entries(grd.guard).map(([name, value]) => ({ name, value }));
  guard.replaceChildren(
    el("p", { class: "hint" }, `Tenant ${grd.tenant}.`),
    table(
      [
        ["Setting", (r) => r.name],
        ["Value", (r) => shown(r.value)],
        ["Set by", (r) => setBy(r.name, own, floor)],
      ],
      settings,
      "No guard settings.",
    ),
  );
}

// The platform's settings are a floor; a tenant's own only tighten it (on the platform's
// page, `set` and `platform` are both the floor).
function setBy(name, own, floor) {
  if (floor.has(name)) {
    const tightened = base.startsWith("/tenant/") && own.has(name);
    return tightened ? "the tenant, over the platform's floor" : "the platform (a floor)";
  }
  return own.has(name) ? "the tenant" : "default";
}

function guardValue(setting, value) {
  return GUARD[setting][0] === "true" ? value === "true" : value;
}

guardForm.elements.setting.addEventListener("change", () =>
  options(guardForm.elements.value, GUARD[guardForm.elements.setting.value]),
);
guardForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const setting = guardForm.elements.setting.value;
  const value = guardValue(setting, guardForm.elements.value.value);
  act(() => api("PATCH", `${base}/guard`, { [setting]: value }));
});
limitForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const raw = limitForm.elements.value.value.trim();
  const value = raw === "default" ? "default" : Number(raw);
  act(() => api("PATCH", limitsPath, { [limitForm.elements.limit.value]: value }));
});

function choose(name) {
  base = `/admin/v1/tenants/${segment(name)}`;
  limitsPath = `${base}/limits`;
}

try {
  const me = await frame("Limits and guard");
  options(guardForm.elements.setting, Object.keys(GUARD));
  options(guardForm.elements.value, GUARD.pii);
  if (me.tenant === null) {
    const tenants = (await api("GET", "/admin/v1/tenants")).data.map((t) => t.name);
    const chosen = param("tenant") || tenants[0] || "";
    options(picker.elements.tenant, tenants.includes(chosen) ? tenants : [chosen, ...tenants], chosen);
    picker.elements.tenant.addEventListener("change", () =>
      act(async () => choose(picker.elements.tenant.value)),
    );
    picker.hidden = false;
    limitForm.hidden = false;
    choose(chosen);
  }
  await render();
} catch (error) {
  fail(status, error);
}
