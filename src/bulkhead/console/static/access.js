// Privileged access (PAM): a platform admin requests a time-bound grant for one action on one
// target; a different platform admin approves or denies it (the API refuses self-approval;
// "Deny" on one's own request withdraws it).
// `?action=` and `?target=` only fill the request form in (the tenants page links here).

import { api } from "/console/static/api.js";
import { button, fail, fields, param, runner, segment } from "/console/static/page.js";
import { el, frame, table, when } from "/console/static/ui.js";

const list = document.getElementById("requests");
const status = document.getElementById("status");
const form = document.getElementById("request-access");
const act = runner(status, render);
let names = new Map();

// Requests name principals by id: shown by name where the platform's principals list has it.
function who(id) {
  return id ? names.get(id) || id : "—";
}

async function principals() {
  try {
    const found = (await api("GET", "/admin/v1/principals")).data;
    names = new Map(found.map((p) => [p.id, p.name]));
  } catch {
    names = new Map();
  }
}

// How long the grant lasts once approved, and whether one use spends it: what the second
// admin approves, so it is shown before the decision (`expires_at` is set only by it).
function lasts(request) {
  const minutes = Math.round(request.duration_s / 60);
  return `${minutes} min${request.single_use ? ", one use" : ""}`;
}

function decide(request) {
  if (request.status !== "pending") {
    return "";
  }
  const id = segment(request.id);
  const approve = button("Approve", () => act(() => api("POST", `/admin/v1/access-requests/${id}/approve`)), {
    "data-request": request.id,
  });
  const deny = button(
    "Deny",
    () => act(() => api("POST", `/admin/v1/access-requests/${id}/deny`, { reason: "denied in the console" })),
    { class: "danger", "data-request": request.id },
  );
  return el("span", { class: "actions" }, approve, deny);
}

async function render() {
  const [found] = await Promise.all([api("GET", "/admin/v1/access-requests"), principals()]);
  const requests = found.data;
  list.replaceChildren(
    table(
      [
        ["Id", (r) => r.id],
        ["Action", (r) => r.action],
        ["Target", (r) => r.target],
        ["Reason", (r) => r.reason || "—"],
        ["For", lasts],
        ["Status", (r) => (r.break_glass ? `${r.status} (break-glass)` : r.status)],
        ["Requested", (r) => when(r.created_at)],
        ["Requested by", (r) => who(r.requester_id)],
        ["Decided by", (r) => who(r.decided_by)],
        ["Expires", (r) => when(r.expires_at)],
        ["", decide],
      ],
      requests,
      "No access requests.",
    ),
  );
}

form.elements.action.value = param("action");
form.elements.target.value = param("target");
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = fields(form);
  act(async () => {
    await api("POST", "/admin/v1/access-requests", {
      action: data.action,
      target: data.target || "platform",
      reason: data.reason || "",
      duration_s: Number(data.minutes || 60) * 60,
    });
    form.reset();
  });
});

try {
  await frame("Access requests");
  await render();
} catch (error) {
  fail(status, error);
}
