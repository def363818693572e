// Every device, grouped by where it comes from (board, endpoint, automation). Rows are built once;
// an event marks its device dirty and the next animation frame updates only the dirty rows, so a
// thousand devices and a busy stream never re-render the whole list.

import { age, describeState, el } from "./format.js";
import { addPoint, createSpark, drawSpark } from "./sparkline.js";

const KINDS = [["board", "board"], ["endpoint", "endpoint"], ["automation", "automation"]];

function groupOf(view) {
  for (const [key, kind] of KINDS) if (view[key]) return { key: `${kind}:${view[key]}`, kind, id: view[key] };
  return { key: `service:${view.service}`, kind: "service", id: view.service };
}

export class DeviceList {
  /** makeControl(device) -> {element, update(device)} | null */
  constructor(root, countLine, makeControl) {
    this.root = root;
    this.countLine = countLine;
    this.makeControl = makeControl;
    this.devices = new Map();
    this.groups = new Map();
    this.dirty = new Set();
    this.frame = 0;
    this.terms = [];
    this.resolutionMs = 10000;
    this.capacity = 360;
  }

  /** The first pull: views from GET /devices?include=state, GET /history's answer, group titles. */
  load(views, history, titles) {
    const now = Date.now();
    this.resolutionMs = (history.resolution_s ?? 10) * 1000;
    const fragment = document.createDocumentFragment();
    for (const view of views) {
      const about = history.devices?.[view.device_id] ?? {};
      const device = {
        id: view.device_id, view, state: { ...(view.state ?? {}) }, online: view.online, reason: view.reason,
        updatedAt: typeof view.state_age_s === "number" ? now - view.state_age_s * 1000 : null,
        property: about.property ?? null, unit: about.unit ?? null,
        points: (about.points ?? []).map(([t, v]) => [t * 1000, v]),
      };
      const group = this._group(groupOf(view), titles, fragment);
      device.group = group;
      group.devices.push(device);
      this._buildRow(device);
      group.rows.append(device.row.root);
      this.devices.set(device.id, device);
      this._render(device, now);
    }
    this.root.append(fragment);
    for (const group of this.groups.values()) this._count(group);
    this._countLine();
  }

  /** After a stream reset: the pulled views are the truth again (rows stay, values change). */
  resync(views) {
    const now = Date.now();
    for (const view of views) {
      const device = this.devices.get(view.device_id);
      if (!device) continue;
      device.state = { ...(view.state ?? {}) };
      device.online = view.online;
      device.reason = view.reason;
      if (typeof view.state_age_s === "number") device.updatedAt = now - view.state_age_s * 1000;
      this._mark(device);
    }
  }

  applyState(id, state, at = Date.now()) {
    const device = this.devices.get(id);
    if (!device || !state) return;
    Object.assign(device.state, state);
    device.updatedAt = at;
    const value = device.property ? state[device.property] : undefined;
    if (typeof value === "number" || typeof value === "boolean") {
      addPoint(device.points, at, Number(value), this.resolutionMs, this.capacity);
      device.sparkDirty = true;
    }
    this._mark(device);
  }

  applyAvailability(id, online, reason) {
    const device = this.devices.get(id);
    if (!device) return;
    device.online = online;
    device.reason = reason;
    this._mark(device);
  }

  /** Board / endpoint / automation facts shown in a group's header. */
  setGroupStatus(key, { pill, pillClass, stats, error }) {
    const group = this.groups.get(key);
    if (!group) return;
    const head = group.head;
    if (pill !== undefined && head.pill.textContent !== pill) head.pill.textContent = pill;
    if (pillClass !== undefined) head.pill.className = `pill ${pillClass}`;
    if (stats !== undefined && head.stats.textContent !== stats) head.stats.textContent = stats;
    if (error !== undefined && head.error.textContent !== error) head.error.textContent = error;
  }

  setFilter(text) {
    this.terms = text.toLowerCase().split(/\s+/).filter(Boolean);
    for (const device of this.devices.values()) device.row.root.hidden = !this._matches(device);
    for (const group of this.groups.values()) group.section.hidden = !group.devices.some((d) => !d.row.root.hidden);
    this._countLine();
  }

  setAllCollapsed(collapsed) {
    for (const group of this.groups.values()) this._collapse(group, collapsed);
  }

  get allCollapsed() {
    return [...this.groups.values()].every((g) => g.collapsed);
  }

  /** Once a second: ages (and, every half minute, the sparklines' time axis) of the rows on screen. */
  tick(redrawSparks) {
    const now = Date.now();
    for (const group of this.groups.values()) {
      if (group.collapsed || group.section.hidden) continue;
      for (const device of group.devices) {
        if (device.row.root.hidden) continue;
        const text = age(device.updatedAt === null ? null : now - device.updatedAt);
        if (device.row.age.textContent !== text) device.row.age.textContent = text;
        if (redrawSparks && device.property) drawSpark(device.row.spark, device.points, now);
      }
    }
  }

