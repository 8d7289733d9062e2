// End-to-end test of presenced with the official Microsoft Graph JavaScript
// client (@microsoft/microsoft-graph-client, pinned to 3.0.7 in package.json).
//
// The test builds ../../cmd/presenced with the Go toolchain, starts it on a free
// loopback port in development auth mode (no JWKS, so presenced accepts tokens
// signed by its own key) with --test-hooks, mints tokens with `presenced token`,
// and drives the presence API through the client's .api(...) request builder.
//
// Run: npm ci && npm test   (from e2e/js; needs `go` on PATH and Node >= 18)
//
// A note on authentication. The SDK's default middleware chain (what Client.init
// builds around `authProvider`) only attaches the bearer token when the request
// URL starts with "https://" and names a Microsoft Graph host or one of
// `customHosts` (GraphRequestUtil.isValidEndpoint); for any other URL it
// *removes* the Authorization header. presenced listens on plain http, so the
// clients below are built with Client.initWithMiddleware and a middleware chain
// that is the SDK's default chain with only its first element (the
// AuthenticationHandler) replaced by BearerTokenHandler, which asks the same
// `(done) => done(null, token)` auth provider for a token on every request. The
// request builder, the response handling (GraphResponseHandler) and the error
// mapping (GraphErrorHandler -> GraphError) are the SDK's own, unchanged. The
// first test pins down the plain-http behaviour of Client.init itself.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import {
  Client,
  CustomAuthenticationProvider,
  GraphError,
  MiddlewareFactory,
} from "@microsoft/microsoft-graph-client";
import { freePort } from "./ports.mjs";

const execFileAsync = promisify(execFile);

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");

// Fixtures of conformance.md.
const TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
const APP_A = "22553876-f5ab-4529-bffb-cfe50aa89f87";

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const INNER_ERROR_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;

let workDir; // temp dir: binary + data dir
let bin; // path of the built presenced binary
let dataDir;
let server; // ChildProcess
let serverLog = "";
let baseUrl; // "http://127.0.0.1:<port>/"

// ---------------------------------------------------------------- helpers


