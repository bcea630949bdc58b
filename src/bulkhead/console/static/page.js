// What the role pages share: running an action and redrawing, errors that say what the API
// refused, and the one value a page takes from its URL (an object's name, `?tenant=`, `?model=`).
// That value is only ever a path segment of an API call, encoded: the API decides whether the
// caller may see the object (403, or 404 for another tenant's), and the page shows its refusal.
// No page follows a URL it is given.

import { el } from "/console/static/ui.js";

export function param(name) {
  return new URLSearchParams(window.location.search).get(name) || "";
}

// One segment of an API path. Some names no encoding keeps in one segment: a URL parser
// resolves `.` and `..` as path steps (written `%2E` too), so `?tenant=..` would have the
// settings page call `/admin/v1/tenants/../limits`, that is `/admin/v1/limits`; and the
// server decodes `%2F` before it matches a route, so `?tenant=acme%2Fkeys%2FID` would reach
// `/admin/v1/tenants/acme/keys/ID/limits`, a key's limits. No API route takes such a name
// in its path, so such a value is refused here, before any call.
export function segment(value) {
  const text = String(value);
  if (text === "." || text === ".." || text.includes("/")) {
    throw new Error(`"${text}" is not a name an API path can hold.`);
  }
  return encodeURIComponent(text);
}

// The API's refusal as a sentence: a 403 or 404 shows the refusal, never the data.
export function refusal(error) {
  const message = error.message || String(error);
  if (error.status === 403) {
    return `Not allowed (403${error.code ? `, ${error.code}` : ""}): ${message}`;
  }
  if (error.status === 404) {
    return `Not found (404): ${message}`;
  }
  return error.status ? `Refused (${error.status}): ${message}` : message;
}

export function fail(region, error) {
  region.replaceChildren(el("p", { class: "error", role: "alert" }, refusal(error)));
}

// `act(work)`: clear the status, run `work`, redraw with `render`; a refusal goes to `status`.
export function runner(status, render) {
  return async (work) => {
    status.replaceChildren();
    try {
      await work();
      await render();
    } catch (error) {
      fail(status, error);
    }
  };
}

export function button(label, onClick, attributes = {}) {
  const node = el("button", { type: "button", ...attributes }, label);
  node.addEventListener("click", onClick);
  return node;
}

export function options(select, values, chosen) {
  select.replaceChildren(...values.map((v) => el("option", { value: v, selected: v === chosen }, v)));
}

// A form's fields as strings, without the empty ones.
export function fields(form) {
  const out = {};
  for (const [name, value] of new FormData(form).entries()) {
    if (String(value) !== "") {
      out[name] = String(value);
    }
  }
  return out;
}

export function age(days) {
  return days === undefined || days === null ? "—" : `${days} d`;
}

// A privileged action the API refused for want of a grant (`privileged_access_required`):
// the refusal, and a link to the access request form filled in with what the refusal names
// (`'ACTION' on 'TARGET'`), else with the page's own guess. Other errors are thrown on.
export function grantNeeded(status, error, action, target) {
  if (error.code !== "privileged_access_required") {
    throw error;
  }
  const named = /^'([^']+)' on '([^']+)'/.exec(error.message || "");
  const [wanted, on] = named ? [named[1], named[2]] : [action, target];
  fail(status, error);
  const query = `action=${encodeURIComponent(wanted)}&target=${encodeURIComponent(on)}`;
  const link = el("a", { href: `/console/access?${query}` }, `Request access: ${wanted} on ${on}`);
  status.append(el("p", {}, link));
}
