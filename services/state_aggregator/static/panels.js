// The connector (services, broker link, outbox), the automations' latest decisions, each
// board's and endpoint's condition in its group's header, and the recent errors.

import { clock, el, number } from "./format.js";

const MAX_ERRORS = 100;

function fact(list, term, value, cls) {
  const dd = el("dd", cls, value);
  list.append(el("dt", null, term), dd);
  return dd;
}

function pillClass(ok) {
  return ok === true ? "ok" : ok === false ? "bad" : "warn";
}

export function renderConnector(list, overview) {
  list.replaceChildren();
  for (const [name, service] of Object.entries(overview.services ?? {})) {
    const ok = service.status === "ok";
    const dd = fact(list, name.replace("_", " "), "");
    dd.append(el("span", `pill ${pillClass(ok ? true : service.status === "degraded" ? null : false)}`, service.status),
      el("small", null, `  ${service.online}/${service.devices} devices online${service.stream ? "" : " · stream not connected"}`));
  }
  const mqtt = overview.mqtt ?? {};
  const broker = fact(list, "MQTT broker", "");
  broker.append(el("span", `pill ${pillClass(mqtt.connected)}`,
    mqtt.connected === true ? "connected" : mqtt.connected === false ? "disconnected" : "unknown"),
  el("small", null, `  ${mqtt.broker ?? ""}${mqtt.reason ? ` · ${mqtt.reason}` : ""}`));
  const outbox = mqtt.outbox;
  fact(list, "Outbox", outbox
    ? `${outbox.pending ?? 0} message(s) waiting${outbox.on_disk === false ? " (memory only)" : ""}${outbox.problem ? ` · ${outbox.problem}` : ""}`
    : "— (no report from the bridge)");
  const events = overview.events ?? {};
  fact(list, "Event stream", `${events.clients ?? "?"} client(s) · ${events.published ?? events.seq ?? "?"} events`);
}

export function renderAutomations(section, list, overview, switches) {
  const automations = overview.automations ?? {};
  const ids = Object.keys(automations);
  section.hidden = ids.length === 0;
  list.replaceChildren();
  for (const id of ids) {
    const a = automations[id];
    const box = el("div", "automation");
    box.dataset.automation = id;
    const head = el("h3", null, id);
    head.append(" ", el("span", `pill ${a.status === "running" ? "ok" : a.status === "paused" ? "bad" : "warn"}`, a.status));
    box.append(head);
    if (a.reason) box.append(el("p", "muted", a.reason));
    const facts = el("dl", "facts");
    const last = a.last;
    if (last) {
      const rec = last.recommendation ?? {};
      const moves = (last.action === "move" || last.action === "suggest") && typeof last.position === "number";
      fact(facts, "Decision", `${last.action}${moves ? ` → ${last.position} %` : ""} (mode ${last.mode ?? "?"})`);
      fact(facts, "Why", last.reason ?? "");
      fact(facts, "Model says", `${typeof rec.position === "number" ? `${number(rec.position)} %` : "—"}, confidence ${typeof rec.confidence === "number" ? number(rec.confidence, 2) : "—"}`);
      fact(facts, "Model", rec.model ?? "— (none reported)");
      if (last.held_until) fact(facts, "Held", `by a person's command until ${clock(last.held_until)}`, "held");
      fact(facts, "Evaluated", `${clock(last.evaluated_at)} (${last.trigger ?? ""})`);
    } else {
      fact(facts, "Decision", "none yet");
    }
    if (a.manual) fact(facts, "Last by hand", `${a.manual.cmd_id ?? ""} at ${clock(new Date(a.manual.at * 1000).toISOString())}`);
    if (a.last_move) fact(facts, "Last move", `→ ${a.last_move.position} % at ${clock(a.last_move.at)}`);
    if (switches[id]) fact(facts, "Switch", `${switches[id]} (in the device list)`);
    box.append(facts);
    const inputs = el("div", "inputs");
    for (const [name, value] of Object.entries(last?.inputs ?? {})) inputs.append(el("span", null, `${name} ${typeof value === "number" ? number(value) : value}`));
    box.append(inputs);
    list.append(box);
  }
}

