import { api } from "/console/static/api.js";
import { frame, showError, table } from "/console/static/ui.js";

const list = document.getElementById("principals");

try {
  await frame("Principals");
  const principals = (await api("GET", "/tenant/v1/principals")).data;
  list.replaceChildren(
    table(
      [
        ["Name", (p) => p.name],
        ["Kind", (p) => p.kind],
        ["Roles", (p) => p.roles.join(", ")],
      ],
      principals,
      "No principals.",
    ),
  );
} catch (error) {
  showError(list, error);
}
