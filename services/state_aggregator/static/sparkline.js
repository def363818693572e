// A hand-made SVG sparkline of the last hour, and the page's own copy of each device's points
// (kept the way the aggregator keeps them: one point per slot, an hour at most).

export const WINDOW_MS = 3600 * 1000;
const MIN_SPAN_MS = 60 * 1000;
const WIDTH = 120, HEIGHT = 28, PAD = 2;
const SVG = "http://www.w3.org/2000/svg";

export function createSpark() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  svg.append(document.createElementNS(SVG, "polyline"));
  return svg;
}

/** points: [[epoch ms, value], ...] oldest first. */
export function drawSpark(svg, points, now) {
  const line = svg.firstChild;
  const shown = points.filter(([t]) => t >= now - WINDOW_MS);
  if (shown.length === 0) { line.setAttribute("points", ""); return; }
  // The time axis spans what is held (an hour at most, a minute at least): a device that has
  // reported for five minutes fills the line rather than its last twelfth.
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - shown[0][0]));
  const from = now - span;
  let low = Infinity, high = -Infinity;
  for (const [, v] of shown) { if (v < low) low = v; if (v > high) high = v; }
  if (high - low < 1e-9) { low -= 1; high += 1; }
  const x = (t) => PAD + ((t - from) / span) * (WIDTH - 2 * PAD);
  const y = (v) => HEIGHT - PAD - ((v - low) / (high - low)) * (HEIGHT - 2 * PAD);
  const coords = shown.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
  // The last reading holds until now: extend it to the right edge.
  coords.push(`${x(now).toFixed(1)},${y(shown[shown.length - 1][1]).toFixed(1)}`);
  line.setAttribute("points", coords.join(" "));
}

/** Add a reading the way the aggregator's ring does (same slot: replace the last point). */
export function addPoint(points, t, value, resolutionMs, capacity) {
  const last = points[points.length - 1];
  if (last && (t < last[0] || Math.floor(t / resolutionMs) === Math.floor(last[0] / resolutionMs))) {
    last[0] = Math.max(t, last[0]);
    last[1] = value;
  } else {
    points.push([t, value]);
  }
  const from = t - WINDOW_MS;
  let drop = 0;
  while (drop < points.length && points[drop][0] < from) drop += 1;
  if (points.length - drop > capacity) drop = points.length - capacity;
  if (drop) points.splice(0, drop);
}
