// Client connections (GET /presenced/connect) from JavaScript: with the `ws`
// package from Node, and from a page in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core) that opens `new WebSocket`
// with a ticket, since a browser cannot put a bearer token on a WebSocket.
//
// Like presence.test.mjs it builds ../../cmd/presenced, starts it in
// development auth mode with --test-hooks on a free loopback port and mints
// tokens with `presenced token`. The browser test is skipped when
// /usr/bin/chromium is missing (PRESENCED_REQUIRE_CHROMIUM=1 makes that a
// failure instead).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import WebSocket from "ws";
import { freePort } from "./ports.mjs";

const execFileAsync = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");
const TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
const CHROMIUM = "/usr/bin/chromium";

let workDir, bin, dataDir, server, port;
let serverLog = "";


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls cond (async) every 20 ms until it is true, within ms. */
async function eventually(cond, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await cond();
    if (last === true) return;
    await sleep(20);
  }
  throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)})\n${serverLog.slice(-2000)}`);
}

const base = () => `http://127.0.0.1:${port}`;

async function mintToken(user, scopes = "Presence.ReadWrite Presence.Read.All") {
  const { stdout } = await execFileAsync(bin, ["token", "--data", dataDir, "--user", user, "--scopes", scopes]);
  return stdout.trim();
}

async function presenceOf(user, token) {
  const res = await fetch(`${base()}/v1.0/users/${user}/presence`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  const p = await res.json();
  return `${p.availability}/${p.activity}`;
}

async function advance(by) {
  const res = await fetch(`${base()}/_test/clock/advance`, { method: "POST", body: JSON.stringify({ by }) });
  assert.equal(res.status, 200, await res.text());
}

async function openConnections() {
  const text = await (await fetch(`${base()}/metrics`)).text();
  const m = text.match(/^presenced_connections_open (\d+)$/m);
  return m ? Number(m[1]) : -1;
}

async function ticket(token) {
  const res = await fetch(`${base()}/presenced/tickets`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 201);
  const body = await res.json();
  assert.match(body.ticket, /^[A-Za-z0-9_-]{43}$/);
  return body.ticket;
}

/** A `ws` client that queues what it receives. */
function connect(url, headers = {}) {
  const ws = new WebSocket(url, { headers });
  const queue = [];
  const waiters = [];
  ws.on("message", (data) => {
    const m = JSON.parse(data.toString());
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  const opened = new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return {
    ws,
    closed,
    opened,
    send: (m) => ws.send(typeof m === "string" ? m : JSON.stringify(m)),
    next: (ms = 10_000) =>
      queue.length > 0
        ? Promise.resolve(queue.shift())
        : new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error("no message in time")), ms);
            waiters.push((m) => {
              clearTimeout(t);
              resolve(m);
            });
          }),
  };
}

before(
  async () => {
    workDir = await mkdtemp(path.join(tmpdir(), "presenced-e2e-connect-"));
    bin = path.join(workDir, "presenced");
    dataDir = path.join(workDir, "data");
    await execFileAsync("go", ["build", "-o", bin, "./cmd/presenced"], { cwd: repoRoot, maxBuffer: 16 << 20 });
    port = await freePort();
    server = spawn(bin, ["--addr", `127.0.0.1:${port}`, "--data", dataDir, "--test-hooks"], { stdio: ["ignore", "pipe", "pipe"] });
    server.stdout.on("data", (c) => (serverLog += c));
    server.stderr.on("data", (c) => (serverLog += c));
    process.once("exit", () => server.kill("SIGKILL"));
    await eventually(
      async () => {
        try {
          return (await fetch(`${base()}/healthz`)).ok;
        } catch {
          return false;
        }
      },
      30_000,
      "presenced healthy",
    );
  },
  { timeout: 300_000 },
);

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  await rm(workDir, { recursive: true, force: true });
});

