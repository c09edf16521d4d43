// corecache dashboard: overview charts from /api/history, key browser on
// /api/keys and /api/key/<key>. Every state-changing request carries the
// CSRF token the server put in the page.
"use strict";
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);

// A 429 (one key scan at a time, or the login brake) means "not now", not
// "no": the request is retried after the server's Retry-After, or with a
// doubling backoff when it sends none, for up to RETRY_FOR ms. `onBusy`
// (if given) is told how long the wait is, to show "busy, retrying".
// Retrying is safe: a 429 is answered before the handler runs.
const RETRY_FOR = 60000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function api(method, path, body, onBusy) {
  const opt = { method, headers: {} };
  if (method !== "GET") opt.headers["X-CSRF-Token"] = CSRF;
  if (body !== undefined) {
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body);
  }
  const start = Date.now();
  for (let backoff = 500; ; backoff = Math.min(backoff * 2, 8000)) {
    const r = await fetch(path, opt);
    let j = null;
    try { j = await r.json(); } catch (_) { /* not JSON */ }
    const after = parseInt(r.headers.get("Retry-After"), 10);
    const wait = (after >= 0 ? after * 1000 : backoff) + Math.random() * 250;
    if (r.status !== 429 || Date.now() - start + wait > RETRY_FOR) return { status: r.status, body: j };
    if (onBusy) onBusy(wait);
    await sleep(wait);
  }
}

// ---- tabs ----
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x === b));
  $("overview").hidden = b.dataset.tab !== "overview";
  $("keys").hidden = b.dataset.tab !== "keys";
}));

// ---- overview ----
const fmtBytes = (n) => {
  if (n == null) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
};
const pct = (x) => (x == null ? "–" : (x * 100).toFixed(1) + " %");
const charts = {};
function chart(id, series, data, opts = {}) {
  const el = $(id);
  const width = Math.max(380, el.clientWidth || 420);
  if (!charts[id] || charts[id].series.length !== series.length + 1) {
    if (charts[id]) charts[id].destroy();
    charts[id] = new uPlot({
      width, height: 180,
      series: [{}].concat(series.map((s) => Object.assign({ width: 2 }, s))),
      // Wide enough for "57.2 MiB" or "200,000".
      axes: [{}, { size: 80, values: opts.values }].concat(opts.axes || []),
      scales: opts.scales || {},
    }, data, el);
  } else {
    charts[id].setData(data);
  }
}
function gauge(ratio) {
  const arc = $("gauge-arc");
  const len = arc.getTotalLength();
  const r = ratio == null ? 0 : Math.max(0, Math.min(1, ratio));
  arc.style.strokeDasharray = `${len * r} ${len}`;
  arc.style.stroke = r > 0.9 ? "#2a9d5c" : r > 0.7 ? "#e6a23c" : "#c0392b";
}
async function refresh() {
  const [h, s] = await Promise.all([api("GET", "/api/history"), api("GET", "/stats")]);
  if (h.status !== 200 || s.status !== 200) { $("status").textContent = "admin port unreachable"; return; }
  const d = h.body, st = s.body;
  const tot = st.stats || st;
  const hits = tot.get_hits || 0, misses = tot.get_misses || 0;
  const last = (a) => (a && a.length ? a[a.length - 1] : null);
  const recent = last(d.hit_ratio);
  const total = hits + misses > 0 ? hits / (hits + misses) : null;
  $("hit-ratio").textContent = pct(recent != null ? recent : total);
  $("hit-ratio-total").textContent = pct(total);
  gauge(recent != null ? recent : total);
  $("keys-count").textContent = (tot.curr_items ?? "–").toLocaleString();
  $("memory").textContent = fmtBytes(tot.bytes);
  $("memory-limit").textContent = "of " + fmtBytes(tot.limit_maxbytes);
  $("conns").textContent = tot.curr_connections ?? "–";
  const ops = last(d.ops);
  $("ops").textContent = ops == null ? "–" : Math.round(ops).toLocaleString();
  $("status").textContent = `updated ${new Date().toLocaleTimeString()} · ${d.time.length} samples every ${d.interval_secs} s`;
  const t = d.time;
  chart("c-hit", [{ label: "hit ratio", stroke: "#2a9d5c" }], [t, d.hit_ratio], { scales: { y: { range: [0, 1] } } });
  chart("c-mem", [{ label: "used", stroke: "#1a5fb4" }, { label: "limit", stroke: "#c0392b", dash: [5, 5] }],
    [t, d.bytes, d.limit], { values: (u, v) => v.map(fmtBytes) });
  const palette = ["#1a5fb4", "#e66100", "#2a9d5c", "#813d9c", "#c01c28", "#986a44", "#5e5c64", "#26a269"];
  const cpuSeries = d.cpu.map((_, i) => ({ label: "worker " + i, stroke: palette[i % palette.length] }));
  const cpuTotal = t.map((_, j) => d.cpu.reduce((a, c) => a + c[j], 0));
  chart("c-cpu", cpuSeries.concat([{ label: "total", stroke: "#000", dash: [4, 4] }]), [t].concat(d.cpu, [cpuTotal]));
  chart("c-net", [{ label: "in", stroke: "#1a5fb4" }, { label: "out", stroke: "#e66100" }], [t, d.net_in, d.net_out],
    { values: (u, v) => v.map(fmtBytes) });
  chart("c-lat", [{ label: "read avg", stroke: "#1a5fb4" }, { label: "read p99", stroke: "#1a5fb4", dash: [4, 4] },
    { label: "write avg", stroke: "#e66100" }, { label: "write p99", stroke: "#e66100", dash: [4, 4] }],
  [t, d.read_avg_us, d.read_p99_us, d.write_avg_us, d.write_p99_us]);
  chart("c-conn", [{ label: "connections", stroke: "#813d9c" }, { label: "keys", stroke: "#2a9d5c", scale: "keys" }],
    [t, d.conns, d.items], { scales: { keys: {} }, axes: [{ scale: "keys", side: 1, size: 80, grid: { show: false } }] });
  chart("c-evict", [{ label: "evictions", stroke: "#c01c28" }, { label: "expired", stroke: "#986a44" }], [t, d.evictions, d.expired]);
}
refresh();
setInterval(refresh, 5000);