/** Lines/s needs two looks at a board's counter: the previous one is kept here. */
export class SourceHeaders {
  constructor(devices) {
    this.devices = devices;
    this.previous = new Map();
    this.lastErrors = new Map();
  }

  update(overview, now = Date.now()) {
    for (const board of overview.boards ?? []) {
      const key = `board:${board.board_id}`;
      const counters = board.counters ?? {};
      const before = this.previous.get(key);
      let rate = "… lines/s";
      if (before && now > before.at && typeof counters.lines_ok === "number") {
        rate = `${number(Math.max(0, counters.lines_ok - before.lines) / ((now - before.at) / 1000))} lines/s`;
      }
      this.previous.set(key, { at: now, lines: counters.lines_ok ?? 0 });
      this.devices.setGroupStatus(key, {
        pill: board.link + (board.reason ? `: ${board.reason}` : ""), pillClass: board.online ? "ok" : "bad",
        stats: `${rate} · lost ${counters.lost ?? 0} · reconnects ${counters.reconnects ?? 0}${board.fw ? ` · fw ${board.fw}` : ""}`,
        error: this.lastErrors.get(key) ?? "",
      });
    }
    for (const endpoint of overview.endpoints ?? []) {
      const key = `endpoint:${endpoint.endpoint_id}`;
      this.devices.setGroupStatus(key, {
        pill: endpoint.status + (endpoint.reason ? `: ${endpoint.reason}` : ""), pillClass: endpoint.online ? "ok" : "bad",
        stats: `${endpoint.polls ?? 0} polls · ${endpoint.failed_polls ?? 0} failed · every ${endpoint.poll_interval ?? "?"} s`
          + `${typeof endpoint.last_duration_ms === "number" ? ` · ${number(endpoint.last_duration_ms)} ms` : ""}`,
        error: this.lastErrors.get(key) ?? "",
      });
    }
    for (const [id, a] of Object.entries(overview.automations ?? {})) {
      this.devices.setGroupStatus(`automation:${id}`, { pill: a.status, pillClass: a.status === "running" ? "ok" : "warn" });
    }
    if (overview.boards_error) this._unreachable("board", overview.boards_error);
    if (overview.endpoints_error) this._unreachable("endpoint", overview.endpoints_error);
  }

  _unreachable(kind, reason) {
    for (const key of this.devices.groups.keys()) {
      if (key.startsWith(`${kind}:`)) this.devices.setGroupStatus(key, { pill: reason, pillClass: "bad" });
    }
  }

  noteError(record) {
    const key = record.board ? `board:${record.board}` : record.endpoint ? `endpoint:${record.endpoint}` : null;
    if (!key) return;
    const text = `last error ${clock(record.timestamp)}: ${record.error_code} ${record.message ?? ""}`;
    this.lastErrors.set(key, text);
    this.devices.setGroupStatus(key, { error: text });
  }
}

export class ErrorList {
  constructor(list, none) {
    this.list = list;
    this.none = none;
  }

  /** records oldest first (GET /errors). */
  load(records) {
    this.list.replaceChildren();
    for (const record of records.slice(-MAX_ERRORS)) this.add(record);
  }

  add(record) {
    const item = el("li", `severity-${record.severity ?? "error"}`);
    item.append(el("span", "muted", clock(record.timestamp)),
      el("span", "code", record.error_code ?? "ERROR"),
      el("span", null, `${record.message ?? ""}${record.device_id ? ` (${record.device_id})` : ""} · ${record.service ?? record.source ?? ""}`));
    this.list.prepend(item);
    while (this.list.childElementCount > MAX_ERRORS) this.list.lastElementChild.remove();
    this.none.hidden = this.list.childElementCount > 0;
  }
}