  // -- internals

  _mark(device) {
    this.dirty.add(device);
    if (!this.frame) this.frame = requestAnimationFrame(() => this._flush());
  }

  _flush() {
    this.frame = 0;
    const now = Date.now();
    const groups = new Set();
    for (const device of this.dirty) {
      this._render(device, now);
      groups.add(device.group);
    }
    this.dirty.clear();
    for (const group of groups) this._count(group);
    if (this.terms.some((t) => t === "online" || t === "offline")) this.setFilter(this.terms.join(" "));
    else this._countLine();
  }

  _group({ key, kind, id }, titles, fragment) {
    let group = this.groups.get(key);
    if (group) return group;
    const section = el("section", "group");
    section.dataset.group = key;
    const header = el("header", "group-head");
    const toggle = el("button", "toggle", "▾");
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", "true");
    toggle.setAttribute("aria-label", `Collapse ${titles[key] ?? id}`);
    const title = el("h2", null, titles[key] ?? id);
    const head = { pill: el("span", "pill"), stats: el("span", "stats"), error: el("span", "last-error"),
                   count: el("span", "count") };
    header.append(toggle, title, el("span", "kind", kind), head.pill, head.stats, head.count, head.error);
    const rows = el("div", "rows");
    section.append(header, rows);
    fragment.append(section);
    group = { key, kind, id, section, head, rows, toggle, devices: [], collapsed: false };
    toggle.addEventListener("click", () => this._collapse(group, !group.collapsed));
    this.groups.set(key, group);
    return group;
  }

  _collapse(group, collapsed) {
    group.collapsed = collapsed;
    group.section.classList.toggle("collapsed", collapsed);
    group.toggle.textContent = collapsed ? "▸" : "▾";
    group.toggle.setAttribute("aria-expanded", String(!collapsed));
    if (!collapsed) this.tick(true);
  }

  _buildRow(device) {
    const { view } = device;
    const root = el("div", "row");
    root.dataset.id = device.id;
    const name = el("span", "name", view.name ?? device.id);
    name.append(el("small", null, `${device.id} · ${view.type}${view.area ? ` · ${view.area}` : ""}`));
    const value = el("span", "value");
    const main = el("span", "main");
    const unit = el("small", "unit");
    const reason = el("span", "reason");
    const swatch = el("span", "swatch");
    swatch.hidden = true;
    value.append(main, " ", swatch, " ", unit, reason);
    const spark = createSpark();
    if (!device.property) spark.style.visibility = "hidden";
    const ageCell = el("span", "age");
    const control = el("span", "control");
    device.control = this.makeControl(device);
    if (device.control) control.append(device.control.element);
    root.append(el("span", "dot"), name, value, spark, ageCell, control);
    device.haystack = `${device.id} ${view.name ?? ""} ${view.type} ${view.area ?? ""} ${view.model ?? ""} `
      + `${(view.groups ?? []).join(" ")} ${view.board ?? view.endpoint ?? view.automation ?? ""}`.toLowerCase();
    device.row = { root, main, unit, swatch, reason, spark, age: ageCell };
    device.sparkDirty = true;
  }

  _render(device, now) {
    const { row } = device;
    const [main, unit, color] = describeState(device.view.type, device.state, device.unit);
    if (row.main.textContent !== main) row.main.textContent = main;
    if (row.unit.textContent !== unit) row.unit.textContent = unit;
    row.swatch.hidden = !color;
    if (color && row.swatch.style.backgroundColor !== color) row.swatch.style.backgroundColor = color;
    row.root.classList.toggle("offline", !device.online);
    const reason = device.online ? "" : (device.reason || "offline");
    if (row.reason.textContent !== reason) row.reason.textContent = reason;
    row.root.title = device.online ? "" : `offline: ${reason}`;
    row.age.textContent = age(device.updatedAt === null ? null : now - device.updatedAt);
    if (device.sparkDirty && device.property) {
      drawSpark(row.spark, device.points, now);
      device.sparkDirty = false;
    }
    if (device.control) device.control.update(device);
  }

  _count(group) {
    const online = group.devices.filter((d) => d.online).length;
    group.head.count.textContent = `${online}/${group.devices.length} online`;
  }

  _countLine() {
    const total = this.devices.size;
    let shown = 0, offline = 0;
    for (const device of this.devices.values()) {
      if (!device.row.root.hidden) shown += 1;
      if (!device.online) offline += 1;
    }
    const text = `${total} devices, ${offline} offline` + (shown !== total ? `, ${shown} shown` : "");
    if (this.countLine.textContent !== text) this.countLine.textContent = text;
  }

  _matches(device) {
    return this.terms.every((term) => {
      if (term === "offline") return !device.online;
      if (term === "online") return device.online;
      return device.haystack.includes(term);
    });
  }
}
