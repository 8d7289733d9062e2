// Browser test of the presenced console (/presenced/console/) in headless
// Firefox: Debian's stock firefox-esr, driven over WebDriver BiDi with
// puppeteer-core (playwright-core cannot drive it: it needs Playwright's own
// patched Firefox build). It runs the same scenario as console.test.mjs
// (console-scenario.mjs), through puppeteer-page.mjs, against its own
// presenced (console-fixture.mjs). Its screenshots go to a temporary
// directory, or to $PRESENCED_FIREFOX_SCREENSHOTS; the README's come from
// the Chromium run.
//
// Run alone: node --test console-firefox.test.mjs (from e2e/js).
// Needs firefox-esr at /usr/bin/firefox-esr (or $FIREFOX), openssl, go.
// Skipped when Firefox is missing, unless PRESENCED_REQUIRE_FIREFOX=1.

import { after, before, describe, test } from "node:test";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";

import { startFixture } from "./console-fixture.mjs";
import { consoleScenario, fallbackScenario } from "./console-scenario.mjs";
import { playwrightLike } from "./puppeteer-page.mjs";

const firefoxPath = process.env.FIREFOX || "/usr/bin/firefox-esr";
const haveFirefox = existsSync(firefoxPath);
if (!haveFirefox && process.env.PRESENCED_REQUIRE_FIREFOX === "1") {
  throw new Error(`PRESENCED_REQUIRE_FIREFOX=1 but there is no Firefox at ${firefoxPath}`);
}

let fx, browser, page, imgDir;

before(async () => {
  if (!haveFirefox) return;
  fx = await startFixture({ prefix: "presenced-console-firefox-" });
  const { default: puppeteer } = await import("puppeteer-core");
  browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: firefoxPath,
    headless: true,
    // A fresh profile of its own; puppeteer writes its automation
    // preferences into it (no updates, no telemetry, no first-run pages).
    userDataDir: path.join(fx.workDir, "firefox-profile"),
    defaultViewport: { width: 1366, height: 768 },
    // Everything is on loopback: no proxy, whatever the environment says,
    // and none of Firefox's own background connections (puppeteer's and
    // the remote agent's preferences turn off updates, telemetry, safe
    // browsing and remote settings already).
    extraPrefsFirefox: {
      "network.proxy.type": 0,
      "network.captive-portal-service.enabled": false,
      "network.connectivity-service.enabled": false,
      "dom.push.connection.enabled": false,
      "browser.region.network.url": "",
    },
  });
  const raw = (await browser.pages())[0] ?? (await browser.newPage());
  // A laptop's screen, smaller than the Chromium run's 1440 x 900.
  await raw.setViewport({ width: 1366, height: 768 });
  page = playwrightLike(raw);
  page.on("pageerror", (err) => fx.note(`[page error] ${err}`));
  imgDir = process.env.PRESENCED_FIREFOX_SCREENSHOTS || path.join(fx.workDir, "img");
  mkdirSync(imgDir, { recursive: true });
}, { timeout: 300_000 });

after(async () => {
  await browser?.close();
  await fx?.close();
});

describe("the console in Firefox", { skip: !haveFirefox && `no Firefox at ${firefoxPath}` }, () => {
  test("sign in, a user's fade and expiry, live work location, a webhook delivery, and another tenant sees none of it", { timeout: 240_000 }, async () => {
    // Headless Firefox 153 ESR does not activate a focused <button> on the
    // Enter or Space that WebDriver BiDi input actions send (the keydown,
    // keypress and keyup reach the button, trusted, but no click follows;
    // Enter in a text field does submit its form, and Enter on a link does
    // follow it): the scenario clicks that one button instead.
    await consoleScenario({ page, fx, imgDir, keyActivatesButtons: false });
  });

  test("without /presenced/events the board follows Graph's presence stream of its users", { timeout: 120_000 }, async () => {
    const raw = await browser.newPage();
    try {
      // An older presenced: no tenant-wide stream.
      await raw.setRequestInterception(true);
      raw.on("request", (req) => {
        if (req.isInterceptResolutionHandled()) return;
        if (new URL(req.url()).pathname === "/presenced/events") {
          req.respond({ status: 404, contentType: "application/json", body: '{"error":{"code":"NotFound","message":"no"}}' });
        } else {
          req.continue();
        }
      });
      await fallbackScenario({ page: playwrightLike(raw), fx });
    } finally {
      await raw.close();
    }
  });
});
