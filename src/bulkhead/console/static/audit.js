// An auditor's audit log: events with filters, each event's inclusion proof and its
// checkpoint's signature verified here (verify.js, WebCrypto) against the keys the
// gateway publishes; export bundles downloaded, and bundle files verified in the page.
// What is listed is what the API lets the caller read: a tenant's auditors their
// tenant's view (/tenant/v1/audit), platform auditors the whole log (/admin/v1/audit).

import { api } from "/console/static/api.js";
import { el, frame, showError, table, when } from "/console/static/ui.js";
import { parseVkey, verifyBundle, verifyEvent } from "/console/static/verify.js";

const MAX_FILE_BYTES = 512 * 1024 * 1024;
const status = document.getElementById("status");
const keysRegion = document.getElementById("keys");
const events = document.getElementById("events");
const form = document.getElementById("filters");
const bundleResult = document.getElementById("bundle-result");
const shown = [];
let base = "/tenant/v1/audit";
// The view the events shown were listed from (`?tenant=NAME` on the platform's, or none):
// their proofs are asked of the same view, which is what a platform admin's grant covers.
let view = "";
let trusted = { origin: "", keys: [] };

function verdict(ok, text) {
  return el("span", { class: ok ? "verdict ok" : "verdict bad" }, ok ? `✓ ${text}` : `✗ ${text}`);
}

function keyName(key) {
  return `${key.name} (key ${key.keyIdHex})`;
}

function signedBy(signers) {
  return signers.map(keyName).join(", ");
}

async function loadKeys() {
  const published = await api("GET", `${base}/keys`);
  const keys = [];
  for (const vkey of published.verifiers) {
    keys.push(await parseVkey(vkey));
  }
  trusted = { origin: published.origin, keys };
  keysRegion.replaceChildren(
    el("p", {}, `Log origin: ${published.origin} · fetched from ${base}/keys`),
    table(
      [
        ["Key name", (k) => k.name],
        ["Key id", (k) => k.keyIdHex],
        ["Verifier key", (k) => el("code", {}, k.vkey)],
      ],
      keys,
      "The gateway publishes no key: nothing can be verified.",
    ),
  );
}

function chosenTenant() {
  const tenant = String(new FormData(form).get("tenant") || "").trim();
  return base.startsWith("/admin") && tenant ? `tenant=${encodeURIComponent(tenant)}` : "";
}

