// The presenced console: plain JavaScript modules, no build step, nothing
// loaded from anywhere but presenced. It reads /presenced/config (public),
// then with the bearer token kept in session storage the read endpoints
// under /presenced/, and follows the change stream with fetch() (which,
// unlike EventSource, can send the Authorization header).
import { readEvents } from "./sse.js";

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "presenced.console.token";
const TENANT_KEY = "presenced.console.tenant";

const state = {
  config: null,
  who: null,
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  tenant: sessionStorage.getItem(TENANT_KEY) || "", // the operator's chosen tenant
  users: new Map(), // id -> record, the page shown
  order: [], // ids of the page, in order
  skip: "", // $skiptoken of the page shown
  next: "", // $skiptoken of the next page
  now: 0, // service clock (ms) as last seen
  seenAt: 0, // performance.now() when `now` was seen
  stream: null, // AbortController of the change stream
  selectedSub: "",
  healthTimer: 0,
  lastHealth: null,
  count: 0, // users matching the search, as last counted
};

// ----------------------------------------------------------------- helpers

function notice(text, error = false) {
  const el = $("#notice");
  el.textContent = text;
  el.classList.toggle("error", error);
}

function setNow(iso) {
  if (!iso) return;
  state.now = Date.parse(iso);
  state.seenAt = performance.now();
  renderClock();
}