function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitForHealthy(url, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  let lastError;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`presenced exited early (code ${server.exitCode}, signal ${server.signalCode}):\n${serverLog}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
      lastError = new Error(`GET ${url} -> ${res.status}`);
    } catch (err) {
      lastError = err;
    }
    await sleep(50);
  }
  throw new Error(`presenced did not answer ${url} within ${deadlineMs} ms (${lastError}):\n${serverLog}`);
}

/** Mints a token with `presenced token`; args are extra flags. */
async function mintToken(...args) {
  const { stdout } = await execFileAsync(bin, ["token", "--data", dataDir, ...args]);
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "presenced token printed a JWT");
  return token;
}

const appToken = (roles = "Presence.ReadWrite.All") => mintToken("--roles", roles);
const userToken = (user, scopes = "Presence.Read.All Presence.ReadWrite") =>
  mintToken("--user", user, "--scopes", scopes);

/**
 * Middleware that attaches `Authorization: Bearer <token>` to every request,
 * whatever the host; otherwise the same contract as the SDK's
 * AuthenticationHandler (it asks an AuthenticationProvider for the token).
 */
class BearerTokenHandler {
  constructor(authenticationProvider) {
    this.authenticationProvider = authenticationProvider;
  }
  async execute(context) {
    const token = await this.authenticationProvider.getAccessToken();
    context.options.headers = { ...(context.options.headers ?? {}), Authorization: `Bearer ${token}` };
    return this.nextMiddleware.execute(context);
  }
  setNext(next) {
    this.nextMiddleware = next;
  }
}

/** A Graph client for presenced acting with `token`. */
function graphClient(token) {
  const authProvider = new CustomAuthenticationProvider((done) => done(null, token));
  const [, ...rest] = MiddlewareFactory.getDefaultMiddlewareChain(authProvider);
  return Client.initWithMiddleware({
    baseUrl,
    defaultVersion: "v1.0",
    middleware: [new BearerTokenHandler(authProvider), ...rest],
  });
}

/** Plain fetch to a test hook (no token needed). */
async function hook(method, hookPath, body) {
  const res = await fetch(new URL(hookPath, baseUrl), {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${hookPath} -> ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const serviceNow = async () => new Date((await hook("GET", "/_test/clock")).now);
const advanceClock = (by) => hook("POST", "/_test/clock/advance", { by });

/**
 * Presence actions answer 200 with an empty body and no Content-Type. The SDK
 * then resolves to the raw body stream (or undefined); it must not throw, and
 * the stream must hold nothing.
 */
async function assertEmptyActionResult(result) {
  if (result === undefined || result === null) return;
  assert.ok(result instanceof ReadableStream, `action resolved to ${Object.prototype.toString.call(result)}`);
  assert.equal(await new Response(result).text(), "", "action response body is empty");
}

/** Runs `fn`, which must reject with a GraphError; returns the error. */
async function expectGraphError(fn) {
  let caught;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, "the request was expected to fail");
  assert.ok(caught instanceof GraphError, `expected a GraphError, got ${caught?.constructor?.name}: ${caught}`);
  return caught;
}

/** Common assertions on a GraphError built from a Graph error envelope. */
function assertGraphErrorEnvelope(err, { statusCode, code }) {
  assert.equal(err.statusCode, statusCode, `statusCode (body ${err.body})`);
  assert.equal(err.code, code, `code (body ${err.body})`);
  assert.equal(typeof err.message, "string");
  assert.match(err.requestId ?? "", GUID, "requestId comes from innerError.request-id");
  assert.ok(err.headers, "the client exposes the response headers");
  assert.equal(err.headers.get("request-id"), err.requestId, "innerError.request-id equals the request-id header");
  assert.ok(err.date instanceof Date && !Number.isNaN(err.date.getTime()), "date parsed from innerError.date");
  assert.equal(typeof err.body, "string", "body is the JSON text of the error object");
  const body = JSON.parse(err.body);
  assert.equal(body.code, code);
  assert.equal(typeof body.message, "string");
  assert.equal(body.message, err.message);
  assert.equal(body.innerError["request-id"], err.requestId);
  assert.match(body.innerError.date, INNER_ERROR_DATE);
  // The SDK removes any client-request-id header from requests to a host that
  // is not an https Graph host (TelemetryHandler), so the client sent none and
  // the service falls back to its request-id (graph-presence.md 5.1).
  assert.equal(body.innerError["client-request-id"], err.requestId);
  assert.equal(err.headers.get("client-request-id"), err.requestId);
  return body;
}

/** "yyyy-MM-ddTHH:mm:ss" of `date` on the wall clock of IANA zone `zone`. */
function wallClock(date, zone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}`;
}

/**
 * Checks that a dateTimeTimeZone read back denotes `instant`. The service may
 * return the zone it was given or normalise it (graph-presence.md 1.9), so
 * accept Pacific Standard Time and UTC spellings.
 */
function assertSameInstant(dtz, instant) {
  assert.equal(typeof dtz?.dateTime, "string", "expiryDateTime.dateTime");
  assert.doesNotMatch(dtz.dateTime, /(Z|[+-]\d{2}:\d{2})$/, "dateTime carries no offset");
  const wall = dtz.dateTime.replace(/\.\d+$/, "");
  const zones = {
    "Pacific Standard Time": "America/Los_Angeles",
    "America/Los_Angeles": "America/Los_Angeles",
    UTC: "UTC",
    "Etc/UTC": "UTC",
  };
  const iana = zones[dtz.timeZone];
  assert.ok(iana, `unexpected expiryDateTime.timeZone ${JSON.stringify(dtz.timeZone)}`);
  assert.equal(wall, wallClock(instant, iana), `expiryDateTime ${JSON.stringify(dtz)}`);
}

function assertPresence(p, { id, availability, activity }) {
  assert.equal(p.id, id);
  assert.equal(p.availability, availability, `availability of ${id}: ${JSON.stringify(p)}`);
  assert.equal(p.activity, activity, `activity of ${id}: ${JSON.stringify(p)}`);
}

// ---------------------------------------------------------------- server