describe("client connections with ws", () => {
  test("a connection holds the user's session, fades when idle and ends after the grace window", async () => {
    const user = randomUUID();
    const token = await mintToken(user);
    const c = connect(`ws://127.0.0.1:${port}/presenced/connect`, { Authorization: `Bearer ${token}` });
    await c.opened;
    c.send({ type: "hello", device: "node", name: "ws test" });
    const ready = await c.next();
    assert.equal(ready.type, "ready");
    assert.equal(ready.user, user);
    assert.equal(ready.resumed, false);
    assert.equal(await presenceOf(user, token), "Available/Available");

    c.send({ type: "idle" });
    c.send({ type: "ping", id: "1" });
    assert.deepEqual(await c.next(), { type: "pong", id: "1" });
    await advance("PT5M");
    assert.equal(await presenceOf(user, token), "Available/AvailableInactive");
    await advance("PT5M");
    assert.equal(await presenceOf(user, token), "Away/Away");
    c.send({ type: "active" });
    c.send({ type: "ping" });
    assert.deepEqual(await c.next(), { type: "pong" });
    assert.equal(await presenceOf(user, token), "Available/Available");

    c.ws.close(1000);
    await c.closed;
    await eventually(async () => (await openConnections()) === 0, 10_000, "the connection is released");
    await advance("PT29S");
    assert.equal(await presenceOf(user, token), "Available/Available");
    await advance("PT1S");
    assert.equal(await presenceOf(user, token), "Offline/Offline");
  });

  test("a watcher sees another user's changes; a bad message is an error and 4400", async () => {
    const watched = randomUUID();
    const watcherToken = await mintToken(randomUUID());
    const w = connect(`ws://127.0.0.1:${port}/presenced/connect?ticket=${await ticket(watcherToken)}`);
    await w.opened;
    w.send({ type: "hello", device: "watcher" });
    assert.equal((await w.next()).type, "ready");
    w.send({ type: "watch", ids: [watched] });
    const snap = await w.next();
    assert.equal(snap.type, "snapshot");
    assert.equal(snap.presences[0].availability, "Offline");

    const c = connect(`ws://127.0.0.1:${port}/presenced/connect`, { Authorization: `Bearer ${await mintToken(watched)}` });
    await c.opened;
    c.send({ type: "hello", device: "phone", availability: "Busy", activity: "InACall" });
    assert.equal((await c.next()).type, "ready");
    const change = await w.next();
    assert.equal(change.type, "change");
    assert.equal(change.id, watched);
    assert.equal(`${change.availability}/${change.activity}`, "Busy/InACall");
    assert.ok(change.sequenceNumber > snap.presences[0].sequenceNumber);

    c.send("not json");
    const err = await c.next();
    assert.equal(err.type, "error");
    assert.equal(err.code, "BadRequest");
    assert.equal((await c.closed).code, 4400);
    w.ws.close(1000);
    await w.closed;
  });
});

describe("client connections from a browser", () => {
  test("a page in headless Chromium connects with a ticket", { timeout: 120_000 }, async (t) => {
    if (!existsSync(CHROMIUM)) {
      if (process.env.PRESENCED_REQUIRE_CHROMIUM === "1") assert.fail(`${CHROMIUM} is missing`);
      t.skip(`${CHROMIUM} is missing`);
      return;
    }
    const { chromium } = await import("playwright-core");
    const user = randomUUID();
    const token = await mintToken(user);
    // The page is served from another origin than presenced; it gets a ticket,
    // never the token.
    const page = `<!doctype html><meta charset="utf-8"><title>presenced</title><script>
      window.received = [];
      const params = new URLSearchParams(location.search);
      const ws = new WebSocket(params.get("connect") + "?ticket=" + encodeURIComponent(params.get("ticket")));
      window.ws = ws;
      ws.onopen = () => ws.send(JSON.stringify({ type: "hello", device: "browser", name: navigator.userAgent.slice(0, 100) }));
      ws.onmessage = (e) => window.received.push(JSON.parse(e.data));
      ws.onclose = (e) => { window.closedWith = e.code; };
    </script>`;
    const pageServer = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(page);
    });
    await new Promise((r) => pageServer.listen(0, "127.0.0.1", r));
    const userDataDir = await mkdtemp(path.join(tmpdir(), "presenced-chromium-"));
    // A fresh profile: playwright passes it as --user-data-dir.
    const browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    try {
      const tab = await browser.newPage();
      const url = `http://127.0.0.1:${pageServer.address().port}/?connect=${encodeURIComponent(`ws://127.0.0.1:${port}/presenced/connect`)}&ticket=${await ticket(token)}`;
      await tab.goto(url);
      await tab.waitForFunction(() => window.received.some((m) => m.type === "ready"), null, { timeout: 30_000 });
      assert.equal(await presenceOf(user, token), "Available/Available");
      await tab.evaluate(() => window.ws.send(JSON.stringify({ type: "state", availability: "DoNotDisturb", activity: "Presenting" })));
      await eventually(async () => (await presenceOf(user, token)) === "DoNotDisturb/Presenting", 10_000, "the page's state");
      // Closing the tab closes the connection; the session outlives it by the grace window.
      await tab.close();
      await eventually(async () => (await openConnections()) === 0, 10_000, "the connection is released");
      assert.equal(await presenceOf(user, token), "DoNotDisturb/Presenting");
      await advance("PT30S");
      assert.equal(await presenceOf(user, token), "Offline/Offline");
    } finally {
      await browser.close();
      pageServer.close();
      await rm(userDataDir, { recursive: true, force: true });
    }
  });
});
