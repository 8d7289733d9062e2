// The console's browser scenario, written once against the part of
// Playwright's Page and Locator API it needs: console.test.mjs runs it in
// Chromium with playwright-core's own page, console-firefox.test.mjs in
// Firefox through puppeteer-page.mjs, which gives a puppeteer-core page
// (WebDriver BiDi) that same API.
//
// Sign in with a pasted token, watch a user set by setPresence appear, fade
// and expire as the clock is advanced from the page, see a work location and
// a status message set through the API appear without a reload, set
// out-of-office from the keyboard, watch a webhook delivery (a refused one,
// its retry, then delivered) reach the local HTTPS receiver, move between
// the tabs with the arrow keys, check that a token of another tenant sees
// none of it, then sign in as the operator and switch to the tenant.
//
// Not a test file itself (node --test does not pick it up by its name).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import path from "node:path";

export const TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
export const APP = "22553876-f5ab-4529-bffb-cfe50aa89f87";
export const USER = "0a1b2c3d-0000-4000-8000-00000000a11c";
export const USER2 = "0b2c3d4e-0000-4000-8000-0000000b0b0b";
export const OTHER_TENANT = "5e1f0a2b-1111-4111-8111-0000000000b2";

/**
 * consoleScenario drives page (a Playwright page, or the puppeteer-page.mjs
 * adapter) against the presenced of fx (console-fixture.mjs) and saves its
 * screenshots into imgDir. keyActivatesButtons false says that the
 * driver's Enter on a focused button does not click it (Firefox over
 * WebDriver BiDi, headless): the scenario then clicks where it would press.
 */
