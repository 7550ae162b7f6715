// The console's only door to ecsd: the public API, same origin, with the signed-in user's own token.
// The token lives in sessionStorage (this tab only, gone when it closes) and is sent nowhere but here.

const SESSION_KEY = "ecsd.console.session";
const LAST_LOGIN_KEY = "ecsd.console.last-login";      // domain, user and project names: never the password

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let session = null;
try {
  session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
} catch {
  session = null;
}
const listeners = new Set();

export function currentSession() {
  if (session && session.expiresAt && Date.parse(session.expiresAt) <= Date.now()) signOut("Your session expired: sign in again.");
  return session;
}

export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function setSession(value, reason) {
  session = value;
  if (value) sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
  else sessionStorage.removeItem(SESSION_KEY);
  for (const fn of listeners) fn(value, reason);
}

export function signOut(reason) {
  setSession(null, reason || "");
}

export function lastLogin() {
  try {
    return JSON.parse(localStorage.getItem(LAST_LOGIN_KEY) || "{}");
  } catch {
    return {};
  }
}

// The ECS error body {"error": {"code", "message"}}; Nova-style {"badRequest": {"code", "message"}} too.
async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const inner = body && (body.error || Object.values(body).find((v) => v && typeof v === "object"));
  if (inner && (inner.code || inner.message)) {
    return new ApiError(response.status, String(inner.code ?? response.status), inner.message || "");
  }
  return new ApiError(response.status, `HTTP ${response.status}`, response.statusText || "request failed");
}

export async function login({ domain, user, password, project }) {
  const body = {
    auth: {
      identity: { methods: ["password"], password: { user: { name: user, password, domain: { name: domain } } } },
      scope: { project: { name: project } },
    },
  };
  const response = await fetch("/v3/auth/tokens", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
  if (response.status !== 201) throw await errorOf(response);
  const token = (await response.json()).token;
  localStorage.setItem(LAST_LOGIN_KEY, JSON.stringify({ domain, user, project }));
  setSession({
    token: response.headers.get("X-Subject-Token"), expiresAt: token.expires_at,
    projectId: token.project.id, projectName: token.project.name, userName: token.user.name,
    userId: token.user.id, domainName: token.user.domain.name,
  });
}

// One API call. `{pid}` in the path is the project id. Returns {body, requestId}; throws ApiError.
export async function call(method, path, body) {
  const s = currentSession();
  if (!s) throw new ApiError(401, "Console.0401", "not signed in");
  const headers = { "X-Auth-Token": s.token, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path.replaceAll("{pid}", s.projectId), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
  if (response.status === 401) {
    const err = await errorOf(response);
    signOut(`${err.code}: ${err.message}`);
    throw err;
  }
  if (!response.ok) throw await errorOf(response);
  const text = response.status === 204 ? "" : await response.text();
  return { body: text ? JSON.parse(text) : null, requestId: response.headers.get("X-Openstack-Request-Id") };
}

export const get = async (path) => (await call("GET", path)).body;
export const post = (path, body) => call("POST", path, body);
