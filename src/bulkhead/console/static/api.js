// The one way a page talks to Bulkhead: same-origin fetches carrying the session cookie,
// and on every change the session's CSRF token (docs/console.md). Nothing else calls fetch.

let csrf = null;

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function answer(response) {
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiError(response.status, error.message || response.statusText, error.code);
  }
  return body;
}

// Who is signed in, and the CSRF token for this session; back to sign-in without one.
export async function session() {
  const response = await fetch("/console/api/session", {
    credentials: "same-origin",
    headers: { accept: "application/json" },
  });
  if (response.status === 401) {
    window.location.assign("/console/login");
    throw new ApiError(401, "Signed out.", "session_expired");
  }
  const body = await answer(response);
  csrf = body.csrf_token;
  return body;
}

// A call of the platform or tenant API (`/admin/v1`, `/tenant/v1`), judged by the API itself.
export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (method !== "GET") {
    headers["x-csrf-token"] = csrf || "";
  }
  if (body !== undefined) {
    headers["content-type"] = "application/json";
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer(response);
}

export async function signIn(fields) {
  const response = await fetch("/console/api/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(fields),
  });
  return answer(response);
}

export async function signOut() {
  await api("POST", "/console/api/logout");
  window.location.assign("/console/login");
}
