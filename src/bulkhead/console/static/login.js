import { signIn } from "/console/static/api.js";
import { showError } from "/console/static/ui.js";

const form = document.getElementById("sign-in");
const status = document.getElementById("status");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const fields = { principal: data.get("principal"), password: data.get("password") };
  for (const name of ["tenant", "totp"]) {
    const value = String(data.get(name) || "").trim();
    if (value) {
      fields[name] = value;
    }
  }
  try {
    await signIn(fields);
    window.location.assign("/console");
  } catch (error) {
    form.elements.password.value = "";
    form.elements.totp.value = "";
    showError(status, error);
  }
});

// Sign-in through the tenant's OIDC provider: the gateway sends the browser on to it.
const oidc = document.getElementById("sign-in-oidc");
oidc.addEventListener("submit", (event) => {
  event.preventDefault();
  const tenant = String(new FormData(oidc).get("tenant") || "").trim();
  window.location.assign("/console/login/oidc?tenant=" + encodeURIComponent(tenant));
});