export async function consoleScenario({ page, fx, imgDir, keyActivatesButtons = true }) {
  const { call, mintToken, waitFor } = fx;
  const card = () => page.locator(`[data-testid="user-${USER}"]`);
  const pairIs = (text) => card().locator("[data-testid=pair]", { hasText: text }).waitFor({ timeout: 15_000 });
  const token = await mintToken("--user", USER, "--scopes", "Presence.Read.All Presence.ReadWrite");

  // The page before sign-in says loudly that this is development mode.
  await page.goto(new URL("/presenced/console/", fx.baseUrl).href);
  await page.getByTestId("dev-banner").waitFor({ state: "visible" });
  await page.getByLabel("User id (empty: application token)").fill(USER);
  await page.screenshot({ path: path.join(imgDir, "console-signin.png") });

  // Sign in by pasting the token.
  await page.getByLabel(/^Bearer token/).fill(token);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByTestId("identity").filter({ hasText: USER }).waitFor();
  await page.getByTestId("live").filter({ hasText: /^live$/ }).waitFor();
  // Marks this document: still there at the end of the board's part, so
  // what appeared came through the change stream, not a reload.
  await page.evaluate(() => {
    window.presencedNoReload = true;
  });

  // A subscription to the user, delivered to the local HTTPS receiver.
  const now = new Date((await call("GET", "/_test/clock")).json.now);
  const sub = await call("POST", "/v1.0/subscriptions", token, {
    changeType: "updated",
    notificationUrl: fx.receiverUrl,
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
  // Presence.ReadWrite.All set it for any user of its tenant). It changes no
  // availability or activity (no Graph notification), yet the board shows
  // it at once, through the change stream.
  const appToken = await mintToken("--roles", "Presence.ReadWrite.All");
  await call("POST", `/beta/users/${USER2}/presence/setManualLocation`, appToken,
    { workLocationType: "office", placeId: "Building 4" }).then((r) => assert.equal(r.status, 200, r.text));
  await card2.getByTestId("work-location").filter({ hasText: "in the office · Building 4 (manual)" }).waitFor();
  assert.equal(await card2.getByTestId("pair").innerText(), "Busy / InACall");
  await call("POST", `/v1.0/me/presence/setUserPreferredPresence`, token2,
    { availability: "DoNotDisturb", activity: "DoNotDisturb", expirationDuration: "PT2H" }).then((r) => assert.equal(r.status, 200, r.text));
  await card2.getByTestId("pair").filter({ hasText: "DoNotDisturb / DoNotDisturb" }).waitFor();
  // A status message alone is no change of the pair either: live too.
  await call("POST", `/v1.0/me/presence/setStatusMessage`, token2,
    { statusMessage: { message: { content: "Heads down on the release", contentType: "text" } } }).then((r) => assert.equal(r.status, 200, r.text));
  await card2.getByText("Heads down on the release").waitFor();
  assert.equal(await page.evaluate(() => window.presencedNoReload === true), true, "the page was not reloaded");

  // Out-of-office from the keyboard: the card is drawn anew when the change
  // comes back, and the focus stays on the button. (Where the driver's
  // Enter does not activate a focused button, the button is clicked.)
  const oof = card2.getByRole("button", { name: "Out of office" });
  await oof.focus();
  if (keyActivatesButtons) await page.keyboard.press("Enter");
  else await oof.click();
  await card2.getByText("out of office", { exact: true }).waitFor();
  await card2.getByRole("button", { name: "Out of office", pressed: true }).waitFor();
  await waitFor("the focus to stay on the out-of-office button", () => page.evaluate((id) => {
    const a = document.activeElement;
    return a?.textContent === "Out of office" && a.closest(".user")?.dataset.id === id;
  }, USER2), 5_000);
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
  // Readable at the window's width: nothing sticks out of a card or the page.
  assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll(".user, .user *")]
    .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > e.closest(".user").getBoundingClientRect().right + 0.5)
    .map((e) => e.className || e.tagName)), [], "parts of a card stick out of it");
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, "the page scrolls sideways");

  // The clock, advanced from the page: the fade, the second fade, the expiry.
  await page.getByRole("button", { name: "+5 min" }).click();
  await pairIs("Available / AvailableInactive");
  await page.getByRole("button", { name: "+5 min" }).click();
  await pairIs("Away / Away");
  await page.getByLabel("Advance by (ISO 8601)").fill("PT5M");
  await page.getByRole("button", { name: "Advance", exact: true }).click();
  await pairIs("Offline / Offline");
  await waitFor("the expired session to leave the card", async () => (await card().getByTestId("session").count()) === 0);
  assert.equal(await page.evaluate(() => window.presencedNoReload === true), true, "the page was not reloaded");

  // The deliveries: the first refused (503) and retried, then delivered.
  await waitFor("a delivered notification", async () => fx.received.some((r) => r.status === 202));
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
  await page.getByLabel(/^Bearer token/).fill(fx.operatorSecret);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByTestId("identity").filter({ hasText: "Operator" }).waitFor();
  await page.getByLabel("Tenant (operator view)").selectOption(TENANT);
  await page.getByRole("button", { name: "Show tenant" }).click();
  await page.getByRole("tab", { name: "Presence" }).click();
  await page.getByTestId(`user-${USER2}`).waitFor();
  await page.getByTestId(`user-${USER}`).waitFor();
  await page.screenshot({ path: path.join(imgDir, "console-operator.png") });
}

/**
 * fallbackScenario checks that without /presenced/events the board follows
 * Graph's presence stream of its users: page must be a fresh page whose
 * requests to /presenced/events are answered 404 (an older presenced).
 */
export async function fallbackScenario({ page, fx }) {
  const { call, mintToken } = fx;
  const user = "0c3d4e5f-0000-4000-8000-00000000c0c0";
  const hook = `/_test/tenants/${TENANT}/users/${user}/clientSessions/teams-web`;
  assert.equal((await call("PUT", hook, undefined, { availability: "Available", activity: "Available" })).status, 204);
  const token = await mintToken("--roles", "Presence.Read.All");
  await page.goto(new URL("/presenced/console/", fx.baseUrl).href);
  await page.getByLabel(/^Bearer token/).fill(token);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByTestId("live").filter({ hasText: "live (page's users)" }).waitFor();
  const c = page.getByTestId(`user-${user}`);
  await c.getByTestId("pair").filter({ hasText: "Available / Available" }).waitFor();
  assert.equal((await call("PUT", `/_test/tenants/${TENANT}/users/${user}/calendarBusy`, undefined, { active: true })).status, 204);
  await c.getByTestId("pair").filter({ hasText: "Busy / InAMeeting" }).waitFor();
}
