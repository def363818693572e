// Run a Python script under real MicroPython (the WebAssembly port, npm package
// @micropython/micropython-webassembly-pyscript) with the firmware package importable.
//
//   node firmware/wasm/run_micropython.mjs <package dir> <script.py>
//
// The package directory (firmware/esp32/sensorhub) is copied to /lib/<name> in MicroPython's
// in-memory filesystem, like `mpremote cp -r` puts it on a board. The script's stdout goes to
// stdout; an uncaught Python exception prints its traceback to stderr and exits 1.
import { readFileSync, readdirSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const pkgName = "@micropython/micropython-webassembly-pyscript";
const candidates = [
  process.env.MICROPYTHON_MJS,
  join(root, ".node", "node_modules", pkgName, "micropython.mjs"),
].filter(Boolean);

async function load() {
  for (const path of candidates) {
    try {
      readFileSync(path);
      return await import(path);
    } catch (err) {
      if (err.code !== "ENOENT") throw err;
    }
  }
  process.stderr.write(`error: ${pkgName} is not installed (run \`make micropython\`); looked in ${candidates.join(", ")}\n`);
  process.exit(3);
}

const [pkgDir, script] = process.argv.slice(2);
if (!pkgDir || !script) {
  process.stderr.write("usage: node run_micropython.mjs <package dir> <script.py>\n");
  process.exit(2);
}

const { loadMicroPython } = await load();
const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
const name = basename(resolve(pkgDir));
mp.FS.mkdir("/lib");
mp.FS.mkdir(`/lib/${name}`);
for (const file of readdirSync(pkgDir)) {
  if (file.endsWith(".py")) {
    mp.FS.writeFile(`/lib/${name}/${file}`, readFileSync(join(pkgDir, file)));
  }
}
try {
  mp.runPython("import sys\nsys.path.insert(0, '/lib')\n");
  mp.runPython(readFileSync(script, "utf8"));
} catch (err) {
  process.stderr.write(String(err && err.message ? err.message : err) + "\n");
  process.exit(1);
}
