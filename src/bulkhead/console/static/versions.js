// A tenant admin's model versions: pick one of the tenant's own models (`?model=` preselects
// it), list its versions, publish one, retire one. Shared models have no tenant versions. The
// model name from the URL goes only into the API path: another tenant's model is the API's 404.

import { api } from "/console/static/api.js";
import { button, fail, fields, options, param, runner, segment } from "/console/static/page.js";
import { frame, table, when } from "/console/static/ui.js";

const list = document.getElementById("versions");
const status = document.getElementById("status");
const picker = document.getElementById("pick-model");
const form = document.getElementById("publish-version");

const act = runner(status, render);

function path() {
  return `/tenant/v1/models/${segment(picker.elements.model.value)}/versions`;
}

function retire(version) {
  if (version.retired_at) {
    return "retired";
  }
  return button("Retire", () => act(() => api("POST", `${path()}/${segment(version.version)}/retire`)), {
    class: "danger",
    "data-version": version.version,
  });
}

async function render() {
  if (!picker.elements.model.value) {
    list.replaceChildren();
    return;
  }
  list.replaceChildren();
  const versions = (await api("GET", path())).data;
  list.replaceChildren(
    table(
      [
        ["Version", (v) => v.version],
        ["Upstream", (v) => v.upstream],
        ["Upstream model", (v) => v.upstream_model],
        ["Published", (v) => when(v.created_at)],
        ["Retired", (v) => when(v.retired_at)],
        ["", retire],
      ],
      versions,
      "No versions yet.",
    ),
  );
}

picker.elements.model.addEventListener("change", () => act(async () => {}));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = fields(form);
  act(async () => {
    await api("POST", path(), data);
    form.reset();
  });
});

try {
  await frame("Model versions");
  const own = (await api("GET", "/tenant/v1/models")).data.filter((m) => !m.shared).map((m) => m.name);
  const chosen = param("model") || own[0] || "";
  options(picker.elements.model, own.includes(chosen) ? own : [chosen, ...own], chosen);
  await render();
} catch (error) {
  fail(status, error);
}