// serviceNow is the service clock now: frozen with test hooks (it moves
// only when advanced), else the wall clock since it was last seen.
function serviceNow() {
  if (!state.now) return Date.now();
  if (state.config?.testHooks) return state.now;
  return state.now + (performance.now() - state.seenAt);
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// fmtIn says how far an instant is from the service clock: "in 4m 59s".
function fmtIn(iso) {
  if (!iso) return "—";
  let s = Math.round((Date.parse(iso) - serviceNow()) / 1000);
  const past = s < 0;
  s = Math.abs(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const txt = (h ? `${h}h ` : "") + (h || m ? `${m}m ` : "") + `${sec}s`;
  return past ? `${txt} ago` : `in ${txt}`;
}

// randomGUID is a version 4 GUID; crypto.randomUUID exists only in secure
// contexts, and the page may be served over plain http to another host.
function randomGUID() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function short(id) {
  return id ? id.slice(0, 8) + "…" : "";
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  if (state.who?.operator && state.tenant) h["X-Presenced-Tenant"] = state.tenant;
  return h;
}

async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const err = json?.error;
    throw new ApiError(res.status, err?.code ?? String(res.status), err?.message ?? `${method} ${path}: ${res.status}`);
  }
  return json;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ------------------------------------------------------------------ sign-in

async function start() {
  try {
    state.config = await api("GET", "/presenced/config");
  } catch (err) {
    notice(`Cannot reach presenced: ${err.message}`, true);
    return;
  }
  setNow(state.config.now);
  $("#devbanner").hidden = !state.config.devAuth;
  $("#hooksbanner").hidden = !state.config.testHooks;
  $("#devmint").hidden = !state.config.devAuth;
  $("#operatorhint").hidden = !state.config.operator;
  $("#dev-tenant").value = state.config.devTenant ?? "";
  $("#dev-app").value = state.config.devApp ?? "";
  if (state.token) await signIn(state.token);
  else showSignIn();
}

function showSignIn() {
  $("#signin").hidden = false;
  $("#app").hidden = true;
  $("#identity").hidden = true;
  $("#signout").hidden = true;
}

async function signIn(token) {
  state.token = token;
  try {
    state.who = await api("GET", "/presenced/whoami");
  } catch (err) {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    notice(`Sign-in refused: ${err.message}`, true);
    showSignIn();
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  const w = state.who;
  $("#identity").textContent = w.operator
    ? "Operator (every tenant)"
    : `${w.delegated ? `user ${w.user}` : `app ${w.appId}`} · tenant ${w.tenant}`;
  $("#identity").hidden = false;
  $("#signout").hidden = false;
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#emulator").hidden = !state.config.testHooks;
  $("#operatorbar").hidden = !w.operator;
  notice(w.mayReadTenant || w.operator ? "" : "This token may not list its tenant's users (it needs Presence.Read.All).", !w.mayReadTenant && !w.operator);
  if (w.operator) {
    await loadTenants();
    if (!state.tenant) notice("Operator: choose a tenant to look at.");
  }
  await reload();
}

function signOut() {
  stopStream();
  clearInterval(state.healthTimer);
  state.token = "";
  state.who = null;
  state.users.clear();
  state.order = [];
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TENANT_KEY);
  $("#users").replaceChildren();
  $("#token").value = "";
  notice("Signed out.");
  showSignIn();
}

async function mintDevToken(ev) {
  ev.preventDefault();
  try {
    const tok = await api("POST", "/presenced/dev/token", {
      user: $("#dev-user").value.trim(),
      tenant: $("#dev-tenant").value.trim(),
      app: $("#dev-app").value.trim(),
      scopes: $("#dev-scopes").value,
      roles: $("#dev-roles").value,
    });
    notice("Minted a development token.");
    await signIn(tok.accessToken);
  } catch (err) {
    notice(`Could not mint a token: ${err.message}`, true);
  }
}

async function loadTenants() {
  const sel = $("#tenant-select");
  try {
    const t = await api("GET", "/presenced/tenants");
    sel.replaceChildren(el("option", { value: "" }, "— choose —"),
      ...t.value.map((x) => el("option", { value: x.id, selected: x.id === state.tenant }, `${x.id} (${x.users} users)`)));
  } catch (err) {
    notice(`Tenants: ${err.message}`, true);
  }
}

async function chooseTenant(ev) {
  ev.preventDefault();
  state.tenant = ($("#tenant-other").value.trim() || $("#tenant-select").value).toLowerCase();
  sessionStorage.setItem(TENANT_KEY, state.tenant);
  $("#identity").textContent = `Operator · tenant ${state.tenant || "(none)"}`;
  notice(state.tenant ? `Showing tenant ${state.tenant}.` : "Operator: choose a tenant to look at.");
  await reload();
}

// ----------------------------------------------------------- presence board

function tenantReady() {
  return state.who && (!state.who.operator || state.tenant) && (state.who.mayReadTenant || state.who.operator);
}

async function reload() {
  stopStream();
  if (!tenantReady()) {
    $("#users").replaceChildren();
    return;
  }
  state.skip = "";
  await loadUsers();
  startStream();
  if (!$("#view-subscriptions").hidden) await loadSubscriptions();
}

async function loadUsers() {
  const q = new URLSearchParams();
  const search = $("#search").value.trim();
  if (search) q.set("search", search);
  q.set("$top", $("#top").value);
  if (state.skip) q.set("$skiptoken", state.skip);
  try {
    const page = await api("GET", `/presenced/users?${q}`);
    setNow(page.now);
    state.users.clear();
    state.order = page.value.map((u) => u.id);
    for (const u of page.value) state.users.set(u.id, u);
    state.next = page["@odata.nextLink"] ? new URL(page["@odata.nextLink"], location.href).searchParams.get("$skiptoken") : "";
    state.count = page["@odata.count"];
    renderCount();
    $("#next").disabled = !state.next;
    $("#first").disabled = !state.skip;
    keepFocus(renderUsers);
  } catch (err) {
    notice(`Users: ${err.message}`, true);
  }
}

function renderCount() {
  $("#count").textContent = `${state.count} user${state.count === 1 ? "" : "s"} with state`;
}

function renderUsers() {
  const box = $("#users");
  const cards = state.order.map((id) => renderUser(state.users.get(id)));
  box.replaceChildren(...cards);
  if (!cards.length) box.append(el("p", { class: "muted" }, "No user of this tenant has any presence state yet."));
}

function renderUser(u, flash = false) {
  const card = $("#user-tpl").content.firstElementChild.cloneNode(true);
  card.dataset.id = u.id;
  card.dataset.av = u.availability;
  card.dataset.testid = "user";
  card.setAttribute("data-testid", `user-${u.id}`);
  if (flash) card.classList.add("flash");
  card.querySelector(".dot").dataset.av = u.availability;
  card.querySelector(".uid").textContent = u.id;
  const pair = card.querySelector(".pair");
  pair.textContent = `${u.availability} / ${u.activity}`;
  pair.setAttribute("data-testid", "pair");
  const flags = card.querySelector(".flags");
  if (u.outOfOfficeSettings?.isOutOfOffice) flags.append(el("span", { class: "tag oof" }, "out of office"));
  if (u.calendarBusy) flags.append(el("span", { class: "tag busy" }, "calendar busy"));
  const wl = u.workLocation;
  if (wl) {
    const label = { office: "in the office", remote: "remote", timeOff: "time off" }[wl.workLocationType] || wl.workLocationType;
    flags.append(el("span", { class: "tag wl", "data-testid": "work-location", title: `work location (${wl.source})` },
      `${label}${wl.placeId ? ` · ${wl.placeId}` : ""} (${wl.source})`));
  }
  if (!u.presenceEnabled) flags.append(el("span", { class: "tag off" }, "presence disabled"));
  flags.append(el("span", { class: "tag mono", title: "sequenceNumber" }, u.sequenceNumber));
  const sm = u.statusMessage;
  if (sm?.content) {
    card.querySelector(".status").textContent = `Status: “${sm.content}”` + (sm.expiryDateTime ? ` (expires ${fmtIn(sm.expiryDateTime)})` : "");
  }
  if (u.outOfOfficeSettings?.message) {
    card.querySelector(".status").append(el("span", { class: "muted" }, ` Out-of-office message: ${u.outOfOfficeSettings.message}`));
  }
  if (u.preferredPresence) {
    const p = u.preferredPresence;
    card.querySelector(".preferred").append("Preferred: ", el("strong", {}, `${p.availability} / ${p.activity}`),
      " expires ", el("span", { "data-until": p.expiresAt }, fmtIn(p.expiresAt)));
  }
  const tbody = card.querySelector("tbody");
  for (const s of u.sessions) {
    tbody.append(el("tr", { "data-testid": "session" },
      el("td", {}, s.kind),
      el("td", { class: "mono", title: s.id }, s.id),
      el("td", {}, `${s.availability} / ${s.activity}`),
      el("td", {}, `${s.effectiveAvailability} / ${s.effectiveActivity}`),
      el("td", s.nextFadeAt ? { "data-until": s.nextFadeAt, title: fmtTime(s.nextFadeAt) } : {}, fmtIn(s.nextFadeAt)),
      s.holder
        ? el("td", { class: "mono", title: `held by ${s.holder}; lease to ${fmtTime(s.expiresAt)}` }, `while ${s.holder.slice(0, s.holder.lastIndexOf(".")) || s.holder} lives`)
        : el("td", { "data-until": s.expiresAt, title: fmtTime(s.expiresAt) }, fmtIn(s.expiresAt))));
  }
  if (state.config.testHooks) card.querySelector(".controls").append(...userControls(u));
  return card;
}

// userControls are the emulator's buttons for one user (test hooks only).
function userControls(u) {
  const tid = state.who.operator ? state.tenant : state.who.tenant;
  const base = `/_test/tenants/${tid}/users/${u.id}`;
  const client = u.sessions.find((s) => s.kind === "client");
  const act = (label, method, path, body, extra = {}) =>
    el("button", {
      type: "button", ...extra,
      onclick: async () => {
        try {
          await api(method, base + path, body);
          await refreshUser(u.id);
          notice(`${label}: done for ${short(u.id)}.`);
        } catch (err) {
          notice(`${label}: ${err.message}`, true);
        }
      },
    }, label);
  const oof = !!u.outOfOfficeSettings?.isOutOfOffice;
  return [
    client
      ? act("End Teams client", "DELETE", `/clientSessions/${encodeURIComponent(client.id)}`)
      : act("Open Teams client", "PUT", "/clientSessions/console-teams-client", { availability: "Available", activity: "Available" }),
    act("Out of office", "PUT", "/outOfOffice", { isOutOfOffice: !oof, message: oof ? null : "Away (set from the console)" }, { "aria-pressed": String(oof) }),
    act("Calendar busy", "PUT", "/calendarBusy", { active: !u.calendarBusy }, { "aria-pressed": String(!!u.calendarBusy) }),
    act("Presence enabled", "PUT", "/presenceEnabled", { enabled: !u.presenceEnabled }, { "aria-pressed": String(!!u.presenceEnabled) }),
  ];
}

async function refreshUser(id) {
  try {
    const u = await api("GET", `/presenced/users/${id}`);
    setNow(u.now);
    upsert(u);
  } catch (err) {
    notice(`User ${short(id)}: ${err.message}`, true);
  }
}

// upsert puts a changed user on the board when it belongs to the page
// shown: already on it, or matching the search and within the page.
function upsert(u, flash = true) {
  const search = $("#search").value.trim().toLowerCase();
  const known = state.users.has(u.id);
  if (!known) {
    if (search && !u.id.startsWith(search)) return;
    if (state.skip && u.id <= state.skip) return;
    const top = Number($("#top").value);
    const last = state.order[state.order.length - 1];
    if (state.order.length >= top && u.id > last) return;
    state.order.push(u.id);
    state.order.sort();
    state.count++;
    renderCount();
    if (state.order.length > top) {
      state.users.delete(state.order.pop());
      state.next = state.order[state.order.length - 1];
      $("#next").disabled = false;
    }
  }
  state.users.set(u.id, u);
  const card = renderUser(u, flash);
  const old = document.querySelector(`.user[data-id="${u.id}"]`);
  keepFocus(() => {
    if (old) old.replaceWith(card);
    else renderUsers();
  });
}

// keepFocus runs redraw, which replaces user cards, and puts the keyboard
// focus back where it was: on the same card, on its control at the same
// place (a toggle's label may change), so that a keyboard user who pressed
// a card's button is not sent back to the top of the page when the change
// comes back on the stream.
function keepFocus(redraw) {
  const a = document.activeElement;
  const was = a?.closest?.(".user[data-id]");
  if (!was) return redraw();
  const controls = (c) => [...c.querySelectorAll("button, input, select, textarea, a[href]")];
  const i = controls(was).indexOf(a);
  redraw();
  if (was.isConnected) return;
  const now = document.querySelector(`.user[data-id="${CSS.escape(was.dataset.id)}"]`);
  if (now) (controls(now)[i] ?? now).focus({ preventScroll: true });
}

// ----------------------------------------------------------- change stream

function stopStream() {
  state.stream?.abort();
  state.stream = null;
  setLive(false);
}

function setLive(on, text) {
  const live = $("#live");
  live.classList.toggle("on", on);
  live.textContent = text ?? (on ? "live" : "offline");
}

// startStream follows the tenant's changes: /presenced/events (every user
// of the tenant) when presenced has it, else the per-user stream of the
// page's users (/presenced/stream).
async function startStream() {
  stopStream();
  const ctl = new AbortController();
  state.stream = ctl;
  let delay = 500;
  while (!ctl.signal.aborted) {
    try {
      const ids = state.order.map((id) => `'${id}'`).join(",");
      const filter = `?$filter=${encodeURIComponent(`id in (${ids})`)}`;
      const candidates = [["/presenced/events", "tenant"], ["/presenced/stream" + filter, "users"]];
      let res, kind;
      for (const [url, k] of candidates) {
        if (k === "users" && !state.order.length) break;
        res = await fetch(url, { headers: headers({ Accept: "text/event-stream" }), signal: ctl.signal });
        if (res.status !== 404 && res.status !== 405) {
          kind = k;
          break;
        }
        await res.body?.cancel();
        res = undefined;
      }
      if (!res) {
        setLive(false, "no change stream");
        return;
      }
      if (!res.ok) throw new ApiError(res.status, "", `change stream: ${res.status}`);
      setLive(true, kind === "tenant" ? "live" : "live (page's users)");
      delay = 500;
      for await (const ev of readEvents(res.body)) {
        if (ctl.signal.aborted) return;
        onStreamEvent(ev);
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        setLive(false, "stream refused");
        notice(err.message, true);
        return;
      }
    }
    setLive(false, "reconnecting…");
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
    if (!ctl.signal.aborted) await loadUsers(); // catch up on what the gap missed
  }
}

function onStreamEvent(ev) {
  let data;
  try {
    data = JSON.parse(ev.data);
  } catch {
    return;
  }
  if (ev.event === "ready") {
    setNow(data.now);
    return;
  }
  if (ev.event === "user") {
    setNow(data.now);
    upsert(data);
    afterChange();
    return;
  }
  if (ev.event === "presence" && data.id) {
    refreshUser(data.id); // a Graph presence: fetch the whole record
    afterChange();
  }
}

// afterChange refreshes the open deliveries soon after a change: a change
// is what makes presenced deliver.
let deliveriesSoon = 0;
function afterChange() {
  if ($("#view-subscriptions").hidden || !state.selectedSub) return;
  clearTimeout(deliveriesSoon);
  deliveriesSoon = setTimeout(() => loadDeliveries(state.selectedSub), 400);
}

// ------------------------------------------------------------- emulator

function renderClock() {
  const c = $("#clock");
  const now = new Date(serviceNow());
  c.dateTime = now.toISOString();
  c.textContent = fmtTime(now.toISOString());
}

async function advance(by) {
  try {
    const r = await api("POST", "/_test/clock/advance", { by });
    setNow(r.now);
    notice(`Clock advanced by ${by}.`);
    tick();
    if (!$("#view-subscriptions").hidden) {
      await loadSubscriptions();
      if (state.selectedSub) await loadDeliveries(state.selectedSub);
    }
  } catch (err) {
    notice(`Advance: ${err.message}`, true);
  }
}

async function setLimit(ev) {
  ev.preventDefault();
  const n = Number($("#limit").value);
  try {
    await api("PUT", "/_test/limits", { presencePer30s: n });
    notice(n ? `Presence budget: ${n} requests per 30 s per (app, tenant).` : "Throttling turned off.");
  } catch (err) {
    notice(`Limits: ${err.message}`, true);
  }
}

// tick re-renders every countdown from the service clock.
function tick() {
  renderClock();
  for (const e of document.querySelectorAll("[data-until]")) e.textContent = fmtIn(e.dataset.until);
}

// -------------------------------------------------- subscriptions, health

async function loadSubscriptions() {
  const body = $("#subs");
  try {
    const r = await api("GET", "/presenced/subscriptions");
    setNow(r.now);
    $("#subs-note").textContent = r.value.length ? "" : "No subscription this token may see.";
    body.replaceChildren(...r.value.map((s) => el("tr", { "data-testid": "subscription" },
      el("td", { class: "mono" }, s.id),
      el("td", { class: "mono" }, s.resource),
      el("td", { class: "mono" }, s.notificationUrl),
      el("td", {}, s.includeResourceData ? "rich" : "basic"),
      el("td", { "data-until": s.expirationDateTime, title: fmtTime(s.expirationDateTime) }, fmtIn(s.expirationDateTime)),
      el("td", {}, el("button", { type: "button", "aria-pressed": String(s.id === state.selectedSub), onclick: () => loadDeliveries(s.id) }, "Deliveries")))));
    if (state.selectedSub && !r.value.some((s) => s.id === state.selectedSub)) {
      state.selectedSub = "";
      $("#deliveries-box").hidden = true;
    }
  } catch (err) {
    body.replaceChildren();
    $("#subs-note").textContent = `This token may not read subscriptions: ${err.message}`;
  }
}

async function loadDeliveries(id) {
  state.selectedSub = id;
  for (const b of document.querySelectorAll("#subs button")) b.setAttribute("aria-pressed", String(b.closest("tr").firstChild.textContent === id));
  $("#deliveries-box").hidden = false;
  $("#deliveries-h").textContent = `Deliveries of ${id}`;
  try {
    const r = await api("GET", `/presenced/subscriptions/${id}/deliveries`);
    setNow(r.now);
    const rows = r.value.map((d) => el("tr", { "data-testid": "delivery" },
      el("td", { title: d.at }, fmtTime(d.at)),
      el("td", {}, ...d.notifications.map((n) => el("div", { class: "mono" },
        n.lifecycleEvent ? `lifecycle: ${n.lifecycleEvent}` : `${short(n.user)} ${n.sequenceNumber} ${n.availability}/${n.activity}`)),
      d.count > d.notifications.length ? el("div", { class: "muted" }, `and ${d.count - d.notifications.length} more`) : null),
      el("td", { class: `code${String(d.statusCode)[0]}`, "data-testid": "status" }, d.statusCode ? String(d.statusCode) : `no answer${d.error ? `: ${d.error}` : ""}`),
      el("td", {}, `${d.latencyMs.toFixed(1)} ms`),
      el("td", {}, d.retries ? `${d.attempt} (retry ${d.retries})` : "1"),
      el("td", {}, d.outcome),
      el("td", {}, d.nextRetryAt ? fmtTime(d.nextRetryAt) : "—",
        d.nextRetryAt ? el("div", { class: "muted", "data-until": d.nextRetryAt }, fmtIn(d.nextRetryAt)) : null)));
    $("#deliveries").replaceChildren(...rows);
    if (!rows.length) $("#deliveries").append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No delivery yet.")));
  } catch (err) {
    notice(`Deliveries: ${err.message}`, true);
  }
}

async function loadHealth() {
  try {
    const h = await api("GET", "/presenced/health");
    const prev = state.lastHealth;
    let rate = "—";
    if (prev && h.changeEvents !== undefined) {
      const dt = (Date.parse(h.wallClock) - Date.parse(prev.wallClock)) / 1000;
      if (dt > 0) rate = `${((h.changeEvents - prev.changeEvents) / dt).toFixed(1)}/s (last ${Math.round(dt)} s)`;
    } else if (h.changeEvents !== undefined && h.uptimeSeconds > 0) {
      rate = `${(h.changeEvents / h.uptimeSeconds).toFixed(1)}/s (since start)`;
    }
    state.lastHealth = h;
    const d = h.deliveries ?? {};
    const items = [
      ["Node", h.node], ["Store", h.storeKind], ["Service clock", fmtTime(h.now)],
      ["Live sessions", h.sessions], ["Change events", h.changeEvents], ["Change rate", rate],
      ["Events dropped (slow streams)", h.changeEventsDropped], ["Scheduler lag", `${((h.schedulerLagSeconds ?? 0) * 1000).toFixed(1)} ms`],
      ["Scheduler fired", h.schedulerFired], ["Deliveries ok / failed / dropped", `${d.delivered ?? 0} / ${d.failed ?? 0} / ${d.dropped ?? 0}`],
      ["Delivery queue", h.notifyQueueDepth], ["Retries", h.notifyRetries], ["Goroutines", h.goroutines],
      ["Memory (RSS)", h.residentBytes ? `${(h.residentBytes / 1048576).toFixed(0)} MiB` : "—"],
      ["Uptime", `${Math.round(h.uptimeSeconds)} s`],
    ];
    $("#health").replaceChildren(...items.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v ?? "—")))));
  } catch (err) {
    notice(`Health: ${err.message}`, true);
  }
}

