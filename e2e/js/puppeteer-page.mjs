// A puppeteer-core page (Firefox over WebDriver BiDi) behind the small part
// of Playwright's Page and Locator API that console-scenario.mjs uses, so
// that one scenario runs in Chromium (playwright-core) and in Debian's
// stock Firefox, which playwright-core cannot drive (it needs Playwright's
// own Firefox build).
//
// Locators are lists of steps, resolved afresh in the page on every try, as
// Playwright's are: getByTestId, getByLabel (the text of the <label for>,
// aria-labelledby or aria-label), getByRole (button or tab, by accessible
// name: aria-label, else the text; elements not rendered are left out;
// selected and pressed), getByText (the innermost elements whose text
// matches), locator(css), filter({hasText, has}) and first(). A string
// matches as a case-insensitive substring, or exactly with {exact: true}; a
// RegExp is tested. As in Playwright, actions and waitFor wait (30 s, or
// {timeout}) for exactly one visible element and fail when several match.
// Clicks and key presses are real input events (WebDriver BiDi actions);
// fill sets the value and fires input and change, as Playwright's does.
//
// Not a test file itself (node --test does not pick it up by its name).

const defaultTimeout = 30_000;

// text serializes a string or RegExp matcher for the page.
function text(m, exact = false) {
  return m instanceof RegExp ? { re: m.source, flags: m.flags } : { s: String(m), exact };
}

