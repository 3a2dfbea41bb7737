// OnLabel web UI: one framework-free page with hash routes.
//
// Layout of this file:
//   - dom helpers (`h`, text only: no server string is ever parsed as HTML)
//   - the API client (bearer token from sessionStorage, JSON errors, SSE)
//   - sign-in and navigation (the nav shows the pages a role may use; the
//     server is the real gate, and its 403 renders as "You do not have access")
//   - one render function per page: ask, email, mlr, cases, compliance
"use strict";

(function () {
  // ---------------------------------------------------------------- dom ----

  /** Creates an element. `attrs` keys: class, text, on* (listeners),
   *  dataset via data-*, aria-*, and plain attributes; children are nodes or
   *  strings (strings become text nodes: never HTML). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value") el.value = v;
      else if (k === "checked" || k === "selected" || k === "disabled" || k === "hidden" || k === "required") el[k] = Boolean(v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, ...children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function $(id) {
    return document.getElementById(id);
  }

  let uid = 0;
  /** A labelled form field: `<label for>` + the control, optional hint. */
  function field(labelText, control, hint) {
    if (!control.id) control.id = "f" + ++uid;
    const hintEl = hint ? h("span", { class: "hint", id: control.id + "-hint" }, hint) : null;
    if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
    return h("div", { class: "field" }, h("label", { for: control.id }, labelText), control, hintEl);
  }

  function fmtTime(s) {
    if (!s) return "";
    const d = new Date(s);
    if (isNaN(d.getTime())) return String(s);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/:\d\dZ$/, "Z");
  }

  function stateBadge(s, extra) {
    return h("span", { class: "state " + String(s || ""), "data-testid": extra || "state" }, String(s || "").replace(/_/g, " "));
  }

  function table(headers, rows, testid) {
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { "data-testid": testid },
        h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)
      )
    );
  }

  // ---------------------------------------------------------------- api ----

  const TOKEN_KEY = "onlabel.token";
  // `session`: the browser session (cookie) when signed in with a password;
  // its `csrf` goes in X-CSRF-Token on every request (the cookie itself is
  // HttpOnly: this page never sees it).
  const state = { me: null, products: null, session: null };

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message || code || "HTTP " + status);
      this.status = status;
      this.code = code || "http_" + status;
      this.retryAfter = retryAfter;
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function headers(extra) {
    const hd = Object.assign({ Accept: "application/json" }, extra || {});
    const t = token();
    if (t) hd.Authorization = "Bearer " + t;
    else if (state.session && state.session.csrf) hd["X-CSRF-Token"] = state.session.csrf;
    return hd;
  }

  async function errorFrom(res) {
    let code = "http_" + res.status;
    let message = res.statusText || "request failed";
    try {
      const body = await res.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch (_) {
      /* not JSON: keep the status text */
    }
    return new ApiError(res.status, code, message, res.headers.get("Retry-After"));
  }

  /** JSON request; throws ApiError for any non-2xx answer. */
  async function api(method, path, body) {
    const init = { method, headers: headers(body !== undefined ? { "Content-Type": "application/json" } : {}) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "network", "The OnLabel server cannot be reached (" + e.message + ").");
    }
    if (!res.ok) {
      const e = await errorFrom(res);
      // The session ended (signed out elsewhere, timed out): sign in again.
      // (A password re-entered wrong for an e-signature is `bad_credential`: the session is fine.)
      if (res.status === 401 && e.code !== "bad_credential" && state.session && !token() && !path.startsWith("/api/v1/sessions")) {
        showSignin("Your session has ended: " + e.message);
      }
      throw e;
    }
    if (res.status === 204) return null;
    const type = res.headers.get("Content-Type") || "";
    if (type.includes("application/json")) return res.json();
    return res.text();
  }

  /** POST with `Accept: text/event-stream`; calls `onEvent(name, data)` per
   *  SSE event as it arrives. A server that answers plain JSON instead is
   *  reported as one `answer` event followed by `done`. */
  async function stream(path, body, onEvent) {
    let res;
    try {
      res = await fetch(path, {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, "network", "The OnLabel server cannot be reached (" + e.message + ").");
    }
    if (!res.ok) throw await errorFrom(res);
    const type = res.headers.get("Content-Type") || "";
    if (!type.includes("text/event-stream") || !res.body) {
      const answer = await res.json();
      onEvent("answer", answer);
      onEvent("done", { route: answer.route, case_id: answer.case_id, audit_id: answer.audit_id });
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    const dispatch = (block) => {
      let name = "message";
      const data = [];
      for (const line of block.split(/\r\n|\r|\n/)) {
        if (line === "" || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const key = i < 0 ? line : line.slice(0, i);
        let val = i < 0 ? "" : line.slice(i + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (key === "event") name = val;
        else if (key === "data") data.push(val);
      }
      if (!data.length) return;
      const raw = data.join("\n");
      let parsed = raw;
      try {
        parsed = JSON.parse(raw);
      } catch (_) {
        /* a plain-text token */
      }
      onEvent(name, parsed);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buf += decoder.decode(value, { stream: true });
      let m;
      while ((m = /\r\n\r\n|\n\n|\r\r/.exec(buf))) {
        dispatch(buf.slice(0, m.index));
        buf = buf.slice(m.index + m[0].length);
      }
      if (done) break;
    }
    buf += decoder.decode();
    if (buf.trim()) dispatch(buf);
  }

  /** Renders an ApiError as a message element (403 → "You do not have access"). */
  function errorBox(e, testid) {
    const box = h("div", { class: "error", role: "alert", "data-testid": testid || "error" });
    if (e.status === 403 && e.code === "signature_refused") {
      append(box, h("strong", {}, "Signature refused"), " — ", e.message);
    } else if (e.status === 403) {
      append(box, h("strong", {}, "You do not have access"), " — ", e.message);
    } else if (e.status === 401) {
      append(box, h("strong", {}, "Sign in again"), " — ", e.message);
    } else if (e.status === 429 || e.status === 503) {
      append(box, h("strong", {}, "OnLabel is busy"), " — ", e.message, e.retryAfter ? " Try again in " + e.retryAfter + " s." : "");
    } else if (e.status === 413) {
      append(box, h("strong", {}, "Too long"), " — ", e.message);
    } else {
      append(box, e.message || String(e));
    }
    return box;
  }

  /** The whole-page refusal shown when the server (or the role) says no. */
  function denied(view, e) {
    clear(view);
    append(
      view,
      h(
        "section",
        { class: "card denied", "data-testid": "access-denied", role: "alert" },
        h("h1", { tabindex: "-1" }, "You do not have access"),
        h("p", {}, e && e.message ? e.message : "Your role cannot use this page."),
        h("p", {}, h("a", { href: "#/ask" }, "Back to Ask"))
      )
    );
  }

  // ------------------------------------------------------ sign-in / nav ----

  const PAGES = [
    { id: "ask", title: "Ask", roles: null },
    { id: "email", title: "Email & visit", roles: null },
    // Anyone may open their own reports (any role can ask); the nav shows it to reps.
    { id: "reports", title: "My reports", roles: null, nav: ["rep"] },
    { id: "mlr", title: "MLR review", roles: ["mlr_reviewer", "admin"] },
    { id: "cases", title: "Medical / PV cases", roles: ["medical", "admin"] },
    { id: "compliance", title: "Compliance", roles: ["compliance", "admin"] },
    // Reached from a citation ("Open the approved document"), not from the nav.
    { id: "source", title: "Approved source", roles: null, nav: false },
  ];

  function allowed(page) {
    return !page.roles || (state.me && page.roles.includes(state.me.role));
  }

  function currentPage() {
    const m = /^#\/([a-z]+)/.exec(location.hash || "");
    const id = m ? m[1] : "ask";
    return PAGES.find((p) => p.id === id) || PAGES[0];
  }

  function renderNav() {
    const list = clear($("nav-list"));
    const cur = currentPage();
    for (const p of PAGES) {
      if (!allowed(p) || p.nav === false || (Array.isArray(p.nav) && !p.nav.includes(state.me.role))) continue;
      list.appendChild(
        h("li", {}, h("a", { href: "#/" + p.id, id: "nav-" + p.id, "data-testid": "nav-" + p.id, "aria-current": p.id === cur.id ? "page" : null }, p.title))
      );
    }
    $("nav").hidden = false;
    $("who").hidden = false;
    $("who-name").textContent = state.me.name + " (" + state.me.id + ")";
    $("who-role").textContent = state.me.role;
    $("sign-out-everywhere").hidden = !state.session;
  }

  function showSignin(message) {
    state.me = null;
    state.products = null;
    state.session = null;
    $("nav").hidden = true;
    $("who").hidden = true;
    clear($("view"));
    $("signin").hidden = false;
    document.title = "Sign in — OnLabel";
    const err = $("signin-error");
    err.hidden = !message;
    err.textContent = message || "";
    ($("token-option").open ? $("token") : $("user-id").value ? $("password") : $("user-id")).focus();
  }

  /** Signs in with a user id and password: the server sets the session
   *  cookie (HttpOnly) and answers the session with its CSRF token. */
  async function signInPassword(user, password) {
    const submit = $("password-submit");
    submit.disabled = true;
    try {
      const s = await api("POST", "/api/v1/sessions", { user, password });
      sessionStorage.removeItem(TOKEN_KEY);
      state.session = s;
      state.me = s.user;
    } catch (e) {
      const why =
        e.status === 401 ? "Sign-in failed: the user id or password is wrong, or the account is disabled." :
        e.status === 429 ? "Too many failed sign-ins. " + e.message :
        e.message;
      showSignin(why);
      $("password").value = "";
      return;
    } finally {
      submit.disabled = false;
    }
    $("signin").hidden = true;
    $("password").value = "";
    route();
  }

  /** A session this browser already has (another tab signed in): no form. */
  async function resumeSession() {
    try {
      const s = await api("GET", "/api/v1/sessions/current");
      if (!s || s.method === "bearer") return false;
      state.session = s;
      state.me = s.user;
      return true;
    } catch (_) {
      return false;
    }
  }

  async function signIn(t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    try {
      state.me = await api("GET", "/api/v1/me");
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignin(e.status === 401 ? "That token is not valid: " + e.message : e.message);
      return;
    }
    $("signin").hidden = true;
    $("token").value = "";
    route();
  }

  async function signOut() {
    if (state.session && !token()) {
      try {
        await api("DELETE", "/api/v1/sessions");
      } catch (_) {
        /* ended already: the page forgets it either way */
      }
    }
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = "#/ask";
    showSignin("");
  }

  /** Ends every session of this user (other browsers and devices too). */
  async function signOutEverywhere() {
    let n = null;
    try {
      n = (await api("POST", "/api/v1/sessions/end-all")).ended;
    } catch (e) {
      if (e.status !== 401) return alertBox(e);
    }
    // No hash change here: its route() would find nobody signed in and
    // clear the message.
    showSignin(n === null ? "" : "Signed out everywhere (" + n + (n === 1 ? " session" : " sessions") + " ended).");
  }

  function alertBox(e) {
    const view = $("view");
    view.insertBefore(errorBox(e, "session-error"), view.firstChild);
  }

  const RENDER = {};

  async function route() {
    if (!state.me) {
      if (token()) return signIn(token());
      if (await resumeSession()) return route();
      return showSignin("");
    }
    const page = currentPage();
    renderNav();
    // Each visit renders into a fresh container: a slower render of a page
    // the user already left (or signed out of) writes into a detached node.
    const view = h("div", { class: "page", "data-page": page.id });
    clear($("view")).appendChild(view);
    document.title = page.title + " — OnLabel";
    if (!allowed(page)) {
      denied(view, { message: "The " + page.title + " page is for " + page.roles.join(" or ") + "; you are signed in as " + state.me.role + "." });
    } else {
      try {
        await RENDER[page.id](view);
      } catch (e) {
        if (e.status === 403) denied(view, e);
        else if (e.status === 401) showSignin("Your session ended: " + e.message);
        else view.appendChild(errorBox(e));
      }
    }
    const heading = view.isConnected ? view.querySelector("h1") : null;
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  // ------------------------------------------------------------ shared ----

  async function products() {
    if (!state.products) {
      const res = await api("GET", "/api/v1/products");
      state.products = (res.products || []).map((p) => ({
        name: p.name || p.product,
        documents: (p.documents || []).map((d) => Object.assign({}, d, { doc_id: d.doc_id || d.id })),
      }));
    }
    return state.products;
  }

  /** The product picker: a select plus the list of approved sources of the chosen product. */
  async function productPicker(opts) {
    const list = await products();
    const select = h(
      "select",
      { id: opts.id, name: "product", "data-testid": opts.id, required: opts.required },
      opts.required ? null : h("option", { value: "" }, "Any product"),
      list.map((p) => h("option", { value: p.name }, p.name))
    );
    const docs = h("ul", { class: "docs", id: opts.id + "-docs", "aria-live": "polite" });
    // The ask page (issue 20, point 8): the list is collapsed under the
    // form, and a rep sees only the documents answers may come from.
    const count = opts.collapsed ? h("span", { "data-testid": opts.id + "-docs-count" }) : null;
    // The sources the answer may come from: current, and (for a rep)
    // promotional; the rest are listed with why they are never cited.
    const showDocs = () => {
      clear(docs);
      if (count) count.textContent = "0";
      const p = list.find((x) => x.name === select.value);
      if (!p) return;
      const medicalOk = state.me && state.me.role !== "rep";
      let shown = 0;
      for (const d of p.documents) {
        const standing = d.standing || (d.status === "withdrawn" ? "withdrawn" : "current");
        const why = standing !== "current" ? standing : d.audience === "medical" && !medicalOk ? "Medical use only" : null;
        if (opts.collapsed && why && !medicalOk) continue;
        shown += 1;
        const kind = { pi: "PI", faq: "FAQ", isi: "ISI", "medical-response": "medical response" }[d.kind] || d.kind;
        const name = (d.title || d.doc_id) + (kind ? " (" + kind + ")" : "");
        docs.appendChild(
          h(
            "li",
            { class: why ? "muted" : null, "data-testid": "source-doc", "data-usable": why ? "no" : "yes" },
            name,
            " — MLR ",
            d.mlr_number || "?",
            d.expires_on ? ", valid until " + d.expires_on : "",
            why ? " — not used: " + why : ""
          )
        );
      }
      if (count) count.textContent = String(shown);
    };
    select.addEventListener("change", showDocs);
    if (list.length === 1 || opts.required) select.value = list[0] ? list[0].name : "";
    showDocs();
    const wrap = field("Product", select, opts.required ? null : "Only this product's approved material is searched.");
    if (opts.collapsed) {
      wrap.appendChild(h("details", { class: "docs-box", "data-testid": opts.id + "-docs-box" }, h("summary", {}, "Approved documents (", count, ")"), docs));
    } else {
      wrap.appendChild(docs);
    }
    return { el: wrap, select };
  }

  function citationLabel(c) {
    return c.doc_id + " §" + c.section;
  }

  function openPassage(c) {
    $("passage-title").textContent = c.title || citationLabel(c);
    $("passage-label").textContent = "[" + c.n + "] " + citationLabel(c);
    $("passage-mlr").textContent = c.mlr_number || "";
    $("passage-quote").textContent = c.quote || "";
    const dlg = $("passage-dialog");
    // The approved document, at the passage (#/source page); the dialog closes as it opens.
    const src = $("passage-source");
    src.hidden = !c.source_url;
    src.setAttribute("href", c.source_url ? c.source_url.replace(/^\//, "") : "#/ask");
    src.onclick = () => dlg.close && dlg.open && dlg.close();
    if (typeof dlg.showModal === "function") dlg.showModal();
    else dlg.setAttribute("open", "");
    $("passage-close").focus();
  }

  function chip(c, long) {
    return h(
      "button",
      {
        type: "button",
        class: "chip",
        "data-testid": "citation-chip",
        "data-n": c.n,
        "aria-label": "Citation " + c.n + ": " + citationLabel(c) + (c.title ? " " + c.title : "") + ", MLR " + c.mlr_number,
        onclick: () => openPassage(c),
      },
      long ? "[" + c.n + "] " + citationLabel(c) : String(c.n)
    );
  }

  /** Text with `[n]` markers, the markers turned into citation chips. */
  function cited(text, citations) {
    const byN = new Map((citations || []).map((c) => [Number(c.n), c]));
    const out = [];
    const paras = String(text || "").split(/\n+/);
    for (const para of paras) {
      if (!para.trim()) continue;
      const p = h("p");
      let last = 0;
      const re = /\[(\d+)\]/g;
      let m;
      while ((m = re.exec(para))) {
        const c = byN.get(Number(m[1]));
        if (!c) continue;
        p.appendChild(document.createTextNode(para.slice(last, m.index)));
        p.appendChild(chip(c, false));
        last = m.index + m[0].length;
      }
      p.appendChild(document.createTextNode(para.slice(last)));
      out.push(p);
    }
    return out;
  }

  function sourcesList(citations) {
    if (!citations || !citations.length) return null;
    return h(
      "div",
      {},
      h("h3", {}, "Sources"),
      h(
        "ul",
        { class: "sources", "data-testid": "sources" },
        citations.map((c) => h("li", {}, chip(c, true), " ", c.title || "", h("span", { class: "muted" }, " — MLR ", c.mlr_number || "")))
      )
    );
  }

  /** The banner for an escalated or refused result; null for a plain answer.
   *  The server's message (the answer text of an escalation) says what happens
   *  next; a generic sentence stands in only when it gives none. A report's
   *  banner links to its intake form (`#/reports/CASE_ID`); `opts.needsContext`
   *  asks the rep which product and topic a bare follow-up meant. */
  function routeBanner(route, caseId, message, opts) {
    const kinds = {
      pharmacovigilance: ["Routed to Pharmacovigilance", "This describes something that happened to a patient: it must be reported, and no promotional answer is given. Pharmacovigilance will contact you for the details."],
      medical: ["Routed to Medical Information", "Approved promotional material does not answer this (off-label, unsolicited or unclear). Medical Information will respond to the HCP directly."],
      refused: ["Not answered", "This request is outside what a rep may discuss (policy)."],
      clarify: ["Which product and topic?", "Ask the question in full."],
    };
    const kind = opts && opts.needsContext ? "clarify" : route;
    const k = kinds[kind];
    if (!k) return null;
    const pending = opts && opts.medicalRequest && !caseId;
    return h(
      "div",
      { class: "banner " + (kind === "clarify" ? "refused" : route), role: "alert", "data-testid": "route-banner", "data-route": route },
      h("strong", {}, pending ? "Medical Information request — not sent yet" : k[0]),
      caseId ? h("p", {}, "Case ", h("span", { class: "case-id", "data-testid": "case-id" }, caseId), " was opened.") : null,
      h("p", { "data-testid": "route-message" }, message && String(message).trim() ? message : k[1]),
      route === "pharmacovigilance" && caseId
        ? h("p", {}, h("a", { class: "button-link", "data-testid": "intake-link", href: "#/reports/" + encodeURIComponent(caseId) }, "Add the report details"))
        : null
    );
  }

  async function copyText(text, status) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      // Clipboard API refused (no secure context or permission): the textarea fallback.
      const ta = h("textarea", { "aria-hidden": "true", class: "offscreen" });
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      let ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (_) {
        ok = false;
      }
      ta.remove();
      if (!ok) {
        status.textContent = "Copy failed: select the text and copy it by hand.";
        return;
      }
    }
    status.textContent = "Copied to clipboard.";
  }

  function answerAsText(a) {
    let t = String(a.answer || "");
    if (a.citations && a.citations.length) {
      t += "\n\nSources:\n" + a.citations.map((c) => "[" + c.n + "] " + citationLabel(c) + " — " + (c.title || "") + " (MLR " + c.mlr_number + ")").join("\n");
    }
    return t;
  }

  function busy(button, on, label) {
    button.disabled = on;
    if (label) button.textContent = label;
  }

  // --------------------------------------------------------------- ask ----
  //
  // A visit is a conversation (issue 20): each question is a turn; a
  // follow-up ("and how often after that?") is read against the turn before
  // it by the server, which says how it read it ("Answered as: …"). The
  // latest answer comes first, under the page title; earlier turns of the
  // visit sit above it, collapsed to their question. "New visit" starts a
  // new conversation. A Medical route leaves a request the rep checks and
  // confirms (HCP, the HCP's words, consent, contact) or dismisses.

  const VISIT_KEY = "onlabel.visit";

  /** Plain words for how the answer was produced. */
  function modeWords(mode) {
    return (
      {
        extractive: "Quoted from the approved label",
        composed: "Quoted from the approved label, in approved wording",
        generated: "Written from the approved label and checked sentence by sentence",
      }[mode] || ""
    );
  }

  /** The citations of an answer, collapsed: the answer comes first. */
  function sourcesDetails(citations) {
    if (!citations || !citations.length) return null;
    return h(
      "details",
      { class: "sources-box", "data-testid": "sources-box" },
      h("summary", { "data-testid": "sources-toggle" }, "Sources (" + citations.length + ")"),
      h(
        "ul",
        { class: "sources", "data-testid": "sources" },
        citations.map((c) => h("li", {}, chip(c, true), " ", c.title || "", h("span", { class: "muted" }, " — MLR ", c.mlr_number || "")))
      )
    );
  }

  /** Placeholder lines while the answer is worked out. */
  function skeleton() {
    return h("div", { class: "skeleton", "data-testid": "answer-skeleton", "aria-hidden": "true" }, h("span"), h("span"), h("span", { class: "short" }));
  }

  RENDER.ask = async function (view) {
    append(view, h("h1", {}, "Ask about an approved label"));
    const visitInfo = h("span", { class: "muted", "data-testid": "visit-info" });
    const newVisit = h("button", { type: "button", class: "secondary", id: "new-visit", "data-testid": "new-visit" }, "New visit");
    const thread = h("ol", { class: "thread", id: "thread", "data-testid": "thread", "aria-label": "Earlier questions of this visit" });
    const region = h("section", { class: "card answer", id: "answer", "aria-live": "polite", "aria-label": "Answer", "data-testid": "answer", hidden: true });
    const picker = await productPicker({ id: "ask-product", collapsed: true });
    const hcp = h("input", { id: "ask-hcp", name: "hcp", type: "text", "data-testid": "ask-hcp", autocomplete: "off" });
    const q = h("textarea", { id: "ask-question", name: "question", required: true, rows: 3, "data-testid": "ask-question", maxlength: 2000 });
    const submit = h("button", { type: "submit", id: "ask-submit", "data-testid": "ask-submit" }, "Ask");
    const status = h("p", { class: "status", id: "ask-status", role: "status", "data-testid": "ask-status" });
    const form = h(
      "form",
      { class: "card", id: "ask-form" },
      field("Question", q, "Type or paste the HCP's question; a follow-up may lean on the one before (\"and after that?\"). Ctrl+Enter asks."),
      h("div", { class: "actions" }, submit, status),
      h("div", { class: "row" }, picker.el, field("HCP (optional)", hcp, "Who asked, e.g. Dr. Shah."))
    );
    const pendingBox = h("section", { class: "card", id: "pending-requests", "data-testid": "pending-requests", hidden: true });
    const recentBox = h("section", { class: "card", id: "recent-questions", "data-testid": "recent-questions", hidden: true });
    append(view, h("div", { class: "visit-bar" }, visitInfo, newVisit), thread, region, form, pendingBox, recentBox);

    const visit = { id: sessionStorage.getItem(VISIT_KEY) || null, turns: 0 };
    const showVisit = () => {
      visitInfo.textContent = visit.id ? "This visit: " + visit.turns + (visit.turns === 1 ? " question" : " questions") : "A new visit: follow-ups are read against the question before.";
    };
    // Decided in the list itself: the item keeps its notice (the case id the
    // rep tells the HCP) instead of the list being reloaded without it.
    const pendingPanel = (mr, defaults, li) =>
      medicalRequestPanel(mr, defaults, () => {
        li.dataset.decided = "yes";
        const left = pendingBox.querySelectorAll("[data-testid=pending-request]:not([data-decided])").length;
        const title = pendingBox.querySelector("h2");
        if (title) title.textContent = left ? "Medical requests waiting for you (" + left + ")" : "Medical requests: all decided";
      });
    async function loadPending() {
      let res;
      try {
        res = await api("GET", "/api/v1/medical-requests");
      } catch (_) {
        return;
      }
      const list = (res && res.requests) || [];
      clear(pendingBox);
      pendingBox.hidden = !list.length;
      if (!list.length) return;
      append(
        pendingBox,
        h("h2", {}, "Medical requests waiting for you (", String(list.length), ")"),
        h("p", { class: "hint" }, "Nothing is sent to Medical Information until you confirm it with the HCP's consent."),
        h(
          "ul",
          { class: "pending" },
          list.map((mr) => {
            const li = h("li", { "data-testid": "pending-request", "data-id": mr.id }, h("span", {}, mr.summary), " ");
            li.appendChild(
              h("button", { type: "button", class: "secondary", onclick: () => li.replaceChildren(pendingPanel(mr, { hcp: mr.hcp, text: mr.typed_question }, li)) }, "Review")
            );
            return li;
          })
        )
      );
    }
    async function loadRecent() {
      let res;
      try {
        res = await api("GET", "/api/v1/conversations");
      } catch (_) {
        return;
      }
      const seen = new Set();
      const recent = [];
      for (const c of (res && res.conversations) || []) {
        for (const t of (c.turns || []).slice().reverse()) {
          if (recent.length >= 8 || seen.has(t.question)) continue;
          seen.add(t.question);
          recent.push(t);
        }
      }
      clear(recentBox);
      recentBox.hidden = !recent.length;
      if (!recent.length) return;
      append(
        recentBox,
        h("h2", {}, "Your last questions"),
        h(
          "ul",
          { class: "recent" },
          recent.map((t) =>
            h(
              "li",
              {},
              h("button", { type: "button", class: "link", "data-testid": "recent-question", onclick: () => { q.value = t.question; q.focus(); } }, t.question)
            )
          )
        )
      );
    }
    /** Moves the answer shown into the thread, as a collapsed earlier turn. */
    function archive() {
      const last = region.dataset.question;
      if (!last) return;
      const body = h("div", { class: "turn-body" });
      for (const el of Array.from(region.childNodes)) {
        if (el.id) el.removeAttribute("id");
        for (const inner of el.querySelectorAll ? el.querySelectorAll("[id]") : []) inner.removeAttribute("id");
        body.appendChild(el);
      }
      thread.appendChild(
        h("li", { class: "turn", "data-testid": "turn" }, h("details", {}, h("summary", {}, region.dataset.question), body))
      );
      delete region.dataset.question;
    }
    if (visit.id) {
      try {
        const c = await api("GET", "/api/v1/conversations/" + encodeURIComponent(visit.id));
        visit.turns = (c.turns || []).length;
        for (const t of c.turns || []) {
          thread.appendChild(
            h(
              "li",
              { class: "turn", "data-testid": "turn" },
              h(
                "details",
                {},
                h("summary", {}, t.question),
                t.resolved_question !== t.question ? h("p", { class: "resolved" }, "Answered as: ", t.resolved_question) : null,
                h("p", {}, String(t.answer || "").replace(/\s*\[\d+\]/g, ""))
              )
            )
          );
        }
      } catch (_) {
        visit.id = null;
        sessionStorage.removeItem(VISIT_KEY);
      }
    }
    showVisit();
    newVisit.addEventListener("click", () => {
      visit.id = null;
      visit.turns = 0;
      sessionStorage.removeItem(VISIT_KEY);
      clear(thread);
      clear(region);
      region.hidden = true;
      delete region.dataset.question;
      status.textContent = "New visit started.";
      showVisit();
      q.value = "";
      q.focus();
    });
    loadPending();
    loadRecent();

    q.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      // One question at a time: requestSubmit() (Ctrl+Enter) fires even while
      // the button is disabled, and a second ask of an adverse-event report
      // would open a second case for Pharmacovigilance.
      if (submit.disabled) return;
      const question = q.value.trim();
      if (!question) {
        status.textContent = "Type a question first.";
        q.focus();
        return;
      }
      busy(submit, true, "Asking…");
      status.textContent = "Checking the question and searching approved material…";
      archive();
      clear(region);
      region.hidden = false;
      region.setAttribute("aria-busy", "true");
      region.appendChild(h("p", { class: "asked", "data-testid": "asked" }, question));
      const skel = skeleton();
      const draft = h("div", { class: "streaming", "data-testid": "answer-streaming" });
      region.appendChild(skel);
      region.appendChild(draft);
      region.scrollIntoView({ block: "nearest" });
      const body = { question };
      if (picker.select.value) body.product = picker.select.value;
      if (hcp.value.trim()) body.hcp = hcp.value.trim();
      if (visit.id) body.conversation_id = visit.id;
      let answer = null;
      // Issue 23: the verified quoted answer arrives before the model's
      // first token; the rep reads it while the model composes, and the
      // final answer replaces it (or it stands).
      let quote = null;
      try {
        await stream("/api/v1/ask", body, (name, data) => {
          if (name === "quote") {
            quote = data;
            skel.remove();
            draft.appendChild(
              h(
                "div",
                { class: "quote", "data-testid": "answer-quote" },
                h("div", { "data-testid": "quote-text" }, cited(data.answer, data.citations)),
                h("p", { class: "composing", "data-testid": "composing" }, "Quoted from the approved label · composing an answer with the local model…")
              )
            );
            status.textContent = "Quoted answer ready; composing…";
          } else if (name === "sentence") {
            // After a quote, the final answer is shown whole with `answer`.
            if (quote) return;
            skel.remove();
            draft.appendChild(h("p", {}, data && data.text !== undefined ? data.text : String(data)));
            status.textContent = "Answering…";
          } else if (name === "answer") {
            answer = data;
            showAnswer(region, data, { hcp: hcp.value.trim(), onDecided: () => loadPending() });
            if (quote && data.route === "answer") showQuoteOutcome(region, quote, data);
            region.dataset.question = question;
            if (data.conversation_id) {
              visit.id = data.conversation_id;
              visit.turns = data.turn || visit.turns + 1;
              sessionStorage.setItem(VISIT_KEY, visit.id);
              showVisit();
            }
            q.value = "";
            region.scrollIntoView({ block: "start" });
          } else if (name === "done") {
            status.textContent = doneText(data || answer || {});
          } else if (name === "error") {
            const err = (data && data.error) || {};
            throw new ApiError(500, err.code, err.message || "The answer failed.");
          }
        });
        if (!answer) throw new ApiError(500, "no_answer", "The stream ended without an answer.");
        loadRecent();
        if (answer.medical_request) loadPending();
      } catch (e) {
        clear(region);
        region.appendChild(errorBox(e, "ask-error"));
        status.textContent = "";
        if (e.status === 404 && visit.id) {
          // The visit is gone (or not this user's): the next question starts a new one.
          visit.id = null;
          sessionStorage.removeItem(VISIT_KEY);
          showVisit();
        }
        if (e.status === 401) showSignin("Your session ended: " + e.message);
      } finally {
        region.removeAttribute("aria-busy");
        busy(submit, false, "Ask");
      }
    });
  };

  /** After the final answer: the quote shown first, kept (collapsed) when
   *  the model's answer replaced it, or a line saying it stands. */
  function showQuoteOutcome(region, quote, a) {
    const text = region.querySelector("[data-testid=answer-text]");
    const node =
      a.mode === "generated"
        ? h(
            "details",
            { class: "quote-kept", "data-testid": "quote-kept" },
            h("summary", {}, "The quoted answer shown first"),
            h("div", {}, cited(quote.answer, quote.citations))
          )
        : h("p", { class: "meta", "data-testid": "quote-stands" }, "The quoted answer stands: nothing the model wrote passed verification.");
    if (text && text.nextSibling) region.insertBefore(node, text.nextSibling);
    else region.appendChild(node);
  }

  function doneText(d) {
    if (d.route === "answer") return "Answered from approved material" + (d.audit_id ? " (audit #" + d.audit_id + ")." : ".");
    if (d.route === "pharmacovigilance") return "Routed to Pharmacovigilance" + (d.case_id ? ", case " + d.case_id : "") + ".";
    if (d.route === "medical" && !d.case_id && d.medical_request) return "A Medical Information request is waiting for your confirmation.";
    if (d.route === "medical") return "Routed to Medical Information" + (d.case_id ? ", case " + d.case_id : "") + ".";
    return "Not answered.";
  }

  /** The Medical request panel: what will be sent, editable; Confirm (with
   *  consent and a contact) opens the MIR case, Dismiss needs a reason. */
  function medicalRequestPanel(mr, defaults, onDecided) {
    const id = "mr-" + ++uid;
    const hcpIn = h("input", { id: id + "-hcp", type: "text", "data-testid": "mr-hcp", value: (defaults && defaults.hcp) || "", autocomplete: "off" });
    const text = h("textarea", { id: id + "-text", rows: 3, "data-testid": "mr-text", maxlength: 2000 });
    text.value = (defaults && defaults.text) || "";
    const consent = h("input", { id: id + "-consent", type: "checkbox", "data-testid": "mr-consent" });
    const channel = h(
      "select",
      { id: id + "-channel", "data-testid": "mr-channel" },
      ["email", "phone", "fax", "mail"].map((c) => h("option", { value: c }, { email: "Email", phone: "Phone", fax: "Fax", mail: "Post" }[c]))
    );
    const address = h("input", { id: id + "-address", type: "text", "data-testid": "mr-address", autocomplete: "off" });
    const confirm = h("button", { type: "submit", "data-testid": "mr-confirm" }, "Confirm and send to Medical");
    const reason = h("input", { id: id + "-reason", type: "text", "data-testid": "mr-reason", autocomplete: "off" });
    const dismiss = h("button", { type: "button", class: "secondary", "data-testid": "mr-dismiss" }, "Dismiss");
    // Enter in the reason means dismiss: the form's own submit is "Confirm and send".
    reason.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        dismiss.click();
      }
    });
    const out = h("div", { role: "status", "data-testid": "mr-status", class: "status" });
    const panel = h(
      "form",
      { class: "mr-panel", "data-testid": "mr-panel", "data-id": mr.id, "aria-label": "Medical Information request" },
      h("h3", {}, "What will be sent to Medical Information"),
      h("p", { "data-testid": "mr-summary" }, mr.summary),
      field("HCP", hcpIn, "The HCP who asked."),
      field("The request, in the HCP's words", text, "Edit it to what the HCP actually asked."),
      h("div", { class: "field check" }, h("label", { for: consent.id }, consent, " The HCP agrees to be contacted by Medical Information")),
      h("div", { class: "row" }, field("Contact by", channel), field("Address or number", address, "e.g. dr.shah@clinic.example or +1 555 010 2030")),
      h("div", { class: "actions" }, confirm),
      h("details", { class: "dismiss" }, h("summary", {}, "Not sending it?"), field("Reason", reason, "e.g. the HCP withdrew the question."), h("div", { class: "actions" }, dismiss)),
      out
    );
    const decided = (node, result) => {
      clear(panel);
      panel.appendChild(node);
      if (onDecided) onDecided(result);
    };
    panel.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clear(out);
      busy(confirm, true);
      try {
        const res = await api("POST", "/api/v1/medical-requests/" + encodeURIComponent(mr.id) + "/confirm", {
          hcp: hcpIn.value,
          request_text: text.value,
          consent: consent.checked,
          contact: { channel: channel.value, address: address.value },
        });
        decided(
          h(
            "p",
            { class: "notice", "data-testid": "mr-sent" },
            "Sent to Medical Information as case ",
            h("span", { class: "case-id", "data-testid": "mr-case-id" }, res.case_id),
            ". Medical Information will contact " + hcpIn.value.trim() + " by " + channel.value + "."
          ),
          { case_id: res.case_id }
        );
      } catch (e) {
        out.appendChild(errorBox(e, "mr-error"));
        busy(confirm, false);
      }
    });
    dismiss.addEventListener("click", async () => {
      clear(out);
      try {
        await api("POST", "/api/v1/medical-requests/" + encodeURIComponent(mr.id) + "/dismiss", { reason: reason.value });
        decided(h("p", { class: "notice", "data-testid": "mr-dismissed" }, "Dismissed: nothing was sent. The reason is on record."), { dismissed: true });
      } catch (e) {
        out.appendChild(errorBox(e, "mr-error"));
      }
    });
    return panel;
  }

  function showAnswer(region, a, opts) {
    const asked = region.querySelector("[data-testid=asked]");
    clear(region);
    region.dataset.route = a.route;
    const typed = a.question || (asked && asked.textContent) || "";
    if (typed) region.appendChild(h("p", { class: "asked", "data-testid": "asked" }, typed));
    if (a.resolved_question && a.resolved_question !== typed) {
      region.appendChild(h("p", { class: "resolved", "data-testid": "resolved-question" }, "Answered as: ", a.resolved_question));
    }
    const banner = routeBanner(a.route, a.case_id, a.route === "answer" ? null : a.answer, { needsContext: a.needs_context, medicalRequest: a.medical_request });
    if (banner) region.appendChild(banner);
    if (a.medical_request && !a.case_id) {
      // Once decided, the banner says what happened instead of "not sent yet".
      const onDone = (r) => {
        if (banner) {
          banner.querySelector("strong").textContent = r && r.case_id ? "Sent to Medical Information" : "Medical request dismissed";
          const m = banner.querySelector("[data-testid=route-message]");
          if (m) {
            m.textContent = r && r.case_id
              ? "Case " + r.case_id + " was opened with the HCP's words, consent and contact. Medical Information will answer the HCP directly; do not answer it yourself."
              : "Nothing was sent to Medical Information; the reason is on record.";
          }
        }
        if (opts && opts.onDecided) opts.onDecided(r);
      };
      region.appendChild(medicalRequestPanel(a.medical_request, { hcp: opts && opts.hcp, text: typed }, onDone));
    }
    if (a.route === "answer") {
      region.appendChild(h("div", { "data-testid": "answer-text", id: "answer-text" }, cited(a.answer, a.citations)));
      const copyStatus = h("span", { class: "status", role: "status", "data-testid": "copy-status" });
      region.appendChild(
        h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "copy-answer", "data-testid": "copy-answer", onclick: () => copyText(answerAsText(a), copyStatus) }, "Copy answer with sources"), copyStatus)
      );
      const src = sourcesDetails(a.citations);
      if (src) region.appendChild(src);
    }
    const meta = [];
    if (a.mode && a.route === "answer") meta.push(modeWords(a.mode));
    if (a.audit_id) meta.push("audit #" + a.audit_id);
    if (a.timings_ms) {
      const t = a.timings_ms;
      const total = (t.guard || 0) + (t.retrieve || 0) + (t.generate || 0);
      meta.push((total / 1000).toFixed(1) + " s");
    }
    if (meta.filter(Boolean).length) region.appendChild(h("p", { class: "meta", "data-testid": "answer-meta" }, meta.filter(Boolean).join(" · ")));
  }
  // ------------------------------------------------------------- email ----

  RENDER.email = async function (view) {
    append(view, h("h1", {}, "Follow-up email and visit summary"));
    const picker = await productPicker({ id: "email-product", required: true });
    const hcp = h("input", { id: "email-hcp", type: "text", required: true, "data-testid": "email-hcp", autocomplete: "off" });
    const topics = h("textarea", { id: "email-topics", rows: 3, required: true, "data-testid": "email-topics" });
    const submit = h("button", { type: "submit", id: "email-submit", "data-testid": "email-submit" }, "Draft email");
    const out = h("section", { id: "email-result", "aria-live": "polite", "data-testid": "email-result" });
    const form = h(
      "form",
      { class: "card", id: "email-form" },
      h("h2", {}, "Email draft"),
      h("div", { class: "row" }, picker.el, field("HCP", hcp, "The doctor the email is for.")),
      field("Topics discussed", topics, "E.g. liver monitoring, dosing."),
      h("div", { class: "actions" }, submit)
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (submit.disabled) return;
      busy(submit, true, "Drafting…");
      clear(out);
      try {
        const signOff = "Kind regards,\n" + ((state.me && state.me.name) || "");
        const req = { product: picker.select.value, hcp: hcp.value.trim(), topics: topics.value.trim() };
        const redraft = async (greeting, closing) => {
          const d2 = await api("POST", "/api/v1/email", Object.assign({}, req, { greeting: greeting, closing: closing }));
          d2.closing_sent = closing;
          showEmail(out, d2, redraft);
        };
        const first = await api("POST", "/api/v1/email", Object.assign({}, req, { closing: signOff }));
        first.closing_sent = signOff;
        showEmail(out, first, redraft);
      } catch (e) {
        out.appendChild(errorBox(e, "email-error"));
      } finally {
        busy(submit, false, "Draft email");
      }
    });

    const picker2 = await productPicker({ id: "summary-product", required: true });
    const hcp2 = h("input", { id: "summary-hcp", type: "text", "data-testid": "summary-hcp", autocomplete: "off" });
    const notes = h("textarea", { id: "summary-notes", rows: 6, required: true, "data-testid": "summary-notes" });
    const submit2 = h("button", { type: "submit", id: "summary-submit", "data-testid": "summary-submit" }, "Summarize visit");
    const out2 = h("section", { id: "summary-result", "aria-live": "polite", "data-testid": "summary-result" });
    const form2 = h(
      "form",
      { class: "card", id: "summary-form" },
      h("h2", {}, "Visit summary"),
      h("div", { class: "row" }, picker2.el, field("HCP (optional)", hcp2)),
      field("Visit notes", notes, "Free text. Statements no approved passage supports are removed."),
      h("div", { class: "actions" }, submit2)
    );
    form2.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (submit2.disabled) return;
      busy(submit2, true, "Summarizing…");
      clear(out2);
      try {
        const body = { product: picker2.select.value, notes: notes.value };
        if (hcp2.value.trim()) body.hcp = hcp2.value.trim();
        showSummary(out2, await api("POST", "/api/v1/summarize", body), body.hcp, body.product);
      } catch (e) {
        out2.appendChild(errorBox(e, "summary-error"));
      } finally {
        busy(submit2, false, "Summarize visit");
      }
    });
    append(view, h("div", { class: "split" }, h("div", {}, form, out), h("div", {}, form2, out2)));
  };

  function statementList(items, citations, testid) {
    const byN = new Map((citations || []).map((c) => [Number(c.n), c]));
    return h(
      "ul",
      { "data-testid": testid },
      (items || []).map((s) =>
        h(
          "li",
          {},
          s.text,
          " ",
          byN.has(Number(s.n)) ? chip(byN.get(Number(s.n)), false) : "[" + s.n + "]",
          // A lead-in ("contraindicated in patients with:") keeps its list.
          s.items && s.items.length ? h("ul", { class: "items", "data-testid": "statement-items" }, s.items.map((i) => h("li", {}, i))) : null
        )
      )
    );
  }

  // Saves `text` as a file the browser downloads (no server round trip).
  function download(name, type, text) {
    const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: type })), download: name, class: "offscreen" }, name);
    document.body.appendChild(a);
    a.click();
    setTimeout(() => {
      URL.revokeObjectURL(a.href);
      a.remove();
    }, 1000);
  }

  // The email as the rep sends it: subject once, no DRAFT line; the rep's
  // greeting and closing around the locked approved text.
  function emailToSend(d) {
    return "Subject: " + (d.subject || "") + "\n\n" + (d.text || "");
  }

  function showEmail(out, d, redraft) {
    clear(out);
    const card = h("div", { class: "card", "data-testid": "email-draft" });
    const banner = routeBanner(d.route, d.case_id, d.message);
    if (banner) card.appendChild(banner);
    if (d.route === "answer") {
      if (d.banner) card.appendChild(h("div", { class: "banner draft", role: "note", "data-testid": "draft-banner" }, d.banner));
      if (d.message) card.appendChild(h("p", { class: "note", "data-testid": "email-note" }, d.message));
      card.appendChild(h("p", {}, h("strong", {}, "Subject: "), h("span", { "data-testid": "email-subject" }, d.subject || "")));
      const greeting = h("input", { id: "email-greeting", type: "text", maxlength: "200", "data-testid": "email-greeting", autocomplete: "off" });
      greeting.value = d.greeting || "";
      card.appendChild(field("Greeting (yours to edit)", greeting));
      const locked = h("div", { class: "locked", "data-testid": "email-locked" }, h("p", { class: "eyebrow" }, "Approved text — locked"));
      if (d.statements && d.statements.length) append(locked, h("h3", {}, "Statements"), statementList(d.statements, d.references, "email-statements"));
      if (d.isi && d.isi.length) append(locked, h("h3", {}, "Important Safety Information"), statementList(d.isi, d.references, "email-isi"));
      card.appendChild(locked);
      const closing = h("textarea", { id: "email-closing", rows: 3, maxlength: "500", "data-testid": "email-closing" });
      closing.value = d.closing_sent || "Kind regards,\n" + ((state.me && state.me.name) || "");
      card.appendChild(field("Closing (yours to edit)", closing, "A sign-off only: anything about the product must be the approved text above."));
      const st = h("span", { class: "status", role: "status", "data-testid": "email-copy-status" });
      const update = h("button", { type: "button", class: "secondary", "data-testid": "email-update" }, "Apply greeting and closing");
      update.addEventListener("click", async () => {
        busy(update, true, "Checking…");
        try {
          await redraft(greeting.value.trim(), closing.value.trim());
        } catch (e) {
          st.textContent = "";
          card.appendChild(errorBox(e, "email-wording-error"));
          busy(update, false, "Apply greeting and closing");
        }
      });
      const src = sourcesList(d.references);
      if (src) card.appendChild(src);
      const bodyId = "email-body";
      card.appendChild(h("h3", { id: bodyId + "-label" }, "The email to send"));
      card.appendChild(h("pre", { id: bodyId, "data-testid": bodyId, "aria-labelledby": bodyId + "-label", tabindex: "0" }, emailToSend(d)));
      card.appendChild(
        h(
          "div",
          { class: "actions" },
          update,
          h("button", { type: "button", "data-testid": "copy-email", onclick: () => copyText(emailToSend(d), st) }, "Copy email"),
          st
        )
      );
    } else if (!banner && d.message) {
      card.appendChild(h("p", {}, d.message));
    }
    if (d.audit_id) card.appendChild(h("p", { class: "meta" }, "audit #" + d.audit_id));
    out.appendChild(card);
  }

  // The record a CRM imports: one call, its topics, questions, follow-ups,
  // and each kept statement with the approved source it cites.
  function summaryForCrm(s, hcp, product) {
    const byN = new Map((s.references || []).map((c) => [Number(c.n), c]));
    return {
      type: "call_summary",
      hcp: hcp || null,
      product: product,
      topics: s.topics || [],
      hcp_questions: s.hcp_questions || [],
      follow_ups: s.follow_ups || [],
      statements: (s.statements || []).map((x) => {
        const c = byN.get(Number(x.n));
        return { text: x.text, citation: c ? { doc_id: c.doc_id, section: c.section, title: c.title, mlr_number: c.mlr_number } : null };
      }),
      removed: s.removed || [],
      route: s.route,
      case_id: s.case_id || null,
      prompt_version: s.prompt_version || null,
      audit_id: s.audit_id || null,
    };
  }

  function showSummary(out, s, hcp, product) {
    clear(out);
    const card = h("div", { class: "card", "data-testid": "visit-summary" });
    const banner = routeBanner(s.route, s.case_id, s.message);
    if (banner) card.appendChild(banner);
    else if (s.message) card.appendChild(h("p", {}, s.message));
    const list = (title, items, testid) => [h("h3", {}, title), items && items.length ? h("ul", { "data-testid": testid }, items.map((t) => h("li", {}, t))) : h("p", { class: "meta", "data-testid": testid }, "None noted.")];
    append(card, list("Topics discussed", s.topics, "summary-topics"), list("HCP questions", s.hcp_questions, "summary-questions"), list("Follow-ups", s.follow_ups, "summary-followups"));
    if (s.statements && s.statements.length) append(card, h("h3", {}, "Product statements (approved, cited)"), statementList(s.statements, s.references, "summary-statements"));
    if (s.removed && s.removed.length) append(card, h("h3", {}, "Removed (no approved support)"), h("ul", { "data-testid": "summary-removed" }, s.removed.map((t) => h("li", {}, t))));
    const src = sourcesList(s.references);
    if (src) card.appendChild(src);
    const st = h("span", { class: "status", role: "status", "data-testid": "summary-copy-status" });
    const stamp = new Date().toISOString().slice(0, 10);
    card.appendChild(
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", "data-testid": "copy-summary", onclick: () => copyText(s.text || "", st) }, "Copy summary"),
        h("button", { type: "button", class: "secondary", "data-testid": "export-summary-text", onclick: () => download("visit-summary-" + stamp + ".txt", "text/plain", s.text || "") }, "Export text"),
        h(
          "button",
          { type: "button", class: "secondary", "data-testid": "export-summary-json", onclick: () => download("visit-summary-" + stamp + ".json", "application/json", JSON.stringify(summaryForCrm(s, hcp, product), null, 2)) },
          "Export JSON for CRM"
        ),
        st
      )
    );
    if (s.audit_id) card.appendChild(h("p", { class: "meta" }, "audit #" + s.audit_id));
    out.appendChild(card);
  }

  // --------------------------------------------------------------- mlr ----

  function versionId(v) {
    return v.name + "@" + v.version;
  }

  RENDER.mlr = async function (view) {
    const res = await api("GET", "/api/v1/prompts"); // 403 → "You do not have access" (route())
    const versions = res.versions || [];
    append(view, h("h1", {}, "MLR review: prompt, rule and lexicon versions"));
    const detail = h("section", { id: "mlr-detail", "aria-live": "polite", "data-testid": "mlr-detail" });
    const rows = versions.map((v) =>
      h(
        "tr",
        { "data-testid": "version-row", "data-version": versionId(v) },
        h("td", {}, h("button", { type: "button", class: "secondary", "data-testid": "open-version", "data-version": versionId(v), onclick: (ev) => openVersion(detail, v, versions, ev.target.closest("tr")) }, versionId(v))),
        h("td", {}, v.kind),
        h("td", {}, stateBadge(v.state, "version-state")),
        h("td", {}, v.author),
        h("td", {}, fmtTime(v.created_at)),
        h("td", { class: "mono" }, String(v.sha256 || "").slice(0, 12))
      )
    );
    append(
      view,
      h("div", { class: "card" }, h("h2", {}, "Versions"), versions.length ? table(["Version", "Kind", "State", "Author", "Created", "SHA-256"], rows, "versions") : h("p", { class: "muted" }, "No versions yet.")),
      detail,
      proposeForm()
    );
    // #/mlr/NAME@N opens that version (where the single sign-on step-up of a signature returns).
    const m = /^#\/mlr\/(.+)$/.exec(location.hash || "");
    const want = m ? decodeURIComponent(m[1]) : null;
    const at = want ? versions.find((v) => versionId(v) === want) : null;
    if (at) openVersion(detail, at, versions, rows[versions.indexOf(at)]);
  };

  function proposeForm() {
    const name = h("input", { id: "propose-name", type: "text", required: true, pattern: "[a-z0-9_\\-]+", "data-testid": "propose-name" });
    const kind = h("select", { id: "propose-kind", "data-testid": "propose-kind" }, ["prompt", "rules", "lexicon"].map((k) => h("option", { value: k }, k)));
    const content = h("textarea", { id: "propose-content", rows: 8, required: true, class: "mono", "data-testid": "propose-content" });
    const submit = h("button", { type: "submit", "data-testid": "propose-submit" }, "Propose version");
    const out = h("div", { "aria-live": "polite" });
    const form = h(
      "form",
      { class: "card", id: "propose-form" },
      h("h2", {}, "Propose a new version"),
      h("div", { class: "row" }, field("Name", name, "e.g. objection"), field("Kind", kind)),
      field("Content", content),
      h("div", { class: "actions" }, submit),
      out
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clear(out);
      busy(submit, true);
      try {
        const v = await api("POST", "/api/v1/prompts", { name: name.value.trim(), content: content.value, kind: kind.value });
        out.appendChild(h("p", { class: "notice", role: "status" }, "Proposed " + versionId(v) + " (draft). Submit it for review when ready."));
        setTimeout(route, 800);
      } catch (e) {
        out.appendChild(errorBox(e));
      } finally {
        busy(submit, false);
      }
    });
    return form;
  }

  async function openVersion(detail, v, versions, row) {
    for (const r of document.querySelectorAll("tr.selected")) r.classList.remove("selected");
    if (row) row.classList.add("selected");
    clear(detail);
    // Two rows opened in quick succession: only the last one's card is shown.
    const turn = (detail.dataset.turn = String(++uid));
    const id = versionId(v);
    let d;
    try {
      d = await api("GET", "/api/v1/prompts/" + encodeURIComponent(id));
    } catch (e) {
      if (detail.dataset.turn === turn) detail.appendChild(errorBox(e));
      return;
    }
    const ver = d.version || v;
    const reopen = () => openVersion(detail, v, versions, row);
    const card = h("div", { class: "card", "data-testid": "version-detail", "data-version": id });
    append(
      card,
      h("h2", { id: "version-title" }, id, " ", stateBadge(ver.state, "detail-state")),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Kind"), h("dd", {}, ver.kind),
        h("dt", {}, "File"), h("dd", { class: "mono" }, ver.source_path || ""),
        h("dt", {}, "SHA-256"), h("dd", { class: "mono" }, ver.sha256 || ""),
        h("dt", {}, "Author"), h("dd", {}, ver.author),
        h("dt", {}, "Parameters"), h("dd", { class: "mono" }, JSON.stringify(ver.params || {}))
      ),
      h("details", { class: "raw", open: true }, h("summary", {}, "Template source (as stored)"), h("pre", { "data-testid": "version-content", tabindex: "0", "aria-label": "Content of " + id }, d.content || ""))
    );

    // The review: the prompt as the model sees it, and both versions' answers.
    const reviewBox = h("section", { "data-testid": "review", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading the review…"));
    card.appendChild(reviewBox);
    showReview(reviewBox, id).catch((e) => {
      clear(reviewBox);
      reviewBox.appendChild(errorBox(e));
    });

    // Signatures (21 CFR 11.50 manifestation).
    const sigs = d.signatures || [];
    append(
      card,
      h("h3", {}, "Signatures"),
      sigs.length ? h("ul", { "data-testid": "signatures", class: "manifests" }, sigs.map((s) => h("li", {}, manifestView(manifestOf(s)), h("p", { class: "hint sig-line" }, sigText(s))))) : h("p", { class: "muted" }, "Not signed.")
    );

    // Eval evidence: each recorded run, each metric against its threshold.
    card.appendChild(h("h3", {}, "Eval evidence"));
    card.appendChild(evidenceRuns(d.eval_runs || []));
    const mayRequest = state.me && ["mlr_reviewer", "compliance", "admin"].includes(state.me.role) && ver.state !== "rejected";
    const progress = h("div", { "aria-live": "polite", "data-testid": "evidence-progress" });
    if (mayRequest) {
      const req = h("button", { type: "button", "data-testid": "request-evidence" }, (d.eval_runs || []).length ? "Run the eval again" : "Request evidence");
      req.addEventListener("click", async () => {
        clear(progress);
        busy(req, true);
        try {
          const r = await api("POST", "/api/v1/prompts/" + encodeURIComponent(id) + "/evidence", {});
          await followJobs(progress, r.jobs || []);
          // Still on this version? (followJobs stops when its box is left.)
          if (progress.isConnected) reopen();
        } catch (e) {
          progress.appendChild(errorBox(e));
        } finally {
          busy(req, false);
        }
      });
      append(card, h("p", { class: "hint" }, "Runs this version's stored content on the suites its thresholds name (evals/thresholds.toml) and records the result as its evidence."), h("div", { class: "actions" }, req));
    }
    card.appendChild(progress);
    // A run started earlier (another tab, before a reload) is followed too.
    api("GET", "/api/v1/prompts/" + encodeURIComponent(id) + "/evidence")
      .then(async (r) => {
        const jobs = (r.jobs || []).filter((j) => j.state === "queued" || j.state === "running");
        const last = (r.jobs || [])[0];
        if (jobs.length) {
          await followJobs(progress, jobs);
          if (progress.isConnected) reopen();
        } else if (last && last.result && (last.result.notes || []).length) {
          progress.appendChild(h("div", { class: "notice", "data-testid": "evidence-notes" }, h("strong", {}, "Run #" + last.id + ": "), (last.result.notes || []).join(" ")));
        } else if (last && last.state === "failed") {
          progress.appendChild(h("div", { class: "error", "data-testid": "evidence-notes" }, "Run #" + last.id + " failed: " + (last.error || "")));
        }
      })
      .catch(() => {});

    // Diff against another version of the same name (default: the approved one, else the one before).
    const others = versions.filter((o) => o.name === ver.name && o.version !== ver.version);
    const against = h(
      "select",
      { id: "diff-against", "data-testid": "diff-against" },
      h("option", { value: "" }, "The approved version, else the one before"),
      others.map((o) => h("option", { value: versionId(o) }, versionId(o) + " (" + String(o.state).replace("_", " ") + ")"))
    );
    const diffOut = h("div", { "aria-live": "polite", "data-testid": "diff-out" });
    const btn = h("button", { type: "button", class: "secondary", "data-testid": "diff-show" }, "Show diff");
    const showDiff = async () => {
      clear(diffOut);
      try {
        const q = against.value ? "?against=" + encodeURIComponent(against.value) : "";
        const r = await api("GET", "/api/v1/prompts/" + encodeURIComponent(id) + "/diff" + q);
        diffOut.appendChild(h("p", { class: "meta" }, "Comparing ", String(r.id || id), " with ", String(r.words_against || r.against || "(nothing)"), ". Removed words are struck through, added words underlined."));
        diffOut.appendChild(wordDiff(r.words || []));
        diffOut.appendChild(h("details", {}, h("summary", {}, "Line diff"), diffView(r.diff || "")));
        diffOut.appendChild(metricDeltas(r.metrics));
      } catch (e) {
        diffOut.appendChild(errorBox(e));
      }
    };
    btn.addEventListener("click", showDiff);
    append(card, h("h3", {}, "What changed"), h("div", { class: "row" }, field("Against", against)), h("div", { class: "actions" }, btn), diffOut);
    showDiff();

    card.appendChild(actionsFor(ver, id, d));
    if (detail.dataset.turn !== turn) return;
    detail.appendChild(card);
    card.querySelector("h2").setAttribute("tabindex", "-1");
    card.querySelector("h2").focus();
  }

  /** Follows eval jobs until each is done or failed, with their progress. */
  async function followJobs(box, jobs) {
    const lines = jobs.map((j) => h("p", { class: "status", role: "status", "data-testid": "evidence-status", "data-job": j.id }, "Run #" + j.id + " on " + j.suite + ": queued…"));
    append(box, lines);
    for (let i = 0; i < jobs.length; i++) {
      for (;;) {
        const j = await api("GET", "/api/v1/evals/" + jobs[i].id);
        const line = lines[i];
        line.dataset.state = j.state;
        if (j.state === "queued") line.textContent = "Run #" + j.id + " on " + j.suite + ": queued, waiting for a worker…";
        else if (j.state === "running") line.textContent = "Run #" + j.id + " on " + j.suite + ": running, " + (j.total ? j.done + " of " + j.total + " cases" : "starting") + "…";
        else if (j.state === "done") {
          line.textContent = "Run #" + j.id + " on " + j.suite + ": done (" + j.total + " cases).";
          break;
        } else {
          line.className = "error";
          line.textContent = "Run #" + j.id + " on " + j.suite + " failed: " + (j.error || "unknown error");
          break;
        }
        if (!box.isConnected) return;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** The recorded eval runs of a version, each metric against its minimum with pass/fail. */
  function evidenceRuns(runs) {
    if (!runs.length) return h("p", { class: "muted", "data-testid": "no-evidence" }, "No eval run recorded yet: request evidence below; a reviewer can approve only on a passing run.");
    return h(
      "div",
      { "data-testid": "eval-runs" },
      runs.map((r) => {
        const checks = (r.checks && r.checks.metrics) || [];
        return h(
          "div",
          { class: "evidence", "data-testid": "eval-run", "data-run": r.id },
          h(
            "p",
            {},
            h("strong", {}, "#" + r.id), " ",
            h("span", { class: "state " + (r.passed ? "ok" : "bad"), "data-testid": "eval-passed" }, r.passed ? "passed" : "failed"),
            " — ", h("span", { class: "mono" }, r.suite_path), " — ", r.model || "extractive (no model)", " — recorded by ", r.recorded_by || "", " ", fmtTime(r.recorded_at)
          ),
          checks.length ? checksTable(checks) : h("p", { class: "muted" }, "This run's suite is not a gate's suite in the thresholds file: it cannot support an approval.")
        );
      })
    );
  }

  function checksTable(checks) {
    return table(
      ["Metric", "Minimum", "This run", "Result"],
      checks.map((c) =>
        h(
          "tr",
          { "data-testid": "metric-check", "data-metric": c.metric, "data-passed": c.passed ? "yes" : "no" },
          h("td", {}, c.metric),
          h("td", {}, "≥ " + num(c.min)),
          h("td", {}, c.value === null || c.value === undefined ? "not measured" : num(c.value)),
          h("td", {}, h("span", { class: "state " + (c.passed ? "ok" : "bad") }, c.passed ? "pass" : "fail"))
        )
      ),
      "metric-checks"
    );
  }

  /** The rendered prompt beside the approved one, and both versions' answers to the fixed questions. */
  async function showReview(box, id) {
    const r = await api("GET", "/api/v1/prompts/" + encodeURIComponent(id) + "/review");
    clear(box);
    const base = r.baseline ? r.baseline.id + (r.baseline.from === "approved" ? " (approved)" : r.baseline.from === "served" ? " (served now)" : " (file)") : "no earlier version";
    box.appendChild(h("h3", {}, "Review"));
    if (!r.model) {
      box.appendChild(
        h("p", { class: "notice", "data-testid": "no-model" }, "This server runs without a model, so no generated answer can be shown: the answers below are the quoted label text that both versions give. A prompt changes only generated answers.")
      );
    }
    if (r.rendered) {
      const part = (x) =>
        x && x.error
          ? h("p", { class: "error" }, x.error)
          : x
            ? [h("p", { class: "eyebrow" }, "System"), h("pre", { tabindex: "0" }, x.system), h("p", { class: "eyebrow" }, "User"), h("pre", { tabindex: "0" }, x.user)]
            : h("p", { class: "muted" }, "Nothing to compare with.");
      append(
        box,
        h("p", { class: "meta" }, "The prompt as the model is given it, for the sample question “", (r.sample && r.sample.question) || "", "” and the ", String(((r.sample && r.sample.passages) || []).length), " passages retrieved for it."),
        h(
          "div",
          { class: "split", "data-testid": "rendered-prompt" },
          h("div", {}, h("h4", {}, base), part(r.rendered.baseline)),
          h("div", {}, h("h4", {}, id + " (this version)"), part(r.rendered.candidate))
        )
      );
    }
    const qs = r.questions || [];
    if (!qs.length) {
      box.appendChild(h("p", { class: "muted" }, "No review questions (evals/review-questions.jsonl)."));
      return;
    }
    const review = r.answers && r.answers.review;
    const byQ = {};
    for (const a of (review && review.questions) || []) byQ[a.question] = a;
    const cell = (a) => {
      if (!a) return h("td", { class: "muted" }, "Not answered yet: request evidence.");
      if (a.error) return h("td", { class: "error" }, a.error);
      return h(
        "td",
        {},
        h("p", {}, a.answer),
        h("p", { class: "meta" }, String(a.route), " · ", a.mode === "generated" ? "generated by the model, checked against the label" : a.mode === "composed" ? "approved statements, composed" : "quoted from the label", (a.citations || []).length ? " · " + a.citations.join(", ") : "")
      );
    };
    box.appendChild(h("h4", {}, "Answers side by side"));
    if (review) box.appendChild(h("p", { class: "meta" }, "From evidence run #" + r.answers.job + (review.served_prompt ? "; served prompt " + review.served_prompt : "") + "."));
    box.appendChild(
      table(
        ["Question", base, id + " (this version)"],
        qs.map((q) => {
          const a = byQ[q.question];
          return h("tr", { "data-testid": "review-row" }, h("td", {}, q.question), cell(a && a.served), cell(a && a.candidate));
        }),
        "review-answers"
      )
    );
  }

  /** A word-level diff: deleted words struck through, inserted words underlined. */
  function wordDiff(words) {
    const p = h("p", { class: "words", "data-testid": "word-diff", tabindex: "0", "aria-label": "Word-level diff" });
    if (!words.length) p.appendChild(h("span", { class: "muted" }, "No earlier version to compare with."));
    for (const w of words) {
      if (w.op === "insert") p.appendChild(h("ins", {}, w.text));
      else if (w.op === "delete") p.appendChild(h("del", {}, w.text));
      else p.appendChild(document.createTextNode(w.text));
    }
    return p;
  }

  // esign (issue 21.3): the 21 CFR 11.50 manifestation of an e-signature —
  // printed name, date and time (UTC, and the reader's local time), meaning
  // in words and reason — shown with the SHA-256 of the record it is bound to.

  /** "2026-12-04 03:10:00 UTC" and the same instant in the browser's zone. */
  function signedTimes(s) {
    const d = new Date(s);
    if (isNaN(d.getTime())) return [String(s || ""), ""];
    const utc = d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, "") + " UTC";
    const local = d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
    return [utc, local];
  }

  /** The meaning in words, from a stored meaning (`approved for use` → Approved). */
  function meaningWords(stored) {
    return stored === "approved for use" ? "Approved" : stored === "rejected" ? "Rejected" : String(stored || "");
  }

  /** One signature's manifestation as a card; `m` as the server's `manifestation`. */
  function manifestView(m, testid) {
    const [utc, local] = signedTimes(m.signed_at_utc);
    return h(
      "div",
      { class: "manifest " + (m.meaning === "Rejected" ? "rejected" : "approved"), "data-testid": testid || "manifestation", "data-meaning": m.meaning },
      h("p", { class: "manifest-head" }, h("strong", { "data-testid": "manifest-meaning" }, m.meaning), " — electronically signed"),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Signed by"), h("dd", { "data-testid": "manifest-name" }, m.printed_name, m.signer_id ? " (" + m.signer_id + ")" : ""),
        h("dt", {}, "Date and time"), h("dd", {}, h("time", { datetime: m.signed_at_utc, "data-testid": "manifest-utc" }, utc), local ? h("span", { class: "muted", "data-testid": "manifest-local" }, " — your time: " + local) : null),
        h("dt", {}, "Meaning"), h("dd", {}, m.meaning, m.meaning_stored ? h("span", { class: "muted" }, " (" + m.meaning_stored + ")") : null),
        h("dt", {}, "Reason"), h("dd", { "data-testid": "manifest-reason" }, m.reason || "—"),
        h("dt", {}, "Signed record"), h("dd", { class: "mono" }, m.record || "—"),
        h("dt", {}, "Record SHA-256"), h("dd", { class: "mono", "data-testid": "manifest-sha" }, m.record_sha256 || "—")
      )
    );
  }

  /** The manifestation of a signature as the API sends it (older servers: built from its fields). */
  function manifestOf(s) {
    return s.manifestation || { printed_name: s.signer_name, signer_id: s.signer_id, signed_at_utc: s.signed_at, meaning: meaningWords(s.meaning), meaning_stored: s.meaning, reason: s.reason, record: s.name + "@" + s.version, record_sha256: s.sha256 };
  }

  function sigText(s) {
    return s.signer_name + " (" + s.signer_id + ") — " + s.meaning + " — " + s.signed_at + ' — "' + s.reason + '"' + (s.eval_run_id ? " — on eval run #" + s.eval_run_id : "");
  }

  function metricsText(m) {
    if (!m || typeof m !== "object") return "";
    const keys = ["route_accuracy", "citation_recall", "citation_precision", "supported_sentence_rate", "ae_recall", "ae_f1", "latency_ms_p95", "cases"];
    const shown = keys.filter((k) => m[k] !== undefined && m[k] !== null && typeof m[k] !== "object");
    const list = shown.length ? shown : Object.keys(m).filter((k) => typeof m[k] !== "object").slice(0, 8);
    return list.map((k) => k + " " + (typeof m[k] === "number" ? Math.round(m[k] * 1000) / 1000 : m[k])).join(", ");
  }

  function num(x) {
    return typeof x === "number" ? String(Math.round(x * 1000) / 1000) : x === null || x === undefined ? "—" : String(x);
  }

  /** The diff's metric rows ({suite, metric, against, new, delta}) as a table. */
  function metricDeltas(m) {
    if (Array.isArray(m)) {
      if (!m.length) return h("p", { class: "muted" }, "No eval metrics to compare.");
      return table(
        ["Suite", "Metric", "Before", "This version", "Change"],
        m.map((r) => h("tr", {}, h("td", { class: "mono" }, r.suite || ""), h("td", {}, r.metric || ""), h("td", {}, num(r.against)), h("td", {}, num(r.new)), h("td", {}, r.delta > 0 ? "+" + num(r.delta) : num(r.delta)))),
        "metric-deltas"
      );
    }
    if (m && typeof m === "object" && Object.keys(m).length) return h("p", { class: "meta" }, "Metric changes: " + metricsText(m));
    return h("p", { class: "muted" }, "No eval metrics to compare.");
  }

  function diffView(text) {
    const pre = h("pre", { class: "diff", "data-testid": "diff", tabindex: "0", "aria-label": "Unified diff" });
    for (const line of String(text).split("\n")) {
      let cls = "";
      if (line.startsWith("+") && !line.startsWith("+++")) cls = "add";
      else if (line.startsWith("-") && !line.startsWith("---")) cls = "del";
      else if (line.startsWith("@@")) cls = "hunk";
      pre.appendChild(h("span", { class: cls }, line || " "));
    }
    return pre;
  }

  /** esign (issue 21.3): the e-signature dialog — meaning stated, reason,
   *  the signer's password re-entered (or, in a single sign-on session, a
   *  fresh re-authentication with the identity provider), then the 11.50
   *  manifestation of what was signed. */
  function signForm(id, out) {
    const me = state.me || {};
    const reason = h("textarea", { id: "sign-reason", rows: 2, required: true, "data-testid": "sign-reason" });
    const password = h("input", { id: "sign-password", type: "password", autocomplete: "current-password", "data-testid": "sign-password" });
    const ack = h("input", { id: "sign-ack", type: "checkbox", required: true, "data-testid": "sign-ack" });
    const approve = h("button", { type: "submit", value: "approve", "data-testid": "approve" }, "Approve and sign");
    const reject = h("button", { type: "submit", value: "reject", class: "danger", "data-testid": "reject" }, "Reject and sign");
    const meaning = h(
      "ul",
      { class: "meanings", "data-testid": "sign-meaning" },
      h("li", {}, h("strong", {}, "Approve and sign"), " — meaning ", h("strong", {}, "Approved"), ": " + id + " is approved for use and goes live."),
      h("li", {}, h("strong", {}, "Reject and sign"), " — meaning ", h("strong", {}, "Rejected"), ": " + id + " is rejected and never goes live.")
    );
    const sso = h("div", { "data-testid": "sign-sso", hidden: true });
    const form = h(
      "form",
      { id: "sign-form", "aria-describedby": "sign-explain" },
      h("h3", {}, "Electronic signature"),
      h("p", { "data-testid": "sign-as" }, "Signing as ", h("strong", {}, me.name || me.id || ""), me.id ? " (" + me.id + ")" : ""),
      meaning,
      h("p", { id: "sign-explain", class: "hint" }, "Your signature shows your full name, the date and time (UTC), its meaning and your reason, bound to this version's SHA-256. Re-enter your password to sign: it proves it is you, now."),
      field("Reason", reason, "e.g. Matches MLR-2026-114"),
      field("Your password (e-signature)", password),
      sso,
      h("div", { class: "field" }, h("label", { for: "sign-ack" }, ack, " I understand this electronic signature is the legally binding equivalent of my handwritten signature.")),
      h("div", { class: "actions" }, approve, reject)
    );
    // A single sign-on session has no password here: it re-authenticates with the identity provider.
    api("GET", "/api/v1/sessions/current")
      .then((cur) => {
        const method = cur && (cur.method || (cur.session && cur.session.method));
        if (method !== "oidc") return;
        const back = "/#/mlr/" + encodeURIComponent(id);
        append(
          sso,
          h("p", { class: "hint" }, "You signed in with single sign-on. Re-authenticate with it, then sign within 5 minutes (leave the password empty)."),
          h("p", {}, h("a", { class: "button-link", "data-testid": "sign-step-up", href: "/auth/oidc/login?step_up=1&return=" + encodeURIComponent(back) }, "Re-authenticate with single sign-on"))
        );
        sso.hidden = false;
      })
      .catch(() => {});
    let which = "approve";
    approve.addEventListener("click", () => (which = "approve"));
    reject.addEventListener("click", () => (which = "reject"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const action = (ev.submitter && ev.submitter.value) || which;
      clear(out);
      busy(approve, true);
      busy(reject, true);
      try {
        const body = { reason: reason.value.trim(), signer: me.id };
        if (password.value) body.password = password.value;
        const r = await api("POST", "/api/v1/prompts/" + encodeURIComponent(id) + "/" + action, body);
        password.value = "";
        const v = r.version || {};
        out.appendChild(
          h(
            "div",
            { class: "notice", role: "status", "data-testid": "sign-ok" },
            h("strong", {}, id + " " + (action === "approve" ? "approved" : "rejected")),
            r.signature ? manifestView(manifestOf(r.signature), "sign-manifestation") : null,
            h("p", { class: "hint sig-line" }, "Signed: ", r.signature ? sigText(r.signature) : ""),
            v.state ? h("p", {}, "State: ", stateBadge(v.state, "signed-state")) : null
          )
        );
        form.remove();
      } catch (e) {
        password.value = "";
        if (e.status === 401 && e.code === "bad_credential") {
          out.appendChild(h("div", { class: "error", role: "alert", "data-testid": "sign-error" }, h("strong", {}, "Signature refused"), " — ", e.message));
          password.focus();
        } else {
          out.appendChild(errorBox(e, "sign-error"));
        }
      } finally {
        busy(approve, false);
        busy(reject, false);
      }
    });
    return form;
  }

  function actionsFor(ver, id, d) {
    const box = h("div", { "data-testid": "version-actions" });
    const out = h("div", { "aria-live": "polite", "data-testid": "sign-result" });
    const me = state.me;
    if (ver.state === "draft") {
      const b = h("button", { type: "button", "data-testid": "submit-version" }, "Submit for MLR review");
      b.addEventListener("click", async () => {
        clear(out);
        busy(b, true);
        try {
          const v = await api("POST", "/api/v1/prompts/" + encodeURIComponent(id) + "/submit", {});
          out.appendChild(h("p", { class: "notice", role: "status" }, id + " is now " + String(v.state || "in_review").replace("_", " ") + "."));
          setTimeout(route, 800);
        } catch (e) {
          out.appendChild(errorBox(e));
        } finally {
          busy(b, false);
        }
      });
      append(box, h("h3", {}, "Review"), h("div", { class: "actions" }, b));
    } else if (ver.state === "in_review" && me && me.id === ver.author) {
      // The author never gets a signing control (the server refuses them too).
      box.appendChild(
        h("div", { id: "sign-form", class: "notice", "data-testid": "own-version" }, h("h3", {}, "Electronic signature"), h("p", {}, "You proposed " + id + ": another reviewer must sign it (approve or reject)."))
      );
    } else if (ver.state === "in_review" && !(d && d.may_sign)) {
      box.appendChild(h("p", { class: "muted", "data-testid": "cannot-sign" }, "An MLR reviewer who did not propose " + id + " signs it."));
    } else if (ver.state === "in_review") {
      box.appendChild(signForm(id, out));
    }
    box.appendChild(out);
    return box;
  }

  // ------------------------------------------------------------- cases ----
  // Issue 20 (cases): the Medical / PV queue as a work tool (list and detail
  // side by side, counts, search, sort by due, owner from the medical users,
  // reopen with a reason, audit links), and a rep's "My reports" with the AE
  // intake form (#/reports, #/reports/CASE_ID).

  /** A time in the browser's local zone, with UTC on hover. */
  function timeEl(s, testid) {
    if (!s) return h("span", { class: "muted" }, "—");
    const d = new Date(s);
    if (isNaN(d.getTime())) return h("span", {}, String(s));
    const local = d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    return h("time", { datetime: d.toISOString(), title: fmtTime(s) + " (UTC)", "data-testid": testid || null }, local);
  }

  /** "in 14 d 3 h" / "overdue by 2 h 5 min" for a number of seconds left. */
  function remaining(secs) {
    if (secs === null || secs === undefined) return "";
    const a = Math.abs(secs);
    const d = Math.floor(a / 86400), hh = Math.floor((a % 86400) / 3600), m = Math.floor((a % 3600) / 60);
    const text = d ? d + " d " + hh + " h" : hh ? hh + " h " + m + " min" : m + " min";
    return secs < 0 ? "overdue by " + text : "in " + text;
  }

  const CASE_KIND = { pharmacovigilance: "PV", medical_information: "MIR" };
  const CRITERIA = [
    ["death", "Death"],
    ["life_threatening", "Life-threatening"],
    ["hospitalisation", "Hospitalisation (or prolonged)"],
    ["disability", "Disability or incapacity"],
    ["congenital_anomaly", "Congenital anomaly or birth defect"],
    ["other_medically_important", "Other medically important event"],
  ];
  const REPORTER_ROLES = [["physician", "Physician"], ["pharmacist", "Pharmacist"], ["other_health_professional", "Other health professional"], ["lawyer", "Lawyer"], ["consumer", "Consumer / patient"]];
  const OUTCOMES = [["recovered", "Recovered"], ["recovering", "Recovering"], ["not_recovered", "Not recovered"], ["recovered_with_sequelae", "Recovered with sequelae"], ["fatal", "Fatal"], ["unknown", "Unknown"]];
  const SEXES = [["female", "Female"], ["male", "Male"], ["unknown", "Unknown"]];
  const label = (list, v) => (list.find((x) => x[0] === v) || [v, v || ""])[1];

  /** The minimum-criteria check, as the server computes it (`valid_case`). */
  function validCase(i) {
    const has = (s) => Boolean(s && String(s).trim());
    const r = i.reporter || {}, p = i.patient || {}, e = i.event || {};
    const c = [
      ["reporter", "Identifiable reporter", has(r.name) || has(r.contact), "the reporter's name or initials, or a contact for follow-up"],
      ["patient", "Identifiable patient", has(p.identifier) || (p.age !== null && p.age !== undefined) || p.sex === "female" || p.sex === "male", "the patient's initials or identifier, age, or sex"],
      ["suspect_product", "Suspect product", has(i.suspect_product), "the product suspected"],
      ["event", "Adverse event", has(e.description), "what happened to the patient"],
    ].map(([id, lbl, met, missing]) => ({ id, label: lbl, met, missing: met ? null : missing }));
    return { valid: c.every((x) => x.met), criteria: c };
  }

  function validCaseView(v) {
    const box = h("div", { class: "valid-case " + (v.valid ? "ok" : "bad"), "data-testid": "valid-case", "data-valid": v.valid ? "yes" : "no" });
    append(
      box,
      h("strong", { "data-testid": "valid-case-verdict" }, v.valid ? "Valid case: all four minimum criteria are met" : "Not yet a valid case: " + v.criteria.filter((c) => !c.met).length + " of 4 minimum criteria missing"),
      h(
        "ul",
        {},
        v.criteria.map((c) =>
          h("li", { "data-criterion": c.id, "data-met": c.met ? "yes" : "no" }, h("span", { class: "mark", "aria-hidden": "true" }, c.met ? "✓" : "✗"), " ", c.label, c.met ? " — met" : " — missing: " + c.missing)
        )
      )
    );
    return box;
  }

  function day0View(d) {
    if (!d) return null;
    const row = (lbl, due, secs, testid) =>
      h("div", { class: "clock" + (secs !== null && secs < 0 ? " late" : ""), "data-testid": testid }, h("span", { class: "clock-label" }, lbl), " ", timeEl(due), " ", h("span", { class: "remaining" }, remaining(secs)));
    return h(
      "div",
      { class: "day0", "data-testid": "day0" },
      h("div", {}, h("span", { class: "clock-label" }, "Day 0 (the company first knew)"), " ", timeEl(d.day0, "day0-start")),
      d.internal_due
        ? row("Internal hand-off (24 hours" + (d.seriousness === "not_assessed" ? ", until seriousness is assessed" : ", serious") + "):", d.internal_due, d.internal_remaining_secs, "day0-internal")
        : h("div", { class: "muted", "data-testid": "day0-internal" }, "Not serious: no 24-hour hand-off."),
      row("Regulatory report (15 calendar days):", d.regulatory_due, d.regulatory_remaining_secs, "day0-regulatory")
    );
  }

  /** The intake as a definition list (the PV case detail). */
  function intakeFacts(i, prefilled) {
    const r = i.reporter || {}, p = i.patient || {}, e = i.event || {}, s = i.seriousness || {};
    const patient = [p.identifier, p.age !== null && p.age !== undefined ? p.age + " " + (p.age_unit || "years") : null, p.sex ? label(SEXES, p.sex) : null].filter(Boolean).join(", ");
    const seriousness = s.serious === true ? "Serious: " + (s.criteria || []).map((c) => label(CRITERIA, c)).join(", ") : s.serious === false ? "Not serious" : "Not yet assessed";
    const dd = (v, testid) => h("dd", { "data-testid": testid }, v || h("span", { class: "muted" }, "not given"));
    return h(
      "div",
      { "data-testid": "case-intake" },
      prefilled ? h("p", { class: "hint" }, "Pre-filled from the rep's words; nobody has confirmed it yet.") : null,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Reporter"), dd([r.name, r.role ? label(REPORTER_ROLES, r.role) : null].filter(Boolean).join(", "), "intake-reporter"),
        h("dt", {}, "Reporter contact"), dd(r.contact, "intake-contact"),
        h("dt", {}, "Patient"), dd(patient, "intake-patient"),
        h("dt", {}, "Event"), dd(e.description, "intake-event"),
        h("dt", {}, "Onset"), dd(e.onset_date, "intake-onset"),
        h("dt", {}, "Suspect product"), dd(i.suspect_product, "intake-product"),
        h("dt", {}, "Seriousness"), dd(seriousness, "intake-seriousness"),
        h("dt", {}, "Outcome"), dd(i.outcome ? label(OUTCOMES, i.outcome) : "", "intake-outcome")
      )
    );
  }

  let ownersCache = null;
  async function caseOwners() {
    if (!ownersCache) ownersCache = (await api("GET", "/api/v1/case-owners")).owners || [];
    return ownersCache;
  }

  RENDER.cases = async function (view) {
    append(view, h("h1", {}, "Medical Information and Pharmacovigilance cases"));
    const deep = /^#\/cases\/([A-Za-z0-9-]+)/.exec(location.hash || "");
    const q = h("input", { id: "cases-q", type: "search", "data-testid": "cases-q", autocomplete: "off", placeholder: "case id, question, product, HCP" });
    const st = h("select", { id: "cases-state", "data-testid": "cases-state" }, h("option", { value: "" }, "Any"), ["new", "triaged", "in_progress", "closed"].map((s) => h("option", { value: s }, s.replace("_", " "))));
    const kind = h("select", { id: "cases-kind", "data-testid": "cases-kind" }, h("option", { value: "" }, "Any"), h("option", { value: "pharmacovigilance" }, "Pharmacovigilance (PV)"), h("option", { value: "medical_information" }, "Medical Information (MIR)"));
    const sort = h("select", { id: "cases-sort", "data-testid": "cases-sort" }, h("option", { value: "due" }, "Due soonest"), h("option", { value: "-created" }, "Newest first"), h("option", { value: "created" }, "Oldest first"), h("option", { value: "-updated" }, "Recently changed"));
    const refresh = h("button", { type: "submit", "data-testid": "cases-refresh" }, "Show cases");
    const counts = h("div", { class: "case-counts", "data-testid": "case-counts", "aria-live": "polite" });
    const list = h("div", { id: "cases-list", class: "cases-list", "aria-live": "polite" });
    const detail = h("section", { id: "case-detail", class: "cases-detail", "aria-live": "polite", "data-testid": "case-detail", "aria-label": "Case detail" },
      h("p", { class: "card muted" }, "Choose a case to see it here."));
    const form = h("form", { class: "card", id: "cases-filter", role: "search" }, h("div", { class: "row" }, field("Search", q), field("State", st), field("Kind", kind), field("Sort", sort)), h("div", { class: "actions" }, refresh));
    const load = async () => {
      const qs = new URLSearchParams();
      if (q.value.trim()) qs.set("q", q.value.trim());
      if (st.value) qs.set("state", st.value);
      if (kind.value) qs.set("kind", kind.value);
      qs.set("sort", sort.value);
      const res = await api("GET", "/api/v1/cases?" + qs);
      clear(list);
      clear(counts);
      const n = res.counts || {};
      const stateBtn = (s, text, count) =>
        h("button", { type: "button", class: "count" + (st.value === s ? " active" : ""), "data-state": s || "any", "aria-pressed": st.value === s ? "true" : "false",
          onclick: () => { st.value = s; load().catch((e) => list.appendChild(errorBox(e))); } }, text, " ", h("span", { class: "n" }, String(count || 0)));
      append(counts, stateBtn("", "All", n.total), stateBtn("new", "New", n.new), stateBtn("triaged", "Triaged", n.triaged), stateBtn("in_progress", "In progress", n.in_progress), stateBtn("closed", "Closed", n.closed),
        n.overdue ? h("span", { class: "state overdue", "data-testid": "count-overdue" }, n.overdue + " overdue") : null);
      const cases = res.cases || [];
      if (!cases.length) {
        list.appendChild(h("p", { class: "card muted", "data-testid": "no-cases" }, "No cases match."));
        return;
      }
      list.appendChild(
        table(
          ["Case", "State", "Due", "Owner"],
          cases.map((c) =>
            h(
              "tr",
              { "data-testid": "case-row", "data-case": c.id, class: deep && deep[1] === c.id ? "selected" : null },
              h("td", {},
                h("button", { type: "button", class: "secondary", "data-testid": "open-case", "data-case": c.id, onclick: (ev) => openCase(detail, c.id, ev.target.closest("tr"), load) }, c.id),
                h("div", { class: "case-sub" }, CASE_KIND[c.kind] || c.kind, " · ", c.reporter || "", c.product ? " · " + c.product : ""),
                h("div", { class: "case-q" }, String(c.question || "").slice(0, 90))),
              h("td", {}, stateBadge(c.state, "case-state")),
              h("td", { class: "when" }, timeEl(c.due_at), c.overdue ? [" ", stateBadge("overdue")] : ""),
              h("td", {}, c.owner || h("span", { class: "muted" }, "unassigned"))
            )
          ),
          "cases"
        )
      );
    };
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await load();
      } catch (e) {
        list.appendChild(errorBox(e));
      }
    });
    append(view, form, counts, h("div", { class: "cases-split" }, list, detail));
    await load(); // a 403 here is the page's "You do not have access"
    if (deep) await openCase(detail, deep[1], list.querySelector('tr[data-case="' + CSS.escape(deep[1]) + '"]'), load);
  };

  async function openCase(detail, id, row, reload) {
    for (const r of document.querySelectorAll("tr.selected")) r.classList.remove("selected");
    if (row) row.classList.add("selected");
    // The case is in the address (without re-rendering the page): a link to it works.
    if (location.hash !== "#/cases/" + id) history.replaceState(null, "", "#/cases/" + id);
    clear(detail);
    // Two cases opened in quick succession: only the last one's card is shown.
    const turn = (detail.dataset.turn = String(++uid));
    let d;
    try {
      d = await api("GET", "/api/v1/cases/" + encodeURIComponent(id));
    } catch (e) {
      if (detail.dataset.turn === turn) detail.appendChild(errorBox(e));
      return;
    }
    const c = d.case;
    const card = h("div", { class: "card", "data-testid": "case-card", "data-case": c.id });
    const flags = Array.isArray(c.flags) ? c.flags : [];
    const pv = c.kind === "pharmacovigilance";
    const audit = d.audit || [];
    const ask = audit.find((a) => a.action === "ask");
    const opened = audit.find((a) => a.action === "case_opened");
    // Audit records are compliance's and admin's to open (the server's rule);
    // Medical sees their numbers, to quote.
    const mayAudit = !!state.me && (state.me.role === "compliance" || state.me.role === "admin");
    const auditLink = (a, testid) =>
      mayAudit
        ? h("a", { href: "#/compliance/record/" + a.seq, "data-testid": testid, "data-seq": String(a.seq) }, "audit record #" + a.seq)
        : h("span", { "data-testid": testid, "data-seq": String(a.seq) }, "audit record #" + a.seq);
    append(
      card,
      h("h2", {}, c.id, " ", stateBadge(c.state, "case-detail-state")),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Kind"), h("dd", {}, pv ? "Pharmacovigilance" : "Medical Information"),
        h("dt", {}, "Owner"), h("dd", { "data-testid": "case-owner" }, c.owner || "unassigned"),
        h("dt", {}, "Reporter"), h("dd", {}, c.reporter || ""),
        h("dt", {}, "HCP"), h("dd", {}, c.hcp || ""),
        h("dt", {}, "Product"), h("dd", {}, c.product || ""),
        h("dt", {}, "Opened"), h("dd", {}, timeEl(c.created_at, "case-opened")),
        h("dt", {}, "Due"), h("dd", {}, timeEl(c.due_at, "case-due")),
        c.closed_at ? [h("dt", {}, "Closed"), h("dd", {}, timeEl(c.closed_at))] : null,
        c.resolution ? [h("dt", {}, "Resolution"), h("dd", { "data-testid": "case-resolution" }, c.resolution)] : null,
        h("dt", {}, "Records"),
        h("dd", { "data-testid": "case-links" },
          ask ? ["The rep's ask: ", auditLink(ask, "case-ask-link")] : h("span", { class: "muted" }, "no ask record"),
          opened ? ["; opened: ", auditLink(opened, "case-audit-link")] : null,
          audit.length > 2
            ? ["; ", mayAudit ? h("a", { href: "#/compliance?case_id=" + encodeURIComponent(c.id), "data-testid": "case-audit-all" }, audit.length + " records for " + c.id) : audit.length + " records for " + c.id]
            : null)
      )
    );
    if (pv) {
      append(
        card,
        h("h3", {}, "Day-0 clock"),
        day0View(d.day0),
        h("h3", {}, "Minimum criteria"),
        d.valid_case ? validCaseView(d.valid_case) : null,
        h("h3", {}, "AE intake", d.intake_version ? " (version " + d.intake_version + ")" : ""),
        d.intake ? intakeFacts(d.intake, d.intake_prefilled) : null,
        c.state !== "closed" ? h("p", {}, h("a", { href: "#/reports/" + encodeURIComponent(c.id), "data-testid": "edit-intake" }, "Edit the intake")) : null
      );
    }
    append(
      card,
      h("h3", {}, "Question, verbatim"),
      h("blockquote", { "data-testid": "case-question" }, c.question || ""),
      flags.length ? [h("h3", {}, "Guard flags"), h("ul", {}, flags.map((f) => h("li", {}, (f.kind || "") + (f.rule_id ? " (" + f.rule_id + ")" : "") + (f.evidence ? ": “" + f.evidence + "”" : ""))))] : null
    );

    const out = h("div", { "aria-live": "polite", "data-testid": "case-action-result" });
    const DONE = { triage: "triaged", start: "started", resolve: "resolved and closed", reopen: "reopened" };
    const act = async (path, body, btn) => {
      clear(out);
      busy(btn, true);
      try {
        await api("POST", "/api/v1/cases/" + encodeURIComponent(c.id) + "/" + path, body);
        await reload().catch(() => {});
        await openCase(detail, c.id, document.querySelector('tr[data-case="' + CSS.escape(c.id) + '"]'), reload);
        detail.querySelector('[data-testid="case-card"]').prepend(h("p", { class: "notice", role: "status", "data-testid": "case-ok" }, "Saved: " + (path === "assign" ? "assigned to " + body.owner : DONE[path]) + "."));
      } catch (e) {
        out.appendChild(errorBox(e, "case-error"));
        busy(btn, false);
      }
    };

    if (c.state !== "closed") {
      let owners = [];
      try {
        owners = await caseOwners();
      } catch (e) {
        out.appendChild(errorBox(e, "case-error"));
      }
      const owner = h(
        "select",
        { id: "assign-owner", required: true, "data-testid": "assign-owner" },
        c.owner ? null : h("option", { value: "" }, "Choose a medical user"),
        owners.map((o) => h("option", { value: o.id, selected: o.id === c.owner }, o.name + " (" + o.id + ")"))
      );
      if (!c.owner && owners.some((o) => o.id === state.me.id)) owner.value = state.me.id;
      const assignBtn = h("button", { type: "submit", class: "secondary", "data-testid": "assign" }, "Assign");
      const assign = h("form", { id: "assign-form" }, h("div", { class: "row" }, field("Owner (users with the medical role)", owner)), h("div", { class: "actions" }, assignBtn));
      assign.addEventListener("submit", (ev) => {
        ev.preventDefault();
        act("assign", { owner: owner.value }, assignBtn);
      });
      const next = { new: ["triage", "Triage"], triaged: ["start", "Start work"], in_progress: ["resolve", "Resolve and close"] }[c.state];
      let step = null;
      if (next) {
        const isResolve = next[0] === "resolve";
        const note = h("textarea", { id: "step-note", rows: 2, required: isResolve, "data-testid": isResolve ? "resolution" : "step-note" });
        const btn = h("button", { type: "submit", "data-testid": "case-" + next[0] }, next[1]);
        step = h("form", { id: "step-form" }, field(isResolve ? "Resolution" : "Note (optional)", note, isResolve ? "How it was closed, e.g. reported to safety database as …" : null), h("div", { class: "actions" }, btn));
        step.addEventListener("submit", (ev) => {
          ev.preventDefault();
          const v = note.value.trim();
          act(next[0], isResolve ? { resolution: v } : v ? { note: v } : {}, btn);
        });
      }
      append(card, h("h3", {}, "Work the case"), assign, step);
    } else {
      const reason = h("textarea", { id: "reopen-reason", rows: 2, required: true, "data-testid": "reopen-reason" });
      const btn = h("button", { type: "submit", class: "secondary", "data-testid": "case-reopen" }, "Reopen");
      const reopen = h("form", { id: "reopen-form" }, field("Reason for reopening", reason, "What changed since it was closed (e.g. follow-up information received). Kept in the history and the audit log."), h("div", { class: "actions" }, btn));
      reopen.addEventListener("submit", (ev) => {
        ev.preventDefault();
        act("reopen", { reason: reason.value.trim() }, btn);
      });
      append(card, h("h3", {}, "Reopen the case"), reopen);
    }
    card.appendChild(out);
    const hist = d.history || [];
    append(
      card,
      h("h3", {}, "History"),
      h(
        "ol",
        { "data-testid": "case-history" },
        hist.map((e) => h("li", {}, timeEl(e.at), " — ", e.actor, ": ", e.action, e.from_state && e.from_state !== e.to_state ? " " + e.from_state + " → " + e.to_state : e.action === "opened" ? " (" + e.to_state + ")" : "", e.note ? " — " + e.note : ""))
      )
    );
    if (detail.dataset.turn !== turn) return;
    detail.appendChild(card);
    // Stacked (tablet, phone): the detail is below the list; bring it into view.
    if (row && window.matchMedia("(max-width: 1000px)").matches) detail.scrollIntoView({ block: "start" });
  }

  // ----------------------------------------------------------- reports ----

  RENDER.reports = async function (view) {
    const m = /^#\/reports\/([A-Za-z0-9-]+)/.exec(location.hash || "");
    if (m) return intakePage(view, m[1]);
    append(view, h("h1", {}, "My reports"), h("p", { class: "hint" }, "The adverse-event reports and Medical requests your questions opened, newest first. Add the report details Pharmacovigilance needs to a PV case."));
    const res = await api("GET", "/api/v1/cases?mine=true&sort=-created");
    const cases = res.cases || [];
    if (!cases.length) {
      view.appendChild(h("p", { class: "card muted", "data-testid": "no-reports" }, "You have not reported anything yet."));
      return;
    }
    view.appendChild(
      table(
        ["Case", "Status", "Opened", "What you reported"],
        cases.map((c) =>
          h(
            "tr",
            { "data-testid": "report-row", "data-case": c.id },
            h("td", {}, c.kind === "pharmacovigilance" ? h("a", { href: "#/reports/" + encodeURIComponent(c.id), "data-testid": "open-report" }, c.id) : c.id,
              h("div", { class: "case-sub" }, c.kind === "pharmacovigilance" ? "Adverse event (PV)" : "Medical request (MIR)")),
            h("td", {}, stateBadge(c.state, "report-state")),
            h("td", { class: "when" }, timeEl(c.created_at)),
            h("td", {}, String(c.question || "").slice(0, 140))
          )
        ),
        "reports"
      )
    );
  };

  /** The AE intake form of one PV case, pre-filled, with the minimum-criteria check live. */
  async function intakePage(view, id) {
    append(view, h("p", {}, h("a", { href: "#/reports" }, "← My reports")), h("h1", {}, "Report details for ", id));
    let d;
    try {
      d = await api("GET", "/api/v1/cases/" + encodeURIComponent(id) + "/intake");
    } catch (e) {
      // Issue 21.4: another person's case answers as one that does not exist.
      if (e.status !== 404) throw e;
      view.appendChild(
        h("div", { class: "card notfound", role: "alert", "data-testid": "report-not-found" },
          h("h2", {}, "Report not found"),
          h("p", {}, "There is no report " + id + " among the reports you made. Each person sees only their own reports; Medical and Pharmacovigilance see the case queue."),
          h("p", {}, h("a", { href: "#/reports" }, "Back to My reports")))
      );
      return;
    }
    const c = d.case;
    const i = d.intake || {};
    const r = i.reporter || {}, p = i.patient || {}, e = i.event || {}, s = i.seriousness || {};
    const opt = (list, v, none) => [h("option", { value: "" }, none), list.map(([k, t]) => h("option", { value: k, selected: k === v }, t))];
    const input = (idName, v, attrs) => h("input", Object.assign({ id: idName, type: "text", value: v === null || v === undefined ? "" : String(v), "data-testid": idName, autocomplete: "off" }, attrs || {}));
    const f = {
      name: input("intake-reporter-name", r.name, { maxlength: 200 }),
      role: h("select", { id: "intake-reporter-role", "data-testid": "intake-reporter-role" }, opt(REPORTER_ROLES, r.role, "Not given")),
      contact: input("intake-reporter-contact", r.contact, { maxlength: 200 }),
      identifier: input("intake-patient-identifier", p.identifier, { maxlength: 200 }),
      age: input("intake-patient-age", p.age, { type: "number", min: 0, max: 43920, step: 1, inputmode: "numeric" }),
      ageUnit: h("select", { id: "intake-patient-age-unit", "data-testid": "intake-patient-age-unit" }, [["years", "years"], ["months", "months"], ["weeks", "weeks"], ["days", "days"]].map(([k, t]) => h("option", { value: k, selected: k === (p.age_unit || "years") }, t))),
      sex: h("select", { id: "intake-patient-sex", "data-testid": "intake-patient-sex" }, opt(SEXES, p.sex, "Not given")),
      description: h("textarea", { id: "intake-event", rows: 3, maxlength: 2000, "data-testid": "intake-event" }, e.description || ""),
      onset: input("intake-onset", e.onset_date, { placeholder: "YYYY-MM-DD", maxlength: 10, inputmode: "numeric" }),
      product: input("intake-product", i.suspect_product, { maxlength: 200 }),
      serious: h("select", { id: "intake-serious", "data-testid": "intake-serious" }, h("option", { value: "", selected: s.serious !== true && s.serious !== false }, "Not yet assessed"), h("option", { value: "yes", selected: s.serious === true }, "Serious"), h("option", { value: "no", selected: s.serious === false }, "Not serious")),
      outcome: h("select", { id: "intake-outcome", "data-testid": "intake-outcome" }, opt(OUTCOMES, i.outcome, "Not given")),
    };
    const crit = CRITERIA.map(([k, t]) => h("input", { type: "checkbox", id: "intake-crit-" + k, value: k, checked: (s.criteria || []).includes(k), "data-testid": "intake-crit-" + k }));
    const collect = () => {
      const txt = (el) => (el.value.trim() ? el.value.trim() : null);
      const criteria = crit.filter((x) => x.checked).map((x) => x.value);
      const age = f.age.value.trim() === "" ? null : Number(f.age.value);
      return {
        reporter: { name: txt(f.name), role: f.role.value || null, contact: txt(f.contact) },
        patient: { identifier: txt(f.identifier), age: age, age_unit: age === null ? null : f.ageUnit.value, sex: f.sex.value || null },
        event: { description: txt(f.description), onset_date: txt(f.onset) },
        suspect_product: txt(f.product),
        seriousness: { serious: f.serious.value === "yes" ? true : f.serious.value === "no" ? false : criteria.length ? true : null, criteria },
        outcome: f.outcome.value || null,
      };
    };
    const check = h("div", { "aria-live": "polite" });
    const live = () => clear(check).appendChild(validCaseView(validCase(collect())));
    const summary = h(
      "section",
      { class: "card", "data-testid": "intake-case" },
      h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", {}, stateBadge(c.state, "intake-case-state")),
        h("dt", {}, "Reported"), h("dd", {}, timeEl(c.created_at)),
        h("dt", {}, "Product"), h("dd", {}, c.product || "")),
      h("h2", {}, "What you asked, verbatim"),
      h("blockquote", { "data-testid": "intake-question" }, c.question || ""),
      day0View(d.day0)
    );
    const out = h("div", { "aria-live": "polite", "data-testid": "intake-result" });
    const save = h("button", { type: "submit", "data-testid": "intake-save" }, "Save the report details");
    const form = h(
      "form",
      { class: "card intake", id: "intake-form", "data-testid": "intake-form", novalidate: true },
      d.intake_prefilled ? h("p", { class: "hint", "data-testid": "intake-prefilled" }, "Pre-filled from what you typed. Check each field, add what the HCP told you, then save.") : h("p", { class: "hint" }, "Saved as version " + d.intake_version + ". Saving again keeps the earlier versions."),
      h("fieldset", {}, h("legend", {}, "Reporter (who told you)"), h("div", { class: "row" }, field("Name or initials", f.name), field("Qualification", f.role), field("Phone or e-mail", f.contact))),
      h("fieldset", {}, h("legend", {}, "Patient (no names)"), h("div", { class: "row" }, field("Initials or patient number", f.identifier), field("Age", f.age), field("Age unit", f.ageUnit), field("Sex", f.sex))),
      h("fieldset", {}, h("legend", {}, "Event"), field("What happened", f.description), h("div", { class: "row" }, field("Onset date", f.onset, "YYYY-MM-DD, or YYYY-MM / YYYY if that is all that is known"), field("Suspect product", f.product))),
      h("fieldset", {}, h("legend", {}, "Seriousness and outcome"), h("div", { class: "row" }, field("Serious?", f.serious), field("Outcome", f.outcome)),
        h("div", { class: "criteria", role: "group", "aria-label": "Seriousness criteria" }, crit.map((x, n) => h("label", { class: "check", for: x.id }, x, " ", CRITERIA[n][1])))),
      h("h2", {}, "Minimum criteria for a valid case"),
      check,
      h("div", { class: "actions" }, save),
      out
    );
    form.addEventListener("input", live);
    form.addEventListener("change", live);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clear(out);
      busy(save, true);
      try {
        const res = await api("PUT", "/api/v1/cases/" + encodeURIComponent(c.id) + "/intake", collect());
        clear(check).appendChild(validCaseView(res.valid_case));
        out.appendChild(h("p", { class: "notice", role: "status", "data-testid": "intake-saved" }, "Saved as version " + res.intake_version + " of the report details for " + c.id + ". Pharmacovigilance sees them now."));
      } catch (e) {
        out.appendChild(errorBox(e, "intake-error"));
      }
      busy(save, false);
    });
    live();
    append(view, summary, form);
  }

  // -------------------------------------------------------- compliance ----

  RENDER.compliance = async function (view) {
    const m = /^#\/compliance\/record\/(\d+)/.exec(location.hash || "");
    if (m) return auditRecord(view, m[1]);
    append(view, h("h1", {}, "Compliance: audit, chain verification, evals"));

    // Chain verification first: also the page's access check (403 → denied).
    const verifyOut = h("div", { "aria-live": "polite", "data-testid": "verify-out" });
    const verifyBtn = h("button", { type: "button", "data-testid": "verify" }, "Verify the audit chain");
    const verify = async () => {
      clear(verifyOut);
      const v = await api("GET", "/api/v1/audit/verify");
      if (v.ok) {
        verifyOut.appendChild(
          h("p", { class: "notice", role: "status", "data-testid": "verify-ok" }, "Chain intact: " + v.checked + " record(s) checked." + (v.head ? " Head #" + v.head[0] + " " + String(v.head[1]).slice(0, 16) + "… (note it down to detect truncation)." : ""))
        );
      } else {
        const f = v.finding || {};
        verifyOut.appendChild(
          h(
            "div",
            { class: "error", role: "alert", "data-testid": "verify-bad" },
            h("strong", {}, "Tampering found"),
            h("p", { "data-testid": "finding-words" }, f.words || "The chain does not verify."),
            h("p", {}, v.checked + " record(s) before it verify. ", f.record ? h("a", { href: "#/compliance/record/" + f.record, "data-testid": "finding-link" }, "Open record " + f.record) : null)
          )
        );
      }
    };
    verifyBtn.addEventListener("click", () => verify().catch((e) => verifyOut.appendChild(errorBox(e))));
    append(view, h("section", { class: "card" }, h("h2", {}, "Chain verification"), h("div", { class: "actions" }, verifyBtn), verifyOut));
    await verify();

    // Audit search: filters, a date range, pages, export.
    const action = h("input", { id: "audit-action", type: "text", "data-testid": "audit-action", placeholder: "ask, email, approve…" });
    const actor = h("input", { id: "audit-actor", type: "text", "data-testid": "audit-actor" });
    const q = h("input", { id: "audit-q", type: "search", "data-testid": "audit-q" });
    // #/compliance?case_id=ID (a case's "records for" link) searches that case's records.
    const caseId = h("input", { id: "audit-case", type: "text", "data-testid": "audit-case", placeholder: "PV-…, MIR-…" });
    caseId.value = new URLSearchParams((location.hash || "").split("?")[1] || "").get("case_id") || "";
    const from = h("input", { id: "audit-from", type: "date", "data-testid": "audit-from" });
    const to = h("input", { id: "audit-to", type: "date", "data-testid": "audit-to" });
    const limit = h("select", { id: "audit-limit", "data-testid": "audit-limit" }, ["25", "50", "100", "250"].map((n) => h("option", { value: n, selected: n === "50" }, n)));
    const searchBtn = h("button", { type: "submit", "data-testid": "audit-search" }, "Search");
    const csvBtn = h("button", { type: "button", class: "secondary", "data-testid": "export-csv" }, "Export CSV");
    const jsonlBtn = h("button", { type: "button", class: "secondary", "data-testid": "export-jsonl" }, "Export JSON Lines");
    const exportOut = h("div", { "aria-live": "polite", "data-testid": "export-out" });
    const results = h("div", { "aria-live": "polite", "data-testid": "audit-results" });
    const form = h(
      "form",
      { class: "card", id: "audit-form" },
      h("h2", {}, "Audit log"),
      h("div", { class: "row" }, field("Action", action), field("Actor (user id)", actor), field("Text contains", q), field("Case", caseId)),
      h("div", { class: "row" }, field("From (UTC day)", from), field("To (UTC day, included)", to), field("Per page", limit)),
      h("div", { class: "actions" }, searchBtn, csvBtn, jsonlBtn),
      h("p", { class: "hint" }, "Exports hold every record of the date range (all of them when no date is set), in chain order; JSON Lines keeps the stored values exactly, for re-verifying the chain elsewhere."),
      exportOut,
      results
    );
    let offset = 0;
    // The newest search wins: a double click or a new search before the last
    // one answered showed two tables, in whatever order they came back.
    let searchTurn = 0;
    const search = async () => {
      const turn = ++searchTurn;
      clear(results);
      const qs = new URLSearchParams();
      if (action.value.trim()) qs.set("action", action.value.trim());
      if (actor.value.trim()) qs.set("actor", actor.value.trim());
      if (q.value.trim()) qs.set("q", q.value.trim());
      if (caseId.value.trim()) qs.set("case_id", caseId.value.trim());
      if (from.value) qs.set("from", from.value);
      if (to.value) qs.set("to", to.value);
      qs.set("limit", limit.value);
      qs.set("offset", String(offset));
      try {
        const r = await api("GET", "/api/v1/audit?" + qs);
        if (turn !== searchTurn) return;
        const recs = r.records || [];
        if (!recs.length) return results.appendChild(h("p", { class: "muted" }, "No records match."));
        const prev = h("button", { type: "button", class: "secondary", "data-testid": "audit-prev", disabled: offset === 0 }, "Newer");
        const next = h("button", { type: "button", class: "secondary", "data-testid": "audit-next", disabled: offset + recs.length >= r.total }, "Older");
        prev.addEventListener("click", () => {
          offset = Math.max(0, offset - Number(limit.value));
          search();
        });
        next.addEventListener("click", () => {
          offset += Number(limit.value);
          search();
        });
        // append, not appendChild: appendChild took the table and silently
        // dropped the pager (a second argument), so pages past the first
        // were out of reach.
        append(
          results,
          table(
            ["#", "When", "Actor", "Action", "Route", "Case", "Prompt", "Input / output"],
            recs.map((e) =>
              h(
                "tr",
                { "data-testid": "audit-row", "data-seq": e.seq },
                h("td", {}, h("a", { href: "#/compliance/record/" + e.seq, "data-testid": "record-link", "aria-label": "Open record " + e.seq }, String(e.seq))),
                h("td", { class: "when" }, fmtTime(e.at)),
                h("td", {}, e.actor, h("span", { class: "muted" }, " (" + e.role + ")")),
                h("td", {}, e.action),
                h("td", {}, e.route || ""),
                h("td", { class: "mono" }, e.case_id || ""),
                h("td", { class: "mono" }, e.prompt_version || ""),
                h("td", { class: "clip" }, String(e.input || e.output || "").slice(0, 80))
              )
            ),
            "audit-table"
          ),
          h("div", { class: "actions pager" }, prev, h("span", { "data-testid": "audit-page", role: "status" }, "Records " + (offset + 1) + "–" + (offset + recs.length) + " of " + r.total + " (newest first)"), next)
        );
      } catch (e) {
        if (turn === searchTurn) results.appendChild(errorBox(e));
      }
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      offset = 0;
      search();
    });
    const exportAs = async (format, btn) => {
      clear(exportOut);
      busy(btn, true);
      try {
        const qs = new URLSearchParams({ format });
        if (from.value) qs.set("from", from.value);
        if (to.value) qs.set("to", to.value);
        const res = await fetch("/api/v1/audit/export?" + qs, { headers: headers() });
        if (!res.ok) throw await errorFrom(res);
        const disp = res.headers.get("Content-Disposition") || "";
        const name = (/filename="([^"]+)"/.exec(disp) || [])[1] || "onlabel-audit." + format;
        const blob = await res.blob();
        const url = URL.createObjectURL(blob);
        const a = h("a", { href: url, download: name, class: "offscreen" }, name);
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        exportOut.appendChild(h("p", { class: "notice", role: "status", "data-testid": "export-done" }, "Downloaded " + name + " (" + (res.headers.get("X-Record-Count") || "?") + " records)."));
      } catch (e) {
        exportOut.appendChild(errorBox(e));
      } finally {
        busy(btn, false);
      }
    };
    csvBtn.addEventListener("click", () => exportAs("csv", csvBtn));
    jsonlBtn.addEventListener("click", () => exportAs("jsonl", jsonlBtn));
    view.appendChild(form);

    // Evals: a suite chosen from the list, its progress, its result in the page.
    const suites = (await api("GET", "/api/v1/evals/suites")).suites || [];
    const suite = h(
      "select",
      { id: "eval-suite", required: true, "data-testid": "eval-suite" },
      suites.map((s) => h("option", { value: s.name, selected: s.name === "demo" }, s.name + " (" + s.cases + " cases)"))
    );
    const runBtn = h("button", { type: "submit", "data-testid": "eval-run", disabled: !suites.length }, "Run eval");
    const runId = h("input", { id: "eval-id", type: "text", inputmode: "numeric", "data-testid": "eval-id", autocomplete: "off" });
    const loadBtn = h("button", { type: "button", class: "secondary", "data-testid": "eval-load" }, "Show run");
    const evalOut = h("div", { "aria-live": "polite", "data-testid": "eval-out" });
    const evalForm = h(
      "form",
      { class: "card", id: "eval-form" },
      h("h2", {}, "Eval runs"),
      h("div", { class: "row" }, field("Suite", suite, "The suites under evals/ (the sealed suites are never run from here)."), field("Or an earlier run id", runId)),
      h("div", { class: "actions" }, runBtn, loadBtn),
      evalOut
    );
    evalForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      busy(runBtn, true, "Running…");
      clear(evalOut);
      try {
        const job = await api("POST", "/api/v1/evals", { suite: suite.value });
        runId.value = job.id;
        await followJobs(evalOut, [job]);
        await showEvalRun(evalOut, job.id);
      } catch (e) {
        evalOut.appendChild(errorBox(e));
      } finally {
        busy(runBtn, false, "Run eval");
      }
    });
    loadBtn.addEventListener("click", () => {
      if (!runId.value.trim()) return runId.focus();
      clear(evalOut);
      showEvalRun(evalOut, runId.value.trim()).catch((e) => evalOut.appendChild(errorBox(e)));
    });
    view.appendChild(evalForm);
    search();
  };

  // ------------------------------------------------------------ source ----
  //
  // `#/source/DOC_ID?passage=N` (a citation's `source_url`): the cited
  // passage in its approved document, with the MLR number, expiry and section
  // heading. A PDF shows the cited page drawn by pdf.js (vendored from npm by
  // scripts/ui-deps.sh, served from /ui/vendor/) with the passage's words
  // highlighted; SPL, Markdown and text show the section the server rendered
  // (escaped there, and rebuilt here from an allow-list of tags).

  /** The document id and passage ordinal in the address. */
  function sourceTarget() {
    const m = /^#\/source\/([^?]+)(?:\?passage=(\d+))?/.exec(location.hash || "");
    if (!m) return null;
    try {
      return { docId: decodeURIComponent(m[1]), passage: m[2] !== undefined ? Number(m[2]) : null };
    } catch (_) {
      return null;
    }
  }

  /** Lower-case letters and digits only: how a passage is found among a PDF page's text items. */
  function comparable(s) {
    return String(s || "").normalize("NFKC").toLowerCase().replace(/[^\p{L}\p{N}]/gu, "");
  }

  /** The server's section HTML rebuilt from an allow-list (section, h2, p,
   *  mark; text nodes; no other attribute than the few below). */
  function sectionNodes(html) {
    const doc = new DOMParser().parseFromString(String(html || ""), "text/html");
    const TAGS = { SECTION: "section", H2: "h2", P: "p", MARK: "mark" };
    const copy = (node) => {
      if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.data);
      if (node.nodeType !== Node.ELEMENT_NODE) return null;
      const kids = [...node.childNodes].map(copy).filter(Boolean);
      const tag = TAGS[node.tagName];
      if (!tag) return kids;
      const attrs = {};
      if (tag === "section") attrs.class = "source-section";
      if (tag === "p" && node.classList.contains("source-parent")) attrs.class = "source-parent";
      if (tag === "h2") attrs["data-testid"] = "source-section-heading";
      if (tag === "mark") Object.assign(attrs, { class: "source-mark", "data-testid": "source-mark", "data-passage": node.getAttribute("data-passage") || "" });
      return h(tag, attrs, kids);
    };
    return [...doc.body.childNodes].map(copy).filter(Boolean);
  }

  function showSection(body, d) {
    const wrap = h("div", { class: "source-html", "data-testid": "source-section" }, sectionNodes(d.html));
    body.appendChild(wrap);
    const mark = wrap.querySelector("mark");
    if (mark) scrollToMark(mark);
  }

  /** Scrolls the highlight into view after the router has focused the
   *  page's heading, and again whenever the window is resized (a phone turned). */
  function scrollToMark(mark) {
    setTimeout(() => mark.scrollIntoView({ block: "center" }), 0);
    if (!state.sourceResize) {
      state.sourceResize = true;
      let timer = null;
      window.addEventListener("resize", () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          const m = location.hash.startsWith("#/source/") && document.querySelector("[data-testid=source-mark]");
          if (m) m.scrollIntoView({ block: "center" });
        }, 100);
      });
    }
  }

  const PDFJS = "/ui/vendor/pdfjs/pdf.min.mjs";
  const PDFJS_WORKER = "/ui/vendor/pdfjs/pdf.worker.min.mjs";

  /** pdf.js, loaded once (a module import: allowed by the CSP's script-src 'self'). */
  function pdfjs() {
    if (!state.pdfjs) {
      state.pdfjs = import(PDFJS).then((m) => {
        m.GlobalWorkerOptions.workerSrc = PDFJS_WORKER;
        return m;
      });
      state.pdfjs.catch(() => {
        state.pdfjs = null;
      });
    }
    return state.pdfjs;
  }

  /** Highlights the passage on a drawn page: finds its first words among the
   *  page's text items (letters and digits compared), then marks every item
   *  from there to the passage's end or the page's end, each as a <mark>
   *  placed over its words (positions in % of the page, so it scales). */
  function markPassage(lib, layer, viewport, items, passage) {
    const target = comparable(passage);
    let hay = "";
    const owner = [];
    items.forEach((it, i) => {
      const c = comparable(it.str);
      hay += c;
      for (let k = 0; k < c.length; k++) owner.push(i);
    });
    let at = -1;
    for (const n of [48, 24, 12]) {
      const key = target.slice(0, n);
      if (!key) break;
      at = hay.indexOf(key);
      if (at >= 0) break;
    }
    if (at < 0) return [];
    const picked = [...new Set(owner.slice(at, Math.min(hay.length, at + target.length)))];
    const marks = [];
    for (const i of picked) {
      const it = items[i];
      if (!it.str || !it.str.trim()) continue;
      const tx = lib.Util.transform(viewport.transform, it.transform);
      const fontH = Math.hypot(tx[2], tx[3]);
      const m = h("mark", { class: "pdf-mark", "data-testid": "source-mark" }, it.str);
      m.style.left = (100 * tx[4]) / viewport.width + "%";
      m.style.top = (100 * (tx[5] - fontH)) / viewport.height + "%";
      m.style.width = (100 * it.width * viewport.scale) / viewport.width + "%";
      m.style.height = (100 * fontH * 1.2) / viewport.height + "%";
      layer.appendChild(m);
      marks.push(m);
    }
    return marks;
  }

  async function showPdfPage(body, d, pageLabel) {
    let lib;
    try {
      lib = await pdfjs();
    } catch (e) {
      body.appendChild(
        h("p", { class: "note", "data-testid": "pdf-missing" }, "The PDF viewer is not part of this build (run scripts/ui-deps.sh, then rebuild). The cited section as text:")
      );
      return showSection(body, d);
    }
    const res = await fetch(d.pdf_url, { headers: headers({ Accept: "application/pdf" }) });
    if (!res.ok) throw await errorFrom(res);
    const data = new Uint8Array(await res.arrayBuffer());
    const pdf = await lib.getDocument({ data, isEvalSupported: false }).promise;
    const n = Math.min(Math.max(1, d.page), pdf.numPages);
    pageLabel.textContent = "Page " + n + " of " + pdf.numPages;
    const page = await pdf.getPage(n);
    const viewport = page.getViewport({ scale: 1.5 });
    const ratio = window.devicePixelRatio || 1;
    const canvas = h("canvas", { "data-testid": "source-canvas", role: "img", "aria-label": "Page " + n + " of " + d.doc_id + ", the cited passage highlighted" });
    canvas.width = Math.floor(viewport.width * ratio);
    canvas.height = Math.floor(viewport.height * ratio);
    const layer = h("div", { class: "pdf-marks" });
    const wrap = h("div", { class: "pdf-page", "data-testid": "source-pdf-page", "data-page": n }, canvas, layer);
    wrap.style.maxWidth = viewport.width + "px";
    body.appendChild(wrap);
    await page.render({ canvasContext: canvas.getContext("2d"), viewport, transform: ratio !== 1 ? [ratio, 0, 0, ratio, 0, 0] : null }).promise;
    wrap.dataset.rendered = "yes";
    const text = await page.getTextContent();
    const marks = markPassage(lib, layer, viewport, text.items, d.passage.text);
    if (marks.length) scrollToMark(marks[0]);
    else body.appendChild(h("p", { class: "note", "data-testid": "mark-missing" }, "The passage's first words were not found on this page as drawn; it is quoted above."));
  }

  RENDER.source = async function (view) {
    const t = sourceTarget();
    if (!t) {
      view.appendChild(h("h1", {}, "Approved source"));
      view.appendChild(errorBox({ message: "The address names no document: open a citation's approved document from an answer." }));
      return;
    }
    const d = await api("GET", "/api/v1/documents/" + encodeURIComponent(t.docId) + (t.passage !== null ? "?passage=" + t.passage : ""));
    document.title = d.heading + " — " + d.doc_id + " — OnLabel";
    const pageLabel = h("dd", { "data-testid": "source-page" }, d.page ? "Page " + d.page : "");
    const body = h("div", { class: "source-body", id: "source-body" });
    const back = h("a", { href: "#/ask", class: "source-back" }, "Back");
    back.addEventListener("click", (ev) => {
      if (history.length > 1) {
        ev.preventDefault();
        history.back();
      }
    });
    view.appendChild(
      h(
        "section",
        { class: "card source", "aria-labelledby": "source-title", "data-testid": "source-view", "data-doc": d.doc_id },
        h("p", { class: "eyebrow" }, "Approved source"),
        h("h1", { id: "source-title", "data-testid": "source-title" }, d.heading),
        h(
          "dl",
          { class: "facts source-facts" },
          h("dt", {}, "Document"),
          h("dd", { "data-testid": "source-doc" }, d.doc_id + " (" + d.product + ")"),
          h("dt", {}, "Section"),
          h("dd", { "data-testid": "source-heading" }, d.heading),
          h("dt", {}, "MLR number"),
          h("dd", { "data-testid": "source-mlr" }, d.mlr_number),
          h("dt", {}, "Valid until"),
          h("dd", { "data-testid": "source-expires" }, d.expires_on),
          d.page ? [h("dt", {}, "Page"), pageLabel] : null
        ),
        // A drawn page is an image: its passage as text too (the section view is text already).
        d.pdf_url && d.page
          ? h("details", { class: "source-quote-wrap" }, h("summary", {}, "The cited passage as text"), h("blockquote", { class: "source-quote", "data-testid": "source-quote" }, d.passage.text))
          : null,
        h("p", {}, back),
        body
      )
    );
    if (d.pdf_url && d.page) await showPdfPage(body, d, pageLabel);
    else showSection(body, d);
  };

  /** One eval run rendered in the page: metrics against thresholds, failing cases, provenance, the report download. */
  async function showEvalRun(box, id) {
    const job = await api("GET", "/api/v1/evals/" + encodeURIComponent(id));
    clear(box);
    if (job.state === "queued" || job.state === "running") {
      await followJobs(box, [job]);
      return showEvalRun(box, id);
    }
    if (job.state === "failed") return box.appendChild(h("div", { class: "error", role: "alert", "data-testid": "eval-failed" }, "Eval run " + id + " failed: " + (job.error || "unknown error")));
    const res = job.result || {};
    const sec = h("div", { class: "eval-run", "data-testid": "eval-report" });
    append(
      sec,
      h("p", { class: "notice", role: "status", "data-testid": "eval-summary" }, "Eval run " + id + " of " + job.suite + " by " + job.by + ", " + fmtTime(job.finished_at) + ": " + metricsText(res)),
      (job.checks || []).map((c) => [h("h3", {}, "Thresholds for " + c.kind + " on " + c.suite + ": ", h("span", { class: "state " + (c.passed ? "ok" : "bad") }, c.passed ? "met" : "not met")), checksTable(c.metrics || [])]),
      h("h3", {}, "Metrics"),
      table(
        ["Metric", "Value"],
        Object.keys(res)
          .filter((k) => typeof res[k] === "number")
          .map((k) => h("tr", {}, h("td", {}, k), h("td", {}, num(res[k])))),
        "eval-metrics"
      ),
      h("h3", {}, "Failing cases"),
      (res.failures || []).length ? h("ul", { "data-testid": "eval-failures" }, res.failures.map((f) => h("li", {}, h("strong", {}, f.id), ": ", f.why))) : h("p", { class: "muted" }, "None."),
      h("h3", {}, "Provenance"),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Audit record"), h("dd", {}, res.audit_id ? h("a", { href: "#/compliance/record/" + res.audit_id }, "#" + res.audit_id) : "—"),
        h("dt", {}, "Suite SHA-256"), h("dd", { class: "mono" }, (res.provenance && res.provenance.suite && res.provenance.suite.sha256) || ""),
        h("dt", {}, "Model"), h("dd", {}, (res.provenance && res.provenance.model && res.provenance.model.file) || "none (extractive)"),
        h("dt", {}, "Prompt"), h("dd", { class: "mono" }, (res.provenance && res.provenance.versions && res.provenance.versions.prompt) || "")
      )
    );
    const dl = h("button", { type: "button", class: "secondary", "data-testid": "eval-download" }, "Download the full report (HTML)");
    dl.addEventListener("click", async () => {
      busy(dl, true);
      try {
        const r = await fetch("/api/v1/evals/" + encodeURIComponent(id) + "/report", { headers: headers() });
        if (!r.ok) throw await errorFrom(r);
        const url = URL.createObjectURL(await r.blob());
        const a = h("a", { href: url, download: "eval-report-" + id + ".html", class: "offscreen" }, "report");
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      } catch (e) {
        // A dropped connection is shown too, not only an error answer.
        sec.appendChild(errorBox(e));
      } finally {
        busy(dl, false);
      }
    });
    sec.appendChild(h("div", { class: "actions" }, dl));
    box.appendChild(sec);
  }

  /** The full audit record: who, what, model and prompt with hashes, passages, flags, citations, output. */
  /** An e-signature record's manifestation (from its stored detail), or nothing. */
  function recordSignature(detail, e) {
    const sig = detail && typeof detail === "object" ? detail.signature : null;
    if (!sig || !sig.signer_name || !sig.signed_at) return null;
    const m = { printed_name: sig.signer_name, signer_id: sig.signer_id, signed_at_utc: sig.signed_at, meaning: meaningWords(sig.meaning), meaning_stored: sig.meaning, reason: sig.reason, record: e.prompt_version, record_sha256: e.prompt_sha256 };
    return h("section", { "data-testid": "record-signature" }, h("h2", {}, "Electronic signature"), manifestView(m, "record-manifestation"),
      detail.reauthenticated_with ? h("p", { class: "hint", "data-testid": "record-reauth" }, "The signer re-authenticated with: " + String(detail.reauthenticated_with).replace(/_/g, " ") + ".") : null);
  }

  async function auditRecord(view, seq) {
    const r = await api("GET", "/api/v1/audit/" + encodeURIComponent(seq));
    const e = r.record || {};
    const pre = (label, text) => h("pre", { tabindex: "0", "aria-label": label }, text === null || text === undefined || text === "" ? "—" : typeof text === "string" ? text : JSON.stringify(text, null, 2));
    const list = (items, empty) => (items && items.length ? h("ul", {}, items.map((x) => h("li", { class: "mono" }, typeof x === "string" ? x : JSON.stringify(x)))) : h("p", { class: "muted" }, empty));
    const cites = Array.isArray(r.citations) ? r.citations : [];
    append(
      view,
      h("p", {}, h("a", { href: "#/compliance", "data-testid": "back-to-audit" }, "← Back to the audit log")),
      h("h1", {}, "Audit record " + e.seq),
      h(
        "section",
        { class: "card", "data-testid": "audit-record", "data-seq": e.seq },
        r.hash_ok
          ? h("p", { class: "notice", "data-testid": "record-hash-ok" }, "This record matches its hash.")
          : h("p", { class: "error", role: "alert", "data-testid": "record-hash-bad" }, "This record does not match its hash: it was edited after it was written."),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "When"), h("dd", {}, fmtTime(e.at), " (", e.at, ")"),
          h("dt", {}, "Who"), h("dd", {}, e.actor + " (" + e.role + ")"),
          h("dt", {}, "Action"), h("dd", {}, e.action),
          h("dt", {}, "Route"), h("dd", {}, e.route || "—"),
          h("dt", {}, "Case"), h("dd", { class: "mono" }, e.case_id || "—"),
          h("dt", {}, "Model"), h("dd", { class: "mono" }, e.model || "none"),
          h("dt", {}, "Model SHA-256"), h("dd", { class: "mono" }, e.model_sha256 || "—"),
          h("dt", {}, "Prompt"), h("dd", { class: "mono" }, e.prompt_version || "none"),
          h("dt", {}, "Prompt SHA-256"), h("dd", { class: "mono" }, e.prompt_sha256 || "—"),
          h("dt", {}, "Hash"), h("dd", { class: "mono" }, e.hash),
          h("dt", {}, "Previous hash"), h("dd", { class: "mono" }, e.prev_hash)
        ),
        recordSignature(r.detail, e),
        h("h2", {}, "Input"), pre("Input", e.input),
        h("h2", {}, "Output"), pre("Output", e.output),
        h("h2", {}, "Citations"),
        cites.length
          ? table(["#", "Citation", "Title", "MLR number"], cites.map((c) => h("tr", {}, h("td", {}, String(c.n)), h("td", { class: "mono" }, c.label || ""), h("td", {}, c.title || ""), h("td", {}, c.mlr_number || ""))), "record-citations")
          : h("p", { class: "muted" }, "None."),
        h("h2", {}, "Passages retrieved"), list(Array.isArray(r.passages) ? r.passages : [], "None."),
        h("h2", {}, "Guard flags"), list(Array.isArray(r.flags) ? r.flags : [], "None."),
        h("h2", {}, "Timings (ms)"), pre("Timings", r.timings),
        h("h2", {}, "Detail"), pre("Detail", r.detail)
      )
    );
  }

  // ---------------------------------------------- single sign-on (oidc) ----

  // When the server has an identity provider ([oidc] in its config file,
  // GET /auth/oidc/config), the sign-in card offers it first: a plain link to
  // GET /auth/oidc/login, which redirects to the provider and comes back
  // signed in (a session cookie) to the page the person was on.
  async function offerSso() {
    let conf;
    try {
      const r = await fetch("/auth/oidc/config", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!r.ok) return;
      conf = await r.json();
    } catch (e) {
      return;
    }
    const card = $("signin");
    if (!conf || !conf.enabled || !card || $("sso-signin")) return;
    const back = location.pathname + location.hash;
    const link = h("a", { id: "sso-signin", "data-testid": "sso-signin", class: "sso-button",
      href: conf.login + "?return=" + encodeURIComponent(back) }, "Sign in with single sign-on");
    const block = h("div", { class: "sso-offer", id: "sso-offer" },
      link,
      h("p", { class: "hint" }, "Uses your organisation's account; your OnLabel role comes from your groups there."),
      h("p", { class: "sso-or", "aria-hidden": "true" }, "or"));
    const title = $("signin-title");
    if (title && title.parentNode === card) title.after(block);
    else card.prepend(block);
  }

  // ------------------------------------------------------------- start ----

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token").value.trim();
      if (t) signIn(t);
    });
    $("password-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const u = $("user-id").value.trim();
      const p = $("password").value;
      if (u && p) signInPassword(u, p);
    });
    $("sign-out").addEventListener("click", signOut);
    $("sign-out-everywhere").addEventListener("click", signOutEverywhere);
    window.addEventListener("hashchange", () => route());
    route();
  });
  document.addEventListener("DOMContentLoaded", offerSso);
})();
