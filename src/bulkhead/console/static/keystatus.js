// Every key and certificate the platform holds, with its age and next rotation: tenant KEKs,
// the platform KEK, the internal CA and client certificates, sign-in session keys. Read-only;
// rotation stays with the CLI and the API (`bulkhead kms rotate`), the privileged kinds under
// a grant.

import { api } from "/console/static/api.js";
import { age, fail } from "/console/static/page.js";
import { el, frame, table, when } from "/console/static/ui.js";

const list = document.getElementById("key-status");
const status = document.getElementById("status");

function due(row) {
  if (!row.next_rotation_at) {
    return "—";
  }
  const overdue = new Date(row.next_rotation_at) < new Date();
  if (!overdue) {
    return when(row.next_rotation_at);
  }
  return el("span", { class: "error" }, `overdue since ${when(row.next_rotation_at)}`);
}

try {
  await frame("Keys and certificates");
  const found = await api("GET", "/admin/v1/keys/status");
  list.replaceChildren(
    el("p", { class: "hint" }, `As of ${when(found.as_of)}.`),
    table(
      [
        ["Kind", (k) => k.kind],
        ["Owner", (k) => k.owner],
        ["Version", (k) => String(k.version)],
        ["State", (k) => k.state],
        ["Held in", (k) => k.held_in],
        ["Created", (k) => when(k.created_at)],
        ["Age", (k) => age(k.age_days)],
        ["Next rotation", due],
        ["Protects", (k) => k.protects],
      ],
      found.data,
      "No keys listed.",
    ),
  );
} catch (error) {
  fail(status, error);
}