// ---- key browser ----
let cursor = null;
let rows = [];
function ttlText(t) { return t < 0 ? "none" : t + " s"; }
function query(cur) {
  const p = new URLSearchParams();
  p.set("prefix", $("q-prefix").value);
  p.set("pattern", $("q-pattern").value);
  const kind = $("q-ttl").value;
  p.set("ttl", kind === "lt" || kind === "gt" ? `${kind}:${$("q-ttl-secs").value || 0}` : kind);
  p.set("limit", "500");
  if (cur) p.set("cursor", cur);
  return "/api/keys?" + p.toString();
}
// "≈ 3 min ago" for a Unix time in seconds (the store time is approximate:
// a record is dated by its segment, README "Key browser").
function ago(unix) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 60) return `≈ ${s} s ago`;
  if (s < 3600) return `≈ ${Math.round(s / 60)} min ago`;
  if (s < 86400) return `≈ ${Math.round(s / 3600)} h ago`;
  return `≈ ${Math.round(s / 86400)} d ago`;
}
// A key's exact bytes (its key_b64) as a URL path segment: every byte
// outside the unreserved set %-escaped, so a key that is not UTF-8 names
// itself and not its lossy display (two such keys can show the same).
function keyPath(b64) {
  const b = atob(b64);
  let s = "";
  for (let i = 0; i < b.length; i++) {
    s += /[A-Za-z0-9_.~-]/.test(b[i]) ? b[i] : "%" + b.charCodeAt(i).toString(16).padStart(2, "0").toUpperCase();
  }
  return s;
}
function render() {
  const tb = $("key-table").querySelector("tbody");
  tb.innerHTML = "";
  for (const r of rows) {
    const tr = document.createElement("tr");
    const cb = document.createElement("td");
    cb.innerHTML = '<input type="checkbox" class="sel">';
    cb.firstChild.dataset.b64 = r.key_b64;
    tr.appendChild(cb);
    const k = document.createElement("td");
    k.className = "key";
    k.textContent = r.key;
    k.addEventListener("click", () => openKey(keyPath(r.key_b64)));
    tr.appendChild(k);
    for (const v of [r.size, r.flags, ttlText(r.ttl), ago(r.stored), new Date(r.last_access * 1000).toLocaleString(), r.worker]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    const st = tr.children[5];
    st.className = "stored";
    st.dataset.unix = r.stored;
    st.title = new Date(r.stored * 1000).toLocaleString();
    tb.appendChild(tr);
  }
  $("found").textContent = `${rows.length} keys` + (cursor ? " (more)" : "");
  $("btn-more").disabled = !cursor;
}
async function search(more) {
  if (!more) { rows = []; cursor = null; }
  // Pages may end early on a sparse match: go on until something is found
  // or the walk is over.
  do {
    const busy = (ms) => { $("found").textContent = `busy, retrying in ${(ms / 1000).toFixed(1)} s…`; };
    const r = await api("GET", query(cursor), undefined, busy);
    if (r.status !== 200) { $("found").textContent = "error: " + (r.body && r.body.error); return; }
    rows = rows.concat(r.body.keys);
    cursor = r.body.cursor;
  } while (cursor && !more && rows.length === 0);
  render();
}
$("search").addEventListener("submit", (e) => { e.preventDefault(); search(false); });
$("btn-more").addEventListener("click", () => search(true));
$("sel-all").addEventListener("change", (e) => document.querySelectorAll(".sel").forEach((c) => { c.checked = e.target.checked; }));
const selected = () => Array.from(document.querySelectorAll(".sel:checked")).map((c) => c.dataset.b64);

function confirmBox(text) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-text").textContent = text;
    const done = (v) => { d.close(); $("confirm-yes").onclick = $("confirm-no").onclick = null; resolve(v); };
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
    d.showModal();
  });
}
$("btn-bulk-delete").addEventListener("click", async () => {
  const keys = selected();
  if (!keys.length || !(await confirmBox(`Delete ${keys.length} keys?`))) return;
  const r = await api("POST", "/api/keys/bulk", { action: "delete", keys_b64: keys });
  await search(false);
  $("found").textContent = r.status === 200 ? `deleted ${r.body.changed}` : "error: " + (r.body && r.body.error);
});
$("btn-bulk-ttl").addEventListener("click", async () => {
  const keys = selected();
  const ttl = parseInt($("bulk-ttl").value, 10) || 0;
  if (!keys.length || !(await confirmBox(`Set the TTL of ${keys.length} keys to ${ttl} s?`))) return;
  const r = await api("POST", "/api/keys/bulk", { action: "ttl", ttl, keys_b64: keys });
  await search(false);
  $("found").textContent = r.status === 200 ? `changed ${r.body.changed}` : "error: " + (r.body && r.body.error);
});
$("btn-flush-prefix").addEventListener("click", async () => {
  const prefix = $("fp-prefix").value;
  if (!(await confirmBox(`Invalidate every key starting with "${prefix}"${prefix ? "" : " (that is, EVERY key)"}?`))) return;
  const r = await api("POST", "/api/flush_prefix", { prefix });
  await search(false);
  $("found").textContent = r.status === 200 ? `invalidated in ${r.body.server_us.toFixed(0)} µs` : "error: " + (r.body && r.body.error);
});