function killServerNow() {
  if (server && server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

before(
  async () => {
    assert.ok(existsSync(path.join(repoRoot, "go.mod")), `no go.mod in ${repoRoot}`);
    workDir = await mkdtemp(path.join(tmpdir(), "presenced-e2e-js-"));
    bin = path.join(workDir, process.platform === "win32" ? "presenced.exe" : "presenced");
    dataDir = path.join(workDir, "data");

    await execFileAsync("go", ["build", "-o", bin, "./cmd/presenced"], {
      cwd: repoRoot,
      maxBuffer: 16 * 1024 * 1024,
    });

    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}/`;
    server = spawn(bin, ["--addr", `127.0.0.1:${port}`, "--data", dataDir, "--test-hooks"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    server.stdout.on("data", (chunk) => (serverLog += chunk));
    server.stderr.on("data", (chunk) => (serverLog += chunk));
    // If this process goes away without running `after` (crash, Ctrl-C),
    // take the server with it.
    process.once("exit", killServerNow);
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
      process.once(signal, () => {
        killServerNow();
        process.kill(process.pid, signal);
      });
    }
    await waitForHealthy(new URL("/healthz", baseUrl), 30_000);
  },
  { timeout: 300_000 },
);

after(async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((resolve) => server.once("exit", resolve));
    server.kill("SIGTERM");
    const timer = setTimeout(() => server.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests

describe("Client.init with a plain-http baseUrl", () => {
  test("the SDK does not send the token to a non-https host: 401 surfaces as a GraphError", async () => {
    const token = await appToken();
    let asked = 0;
    const client = Client.init({
      authProvider: (done) => {
        asked++;
        done(null, token);
      },
      baseUrl,
      defaultVersion: "v1.0",
      customHosts: new Set(["127.0.0.1"]),
    });
    const err = await expectGraphError(() => client.api(`/users/${randomUUID()}/presence`).get());
    assertGraphErrorEnvelope(err, { statusCode: 401, code: "InvalidAuthenticationToken" });
    assert.equal(asked, 0, "the auth provider is never consulted for an http:// URL");
    assert.ok(err.headers.get("www-authenticate"), "401 carries WWW-Authenticate");
  });
});

describe("GET presence", () => {
  test("/users/{id}/presence of a user never written to is Offline/Offline", async () => {
    const u = randomUUID();
    const client = graphClient(await appToken());
    const p = await client.api(`/users/${u}/presence`).get();
    assertPresence(p, { id: u, availability: "Offline", activity: "Offline" });
    assert.equal(p.statusMessage, null);
    assert.deepEqual(p.outOfOfficeSettings, { message: null, isOutOfOffice: false });
    assert.ok(p["@odata.context"].endsWith(`$metadata#users('${u}')/presence/$entity`), p["@odata.context"]);
    assert.ok(p["@odata.context"].includes("/v1.0/"), p["@odata.context"]);
  });

  test("/me/presence and own /users/{id}/presence with a delegated token", async () => {
    const u = randomUUID();
    const client = graphClient(await userToken(u, "Presence.Read"));
    const me = await client.api("/me/presence").get();
    assertPresence(me, { id: u, availability: "Offline", activity: "Offline" });
    assert.ok(me["@odata.context"].endsWith(`$metadata#users('${u}')/presence/$entity`), me["@odata.context"]);
    const own = await client.api(`/users/${u}/presence`).get();
    assertPresence(own, { id: u, availability: "Offline", activity: "Offline" });
  });

  test("/me/presence via .version('beta')", async () => {
    const u = randomUUID();
    const client = graphClient(await userToken(u));
    const me = await client.api("/me/presence").version("beta").get();
    assertPresence(me, { id: u, availability: "Offline", activity: "Offline" });
    assert.ok(me["@odata.context"].includes("/beta/"), me["@odata.context"]);
  });
});

