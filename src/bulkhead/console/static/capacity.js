// GPUs and workers, read-only: the GPU inventory (MIG mode, GPU and compute instances) and the
// local workers' state. A MIG layout is planned with `bulkhead gpu plan` and applied by the
// operator; the API serves no plan, so neither does this page.

import { api } from "/console/static/api.js";
import { fail } from "/console/static/page.js";
import { el, frame, table } from "/console/static/ui.js";

const gpus = document.getElementById("gpus");
const workers = document.getElementById("workers");
const status = document.getElementById("status");

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

try {
  await frame("GPUs and workers");
  await Promise.all([showGpus(), showWorkers()]);
} catch (error) {
  fail(status, error);
}
