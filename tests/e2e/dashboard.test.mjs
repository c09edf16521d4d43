// End-to-end tests of the dashboard: the real binary, headless Chromium
// (Debian's `chromium`) driven by playwright-core, and pymemcache as the
// memcached client that checks what the page did (mc.py).
//
// Run from scripts/test.sh, or: cd tests/e2e && npm ci && npm test
// Env: CORECACHE_BIN (default ../../target/release/corecache),
// CHROMIUM (default /usr/bin/chromium), PYTHON (default ../../.venv/bin/python).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const BIN = process.env.CORECACHE_BIN || path.join(root, "target/release/corecache");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const PYTHON = process.env.PYTHON || path.join(root, ".venv/bin/python");
const SHOTS = path.join(here, "screenshots");
mkdirSync(SHOTS, { recursive: true });

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function mc(port, ...args) {
  const out = execFileSync(PYTHON, [path.join(here, "mc.py"), String(port), ...args.map(String)]);
  return JSON.parse(out.toString());
}

let srv, port, admin, browser, page, startedAt;

async function startServer() {
  for (let attempt = 0; attempt < 5; attempt++) {
    port = await freePort();
    const adminPort = await freePort();
    admin = `http://127.0.0.1:${adminPort}`;
    startedAt = Date.now();
    srv = spawn(BIN, ["-p", port, "-t", "2", "-m", "64", "-u", "root", "--admin", `127.0.0.1:${adminPort}`], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    let exited = false;
    srv.on("exit", () => { exited = true; });
    for (let i = 0; i < 100 && !exited; i++) {
      try {
        const r = await fetch(`${admin}/readyz`);
        if (r.status === 200) return;
      } catch (_) { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    srv.kill();
  }
  throw new Error("corecache did not start");
}

before(async () => {
  await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) srv.kill("SIGTERM");
});

async function openKeys() {
  await page.goto(admin + "/");
  await page.click("#tab-keys");
}

async function search(prefix) {
  await page.fill("#q-prefix", prefix);
  await page.fill("#q-pattern", "");
  await page.click("#btn-search");
  await page.waitForFunction(() => /keys/.test(document.getElementById("found").textContent));
  return page.$$eval("#key-table tbody td.key", (tds) => tds.map((t) => t.textContent));
}

test("overview shows the hit ratio and key count of a workload", async () => {
  mc(port, "set_many", "w:", 40);
  const keys = Array.from({ length: 40 }, (_, i) => `w:${i}`);
  mc(port, "get_many", ...keys); // 40 hits
  mc(port, "get_many", ...Array.from({ length: 10 }, (_, i) => `nope:${i}`)); // 10 misses
  await page.goto(admin + "/");
  await page.waitForFunction(() => document.getElementById("keys-count").textContent === "40");
  assert.equal(await page.textContent("#hit-ratio-total"), "80.0 %");
  assert.equal(await page.textContent("#keys-count"), "40");
  // The charts are drawn (uPlot made its canvases).
  assert.ok((await page.$$(".uplot canvas")).length >= 7);
  await page.screenshot({ path: path.join(SHOTS, "overview.png"), fullPage: true });
  // The server keeps history: after a sample or two (5 s apart) of a
  // running workload, the charts have points and the trend a hit ratio.
  for (let i = 0; i < 6; i++) {
    mc(port, "get_many", ...keys.slice(0, 30), "nope:1", "nope:2");
    await new Promise((r) => setTimeout(r, 2000));
  }
  await page.reload();
  await page.waitForFunction(() => /[2-9]\d* samples|1\d+ samples/.test(document.getElementById("status").textContent), null, { timeout: 20000 });
  const h = await (await fetch(admin + "/api/history")).json();
  assert.ok(h.hit_ratio.some((x) => x !== null && x > 0.5 && x < 1), JSON.stringify(h.hit_ratio));
  assert.ok(h.items.every((x) => x === 40));
  await page.screenshot({ path: path.join(SHOTS, "overview-trend.png"), fullPage: true });
});

// The least a TTL of `ttl` s set after `since` (a Date.now()) can read
// now: the server's clock is whole seconds, so it loses one for each
// second that passed and one for a tick just after the store. A fixed
// 10 s allowance was once all there was, and a loaded machine spends
// seconds starting the Python client that reads each key.
function ttlFloor(ttl, since) {
  return ttl - 1 - Math.floor((Date.now() - since) / 1000);
}

test("prefix search finds exactly the keys set across both shards", async () => {
  mc(port, "set_many", "user:", 120);
  mc(port, "set_many", "userx", 5);
  mc(port, "set_many", "other:", 30);
  await openKeys();
  const found = (await search("user:")).sort();
  const want = Array.from({ length: 120 }, (_, i) => `user:${i}`).sort();
  assert.deepEqual(found, want);
  const workers = await page.$$eval("#key-table tbody tr td:last-child", (t) => new Set(t.map((x) => x.textContent)).size);
  assert.equal(workers, 2, "keys come from both workers");
  // The approximate store time: a column, each key dated between the
  // server's start (its clock is whole seconds, so up to 2 s behind) and
  // now, shown as an age.
  const heads = await page.$$eval("#key-table thead th", (t) => t.map((x) => x.textContent));
  assert.ok(heads.includes("stored"), heads.join());
  const stored = await page.$$eval("#key-table tbody td.stored", (t) => t.map((x) => [Number(x.dataset.unix), x.textContent]));
  assert.equal(stored.length, 120);
  for (const [unix, text] of stored) {
    assert.ok(unix >= Math.floor(startedAt / 1000) - 3 && unix <= Date.now() / 1000, `${unix}`);
    assert.match(text, /^≈ \d+ (s|min) ago$/);
  }
  await page.screenshot({ path: path.join(SHOTS, "keys.png"), fullPage: true });
});

test("view, edit value and TTL, delete and add take effect for pymemcache", async () => {
  mc(port, "set", "doc:1", JSON.stringify({ name: "corecache", tags: ["a", "b"] }));
  await openKeys();
  await search("doc:");
  await page.click("#key-table td.key >> text=doc:1");
  await page.waitForFunction(() => document.getElementById("ed-type").textContent === "json");
  assert.match(await page.textContent("#ed-view"), /"tags": \[\n\s+"a"/); // pretty-printed
  await page.screenshot({ path: path.join(SHOTS, "editor-json.png"), fullPage: true });
  await page.click("[data-view=hex]");
  assert.match(await page.textContent("#ed-view"), /^00000000  7b 22 6e 61/);
  // Edit value and TTL.
  await page.fill("#ed-value", "edited value");
  await page.fill("#ed-ttl", "1000");
  const saving = Date.now();
  await page.click("#ed-save");
  await page.waitForFunction(() => document.getElementById("ed-msg").textContent === "saved");
  assert.equal(mc(port, "get", "doc:1"), "edited value");
  // Saved just now: the last write of its segment, dated exactly (the
  // server's whole-second clock adds up to 2 s, rounding 1).
  const age = Number((await page.textContent("#ed-stored")).match(/^stored ≈ (\d+) s ago$/)[1]);
  assert.ok(age <= Math.ceil((Date.now() - saving) / 1000) + 3, `age ${age}`);
  const ttl = mc(port, "ttl", "doc:1");
  assert.ok(ttl >= ttlFloor(1000, saving) && ttl <= 1000, `ttl ${ttl}`);
  // Delete, confirmed.
  await page.click("#ed-delete");
  await page.click("#confirm-yes");
  await page.waitForFunction(() => document.getElementById("ed-msg").textContent === "deleted");
  assert.equal(mc(port, "get", "doc:1"), null);
  // Add.
  await page.click("#btn-add");
  await page.fill("#ed-key", "added:1");
  await page.fill("#ed-value", "<a><b>x</b></a>");
  await page.click("#ed-save");
  await page.waitForFunction(() => document.getElementById("ed-msg").textContent === "saved");
  assert.equal(mc(port, "get", "added:1"), "<a><b>x</b></a>");
  assert.equal(await page.textContent("#ed-type"), "xml");
});

test("keys that are not UTF-8 and show alike open and delete themselves", async () => {
  // "nu\xff" and "nu\xfe" both show as "nu\ufffd"; each row must still
  // name its own key.
  mc(port, "set_hex", "6e75ff", "one");
  mc(port, "set_hex", "6e75fe", "two");
  await openKeys();
  const keys = await search("nu");
  assert.deepEqual(keys, ["nu\ufffd", "nu\ufffd"]);
  const b64 = await page.$$eval("#key-table tbody input.sel", (c) => c.map((x) => x.dataset.b64));
  const second = b64.indexOf("bnX+"); // base64 of 6e 75 fe
  assert.ok(second >= 0, String(b64));
  const cells = await page.$$("#key-table tbody td.key");
  await cells[second].click();
  await page.waitForFunction(() => document.getElementById("ed-value").value === "two");
  await page.click("#ed-delete");
  await page.click("#confirm-yes");
  await page.waitForFunction(() => document.getElementById("ed-msg").textContent === "deleted");
  assert.equal(mc(port, "get_hex", "6e75fe"), null);
  assert.equal(mc(port, "get_hex", "6e75ff"), "one");
});

test("bulk TTL change of selected keys, with confirmation", async () => {
  mc(port, "set_many", "bulk:", 6);
  await openKeys();
  const keys = await search("bulk:");
  assert.equal(keys.length, 6);
  const boxes = await page.$$("#key-table tbody input.sel");
  for (const b of boxes.slice(0, 3)) await b.check();
  const chosen = await page.$$eval("#key-table tbody input.sel:checked", (c) => c.map((x) => atob(x.dataset.b64)));
  await page.fill("#bulk-ttl", "600");
  await page.click("#btn-bulk-ttl");
  assert.match(await page.textContent("#confirm-text"), /3 keys to 600 s/);
  await page.screenshot({ path: path.join(SHOTS, "bulk-confirm.png") });
  const changing = Date.now();
  await page.click("#confirm-yes");
  await page.waitForFunction(() => /changed 3/.test(document.getElementById("found").textContent));
  for (const k of keys) {
    const t = mc(port, "ttl", k);
    if (chosen.includes(k)) assert.ok(t >= ttlFloor(600, changing) && t <= 600, `${k}: ${t}`);
    else assert.equal(t, -1, k);
  }
});

test("flush_prefix hides the keys under the prefix and only those", async () => {
  mc(port, "set_many", "gone:", 200);
  mc(port, "set_many", "stay:", 20);
  await openKeys();
  await page.fill("#fp-prefix", "gone:");
  await page.click("#btn-flush-prefix");
  await page.click("#confirm-yes");
  await page.waitForFunction(() => /invalidated in/.test(document.getElementById("found").textContent));
  const gone = mc(port, "get_many", ...Array.from({ length: 200 }, (_, i) => `gone:${i}`));
  assert.deepEqual(gone, {});
  const stay = mc(port, "get_many", ...Array.from({ length: 20 }, (_, i) => `stay:${i}`));
  assert.equal(Object.keys(stay).length, 20);
  assert.deepEqual(await search("gone:"), []);
  await page.screenshot({ path: path.join(SHOTS, "flush-prefix.png"), fullPage: true });
});

test("a request without the CSRF token is refused", async () => {
  mc(port, "set", "csrf:1", "kept");
  await page.goto(admin + "/");
  const status = await page.evaluate(async () => {
    const r = await fetch("/api/key/csrf:1", { method: "DELETE" });
    return r.status;
  });
  assert.equal(status, 403);
  const forged = await page.evaluate(async () => {
    const r = await fetch("/api/flush_prefix?prefix=csrf:", { method: "POST", headers: { "X-CSRF-Token": "0".repeat(32) } });
    return r.status;
  });
  assert.equal(forged, 403);
  assert.equal(mc(port, "get", "csrf:1"), "kept");
});