describe("presence actions (200, empty body, no Content-Type)", () => {
  test("setPresence, setUserPreferredPresence, clearUserPreferredPresence, clearPresence", async () => {
    const u = randomUUID();
    const client = graphClient(await appToken());
    const get = () => client.api(`/users/${u}/presence`).get();

    const before = await get();

    // setPresence with sessionId = the token's app id.
    await assertEmptyActionResult(
      await client.api(`/users/${u}/presence/setPresence`).post({
        sessionId: APP_A,
        availability: "Available",
        activity: "Available",
        expirationDuration: "PT1H",
      }),
    );
    const afterSet = await get();
    assertPresence(afterSet, { id: u, availability: "Available", activity: "Available" });
    if (before.sequenceNumber !== undefined) {
      assert.ok(afterSet.sequenceNumber > before.sequenceNumber, "sequenceNumber grows on change");
    }

    // Refresh the same session with another pair, through beta: shared state.
    await assertEmptyActionResult(
      await client.api(`/users/${u}/presence/setPresence`).version("beta").post({
        sessionId: APP_A,
        availability: "Busy",
        activity: "InACall",
        expirationDuration: "PT1H",
      }),
    );
    assertPresence(await get(), { id: u, availability: "Busy", activity: "InACall" });

    // Preferred presence beats the session while a session is live.
    await assertEmptyActionResult(
      await client.api(`/users/${u}/presence/setUserPreferredPresence`).post({
        availability: "DoNotDisturb",
        activity: "DoNotDisturb",
        expirationDuration: "PT8H",
      }),
    );
    assertPresence(await get(), { id: u, availability: "DoNotDisturb", activity: "DoNotDisturb" });

    // clearUserPreferredPresence with an empty body (the SDK still sends
    // Content-Type: application/json), then again with {} (idempotent).
    await assertEmptyActionResult(await client.api(`/users/${u}/presence/clearUserPreferredPresence`).post());
    assertPresence(await get(), { id: u, availability: "Busy", activity: "InACall" });
    await assertEmptyActionResult(await client.api(`/users/${u}/presence/clearUserPreferredPresence`).post({}));
    assertPresence(await get(), { id: u, availability: "Busy", activity: "InACall" });

    // clearPresence removes the app's session.
    await assertEmptyActionResult(
      await client.api(`/users/${u}/presence/clearPresence`).post({ sessionId: APP_A }),
    );
    assertPresence(await get(), { id: u, availability: "Offline", activity: "Offline" });

    // A second clearPresence has no session to clear: 404 NotFound.
    const err = await expectGraphError(() =>
      client.api(`/users/${u}/presence/clearPresence`).post({ sessionId: APP_A }),
    );
    assertGraphErrorEnvelope(err, { statusCode: 404, code: "NotFound" });
  });

  test("delegated actions on /me/presence", async () => {
    const u = randomUUID();
    const client = graphClient(await userToken(u));
    await assertEmptyActionResult(
      await client.api("/me/presence/setPresence").post({
        sessionId: APP_A,
        availability: "Away",
        activity: "Away",
        expirationDuration: "PT1H",
      }),
    );
    assertPresence(await client.api("/me/presence").get(), { id: u, availability: "Away", activity: "Away" });
    await assertEmptyActionResult(await client.api("/me/presence/clearPresence").post({ sessionId: APP_A }));
    assertPresence(await client.api("/me/presence").get(), { id: u, availability: "Offline", activity: "Offline" });
  });

  test("setStatusMessage with an expiry in Pacific Standard Time, read back by self and by another user", async () => {
    const u1 = randomUUID();
    const u2 = randomUUID();
    const self = graphClient(await userToken(u1));
    const other = graphClient(await userToken(u2, "Presence.Read.All"));

    const expiry = new Date((await serviceNow()).getTime() + 2 * 60 * 60 * 1000);
    expiry.setUTCMilliseconds(0);
    const expiryDateTime = { dateTime: wallClock(expiry, "America/Los_Angeles"), timeZone: "Pacific Standard Time" };

    await assertEmptyActionResult(
      await self.api("/me/presence/setStatusMessage").post({
        statusMessage: {
          message: { content: "In the lab", contentType: "text" },
          expiryDateTime,
        },
      }),
    );

    const mine = await self.api("/me/presence").get();
    assert.ok(mine.statusMessage, `statusMessage set: ${JSON.stringify(mine)}`);
    assert.deepEqual(mine.statusMessage.message, { content: "In the lab", contentType: "text" });
    assert.ok(!Number.isNaN(Date.parse(mine.statusMessage.publishedDateTime)), "publishedDateTime present");
    assertSameInstant(mine.statusMessage.expiryDateTime, expiry);

    // Another user sees the message but neither publishedDateTime nor expiryDateTime.
    const theirs = await other.api(`/users/${u1}/presence`).get();
    assert.deepEqual(theirs.statusMessage?.message, { content: "In the lab", contentType: "text" });
    assert.equal(theirs.statusMessage.publishedDateTime, undefined);
    assert.equal(theirs.statusMessage.expiryDateTime, undefined);

    // And the application path works too.
    const app = graphClient(await appToken());
    await assertEmptyActionResult(
      await app.api(`/users/${u2}/presence/setStatusMessage`).post({
        statusMessage: { message: { content: "Heads-down", contentType: "text" } },
      }),
    );
    const u2Self = await other.api("/me/presence").get();
    assert.equal(u2Self.statusMessage?.message?.content, "Heads-down");
    assert.equal(u2Self.statusMessage.expiryDateTime, undefined, "no expiry given, none returned");
  });
});

