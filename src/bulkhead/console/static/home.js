import { el, frame, showError, when } from "/console/static/ui.js";

const main = document.getElementById("main");

try {
  const me = await frame("Overview");
  main.append(
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Signed in as"),
      el("dd", {}, me.principal),
      el("dt", {}, "Tenant"),
      el("dd", {}, me.tenant ?? "the platform"),
      el("dt", {}, "Role"),
      el("dd", {}, me.role),
      el("dt", {}, "Session ends"),
      el("dd", {}, when(me.expires_at)),
    ),
  );
} catch (error) {
  showError(main, error);
}
