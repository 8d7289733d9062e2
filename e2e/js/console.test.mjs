// Browser test of the presenced console (/presenced/console/) in headless
// Chromium, driven with playwright-core against a real presenced started
// with --test-hooks and --store memory (console-fixture.mjs). The scenario
// itself (console-scenario.mjs) is shared with console-firefox.test.mjs,
// which runs it in Firefox. With PRESENCED_UPDATE_SCREENSHOTS=1 this test
// saves the screenshots the README shows into docs/img/ (otherwise into a
// temporary directory).
//
// Run alone: node --test console.test.mjs (from e2e/js).
// Needs Debian's chromium at /usr/bin/chromium (or $CHROMIUM), openssl, go.
// Skipped when chromium is missing, unless PRESENCED_REQUIRE_CHROMIUM=1.

import { after, before, describe, test } from "node:test";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";

import { repoRoot, startFixture } from "./console-fixture.mjs";
import { consoleScenario, fallbackScenario } from "./console-scenario.mjs";

const updateScreenshots = process.env.PRESENCED_UPDATE_SCREENSHOTS === "1";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const haveChromium = existsSync(chromiumPath);
if (!haveChromium && process.env.PRESENCED_REQUIRE_CHROMIUM === "1") {
  throw new Error(`PRESENCED_REQUIRE_CHROMIUM=1 but there is no chromium at ${chromiumPath}`);
}

let fx, browser, page, imgDir;

before(async () => {
  if (!haveChromium) return;
  fx = await startFixture({ prefix: "presenced-console-chromium-" });
  const { chromium } = await import("playwright-core");
  browser = await chromium.launchPersistentContext(path.join(fx.workDir, "chromium-profile"), {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run"],
    viewport: { width: 1440, height: 900 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on("pageerror", (err) => fx.note(`[page error] ${err}`));
  imgDir = updateScreenshots ? path.join(repoRoot, "docs", "img") : path.join(fx.workDir, "img");
  mkdirSync(imgDir, { recursive: true });
}, { timeout: 300_000 });

after(async () => {
  await browser?.close();
  await fx?.close();
});

describe("the console in Chromium", { skip: !haveChromium && `no chromium at ${chromiumPath}` }, () => {
  test("sign in, a user's fade and expiry, live work location, a webhook delivery, and another tenant sees none of it", { timeout: 180_000 }, async () => {
    await consoleScenario({ page, fx, imgDir });
  });

  test("without /presenced/events the board follows Graph's presence stream of its users", { timeout: 120_000 }, async () => {
    const p = await browser.newPage();
    try {
      // An older presenced: no tenant-wide stream.
      await p.route("**/presenced/events", (route) => route.fulfill({ status: 404, contentType: "application/json", body: '{"error":{"code":"NotFound","message":"no"}}' }));
      await fallbackScenario({ page: p, fx });
    } finally {
      await p.close();
    }
  });
});