describe("getPresencesByUserId", () => {
  for (const version of ["v1.0", "beta"]) {
    test(`two ids in request order (${version})`, async () => {
      const u1 = randomUUID();
      const u2 = randomUUID();
      const app = graphClient(await appToken());
      await app.api(`/users/${u1}/presence/setPresence`).post({
        sessionId: APP_A,
        availability: "Busy",
        activity: "InACall",
        expirationDuration: "PT1H",
      });
      await app.api(`/users/${u2}/presence/setPresence`).post({
        sessionId: APP_A,
        availability: "Available",
        activity: "Available",
        expirationDuration: "PT1H",
      });

      const reader = graphClient(await userToken(randomUUID(), "Presence.Read.All"));
      // Ask for u2 first, then u1: the answer keeps that order.
      for (const ids of [
        [u2, u1],
        [u1, u2],
      ]) {
        const res = await reader.api("/communications/getPresencesByUserId").version(version).post({ ids });
        assert.ok(Array.isArray(res.value), JSON.stringify(res));
        assert.deepEqual(
          res.value.map((p) => p.id),
          ids,
        );
        const byId = Object.fromEntries(res.value.map((p) => [p.id, p]));
        assertPresence(byId[u1], { id: u1, availability: "Busy", activity: "InACall" });
        assertPresence(byId[u2], { id: u2, availability: "Available", activity: "Available" });
        assert.ok(res["@odata.context"].includes(`/${version}/`), res["@odata.context"]);
      }
    });
  }
});

