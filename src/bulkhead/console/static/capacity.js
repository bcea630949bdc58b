// GPUs and workers, read-only: the GPU inventory (MIG mode, GPU and compute instances), the
// local workers' state, and a MIG layout planned by the API (`POST /admin/v1/gpus/plan`, the
// planner of `bulkhead gpu plan`). Planning changes nothing: the operator applies a layout.

import { api } from "/console/static/api.js";
import { fail } from "/console/static/page.js";
import { el, frame, table } from "/console/static/ui.js";

const gpus = document.getElementById("gpus");
const workers = document.getElementById("workers");
const status = document.getElementById("status");
const planForm = document.getElementById("plan-form");
const planned = document.getElementById("plan");

function mib(bytes) {
  return typeof bytes === "number" ? `${Math.round(bytes / 1048576)} MiB` : "—";
}

function mig(gpu) {
  const pending = gpu.mig_pending !== gpu.mig_current ? " (change pending)" : "";
  return (gpu.mig_current ? "on" : "off") + pending;
}

async function showGpus() {
  try {
    const found = await api("GET", "/admin/v1/gpus");
    if (!found.available) {
      const reason = String(found.reason || "none found").replace(/\.$/, "");
      gpus.replaceChildren(el("p", { class: "empty" }, `No GPU here: ${reason}.`));
      return;
    }
    gpus.replaceChildren(
      table(
        [
          ["Index", (g) => String(g.index)],
          ["Model", (g) => g.name || g.model || "—"],
          ["UUID", (g) => g.uuid],
          ["Memory used", (g) => `${mib(g.memory_used)} of ${mib(g.memory_total)}`],
          ["MIG", mig],
          ["Instances", (g) => String((g.gpu_instances || []).length)],
        ],
        found.gpus,
        "No GPUs listed.",
      ),
    );
  } catch (error) {
    fail(gpus, error);
  }
}

async function showWorkers() {
  try {
    const found = (await api("GET", "/admin/v1/workers")).data;
    workers.replaceChildren(
      table(
        [
          ["Deployment", (w) => w.deployment],
          ["Model", (w) => w.model],
          ["Tenant", (w) => w.tenant ?? "shared"],
          ["State", (w) => (w.ready ? `${w.state} (ready)` : w.state)],
          ["Device", (w) => w.device || "cpu"],
          ["Restarts", (w) => String(w.restarts)],
          ["Last exit", (w) => w.last_exit || "—"],
          ["Sandbox missing", (w) => w.sandbox_missing.join(", ") || "—"],
        ],
        found,
        "No local workers.",
      ),
    );
  } catch (error) {
    fail(workers, error);
  }
}

// `3g.40gb,1g.10gb:2` → one name per instance, as the CLI reads it; the API bounds the list
// and judges every name, so a count here only needs to be a small whole number.
function profileList(text) {
  const names = [];
  for (const item of text.split(",").map((part) => part.trim()).filter(Boolean)) {
    const [name, count = "1"] = item.split(":").map((part) => part.trim());
    if (!/^[0-9]{1,3}$/.test(count) || Number(count) < 1) {
      throw new Error(`Bad count in "${item}": use NAME or NAME:COUNT.`);
    }
    names.push(...Array(Math.min(Number(count), 200)).fill(name));
  }
  return names;
}

function slices(instance) {
  const end = instance.start + instance.size - 1;
  return end === instance.start ? String(instance.start) : `${instance.start}–${end}`;
}

async function showPlan() {
  const data = new FormData(planForm);
  try {
    const body = {
      gpu: String(data.get("gpu")).trim(),
      profiles: profileList(String(data.get("profiles"))),
      gpus: Number(data.get("gpus")),
    };
    const found = await api("POST", "/admin/v1/gpus/plan", body);
    const rows = found.gpus.flatMap((g) => g.instances.map((i) => ({ ...i, gpu: g.gpu })));
    planned.replaceChildren(
      el("p", {}, `A layout on ${found.gpus.length} × ${found.gpu}:`),
      table(
        [
          ["GPU", (i) => String(i.gpu)],
          ["Profile", (i) => i.profile],
          ["Memory slices", slices],
          ["Compute slices", (i) => String(i.compute_slices)],
        ],
        rows,
        "Nothing placed.",
      ),
    );
  } catch (error) {
    fail(planned, error);
  }
}

planForm.addEventListener("submit", (event) => {
  event.preventDefault();
  showPlan();
});

try {
  await frame("GPUs and workers");
  await Promise.all([showGpus(), showWorkers()]);
} catch (error) {
  fail(status, error);
}
