// The aggregator's REST API, from the page's own origin only.
//
// The API token: reading is open, commands need `Authorization: Bearer <token>`. The page asks
// for the token the first time a command is given and keeps it in localStorage for this origin
// (this aggregator's address), so it is typed once per browser. The aggregator never hands it
// out: every local process can GET this page, and the token exists precisely because every local
// process can reach these ports (docs/rest-api.md, "Authentication").

const COMMAND_TIMEOUT_MS = 20000;

export async function getJSON(path) {
  // Plain GETs (no extra header, default cache mode), so the page's first pulls are answered by
  // the <link rel="preload"> requests index.html started; JSON answers carry no cache headers,
  // so nothing is kept beyond that.
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

export class TokenStore {
  constructor(instanceId) { this.key = `sensor-hub.api-token.${instanceId}`; }
  get() { try { return localStorage.getItem(this.key); } catch { return null; } }
  set(token) { try { localStorage.setItem(this.key, token); } catch { /* private mode: this page only */ } this.memory = token; }
  forget() { try { localStorage.removeItem(this.key); } catch { /* nothing kept */ } this.memory = null; }
  current() { return this.get() ?? this.memory ?? null; }
}

/**
 * One command through the aggregator's routing (POST /device/<id>/cmd). Resolves to
 * {outcome: "success"|"error"|"timeout"|"unauthorized", status, body, ms}; never rejects.
 */
export async function sendCommand(deviceId, values, token) {
  const started = performance.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), COMMAND_TIMEOUT_MS);
  try {
    const response = await fetch(`/device/${encodeURIComponent(deviceId)}/cmd`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ values }),
      signal: controller.signal,
    });
    let body = {};
    try { body = await response.json(); } catch { body = { message: `HTTP ${response.status}` }; }
    const ms = Math.round(performance.now() - started);
    if (response.ok && body.status === "success") return { outcome: "success", status: response.status, body, ms };
    if (response.status === 401) return { outcome: "unauthorized", status: 401, body, ms };
    if (response.status === 504 || body.error === "TIMEOUT") return { outcome: "timeout", status: response.status, body, ms };
    return { outcome: "error", status: response.status, body, ms };
  } catch (exc) {
    const ms = Math.round(performance.now() - started);
    if (exc.name === "AbortError") {
      return { outcome: "timeout", status: 0, body: { message: `no answer within ${COMMAND_TIMEOUT_MS / 1000} s` }, ms };
    }
    return { outcome: "error", status: 0, body: { message: `the aggregator could not be reached (${exc.message})` }, ms };
  } finally {
    clearTimeout(timer);
  }
}