describe("errors surface as GraphError", () => {
  test("setPresence Busy/Busy -> 400 InvalidArgument", async () => {
    const u = randomUUID();
    const client = graphClient(await appToken());
    const err = await expectGraphError(() =>
      client
        .api(`/users/${u}/presence/setPresence`)
        .post({ sessionId: APP_A, availability: "Busy", activity: "Busy", expirationDuration: "PT1H" }),
    );
    assertGraphErrorEnvelope(err, { statusCode: 400, code: "InvalidArgument" });
    assertPresence(await client.api(`/users/${u}/presence`).get(), {
      id: u,
      availability: "Offline",
      activity: "Offline",
    });
  });

  test("setPresence with an out-of-range expirationDuration -> 400 InvalidArgument (beta too)", async () => {
    const u = randomUUID();
    const client = graphClient(await appToken());
    for (const version of ["v1.0", "beta"]) {
      const err = await expectGraphError(() =>
        client
          .api(`/users/${u}/presence/setPresence`)
          .version(version)
          .post({ sessionId: APP_A, availability: "Available", activity: "Available", expirationDuration: "PT4M" }),
      );
      assertGraphErrorEnvelope(err, { statusCode: 400, code: "InvalidArgument" });
      assert.equal(err.message, "The provided [ExpirationDuration] is out of range.");
    }
  });

  test("setPresence with a read-only app token -> 403 Forbidden", async () => {
    const u = randomUUID();
    const client = graphClient(await appToken("Presence.Read.All"));
    const err = await expectGraphError(() =>
      client
        .api(`/users/${u}/presence/setPresence`)
        .post({ sessionId: APP_A, availability: "Available", activity: "Available", expirationDuration: "PT1H" }),
    );
    assertGraphErrorEnvelope(err, { statusCode: 403, code: "Forbidden" });
    // ...while the same token may still read.
    assertPresence(await client.api(`/users/${u}/presence`).get(), {
      id: u,
      availability: "Offline",
      activity: "Offline",
    });
  });

  test("delegated write to another user -> 403 Forbidden", async () => {
    const u1 = randomUUID();
    const u2 = randomUUID();
    const client = graphClient(await userToken(u1));
    const err = await expectGraphError(() =>
      client.api(`/users/${u2}/presence/setStatusMessage`).post({
        statusMessage: { message: { content: "not mine", contentType: "text" } },
      }),
    );
    assertGraphErrorEnvelope(err, { statusCode: 403, code: "Forbidden" });
    assert.equal(err.message, "Cannot set the presence of another user.");
  });

  test("/me/presence with an application token -> 400 BadRequest", async () => {
    const client = graphClient(await appToken());
    const err = await expectGraphError(() => client.api("/me/presence").get());
    assertGraphErrorEnvelope(err, { statusCode: 400, code: "BadRequest" });
    assert.equal(err.message, "/me request is only valid with delegated authentication flow.");
  });
});

describe("test clock", () => {
  test("an Available session with expirationDuration PT1H fades: AvailableInactive at 5 min, Away at 10 min", async () => {
    const u = randomUUID();
    const app = graphClient(await appToken());
    const self = graphClient(await userToken(u));
    const get = () => app.api(`/users/${u}/presence`).get();

    const t0 = await serviceNow();
    await app.api(`/users/${u}/presence/setPresence`).post({
      sessionId: APP_A,
      availability: "Available",
      activity: "Available",
      expirationDuration: "PT1H",
    });
    // A status message that expires 7 minutes from now, given in Pacific time.
    const expiry = new Date(t0.getTime() + 7 * 60 * 1000);
    expiry.setUTCMilliseconds(0);
    await self.api("/me/presence/setStatusMessage").post({
      statusMessage: {
        message: { content: "Back soon", contentType: "text" },
        expiryDateTime: { dateTime: wallClock(expiry, "America/Los_Angeles"), timeZone: "Pacific Standard Time" },
      },
    });
    assertPresence(await get(), { id: u, availability: "Available", activity: "Available" });

    const advanced = await advanceClock("PT5M");
    assert.ok(new Date(advanced.now) - t0 >= 5 * 60 * 1000, `clock advanced: ${JSON.stringify(advanced)}`);
    const at5 = await get();
    assertPresence(at5, { id: u, availability: "Available", activity: "AvailableInactive" });
    assert.equal(at5.statusMessage?.message?.content, "Back soon", "status message still shown before its expiry");

    await advanceClock("PT5M");
    const at10 = await self.api("/me/presence").get();
    assertPresence(at10, { id: u, availability: "Away", activity: "Away" });
    assert.equal(at10.statusMessage, null, "status message hidden after its Pacific-time expiry");
  });
});

