// Browser test of the presenced console (/presenced/console/) in headless
// Chromium, driven with playwright-core against a real presenced started
// with --test-hooks and --store memory: sign in with a token, watch a user
// set by setPresence appear, fade and expire as the clock is advanced from
// the page, watch a webhook delivery (a refused one, its retry, then
// delivered) reach a local HTTPS receiver, and check that a token of another
// tenant sees none of it, then sign in as the operator and switch to the
// tenant. With PRESENCED_UPDATE_SCREENSHOTS=1 it saves the screenshots the
// README shows into docs/img/ (otherwise into a temporary directory).
//
// Needs Debian's chromium at /usr/bin/chromium (or $CHROMIUM), openssl, go.
// Skipped when chromium is missing, unless PRESENCED_REQUIRE_CHROMIUM=1.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");
const updateScreenshots = process.env.PRESENCED_UPDATE_SCREENSHOTS === "1";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const haveChromium = existsSync(chromiumPath);
if (!haveChromium && process.env.PRESENCED_REQUIRE_CHROMIUM === "1") {
  throw new Error(`PRESENCED_REQUIRE_CHROMIUM=1 but there is no chromium at ${chromiumPath}`);
}

const TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
const APP = "22553876-f5ab-4529-bffb-cfe50aa89f87";
const USER = "0a1b2c3d-0000-4000-8000-00000000a11c";
const USER2 = "0b2c3d4e-0000-4000-8000-0000000b0b0b";
const OPERATOR_SECRET = "operator-" + randomUUID() + "-" + randomUUID();
const OTHER_TENANT = "5e1f0a2b-1111-4111-8111-0000000000b2";

let workDir, bin, dataDir, server, baseUrl;
let serverLog = "";
let receiver, receiverUrl;
const received = []; // {status, body} of every notification POST
let refuseNext = 1; // notifications to answer 503 before accepting
let browser, page, imgDir;

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(what, fn, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}\n${serverLog.slice(-3000)}`);
}

async function mintToken(...args) {
  const { stdout } = await execFileAsync(bin, ["token", "--data", dataDir, ...args]);
  return stdout.trim();
}

async function call(method, p, token, body) {
  const res = await fetch(new URL(p, baseUrl), {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : undefined, text };
}

// startReceiver runs an HTTPS webhook receiver on loopback with a
// certificate made by openssl for 127.0.0.1; presenced trusts it through
// --webhook-ca-file.
async function startReceiver() {
  const key = path.join(workDir, "receiver-key.pem");
  const cert = path.join(workDir, "receiver-cert.pem");
  await execFileAsync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]);
  receiver = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    const url = new URL(req.url, "https://127.0.0.1");
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const token = url.searchParams.get("validationToken");
      if (token !== null) {
        res.writeHead(200, { "Content-Type": "text/plain" });
        res.end(token);
        return;
      }
      const status = refuseNext > 0 ? 503 : 202;
      if (refuseNext > 0) refuseNext--;
      received.push({ status, body });
      res.writeHead(status);
      res.end();
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  receiverUrl = `https://127.0.0.1:${receiver.address().port}/hook`;
  return cert;
}