function selectTab(name) {
  for (const t of ["presence", "subscriptions", "health"]) {
    $(`#tab-${t}`).setAttribute("aria-selected", String(t === name));
    $(`#view-${t}`).hidden = t !== name;
  }
  clearInterval(state.healthTimer);
  if (name === "subscriptions") loadSubscriptions().then(() => state.selectedSub && loadDeliveries(state.selectedSub));
  if (name === "health") {
    loadHealth();
    state.healthTimer = setInterval(loadHealth, 5000);
  }
}

// ------------------------------------------------------------------ wiring

$("#tokenform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("#token").value.trim());
});
$("#devform").addEventListener("submit", mintDevToken);
$("#dev-random").addEventListener("click", () => ($("#dev-user").value = randomGUID()));
$("#signout").addEventListener("click", signOut);
$("#tenantform").addEventListener("submit", chooseTenant);
$("#searchform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  reload();
});
$("#refresh").addEventListener("click", () => loadUsers());
$("#next").addEventListener("click", () => {
  state.skip = state.next;
  loadUsers().then(startStream);
});
$("#first").addEventListener("click", () => {
  state.skip = "";
  loadUsers().then(startStream);
});
for (const b of document.querySelectorAll("[data-advance]")) b.addEventListener("click", () => advance(b.dataset.advance));
$("#advanceform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const by = $("#advance-by").value.trim();
  if (by) advance(by);
});
$("#limitform").addEventListener("submit", setLimit);
$("#subs-refresh").addEventListener("click", loadSubscriptions);
for (const t of ["presence", "subscriptions", "health"]) $(`#tab-${t}`).addEventListener("click", () => selectTab(t));
// Arrow keys move between tabs, as a tablist should.
$(".tabs").addEventListener("keydown", (ev) => {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const i = tabs.indexOf(document.activeElement);
  if (i < 0 || (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft")) return;
  const next = tabs[(i + (ev.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
  next.focus();
  next.click();
});
setInterval(tick, 1000);
start();
