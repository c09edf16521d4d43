// The dashboard with a password file (-Y) in headless Chromium: the
// browser's own HTTP Basic login (playwright's httpCredentials, what a
// user types into the browser's prompt) gets the page; without it the
// port answers 401; a logged-in user sees who it is and only the keys
// its ACL rules let it read, and an edit outside them shows the refusal.
//
// Run as dashboard.test.mjs is (npm test); same env.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const BIN = process.env.CORECACHE_BIN || path.join(root, "target/release/corecache");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

const basic = (u, p) => "Basic " + Buffer.from(`${u}:${p}`).toString("base64");
let srv, admin, browser;

async function startServer() {
  const dir = mkdtempSync(path.join(tmpdir(), "cc-login-"));
  writeFileSync(path.join(dir, "passwd"), "ops:opspw\nro:ropw\n");
  writeFileSync(path.join(dir, "acl"), "ops admin read=* write=*\nro read=app:\n");
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const adminPort = await freePort();
    admin = `http://127.0.0.1:${adminPort}`;
    srv = spawn(BIN, ["-p", port, "-t", "2", "-m", "64", "-u", "root",
      "-Y", path.join(dir, "passwd"), "-o", `acl_file=${path.join(dir, "acl")}`,
      "--admin", `127.0.0.1:${adminPort}`], { stdio: ["ignore", "ignore", "inherit"] });
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

/// Stores a key through the API as ops.
async function put(key, value) {
  const auth = { Authorization: basic("ops", "opspw") };
  const { token } = await (await fetch(`${admin}/api/csrf`, { headers: auth })).json();
  const r = await fetch(`${admin}/api/key/${encodeURIComponent(key)}`, {
    method: "PUT",
    headers: { ...auth, "X-CSRF-Token": token, "Content-Type": "application/json" },
    body: JSON.stringify({ value }),
  });
  assert.equal(r.status, 200);
}

/// Whether the page shows the dashboard, once it has settled: after a 401
/// Chromium may still navigate to its own error page, which destroys the
/// context a query runs in (seen in CI), so a query is retried until the
/// page stops moving.
async function showsDashboard(page) {
  for (let i = 0; i < 20; i++) {
    try {
      await page.waitForLoadState("load");
      return (await page.$("#tab-keys")) !== null;
    } catch (e) {
      if (!/Execution context was destroyed|navigat/i.test(e.message)) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("the page never settled");
}

before(async () => {
  await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) srv.kill("SIGTERM");
});

test("without a login, or with a wrong one, the page is refused", async () => {
  // The port asks for a Basic login (401); headless Chromium, with no
  // one to type into its prompt, gives up on the page, or shows the 401
  // once its credentials have been refused.
  const r = await fetch(admin + "/");
  assert.equal(r.status, 401);
  assert.equal(r.headers.get("www-authenticate"), 'Basic realm="corecache"');
  for (const creds of [undefined, { username: "ro", password: "wrong" }]) {
    const ctx = await browser.newContext({ httpCredentials: creds });
    const page = await ctx.newPage();
    const r = await page.goto(admin + "/").catch((e) => e);
    if (r instanceof Error) assert.match(r.message, /ERR_INVALID_AUTH_CREDENTIALS/);
    else assert.equal(r.status(), 401);
    assert.equal(await showsDashboard(page), false);
    await ctx.close();
  }
});

test("a read-only user sees its name and its keys, and cannot delete", async () => {
  await put("app:1", "one");
  await put("app:2", "two");
  await put("secret:1", "hidden");
  const ctx = await browser.newContext({ httpCredentials: { username: "ro", password: "ropw" } });
  const page = await ctx.newPage();
  const r = await page.goto(admin + "/");
  assert.equal(r.status(), 200);
  await page.waitForFunction(() => document.getElementById("user").textContent !== "");
  assert.equal(await page.textContent("#user"), "ro (read app:)");
  await page.click("#tab-keys");
  await page.fill("#q-prefix", "");
  await page.click("#btn-search");
  await page.waitForFunction(() => /keys/.test(document.getElementById("found").textContent));
  const keys = await page.$$eval("#key-table tbody td.key", (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(keys.sort(), ["app:1", "app:2"]);
  await page.click("#key-table td.key >> text=app:1");
  await page.waitForFunction(() => document.getElementById("ed-type").textContent === "text");
  await page.click("#ed-delete");
  await page.click("#confirm-yes");
  await page.waitForFunction(() => /^error/.test(document.getElementById("ed-msg").textContent));
  assert.equal(await page.textContent("#ed-msg"), "error: user ro may not: key_delete app:1");
  await ctx.close();
  // Still there.
  const got = await fetch(`${admin}/api/key/app:1`, { headers: { Authorization: basic("ops", "opspw") } });
  assert.equal((await got.json()).text, "one");
});