describe("work location and the work plan", () => {
  test("the four actions, their answers per version, and workLocation in GET", async () => {
    const u = randomUUID();
    const self = graphClient(await userToken(u));
    const where = async () => (await self.api("/me/presence").get()).workLocation;

    assert.deepEqual(await where(), { workLocationType: "unspecified", source: "none", placeId: null });
    await assertEmptyActionResult(
      await self.api("/me/presence/setAutomaticLocation").post({ workLocationType: "remote" }),
    );
    assert.deepEqual(await where(), { workLocationType: "remote", source: "automatic", placeId: null });
    await assertEmptyActionResult(
      await self.api(`/users/${u}/presence/setManualLocation`).post({ workLocationType: "Office", placeId: "b4" }),
    );
    assert.deepEqual(await where(), { workLocationType: "office", source: "manual", placeId: "b4" });
    // $select=workLocation through the request builder.
    const selected = await self.api("/me/presence").select("workLocation").get();
    assert.equal(selected.availability, undefined);
    assert.equal(selected.workLocation.source, "manual");

    await self.api(`/communications/presences/${u}/clearAutomaticLocation`).post({});
    assert.equal((await where()).source, "manual", "clearAutomaticLocation leaves the manual layer");
    // beta answers the clear actions with 204.
    await self.api("/me/presence/clearLocation").version("beta").post({});
    assert.deepEqual(await where(), { workLocationType: "unspecified", source: "none", placeId: null });

    const err = await expectGraphError(() =>
      self.api("/me/presence/setManualLocation").post({ placeId: "b4" }),
    );
    assertGraphErrorEnvelope(err, { statusCode: 400, code: "BadRequest" });
    assert.match(err.message, /'office', 'remote', 'timeOff'/);

    // v1.0 refuses application tokens; beta accepts Presence.ReadWrite.All.
    const app = graphClient(await appToken());
    const refused = await expectGraphError(() =>
      app.api(`/users/${u}/presence/setManualLocation`).post({ workLocationType: "office" }),
    );
    assertGraphErrorEnvelope(refused, { statusCode: 403, code: "Forbidden" });
    await app.api(`/users/${u}/presence/setManualLocation`).version("beta").post({ workLocationType: "timeOff" });
    assert.equal((await where()).workLocationType, "timeOff");
  });

  test("a weekly plan feeds the scheduled layer, and occurrencesView expands it", async () => {
    const u = randomUUID();
    const planner = graphClient(await userToken(u, "Presence.Read.All Calendars.ReadWrite"));
    const all = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
    const created = await planner.api("/me/settings/workHoursAndLocations/recurrences").post({
      workLocationType: "remote",
      start: { dateTime: "2026-01-05T00:00:00", timeZone: "UTC" },
      end: { dateTime: "2026-01-05T23:59:00", timeZone: "UTC" },
      recurrence: {
        pattern: { type: "weekly", interval: 1, daysOfWeek: all },
        range: { type: "noEnd", startDate: "2026-01-05" },
      },
    });
    assert.match(created.id, GUID);
    const list = await planner.api(`/users/${u}/settings/workHoursAndLocations/recurrences`).get();
    assert.equal(list.value.length, 1);

    const now = await serviceNow();
    if (now.getUTCHours() === 23 && now.getUTCMinutes() >= 59) await advanceClock("PT2M");
    const p = await planner.api("/me/presence").get();
    assert.deepEqual(p.workLocation, { workLocationType: "remote", source: "scheduled", placeId: null });

    const view = await planner
      .api("/me/settings/workHoursAndLocations/occurrencesView(startDateTime='2030-01-07T00:00:00Z',endDateTime='2030-01-09T00:00:00Z')")
      .get();
    assert.deepEqual(
      view.value.map((o) => o.start.dateTime),
      ["2030-01-07T00:00:00.0000000", "2030-01-08T00:00:00.0000000"],
    );

    await planner
      .api("/me/settings/workHoursAndLocations/occurrences/setCurrentLocation")
      .post({ updateScope: "currentDay", workLocationType: "office", placeId: "hq" });
    const q = await planner.api("/me/presence").get();
    assert.deepEqual(q.workLocation, { workLocationType: "office", source: "scheduled", placeId: "hq" });

    // PATCH is refused, as Graph refuses it; PUT replaces.
    const patched = await expectGraphError(() =>
      planner.api(`/me/settings/workHoursAndLocations/recurrences/${created.id}`).patch({ workLocationType: "office" }),
    );
    assert.equal(patched.statusCode, 405);
    await planner.api(`/me/settings/workHoursAndLocations/recurrences/${created.id}`).delete();

    // Applications may not touch the plan.
    const app = graphClient(await appToken());
    const err = await expectGraphError(() => app.api(`/users/${u}/settings/workHoursAndLocations/recurrences`).get());
    assertGraphErrorEnvelope(err, { statusCode: 403, code: "Forbidden" });
  });
});