// query runs in the page: it resolves steps and does op on the result.
// It must not use anything from its closure (it is sent as source text).
function query(steps, op, arg) {
  const norm = (s) => (s ?? "").replace(/\s+/g, " ").trim();
  const matches = (t, m) => (m.re !== undefined ? new RegExp(m.re, m.flags).test(t)
    : m.exact ? t === norm(m.s) : t.toLowerCase().includes(norm(m.s).toLowerCase()));
  const rendered = (e) => (e.checkVisibility ? e.checkVisibility() : e.getClientRects().length > 0);
  const visible = (e) => {
    if (!rendered(e) || getComputedStyle(e).visibility === "hidden") return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const textOf = (e) => norm(e.textContent);
  const implicitRole = (e) => {
    const tag = e.tagName;
    if (tag === "BUTTON") return "button";
    if (tag === "INPUT" && ["button", "submit", "reset"].includes(e.type)) return "button";
    if (tag === "A" && e.hasAttribute("href")) return "link";
    return "";
  };
  const roleOf = (e) => (e.getAttribute("role") || "").split(/\s+/)[0] || implicitRole(e);
  const byIds = (ids) => ids.split(/\s+/).map((id) => document.getElementById(id)).filter(Boolean);
  const nameOf = (e) => {
    if (e.hasAttribute("aria-labelledby")) return norm(byIds(e.getAttribute("aria-labelledby")).map(textOf).join(" "));
    if (e.getAttribute("aria-label")) return norm(e.getAttribute("aria-label"));
    if (e.tagName === "INPUT") return norm(e.value);
    return textOf(e) || norm(e.getAttribute("title"));
  };
  const labelsOf = (e) => {
    const out = [];
    if (e.hasAttribute("aria-labelledby")) out.push(norm(byIds(e.getAttribute("aria-labelledby")).map(textOf).join(" ")));
    if (e.getAttribute("aria-label")) out.push(norm(e.getAttribute("aria-label")));
    for (const l of e.labels ?? []) out.push(textOf(l));
    return out;
  };
  const below = (root, sel) => [...root.querySelectorAll(sel)];
  const inOrder = (list) => [...new Set(list)].sort((a, b) =>
    a === b ? 0 : a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1);
  const resolve = (roots, steps) => {
    let cur = roots;
    for (const st of steps) {
      switch (st.k) {
        case "css":
          cur = inOrder(cur.flatMap((r) => below(r, st.css)));
          break;
        case "label":
          cur = inOrder(cur.flatMap((r) => below(r, "input, textarea, select, button, [aria-label], [aria-labelledby]")
            .filter((e) => labelsOf(e).some((l) => matches(l, st.m)))));
          break;
        case "role":
          cur = inOrder(cur.flatMap((r) => below(r, "*").filter((e) => roleOf(e) === st.role && rendered(e) &&
            !e.closest("[aria-hidden=true]") &&
            (st.name === undefined || matches(nameOf(e), st.name)) &&
            (st.selected === undefined || (e.getAttribute("aria-selected") === "true") === st.selected) &&
            (st.pressed === undefined || (e.getAttribute("aria-pressed") === "true") === st.pressed))));
          break;
        case "text": {
          const hit = (e) => !["SCRIPT", "STYLE", "HEAD", "TEMPLATE"].includes(e.tagName) && matches(textOf(e), st.m);
          cur = inOrder(cur.flatMap((r) => below(r, "*").filter((e) => hit(e) && ![...e.children].some(hit))));
          break;
        }
        case "filter":
          cur = cur.filter((e) => (st.hasText === undefined || matches(textOf(e), st.hasText)) &&
            (st.has === undefined || resolve([e], st.has).length > 0));
          break;
        case "nth":
          cur = cur.slice(st.n, st.n + 1);
          break;
        default:
          throw new Error(`unknown step ${st.k}`);
      }
    }
    return cur;
  };
  const found = resolve([document.documentElement], steps);
  if (op === "count") return { n: found.length };
  if (found.length > 1) return { n: found.length, strict: true };
  const e = found[0];
  if (op === "state") return { n: found.length, visible: !!e && visible(e) };
  if (!e || !visible(e)) return { n: found.length, visible: false };
  switch (op) {
    case "mark":
      for (const old of document.querySelectorAll("[data-e2e-target]")) old.removeAttribute("data-e2e-target");
      e.setAttribute("data-e2e-target", arg);
      return { n: 1, done: true };
    case "focus":
      e.focus();
      return { n: 1, done: document.activeElement === e };
    case "innerText":
      return { n: 1, done: true, value: e.innerText };
    case "fill": {
      e.focus();
      const proto = e.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
      Object.getOwnPropertyDescriptor(proto, "value").set.call(e, arg);
      e.dispatchEvent(new Event("input", { bubbles: true }));
      e.dispatchEvent(new Event("change", { bubbles: true }));
      return { n: 1, done: true };
    }
    case "select": {
      if (![...e.options].some((o) => o.value === arg)) return { n: 1, done: false };
      e.value = arg;
      e.dispatchEvent(new Event("input", { bubbles: true }));
      e.dispatchEvent(new Event("change", { bubbles: true }));
      return { n: 1, done: true };
    }
    default:
      throw new Error(`unknown op ${op}`);
  }
}

class Locator {
  constructor(page, steps) {
    this.page = page;
    this.steps = steps;
  }

  #with(...more) {
    return new Locator(this.page, [...this.steps, ...more]);
  }

  locator(css, { hasText, has } = {}) {
    return this.#with({ k: "css", css }).filter({ hasText, has });
  }

  getByTestId(id) {
    return this.#with({ k: "css", css: `[data-testid=${JSON.stringify(String(id))}]` });
  }

  getByLabel(label, { exact = false } = {}) {
    return this.#with({ k: "label", m: text(label, exact) });
  }

  getByRole(role, { name, exact = false, selected, pressed } = {}) {
    return this.#with({ k: "role", role, name: name === undefined ? undefined : text(name, exact), selected, pressed });
  }

  getByText(t, { exact = false } = {}) {
    return this.#with({ k: "text", m: text(t, exact) });
  }

  filter({ hasText, has } = {}) {
    if (hasText === undefined && has === undefined) return this;
    return this.#with({ k: "filter", hasText: hasText === undefined ? undefined : text(hasText), has: has?.steps });
  }

  first() {
    return this.#with({ k: "nth", n: 0 });
  }

  // #until runs op in the page until it is done (or, for waitFor, until
  // the state holds), or fails after the timeout.
  async #until(what, op, arg, timeout = defaultTimeout, ok = (r) => r.done) {
    const deadline = Date.now() + timeout;
    let last = { n: 0 };
    for (;;) {
      try {
        last = await this.page.raw.evaluate(query, this.steps, op, arg);
      } catch (err) {
        // A navigation between two tries destroys the context: try again.
        if (!/context|navigat|destroyed|detached/i.test(String(err))) throw err;
      }
      if (last.strict) throw new Error(`${what}: strict mode violation: ${last.n} elements match ${JSON.stringify(this.steps)}`);
      if (ok(last)) return last;
      if (Date.now() > deadline) {
        throw new Error(`${what}: timed out after ${timeout} ms: ${JSON.stringify(this.steps)} (${last.n} found, visible ${!!last.visible})`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async waitFor({ state = "visible", timeout = defaultTimeout } = {}) {
    const want = {
      visible: (r) => r.n === 1 && r.visible,
      attached: (r) => r.n === 1,
      hidden: (r) => !r.visible,
      detached: (r) => r.n === 0,
    }[state];
    await this.#until(`waitFor(${state})`, "state", undefined, timeout, want);
  }

  async count() {
    return (await this.page.raw.evaluate(query, this.steps, "count")).n;
  }

  async click({ timeout } = {}) {
    const mark = `t${++this.page.marks}`;
    await this.#until("click", "mark", mark, timeout);
    await this.page.raw.click(`[data-e2e-target="${mark}"]`);
  }

  async fill(value, { timeout } = {}) {
    await this.#until("fill", "fill", String(value), timeout);
  }

  async focus({ timeout } = {}) {
    await this.#until("focus", "focus", undefined, timeout);
  }

  async selectOption(value, { timeout } = {}) {
    await this.#until("selectOption", "select", String(value), timeout);
  }

  async innerText({ timeout } = {}) {
    return (await this.#until("innerText", "innerText", undefined, timeout)).value;
  }
}

/** PlaywrightLikePage wraps a puppeteer-core Page; raw is the Page itself. */
class PlaywrightLikePage extends Locator {
  constructor(raw) {
    super(null, []);
    this.page = this;
    this.raw = raw;
    this.marks = 0;
    this.keyboard = raw.keyboard;
  }

  async goto(url) {
    return this.raw.goto(url);
  }

  async evaluate(fn, ...args) {
    return this.raw.evaluate(fn, ...args);
  }

  async screenshot(opts) {
    return this.raw.screenshot(opts);
  }

  on(event, fn) {
    this.raw.on(event, fn);
    return this;
  }

  async close() {
    await this.raw.close();
  }
}

/** playwrightLike returns the Playwright-like page over a puppeteer-core page. */
export function playwrightLike(page) {
  return new PlaywrightLikePage(page);
}