// ---- editor ----
let current = null; // { bytes, type }
function hex(bytes) {
  const out = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = Array.from(bytes.slice(i, i + 16));
    out.push(i.toString(16).padStart(8, "0") + "  " + row.map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(48) +
      "  " + row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join(""));
  }
  return out.join("\n");
}
function prettyXml(s) {
  let depth = 0;
  return s.replace(/>\s*</g, ">\n<").split("\n").map((line) => {
    if (/^<\//.test(line)) depth = Math.max(0, depth - 1);
    const out = "  ".repeat(depth) + line;
    if (/^<[^!?\/][^>]*[^\/]>$/.test(line) && !/<\/.+>$/.test(line)) depth++;
    return out;
  }).join("\n");
}
function show(view) {
  if (!current) return;
  const text = new TextDecoder().decode(current.bytes);
  let out = text;
  if (view === "hex") out = hex(current.bytes);
  else if (view === "pretty" && current.type === "json") out = JSON.stringify(JSON.parse(text), null, 2);
  else if (view === "pretty" && current.type === "xml") out = prettyXml(text);
  else if (view === "pretty" && current.type === "binary") out = hex(current.bytes);
  $("ed-view").textContent = out;
}
document.querySelectorAll("[data-view]").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));
// `path`: the key as a URL path segment (keyPath, or encodeURIComponent of
// a key typed in).
async function openKey(path) {
  const r = await api("GET", "/api/key/" + path);
  $("editor").hidden = false;
  $("ed-msg").textContent = "";
  if (r.status !== 200) {
    $("ed-msg").textContent = r.status === 404 ? "not found" : "error: " + (r.body && r.body.error);
    current = null;
    return;
  }
  const it = r.body;
  const bytes = Uint8Array.from(atob(it.value_b64), (c) => c.charCodeAt(0));
  current = { bytes, type: it.type, path: keyPath(it.key_b64) };
  $("ed-key-label").textContent = it.key;
  $("ed-key").value = it.key;
  $("ed-key").readOnly = true;
  $("ed-type").textContent = it.type;
  $("ed-stored").textContent = "stored " + ago(it.stored);
  $("ed-stored").title = new Date(it.stored * 1000).toLocaleString() + " (approximate)";
  $("ed-flags").value = it.flags;
  $("ed-ttl").value = it.ttl < 0 ? 0 : it.ttl;
  $("ed-value").value = it.text ?? "";
  show("pretty");
}
$("btn-add").addEventListener("click", () => {
  current = null;
  $("editor").hidden = false;
  $("ed-key-label").textContent = "(new)";
  $("ed-type").textContent = "";
  $("ed-stored").textContent = "";
  $("ed-key").readOnly = false;
  $("ed-key").value = "";
  $("ed-flags").value = 0;
  $("ed-ttl").value = 0;
  $("ed-value").value = "";
  $("ed-view").textContent = "";
  $("ed-msg").textContent = "";
  $("ed-key").focus();
});
// The key the editor is on: the opened item's exact bytes, or the text typed.
const editorPath = () => ($("ed-key").readOnly && current ? current.path : encodeURIComponent($("ed-key").value));
$("ed-save").addEventListener("click", async () => {
  const path = editorPath();
  const adding = !$("ed-key").readOnly;
  const r = await api("PUT", "/api/key/" + path, {
    value: $("ed-value").value,
    flags: parseInt($("ed-flags").value, 10) || 0,
    ttl: parseInt($("ed-ttl").value, 10) || 0,
    mode: adding ? "add" : "set",
  });
  if (r.status === 200) await openKey(path);
  $("ed-msg").textContent = r.status === 200 ? "saved" : "error: " + (r.body && r.body.error);
});
$("ed-delete").addEventListener("click", async () => {
  const key = $("ed-key").value;
  const path = editorPath();
  if (!(await confirmBox(`Delete ${key}?`))) return;
  const r = await api("DELETE", "/api/key/" + path);
  $("ed-msg").textContent = r.status === 200 ? "deleted" : "error: " + (r.body && r.body.error);
});
$("ed-close").addEventListener("click", () => { $("editor").hidden = true; });

// ---- who is logged in (with a password file; the browser's Basic login) ----
api("GET", "/api/whoami").then((r) => {
  if (r.status !== 200 || !r.body.user) return;
  const b = r.body;
  const rights = [b.admin ? "admin" : null,
    b.read.length ? "read " + b.read.join(" ") : null,
    b.write.length ? "write " + b.write.join(" ") : null].filter(Boolean);
  $("user").textContent = `${b.user} (${rights.join(", ") || "figures only"})`;
});
