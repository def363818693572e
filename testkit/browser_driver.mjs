// A real browser for the Python side (testkit/browser.py): Debian's chromium driven by
// playwright-core, one JSON request per stdin line, one JSON answer per stdout line.
//
//   node browser_driver.mjs <playwright-core dir> <chromium binary>
//   {"id": 1, "op": "open", "url": "http://127.0.0.1:5003/"}  ->  {"id": 1, "ok": true, "value": ...}
//
// Every request the page makes is recorded; one to anything but loopback is aborted (and
// recorded as blocked), so a test can assert that nothing left the machine. Console messages
// and uncaught page errors are recorded too.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [playwrightDir, chromiumPath] = process.argv.slice(2);
const { chromium } = await import(pathToFileURL(path.join(playwrightDir, "index.mjs")).href);

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);
const log = { requests: [], blocked: [], console: [], pageErrors: [], failed: [] };
let browser = null, context = null, page = null;

function loopback(url) {
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "data:" || parsed.protocol === "blob:" || parsed.protocol === "about:") return true;
    return LOOPBACK.has(parsed.hostname);
  } catch { return false; }
}

async function ensureBrowser(options) {
  if (browser) return;
  browser = await chromium.launch({
    executablePath: chromiumPath, headless: true,
    // No background traffic of the browser's own: only what the page asks for.
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--no-first-run", "--disable-dev-shm-usage"],
  });
  context = await browser.newContext({
    viewport: options.viewport ?? { width: 1280, height: 900 }, colorScheme: options.colorScheme ?? "light",
    deviceScaleFactor: options.deviceScaleFactor ?? 1,
  });
  context.on("request", (request) => log.requests.push({ url: request.url(), method: request.method() }));
  context.on("requestfailed", (request) => log.failed.push({ url: request.url(), error: request.failure()?.errorText }));
  await context.route((url) => !loopback(url.href), (route) => {
    log.blocked.push(route.request().url());
    return route.abort("blockedbyclient");
  });
}

async function newPage() {
  page = await context.newPage();
  page.on("console", (message) => log.console.push({ type: message.type(), text: message.text(), location: message.location() }));
  page.on("pageerror", (error) => log.pageErrors.push(String(error?.stack ?? error)));
}

const ops = {
  async open({ url, viewport, colorScheme, deviceScaleFactor, fresh }) {
    await ensureBrowser({ viewport, colorScheme, deviceScaleFactor });
    if (!page || fresh) {
      if (page) await page.close();
      await newPage();
    }
    await page.goto(url, { waitUntil: "domcontentloaded" });
    return page.url();
  },
  async eval({ expr }) { return page.evaluate(expr); },
  // Polled from here, not with waitForFunction: that compiles the expression inside the page,
  // which the status page's Content-Security-Policy (rightly) forbids.
  async wait({ expr, timeout_ms }) {
    const deadline = Date.now() + (timeout_ms ?? 10000);
    for (;;) {
      const value = await page.evaluate(expr);
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout_ms} ms waiting for ${expr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  },
  async click({ selector }) { await page.click(selector); return true; },
  async fill({ selector, value }) { await page.fill(selector, value); return true; },
  async press({ selector, key }) { await page.press(selector, key); return true; },
  async click_at({ selector, fraction }) {
    const box = await page.locator(selector).boundingBox();
    if (!box) throw new Error(`${selector} is not visible`);
    await page.mouse.click(box.x + box.width * fraction, box.y + box.height / 2);
    return true;
  },
  async viewport({ width, height }) { await page.setViewportSize({ width, height }); return true; },
  async color_scheme({ scheme }) { await page.emulateMedia({ colorScheme: scheme }); return true; },
  async screenshot({ path: file, full_page }) { await page.screenshot({ path: file, fullPage: !!full_page }); return file; },
  async log() { return log; },
  async close() { if (browser) await browser.close(); browser = null; return true; },
};

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  if (!line.trim()) continue;
  let request;
  try { request = JSON.parse(line); } catch { continue; }
  let answer;
  try {
    const value = await ops[request.op](request);
    answer = { id: request.id, ok: true, value: value ?? null };
  } catch (error) {
    answer = { id: request.id, ok: false, error: String(error?.message ?? error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
  if (request.op === "close") break;
}
if (browser) await browser.close();
process.exit(0);