before(async () => {
  if (!haveChromium) return;
  workDir = await mkdtemp(path.join(tmpdir(), "presenced-console-"));
  bin = path.join(workDir, "presenced");
  dataDir = path.join(workDir, "data");
  await execFileAsync("go", ["build", "-o", bin, "./cmd/presenced"], { cwd: repoRoot, maxBuffer: 16 << 20 });
  const ca = await startReceiver();
  const operatorFile = path.join(workDir, "operator-secret");
  writeFileSync(operatorFile, OPERATOR_SECRET + "\n", { mode: 0o600 });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}/`;
  server = spawn(bin, ["--addr", `127.0.0.1:${port}`, "--data", dataDir, "--store", "memory", "--test-hooks", "--webhook-ca-file", ca,
    "--console-operator-token-file", operatorFile],
    { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (c) => (serverLog += c));
  server.stderr.on("data", (c) => (serverLog += c));
  process.once("exit", () => server.kill("SIGKILL"));
  await waitFor("presenced /healthz", async () => (await fetch(new URL("/healthz", baseUrl))).ok, 30_000);

  const { chromium } = await import("playwright-core");
  browser = await chromium.launchPersistentContext(path.join(workDir, "chromium-profile"), {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run"],
    viewport: { width: 1440, height: 900 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on("pageerror", (err) => {
    serverLog += `\n[page error] ${err}`;
  });
  imgDir = updateScreenshots ? path.join(repoRoot, "docs", "img") : path.join(workDir, "img");
  mkdirSync(imgDir, { recursive: true });
}, { timeout: 300_000 });

after(async () => {
  await browser?.close();
  receiver?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    const t = setTimeout(() => server.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
  }
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const card = () => page.locator(`[data-testid="user-${USER}"]`);
const pairIs = (text) => card().locator("[data-testid=pair]", { hasText: text }).waitFor({ timeout: 15_000 });

describe("the console", { skip: !haveChromium && `no chromium at ${chromiumPath}` }, () => {
  test("sign in, a user's fade and expiry, a webhook delivery, and another tenant sees none of it", { timeout: 180_000 }, async () => {
    const token = await mintToken("--user", USER, "--scopes", "Presence.Read.All Presence.ReadWrite");

    // The page before sign-in says loudly that this is development mode.
    await page.goto(new URL("/presenced/console/", baseUrl).href);
    await page.getByTestId("dev-banner").waitFor({ state: "visible" });
    await page.getByLabel("User id (empty: application token)").fill(USER);
    await page.screenshot({ path: path.join(imgDir, "console-signin.png") });

    // Sign in by pasting the token.
    await page.getByLabel(/^Bearer token/).fill(token);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByTestId("identity").filter({ hasText: USER }).waitFor();
    await page.getByTestId("live").filter({ hasText: /^live$/ }).waitFor();

    // A subscription to the user, delivered to the local HTTPS receiver.
    const now = new Date((await call("GET", "/_test/clock")).json.now);
    const sub = await call("POST", "/v1.0/subscriptions", token, {
      changeType: "updated",
      notificationUrl: receiverUrl,
      resource: `/communications/presences?$filter=id in ('${USER}')`,
      expirationDateTime: new Date(now.getTime() + 50 * 60_000).toISOString(),
      clientState: "console-test",
    });
    assert.equal(sub.status, 201, sub.text);

    // A second user: a simulated Teams client, a preferred presence and a
    // status message of their own, and out-of-office set from the page.
    const token2 = await mintToken("--user", USER2, "--scopes", "Presence.Read.All Presence.ReadWrite");
    await call("PUT", `/_test/tenants/${TENANT}/users/${USER2}/clientSessions/teams-desktop`, undefined,
      { availability: "Busy", activity: "InACall" }).then((r) => assert.equal(r.status, 204, r.text));
    const card2 = page.getByTestId(`user-${USER2}`);
    await card2.getByTestId("pair").filter({ hasText: "Busy / InACall" }).waitFor();
    // A work location, set for USER2 by an application (beta lets
    // Presence.ReadWrite.All set it for any user of its tenant). A change of
    // the work location alone is no presence change (no event, as Graph's
    // notifications), so the board shows it with the next change of the pair.
    const appToken = await mintToken("--roles", "Presence.ReadWrite.All");
    await call("POST", `/beta/users/${USER2}/presence/setManualLocation`, appToken,
      { workLocationType: "office", placeId: "Building 4" }).then((r) => assert.equal(r.status, 200, r.text));
    await call("POST", `/v1.0/me/presence/setUserPreferredPresence`, token2,
      { availability: "DoNotDisturb", activity: "DoNotDisturb", expirationDuration: "PT2H" }).then((r) => assert.equal(r.status, 200, r.text));
    await call("POST", `/v1.0/me/presence/setStatusMessage`, token2,
      { statusMessage: { message: { content: "Heads down on the release", contentType: "text" } } }).then((r) => assert.equal(r.status, 200, r.text));
    await card2.getByTestId("pair").filter({ hasText: "DoNotDisturb / DoNotDisturb" }).waitFor();
    await card2.getByTestId("work-location").filter({ hasText: "in the office · Building 4 (manual)" }).waitFor();
    await card2.getByRole("button", { name: "Out of office" }).click();
    await card2.getByText("out of office", { exact: true }).waitFor();
    await card2.getByText("Heads down on the release").waitFor();
    const listed = await call("GET", "/presenced/users", token);
    assert.deepEqual(listed.json.value.find((u) => u.id === USER2)?.workLocation,
      { workLocationType: "office", source: "manual", placeId: "Building 4" });

    // setPresence through Graph: the board shows it without a reload.
    const set = await call("POST", `/v1.0/users/${USER}/presence/setPresence`, token, {
      sessionId: APP, availability: "Available", activity: "Available", expirationDuration: "PT15M",
    });
    assert.equal(set.status, 200, set.text);
    await pairIs("Available / Available");
    await card().getByTestId("session").filter({ hasText: APP }).waitFor();
    assert.equal(await card().getByTestId("work-location").count(), 0, "no work location shown for a user without one");
    assert.match(await card().getByTestId("session").innerText(), /in 5m 0s/, "the next fade counts down from 5 minutes");
    await card().getByRole("button", { name: "Open Teams client" }).waitFor();
    await page.screenshot({ path: path.join(imgDir, "console-presence.png") });

    // The clock, advanced from the page: the fade, the second fade, the expiry.
    await page.getByRole("button", { name: "+5 min" }).click();
    await pairIs("Available / AvailableInactive");
    await page.getByRole("button", { name: "+5 min" }).click();
    await pairIs("Away / Away");
    await page.getByLabel("Advance by (ISO 8601)").fill("PT5M");
    await page.getByRole("button", { name: "Advance", exact: true }).click();
    await pairIs("Offline / Offline");
    await waitFor("the expired session to leave the card", async () => (await card().getByTestId("session").count()) === 0);

    // The deliveries: the first refused (503) and retried, then delivered.
    await waitFor("a delivered notification", async () => received.some((r) => r.status === 202));
    await page.getByRole("tab", { name: "Subscriptions" }).click();
    await page.getByTestId("subscription").filter({ hasText: sub.json.id }).waitFor();
    await page.getByRole("button", { name: "Deliveries" }).click();
    const rows = page.getByTestId("delivery");
    await rows.filter({ has: page.locator("[data-testid=status]", { hasText: "503" }) }).first().waitFor();
    await rows.filter({ has: page.locator("[data-testid=status]", { hasText: "202" }) }).first().waitFor();
    const text = await page.getByTestId("deliveries").innerText();
    assert.match(text, new RegExp(`${USER.slice(0, 8)}… A\\d{10} Available/Available`), "a delivery names the user and its sequenceNumber");
    assert.match(text, /retry 1/, "the retry is counted");
    await page.screenshot({ path: path.join(imgDir, "console-deliveries.png"), fullPage: true });

    // The tabs follow the keyboard: arrow keys move between them.
    await page.getByRole("tab", { name: "Subscriptions" }).focus();
    await page.keyboard.press("ArrowRight");
    await page.getByRole("tab", { name: "Health", selected: true }).waitFor();
    await page.keyboard.press("ArrowLeft");
    await page.getByRole("tab", { name: "Subscriptions", selected: true }).waitFor();
    await page.getByRole("tab", { name: "Health" }).click();
    await page.getByTestId("health").filter({ hasText: "Live sessions" }).waitFor();
    await page.getByTestId("health").filter({ hasText: "memory" }).waitFor();
    await page.screenshot({ path: path.join(imgDir, "console-health.png") });
    await page.getByRole("tab", { name: "Presence" }).click();

    // Another tenant, through a development token minted by the page: none of it.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Tenant id", { exact: true }).fill(OTHER_TENANT);
    await page.getByLabel("User id (empty: application token)").fill(randomUUID());
    await page.getByRole("button", { name: "Mint and sign in" }).click();
    await page.getByTestId("identity").filter({ hasText: OTHER_TENANT }).waitFor();
    await page.getByText("No user of this tenant has any presence state yet.").waitFor();
    assert.equal(await page.getByTestId(`user-${USER}`).count(), 0);
    await page.getByRole("tab", { name: "Subscriptions" }).click();
    await page.getByText("No subscription this token may see.").waitFor();
    assert.doesNotMatch(await page.locator("body").innerText(), new RegExp(USER));

    // And the endpoints themselves answer the other tenant's token the same.
    const other = await mintToken("--tenant", OTHER_TENANT, "--roles", "Presence.Read.All");
    const list = await call("GET", "/presenced/users", other);
    assert.equal(list.status, 200, list.text);
    assert.equal(list.json["@odata.count"], 0);
    const d = await call("GET", `/presenced/subscriptions/${sub.json.id}/deliveries`, other);
    assert.notEqual(d.status, 200, "another tenant cannot read the deliveries");

    // The operator signs in with the secret and switches to the tenant.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel(/^Bearer token/).fill(OPERATOR_SECRET);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByTestId("identity").filter({ hasText: "Operator" }).waitFor();
    await page.getByLabel("Tenant (operator view)").selectOption(TENANT);
    await page.getByRole("button", { name: "Show tenant" }).click();
    await page.getByRole("tab", { name: "Presence" }).click();
    await page.getByTestId(`user-${USER2}`).waitFor();
    await page.getByTestId(`user-${USER}`).waitFor();
    await page.screenshot({ path: path.join(imgDir, "console-operator.png") });
  });

  test("without /presenced/events the board follows Graph's presence stream of its users", { timeout: 120_000 }, async () => {
    const user = "0c3d4e5f-0000-4000-8000-00000000c0c0";
    const hook = `/_test/tenants/${TENANT}/users/${user}/clientSessions/teams-web`;
    assert.equal((await call("PUT", hook, undefined, { availability: "Available", activity: "Available" })).status, 204);
    const token = await mintToken("--roles", "Presence.Read.All");
    const p = await browser.newPage();
    try {
      // An older presenced: no tenant-wide stream.
      await p.route("**/presenced/events", (route) => route.fulfill({ status: 404, contentType: "application/json", body: '{"error":{"code":"NotFound","message":"no"}}' }));
      await p.goto(new URL("/presenced/console/", baseUrl).href);
      await p.getByLabel(/^Bearer token/).fill(token);
      await p.getByRole("button", { name: "Sign in", exact: true }).click();
      await p.getByTestId("live").filter({ hasText: "live (page's users)" }).waitFor();
      const c = p.getByTestId(`user-${user}`);
      await c.getByTestId("pair").filter({ hasText: "Available / Available" }).waitFor();
      assert.equal((await call("PUT", `/_test/tenants/${TENANT}/users/${user}/calendarBusy`, undefined, { active: true })).status, 204);
      await c.getByTestId("pair").filter({ hasText: "Busy / InAMeeting" }).waitFor();
    } finally {
      await p.close();
    }
  });
});
