// The window slider, the LED's on/off and colour, the automation switch. Every command goes
// through the aggregator's routing (POST /device/<id>/cmd) and its answer is shown next to the
// control that gave it: success (with the round trip), the error, or a timeout.

import { sendCommand } from "./api.js";
import { el } from "./format.js";

export class Controls {
  constructor(tokens, dialog) {
    this.tokens = tokens;
    this.dialog = dialog;
  }

  /** For DeviceList: the control of a device that takes commands a person gives, or null. */
  make(device) {
    const type = device.view.type;
    if (device.view.enabled === false) return null;
    if (type === "window") return this._window(device);
    if (type === "led") return this._led(device);
    if (type === "switch") return this._switch(device);
    return null;
  }

  async send(device, values, status) {
    let token = this.tokens.current();
    if (!token) token = await this.dialog.ask();
    if (!token) return this._show(status, "bad", "✗ not sent: commands need the API token");
    this._show(status, "busy", "sending…");
    const answer = await sendCommand(device.id, values, token);
    const message = answer.body?.message ?? "";
    if (answer.outcome === "success") this._show(status, "ok", `✓ success · ${answer.ms} ms`);
    else if (answer.outcome === "unauthorized") {
      this.tokens.forget();
      this._show(status, "bad", "✗ the API token was refused; the next command asks for it again");
    } else if (answer.outcome === "timeout") this._show(status, "bad", `✗ timeout: ${message}`);
    else this._show(status, "bad", `✗ ${answer.body?.error ?? `HTTP ${answer.status}`}: ${message}`);
    return answer;
  }

  _show(status, kind, text) {
    status.className = `cmd ${kind}`;
    status.textContent = text;
    status.title = text;
  }

  _window(device) {
    const element = el("span", "control-window");
    const slider = el("input");
    Object.assign(slider, { type: "range", min: 0, max: 100, step: 1 });
    slider.setAttribute("aria-label", `${device.view.name ?? device.id} position`);
    const shown = el("output", null, "");
    const status = el("span", "cmd");
    let held = false; // while a person holds the slider, live updates do not move it
    let inFlight = null, queued = null;
    const commit = async () => {
      const position = Number(slider.value);
      if (inFlight) { queued = position; return; }
      inFlight = this.send(device, { position }, status);
      await inFlight;
      inFlight = null;
      if (queued !== null && queued !== position) { slider.value = queued; queued = null; commit(); }
    };
    slider.addEventListener("pointerdown", () => { held = true; });
    slider.addEventListener("input", () => { shown.textContent = `${slider.value} %`; });
    slider.addEventListener("change", () => { held = false; commit(); });
    element.append(slider, shown, status);
    return {
      element,
      update(d) {
        const target = typeof d.state.target === "number" ? d.state.target : d.state.position;
        if (!held && !inFlight && typeof target === "number") {
          slider.value = target;
          shown.textContent = `${target} %`;
        }
      },
    };
  }

  _led(device) {
    const element = el("span", "control-led");
    const power = el("button", null, "on/off");
    power.type = "button";
    power.setAttribute("aria-pressed", "false");
    power.setAttribute("aria-label", `${device.view.name ?? device.id} on or off`);
    const color = el("input");
    color.type = "color";
    color.setAttribute("aria-label", `${device.view.name ?? device.id} colour`);
    const status = el("span", "cmd");
    power.addEventListener("click", () => {
      const on = power.getAttribute("aria-pressed") === "true";
      this.send(device, { state: on ? "off" : "on" }, status);
    });
    color.addEventListener("change", () => this.send(device, { state: "on", color: color.value }, status));
    element.append(power, color, status);
    return {
      element,
      update(d) {
        power.setAttribute("aria-pressed", String(d.state.state === "on"));
        power.textContent = d.state.state === "on" ? "on" : "off";
        if (typeof d.state.color === "string" && document.activeElement !== color) color.value = d.state.color;
      },
    };
  }

  _switch(device) {
    const element = el("span", "control-switch");
    const toggle = el("button", null, "off");
    toggle.type = "button";
    toggle.setAttribute("aria-pressed", "false");
    toggle.setAttribute("aria-label", `${device.view.name ?? device.id} on or off`);
    const status = el("span", "cmd");
    toggle.addEventListener("click", () => {
      const on = toggle.getAttribute("aria-pressed") === "true";
      this.send(device, { state: on ? "off" : "on" }, status);
    });
    element.append(toggle, status);
    return {
      element,
      update(d) {
        toggle.setAttribute("aria-pressed", String(d.state.state === "on"));
        toggle.textContent = d.state.state === "on" ? "on" : "off";
      },
    };
  }
}

/** The API token prompt: resolves to the token typed (and kept), or null when cancelled. */
export class TokenDialog {
  constructor(tokens) {
    this.tokens = tokens;
    this.node = document.getElementById("token-dialog");
    this.input = document.getElementById("token-input");
    this.where = document.getElementById("token-where");
    this.pending = null;
    document.getElementById("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = this.input.value.trim();
      if (!token) return;
      this.tokens.set(token);
      this._finish(token);
    });
    document.getElementById("token-cancel").addEventListener("click", () => this._finish(null));
    this.node.addEventListener("cancel", () => this._finish(null));
  }

  setWhere(where) {
    this.where.textContent = where ? `This instance's token is ${where.startsWith("given as") ? where : `in the file ${where}`}.` : "";
  }

  ask() {
    if (this.pending) return this.pending.promise;
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    this.pending = { promise, resolve };
    this.input.value = "";
    this.node.showModal();
    this.input.focus();
    return promise;
  }

  _finish(token) {
    if (this.node.open) this.node.close();
    const pending = this.pending;
    this.pending = null;
    if (pending) pending.resolve(token);
  }
}
