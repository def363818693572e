// How values, ages and times read on the page. Units come from the aggregator's history
// (GET /history says each device's reading property and unit); the rest is by device type.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function number(value, digits = 1) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

/** [main text, unit text, colour or null] for a device's state. */
export function describeState(type, state, unit) {
  if (!state || Object.keys(state).length === 0) return ["—", "", null];
  switch (type) {
    case "motion": return [state.motion ? "motion" : "clear", "", null];
    case "battery": {
      const volts = typeof state.voltage === "number" ? ` · ${number(state.voltage, 2)} V` : "";
      return [`${number(state.battery, 0)}`, `%${volts}`, null];
    }
    case "window": {
      const moving = state.moving && typeof state.target === "number" ? ` → ${number(state.target, 0)} %` : "";
      return [number(state.position, 0), `%${moving}`, null];
    }
    case "led": {
      const brightness = typeof state.brightness === "number" ? ` · ${state.brightness}` : "";
      return [state.state ?? "—", `${state.color ?? ""}${brightness}`, state.color ?? null];
    }
    case "switch": return [state.state ?? "—", state.mode ? `mode ${state.mode}` : "", null];
    default: {
      const prop = type in state ? type : Object.keys(state)[0];
      return [number(state[prop]), unit ?? "", null];
    }
  }
}

export function age(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

export function clock(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? String(iso) : at.toLocaleTimeString();
}
