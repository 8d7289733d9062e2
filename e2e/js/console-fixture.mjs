// What the console's browser tests share, whichever browser drives the page:
// a real presenced built from this tree and started on loopback with
// --test-hooks, --store memory and an operator secret, a local HTTPS webhook
// receiver it trusts, and helpers to mint tokens and call the API.
//
// Not a test file itself (node --test does not pick it up by its name).

import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { freePort } from "./ports.mjs";

const execFileAsync = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository's root directory. */
export const repoRoot = path.resolve(here, "..", "..");


/**
 * startFixture builds presenced into a temporary directory and starts it,
 * with an HTTPS receiver on 127.0.0.1 (a certificate made by openssl for
 * 127.0.0.1, trusted through --webhook-ca-file). The receiver answers
 * `refuseFirst` notifications 503, then 202. Call close() when done.
 */
export async function startFixture({ prefix = "presenced-console-", refuseFirst = 1 } = {}) {
  const workDir = await mkdtemp(path.join(tmpdir(), prefix));
  const bin = path.join(workDir, "presenced");
  const dataDir = path.join(workDir, "data");
  const operatorSecret = "operator-" + randomUUID() + "-" + randomUUID();
  let serverLog = "";
  const received = []; // {status, body} of every notification POST
  let refuseNext = refuseFirst;

  await execFileAsync("go", ["build", "-o", bin, "./cmd/presenced"], { cwd: repoRoot, maxBuffer: 16 << 20 });

  const key = path.join(workDir, "receiver-key.pem");
  const cert = path.join(workDir, "receiver-cert.pem");
  await execFileAsync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]);
  const receiver = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
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
  const receiverUrl = `https://127.0.0.1:${receiver.address().port}/hook`;

  const operatorFile = path.join(workDir, "operator-secret");
  writeFileSync(operatorFile, operatorSecret + "\n", { mode: 0o600 });
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}/`;
  const server = spawn(bin, ["--addr", `127.0.0.1:${port}`, "--data", dataDir, "--store", "memory", "--test-hooks",
    "--webhook-ca-file", cert, "--console-operator-token-file", operatorFile],
  { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (c) => (serverLog += c));
  server.stderr.on("data", (c) => (serverLog += c));
  const killOnExit = () => server.kill("SIGKILL");
  process.once("exit", killOnExit);

  const fx = {
    workDir, bin, dataDir, baseUrl, receiverUrl, received, operatorSecret,
    /** log returns the server's output so far (and what the page reported). */
    log: () => serverLog,
    /** note appends a line to the log that failures print. */
    note: (s) => (serverLog += `\n${s}`),
    /** waitFor polls fn until it returns a truthy value, or fails after ms. */
    async waitFor(what, fn, ms = 20_000) {
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
    },
    /** mintToken runs `presenced token` with args. */
    async mintToken(...args) {
      const { stdout } = await execFileAsync(bin, ["token", "--data", dataDir, ...args]);
      return stdout.trim();
    },
    /** call makes one API request and returns {status, json, text}. */
    async call(method, p, token, body) {
      const res = await fetch(new URL(p, baseUrl), {
        method,
        headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, json: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : undefined, text };
    },
    /** close stops presenced and the receiver and removes the directory. */
    async close() {
      receiver.close();
      if (server.exitCode === null) {
        const exited = new Promise((r) => server.once("exit", r));
        server.kill("SIGTERM");
        const t = setTimeout(() => server.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(t);
      }
      process.off("exit", killOnExit);
      await rm(workDir, { recursive: true, force: true });
    },
  };
  await fx.waitFor("presenced /healthz", async () => (await fetch(new URL("/healthz", baseUrl))).ok, 30_000);
  return fx;
}
