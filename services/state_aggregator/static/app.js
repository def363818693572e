// The status page: one pull of everything, then the aggregator's /events as it happens.
//
// Order matters: the event stream opens first and its events wait in a queue until the pull is
// on the page, so nothing that happens between the two is lost. A `reset` on the stream (events
// missed) means pull again. Boards, endpoints, services and the broker are pulled every few
// seconds (GET /overview): their counters are not events.

import { getJSON, TokenStore } from "./api.js";
import { Controls, TokenDialog } from "./controls.js";
import { DeviceList } from "./devices.js";
import { ErrorList, renderAutomations, renderConnector, SourceHeaders } from "./panels.js";

const OVERVIEW_EVERY_MS = 3000;
const STREAM_RETRY_MS = 5000;
const SPARK_REDRAW_EVERY_S = 30;
const $ = (id) => document.getElementById(id);

const theme = {
  modes: ["auto", "light", "dark"],
  init() {
    let mode = "auto";
    try { mode = localStorage.getItem("sensor-hub.theme") ?? "auto"; } catch { /* default */ }
    this.apply(this.modes.includes(mode) ? mode : "auto");
    $("theme").addEventListener("click", () => {
      const next = this.modes[(this.modes.indexOf(this.mode) + 1) % this.modes.length];
      this.apply(next);
      try { localStorage.setItem("sensor-hub.theme", next); } catch { /* this page only */ }
    });
  },
  apply(mode) {
    this.mode = mode;
    if (mode === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = mode;
    $("theme").textContent = `Theme: ${mode}`;
  },
};

function titles(overview) {
  const names = {};
  for (const b of overview.boards ?? []) names[`board:${b.board_id}`] = b.name ?? b.board_id;
  for (const e of overview.endpoints ?? []) names[`endpoint:${e.endpoint_id}`] = e.name ?? e.endpoint_id;
  return names;
}

function setPill(node, text, cls) {
  node.textContent = text;
  node.className = `pill ${cls}`;
}

async function main() {
  theme.init();
  const queue = [];
  let ready = false;
  let devices, headers, errors, overview;

  const handle = (kind, data) => {
    if (!ready) { queue.push([kind, data]); return; }
    apply(kind, data);
  };
  // EventSource reconnects by itself (with Last-Event-ID: the aggregator replays what was missed)
  // after a broken connection, but gives up for good on an error answer, such as 503
  // TOO_MANY_STREAMS: then a new one is opened a few seconds later, and the page pulls again.
  const connect = (again) => {
    const stream = new EventSource("/events");
    for (const kind of ["state", "availability", "event"]) {
      stream.addEventListener(kind, (e) => handle(kind, JSON.parse(e.data)));
    }
    // "error" is both a named SSE event (an error record) and EventSource's own connection error.
    stream.addEventListener("error", (e) => {
      if (e instanceof MessageEvent && e.data) { handle("error", JSON.parse(e.data)); return; }
      if (stream.readyState === EventSource.CLOSED) {
        setPill($("stream"), "no event stream; retrying", "bad");
        setTimeout(() => connect(true), STREAM_RETRY_MS);
      } else {
        setPill($("stream"), "reconnecting…", "warn");
      }
    });
    stream.addEventListener("open", () => {
      setPill($("stream"), "live", "ok");
      if (again && ready) resync();
    });
    stream.addEventListener("reset", () => { if (ready) resync(); });
  };
  connect(false);

  const apply = (kind, data) => {
    if (kind === "state") devices.applyState(data.device_id, data.state);
    else if (kind === "availability") devices.applyAvailability(data.device_id, data.online, data.reason);
    else if (kind === "error") { errors.add(data); headers.noteError(data); }
    else if (kind === "event" && data.event?.startsWith("automation_")) refreshOverview();
  };

  const resync = async () => {
    const listing = await getJSON("/devices?include=state");
    devices.resync(listing.devices);
  };

  let overviewBusy = false;
  const refreshOverview = async () => {
    if (overviewBusy) return;
    overviewBusy = true;
    try {
      overview = await getJSON("/overview");
      showOverview();
    } catch (exc) {
      setPill($("status"), `aggregator unreachable`, "bad");
    } finally {
      overviewBusy = false;
    }
  };
  const showOverview = () => {
    setPill($("status"), overview.status, overview.status === "ok" ? "ok" : overview.status === "degraded" ? "warn" : "bad");
    $("status").title = (overview.reasons ?? []).join("\n");
    renderConnector($("connector-facts"), overview);
    const switches = {};
    for (const d of devices.devices.values()) if (d.view.automation) switches[d.view.automation] = d.id;
    renderAutomations($("automations"), $("automation-list"), overview, switches);
    headers.update(overview);
  };

  const [listing, history, first, records] = await Promise.all([
    getJSON("/devices?include=state"), getJSON("/history?since=1h&points=120"), getJSON("/overview"),
    getJSON("/errors").catch(() => ({ errors: [] })),
  ]);
  overview = first;
  $("instance").textContent = listing.instance_id ?? "sensor-hub";
  document.title = `${listing.instance_id ?? "sensor-hub"} · sensor-hub`;
  const tokens = new TokenStore(listing.instance_id ?? "default");
  const dialog = new TokenDialog(tokens);
  dialog.setWhere(overview.api_token?.where);
  const controls = new Controls(tokens, dialog);
  devices = new DeviceList($("groups"), $("device-count"), (device) => controls.make(device));
  devices.load(listing.devices, history, titles(overview));
  headers = new SourceHeaders(devices);
  errors = new ErrorList($("error-list"), $("no-errors"));
  errors.load(records.errors ?? []);
  for (const record of records.errors ?? []) headers.noteError(record);
  showOverview();
  ready = true;
  for (const [kind, data] of queue.splice(0)) apply(kind, data);
  requestAnimationFrame(() => {
    performance.mark("sensor-hub:first-values");
    document.body.dataset.ready = "true";
  });

  let filterTimer = 0;
  $("filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => devices.setFilter($("filter").value), 120);
  });
  $("collapse-all").addEventListener("click", () => {
    const collapse = !devices.allCollapsed;
    devices.setAllCollapsed(collapse);
    $("collapse-all").textContent = collapse ? "Expand all" : "Collapse all";
  });
  let seconds = 0;
  setInterval(() => { seconds += 1; devices.tick(seconds % SPARK_REDRAW_EVERY_S === 0); }, 1000);
  setInterval(refreshOverview, OVERVIEW_EVERY_MS);
}

main().catch((exc) => {
  setPill($("status"), `could not load: ${exc.message}`, "bad");
  throw exc;
});