function query() {
  const data = new FormData(form);
  const params = [
    ["after", String(data.get("after") || "-1")],
    ["limit", String(data.get("limit") || "100")],
  ];
  const tenant = chosenTenant();
  return [...params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`), tenant]
    .filter(Boolean)
    .join("&");
}

// Narrows the page the API returned; the API itself filters by index and tenant.
function wanted(event) {
  const data = new FormData(form);
  const action = String(data.get("action") || "");
  const outcome = String(data.get("outcome") || "");
  return (
    (!action || String(event.action).includes(action)) && (!outcome || event.outcome === outcome)
  );
}

async function check(event, cell) {
  cell.replaceChildren(el("span", { class: "verdict" }, "checking…"));
  let proof;
  try {
    const path = `${base}/proofs/${encodeURIComponent(event.event_id)}`;
    proof = await api("GET", view ? `${path}?${view}` : path);
  } catch (error) {
    const pending = error.status === 404 && /checkpoint yet/.test(error.message);
    cell.replaceChildren(
      pending
        ? el("span", { class: "verdict" }, "not in a checkpoint yet")
        : verdict(false, error.message),
    );
    return;
  }
  try {
    const { checkpoint } = await verifyEvent(event, proof, trusted.keys, trusted.origin);
    const text = `verified: leaf ${event.idx} of ${checkpoint.size}, signed by ${signedBy(checkpoint.signers)}`;
    cell.replaceChildren(verdict(true, text));
  } catch (error) {
    cell.replaceChildren(verdict(false, `failed: ${error.message}`));
  }
}

function proofCell(event) {
  const cell = el("span", { class: "proof" });
  const button = el("button", { type: "button", "data-idx": event.idx }, "Verify");
  button.addEventListener("click", () => check(event, cell));
  cell.append(button);
  shown.push([event, cell]);
  return cell;
}

async function render() {
  status.replaceChildren();
  const asked = chosenTenant();
  const listed = (await api("GET", `${base}/events?${query()}`)).data;
  view = asked;
  shown.length = 0;
  const rows = listed.filter(wanted);
  const columns = [
    ["Index", (e) => e.idx],
    ["Time", (e) => when(typeof e.time === "number" ? e.time * 1000 : null)],
    ["Action", (e) => e.action],
    ["Outcome", (e) => `${e.outcome} ${e.status}`],
    ["Principal", (e) => e.principal_id || "—"],
    ["Tenant", (e) => e.tenant_id || e.target_tenant || "platform"],
    ["Proof", proofCell],
  ];
  events.replaceChildren(table(columns, rows, "No events match."));
  form.dataset.last = listed.length
    ? String(listed[listed.length - 1].idx)
    : form.elements.after.value;
}

async function showBundle(bundle, source) {
  bundleResult.replaceChildren(el("p", { class: "verdict" }, `Verifying ${source}…`));
  try {
    const report = await verifyBundle(bundle, trusted.keys, trusted.origin);
    const whose = report.tenant === null ? "the whole log" : `tenant ${report.tenant}'s view`;
    const unsigned = report.unsigned ? `; ${report.unsigned} newer entries not signed yet` : "";
    const text =
      `${source} verified: ${whose}, ${report.signedSize} of ${report.size} entries under ` +
      `${report.checkpoints} checkpoints, ${report.ownEntries} shown in full, ` +
      `${report.proofs} inclusion proofs; signed by ${signedBy(report.signers)}${unsigned}.`;
    bundleResult.replaceChildren(el("p", { id: "bundle-verdict" }, verdict(true, text)));
  } catch (error) {
    const text = `${source} does not verify: ${error.message}`;
    bundleResult.replaceChildren(
      el("p", { id: "bundle-verdict", role: "alert" }, verdict(false, text)),
    );
  }
}

function offer(bundle) {
  const blob = new Blob([JSON.stringify(bundle)], { type: "application/json" });
  const link = el(
    "a",
    { href: URL.createObjectURL(blob), download: "bulkhead-audit-bundle.json" },
    "",
  );
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

document.getElementById("download").addEventListener("click", async () => {
  try {
    const tenant = chosenTenant();
    const bundle = await api("GET", `${base}/bundle${tenant ? `?${tenant}` : ""}`);
    offer(bundle);
    await showBundle(bundle, "The downloaded bundle");
  } catch (error) {
    showError(bundleResult, error);
  }
});

document.getElementById("bundle-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) {
    return;
  }
  if (file.size > MAX_FILE_BYTES) {
    bundleResult.replaceChildren(verdict(false, `${file.name} is larger than 512 MiB.`));
    return;
  }
  let bundle;
  try {
    bundle = JSON.parse(await file.text());
  } catch {
    bundleResult.replaceChildren(
      el("p", { id: "bundle-verdict", role: "alert" }, verdict(false, `${file.name} is not JSON.`)),
    );
    return;
  }
  await showBundle(bundle, file.name);
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  render().catch((error) => showError(status, error));
});
document.getElementById("next").addEventListener("click", () => {
  form.elements.after.value = form.dataset.last || form.elements.after.value;
  render().catch((error) => showError(status, error));
});
document.getElementById("verify-all").addEventListener("click", async () => {
  for (const [event, cell] of [...shown]) {
    await check(event, cell);
  }
});

try {
  const me = await frame("Audit log");
  if (me.tenant === null) {
    base = "/admin/v1/audit";
    document.getElementById("tenant-filter").hidden = false;
  }
  await loadKeys();
  await render();
} catch (error) {
  showError(status, error);
}
