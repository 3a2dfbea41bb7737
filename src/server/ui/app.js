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
  const state = { me: null, products: null };

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
    if (!res.ok) throw await errorFrom(res);
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
    { id: "mlr", title: "MLR review", roles: ["mlr_reviewer", "admin"] },
    { id: "cases", title: "Medical / PV cases", roles: ["medical", "admin"] },
    { id: "compliance", title: "Compliance", roles: ["compliance", "admin"] },
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
      if (!allowed(p)) continue;
      list.appendChild(
        h("li", {}, h("a", { href: "#/" + p.id, id: "nav-" + p.id, "data-testid": "nav-" + p.id, "aria-current": p.id === cur.id ? "page" : null }, p.title))
      );
    }
    $("nav").hidden = false;
    $("who").hidden = false;
    $("who-name").textContent = state.me.name + " (" + state.me.id + ")";
    $("who-role").textContent = state.me.role;
  }

  function showSignin(message) {
    state.me = null;
    state.products = null;
    $("nav").hidden = true;
    $("who").hidden = true;
    clear($("view"));
    $("signin").hidden = false;
    const err = $("signin-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("token").focus();
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

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = "#/ask";
    showSignin("");
  }

  const RENDER = {};

  async function route() {
    if (!state.me) {
      if (token()) return signIn(token());
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
    // The sources the answer may come from: current, and (for a rep)
    // promotional; the rest are listed with why they are never cited.
    const showDocs = () => {
      clear(docs);
      const p = list.find((x) => x.name === select.value);
      if (!p) return;
      const medicalOk = state.me && state.me.role !== "rep";
      for (const d of p.documents) {
        const standing = d.standing || (d.status === "withdrawn" ? "withdrawn" : "current");
        const why = standing !== "current" ? standing : d.audience === "medical" && !medicalOk ? "Medical use only" : null;
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
    };
    select.addEventListener("change", showDocs);
    if (list.length === 1 || opts.required) select.value = list[0] ? list[0].name : "";
    showDocs();
    const wrap = field("Product", select, opts.required ? null : "Only this product's approved material is searched.");
    wrap.appendChild(docs);
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
   *  next; a generic sentence stands in only when it gives none. */
  function routeBanner(route, caseId, message) {
    const kinds = {
      pharmacovigilance: ["Routed to Pharmacovigilance", "This describes something that happened to a patient: it must be reported, and no promotional answer is given. Pharmacovigilance will contact you for the details."],
      medical: ["Routed to Medical Information", "Approved promotional material does not answer this (off-label, unsolicited or unclear). Medical Information will respond to the HCP directly."],
      refused: ["Not answered", "This request is outside what a rep may discuss (policy)."],
    };
    const k = kinds[route];
    if (!k) return null;
    return h(
      "div",
      { class: "banner " + route, role: "alert", "data-testid": "route-banner", "data-route": route },
      h("strong", {}, k[0]),
      caseId ? h("p", {}, "Case ", h("span", { class: "case-id", "data-testid": "case-id" }, caseId), " was opened.") : null,
      h("p", { "data-testid": "route-message" }, message && String(message).trim() ? message : k[1])
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

  RENDER.ask = async function (view) {
    append(view, h("h1", {}, "Ask about an approved label"));
    const picker = await productPicker({ id: "ask-product" });
    const hcp = h("input", { id: "ask-hcp", name: "hcp", type: "text", "data-testid": "ask-hcp", autocomplete: "off" });
    const q = h("textarea", { id: "ask-question", name: "question", required: true, rows: 3, "data-testid": "ask-question", maxlength: 2000 });
    const submit = h("button", { type: "submit", id: "ask-submit", "data-testid": "ask-submit" }, "Ask");
    const status = h("p", { class: "status", id: "ask-status", role: "status", "data-testid": "ask-status" });
    const form = h(
      "form",
      { class: "card", id: "ask-form" },
      h("div", { class: "row" }, picker.el, field("HCP (optional)", hcp, "Who asked, e.g. Dr. Shah.")),
      field("Question", q, "Type or paste the HCP's question. Ctrl+Enter asks."),
      h("div", { class: "actions" }, submit, status)
    );
    const region = h("section", { class: "card answer", id: "answer", "aria-live": "polite", "aria-label": "Answer", "data-testid": "answer" }, h("p", { class: "muted" }, "The cited answer appears here."));
    append(view, form, region);

    q.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const question = q.value.trim();
      if (!question) {
        status.textContent = "Type a question first.";
        q.focus();
        return;
      }
      busy(submit, true, "Asking…");
      status.textContent = "Checking the question and searching approved material…";
      clear(region);
      region.setAttribute("aria-busy", "true");
      const draft = h("div", { class: "streaming", "data-testid": "answer-streaming" });
      region.appendChild(draft);
      const body = { question };
      if (picker.select.value) body.product = picker.select.value;
      if (hcp.value.trim()) body.hcp = hcp.value.trim();
      let answer = null;
      try {
        await stream("/api/v1/ask", body, (name, data) => {
          if (name === "sentence") {
            if (!draft.firstChild) region.scrollIntoView({ block: "nearest" });
            draft.appendChild(h("p", {}, data && data.text !== undefined ? data.text : String(data)));
            status.textContent = "Answering…";
          } else if (name === "answer") {
            answer = data;
            showAnswer(region, data);
            region.scrollIntoView({ block: "nearest" });
          } else if (name === "done") {
            status.textContent = doneText(data || answer || {});
          } else if (name === "error") {
            const err = (data && data.error) || {};
            throw new ApiError(500, err.code, err.message || "The answer failed.");
          }
        });
        if (!answer) throw new ApiError(500, "no_answer", "The stream ended without an answer.");
      } catch (e) {
        clear(region);
        region.appendChild(errorBox(e, "ask-error"));
        status.textContent = "";
        if (e.status === 401) showSignin("Your session ended: " + e.message);
      } finally {
        region.removeAttribute("aria-busy");
        busy(submit, false, "Ask");
      }
    });
  };

  function doneText(d) {
    if (d.route === "answer") return "Answered from approved material" + (d.audit_id ? " (audit #" + d.audit_id + ")." : ".");
    if (d.route === "pharmacovigilance") return "Routed to Pharmacovigilance" + (d.case_id ? ", case " + d.case_id : "") + ".";
    if (d.route === "medical") return "Routed to Medical Information" + (d.case_id ? ", case " + d.case_id : "") + ".";
    return "Not answered (policy).";
  }

  function showAnswer(region, a) {
    clear(region);
    region.dataset.route = a.route;
    const banner = routeBanner(a.route, a.case_id, a.route === "answer" ? null : a.answer);
    if (banner) region.appendChild(banner);
    if (a.route === "answer") {
      region.appendChild(h("div", { "data-testid": "answer-text", id: "answer-text" }, cited(a.answer, a.citations)));
      const src = sourcesList(a.citations);
      if (src) region.appendChild(src);
      const copyStatus = h("span", { class: "status", role: "status", "data-testid": "copy-status" });
      region.appendChild(
        h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "copy-answer", "data-testid": "copy-answer", onclick: () => copyText(answerAsText(a), copyStatus) }, "Copy answer with sources"), copyStatus)
      );
    }
    const meta = [];
    if (a.mode && a.route === "answer") meta.push(a.mode === "extractive" ? "quoted from approved text (extractive)" : "generated and verified");
    if (a.prompt_version) meta.push("prompt " + a.prompt_version);
    if (a.audit_id) meta.push("audit #" + a.audit_id);
    if (a.timings_ms) {
      const t = a.timings_ms;
      const total = (t.guard || 0) + (t.retrieve || 0) + (t.generate || 0);
      meta.push(Math.round(total) + " ms");
    }
    if (meta.length) region.appendChild(h("p", { class: "meta", "data-testid": "answer-meta" }, meta.join(" · ")));
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
      busy(submit, true, "Drafting…");
      clear(out);
      try {
        const d = await api("POST", "/api/v1/email", { product: picker.select.value, hcp: hcp.value.trim(), topics: topics.value.trim() });
        showEmail(out, d);
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
      busy(submit2, true, "Summarizing…");
      clear(out2);
      try {
        const body = { product: picker2.select.value, notes: notes.value };
        if (hcp2.value.trim()) body.hcp = hcp2.value.trim();
        showSummary(out2, await api("POST", "/api/v1/summarize", body));
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
      (items || []).map((s) => h("li", {}, s.text, " ", byN.has(Number(s.n)) ? chip(byN.get(Number(s.n)), false) : "[" + s.n + "]"))
    );
  }

  function showEmail(out, d) {
    clear(out);
    const card = h("div", { class: "card", "data-testid": "email-draft" });
    const banner = routeBanner(d.route, d.case_id, d.message);
    if (banner) card.appendChild(banner);
    if (d.route === "answer") {
      if (d.banner) card.appendChild(h("div", { class: "banner draft", role: "note", "data-testid": "draft-banner" }, d.banner));
      card.appendChild(h("p", {}, h("strong", {}, "Subject: "), h("span", { "data-testid": "email-subject" }, d.subject || "")));
      if (d.statements && d.statements.length) append(card, h("h3", {}, "Statements"), statementList(d.statements, d.references, "email-statements"));
      if (d.isi && d.isi.length) append(card, h("h3", {}, "Important Safety Information"), statementList(d.isi, d.references, "email-isi"));
      const src = sourcesList(d.references);
      if (src) card.appendChild(src);
      const bodyId = "email-body";
      card.appendChild(h("h3", { id: bodyId + "-label" }, "Full text"));
      card.appendChild(h("pre", { id: bodyId, "data-testid": bodyId, "aria-labelledby": bodyId + "-label", tabindex: "0" }, d.body || ""));
      const st = h("span", { class: "status", role: "status", "data-testid": "email-copy-status" });
      card.appendChild(h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", "data-testid": "copy-email", onclick: () => copyText((d.subject ? "Subject: " + d.subject + "\n\n" : "") + (d.body || ""), st) }, "Copy email"), st));
    } else if (!banner && d.message) {
      card.appendChild(h("p", {}, d.message));
    }
    if (d.audit_id) card.appendChild(h("p", { class: "meta" }, "audit #" + d.audit_id));
    out.appendChild(card);
  }

  function showSummary(out, s) {
    clear(out);
    const card = h("div", { class: "card", "data-testid": "visit-summary" });
    const banner = routeBanner(s.route, s.case_id, s.message);
    if (banner) card.appendChild(banner);
    else if (s.message) card.appendChild(h("p", {}, s.message));
    const list = (title, items, testid) => (items && items.length ? [h("h3", {}, title), h("ul", { "data-testid": testid }, items.map((t) => h("li", {}, t)))] : null);
    append(card, list("Topics", s.topics, "summary-topics"), list("HCP questions", s.hcp_questions, "summary-questions"), list("Follow-ups", s.follow_ups, "summary-followups"));
    if (s.statements && s.statements.length) append(card, h("h3", {}, "Supported statements"), statementList(s.statements, s.references, "summary-statements"));
    append(card, list("Removed (no approved support)", s.removed, "summary-removed"));
    const src = sourcesList(s.references);
    if (src) card.appendChild(src);
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
    const id = versionId(v);
    let d;
    try {
      d = await api("GET", "/api/v1/prompts/" + encodeURIComponent(id));
    } catch (e) {
      detail.appendChild(errorBox(e));
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
      sigs.length ? h("ul", { "data-testid": "signatures" }, sigs.map((s) => h("li", {}, sigText(s)))) : h("p", { class: "muted" }, "Not signed.")
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
          reopen();
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
          reopen();
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
      const own = false;
      const reason = h("textarea", { id: "sign-reason", rows: 2, required: true, "data-testid": "sign-reason" });
      const secret = h("input", { id: "sign-secret", type: "password", required: true, autocomplete: "off", "data-testid": "sign-secret" });
      const ack = h("input", { id: "sign-ack", type: "checkbox", required: true, "data-testid": "sign-ack" });
      const approve = h("button", { type: "submit", value: "approve", "data-testid": "approve" }, "Approve and sign");
      const reject = h("button", { type: "submit", value: "reject", class: "danger", "data-testid": "reject" }, "Reject and sign");
      const form = h(
        "form",
        { id: "sign-form", "aria-describedby": "sign-explain" },
        h("h3", {}, "Electronic signature"),
        h("p", { id: "sign-explain", class: "hint" }, "Your signature records your full name, the time (UTC), its meaning and your reason, bound to this version's SHA-256. Re-enter your own token to sign."),
        own ? h("p", { class: "error", role: "alert" }, "You proposed " + id + ": another reviewer must sign it.") : null,
        field("Reason", reason, "e.g. Matches MLR-2026-114"),
        field("Your token (e-signature)", secret),
        h("div", { class: "field" }, h("label", { for: "sign-ack" }, ack, " I understand this electronic signature is the legally binding equivalent of my handwritten signature.")),
        h("div", { class: "actions" }, approve, reject)
      );
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
          const r = await api("POST", "/api/v1/prompts/" + encodeURIComponent(id) + "/" + action, { reason: reason.value.trim(), secret: secret.value });
          secret.value = "";
          const v = r.version || {};
          out.appendChild(
            h(
              "div",
              { class: "notice", role: "status", "data-testid": "sign-ok" },
              h("strong", {}, id + " " + (action === "approve" ? "approved" : "rejected")),
              h("p", {}, "Signed: ", r.signature ? sigText(r.signature) : ""),
              v.state ? h("p", {}, "State: ", stateBadge(v.state, "signed-state")) : null
            )
          );
          form.remove();
        } catch (e) {
          out.appendChild(errorBox(e, "sign-error"));
        } finally {
          busy(approve, false);
          busy(reject, false);
        }
      });
      box.appendChild(form);
    }
    box.appendChild(out);
    return box;
  }

  // ------------------------------------------------------------- cases ----

  RENDER.cases = async function (view) {
    append(view, h("h1", {}, "Medical Information and Pharmacovigilance cases"));
    const st = h("select", { id: "cases-state", "data-testid": "cases-state" }, h("option", { value: "" }, "Any"), ["new", "triaged", "in_progress", "closed"].map((s) => h("option", { value: s }, s.replace("_", " "))));
    const kind = h("select", { id: "cases-kind", "data-testid": "cases-kind" }, h("option", { value: "" }, "Any"), h("option", { value: "pharmacovigilance" }, "Pharmacovigilance (PV)"), h("option", { value: "medical_information" }, "Medical Information (MIR)"));
    const refresh = h("button", { type: "submit", "data-testid": "cases-refresh" }, "Show cases");
    const list = h("div", { id: "cases-list", "aria-live": "polite" });
    const detail = h("section", { id: "case-detail", "aria-live": "polite", "data-testid": "case-detail" });
    const form = h("form", { class: "card", id: "cases-filter" }, h("div", { class: "row" }, field("State", st), field("Kind", kind)), h("div", { class: "actions" }, refresh));
    const load = async () => {
      clear(list);
      const qs = new URLSearchParams();
      if (st.value) qs.set("state", st.value);
      if (kind.value) qs.set("kind", kind.value);
      const res = await api("GET", "/api/v1/cases" + (qs.toString() ? "?" + qs : ""));
      const cases = res.cases || [];
      const now = Date.now();
      if (!cases.length) {
        list.appendChild(h("p", { class: "card muted", "data-testid": "no-cases" }, "No cases match."));
        return;
      }
      list.appendChild(
        table(
          ["Case", "Kind", "State", "Owner", "Product", "Reporter", "Due", "Question"],
          cases.map((c) => {
            const overdue = c.overdue !== undefined ? c.overdue : c.state !== "closed" && c.due_at && new Date(c.due_at).getTime() < now;
            return h(
              "tr",
              { "data-testid": "case-row", "data-case": c.id },
              h("td", {}, h("button", { type: "button", class: "secondary", "data-testid": "open-case", "data-case": c.id, onclick: (ev) => openCase(detail, c.id, ev.target.closest("tr"), load) }, c.id)),
              h("td", {}, c.kind === "pharmacovigilance" ? "PV" : "MIR"),
              h("td", {}, stateBadge(c.state, "case-state")),
              h("td", {}, c.owner || h("span", { class: "muted" }, "unassigned")),
              h("td", {}, c.product || ""),
              h("td", {}, c.reporter || ""),
              h("td", { class: "when" }, fmtTime(c.due_at), overdue ? [" ", stateBadge("overdue")] : ""),
              h("td", {}, String(c.question || "").slice(0, 120))
            );
          }),
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
    append(view, form, list, detail);
    await load(); // a 403 here is the page's "You do not have access"
  };

  async function openCase(detail, id, row, reload) {
    for (const r of document.querySelectorAll("tr.selected")) r.classList.remove("selected");
    if (row) row.classList.add("selected");
    clear(detail);
    let d;
    try {
      d = await api("GET", "/api/v1/cases/" + encodeURIComponent(id));
    } catch (e) {
      detail.appendChild(errorBox(e));
      return;
    }
    const c = d.case;
    const card = h("div", { class: "card", "data-testid": "case-card", "data-case": c.id });
    const flags = Array.isArray(c.flags) ? c.flags : [];
    append(
      card,
      h("h2", {}, c.id, " ", stateBadge(c.state, "case-detail-state")),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Kind"), h("dd", {}, c.kind === "pharmacovigilance" ? "Pharmacovigilance" : "Medical Information"),
        h("dt", {}, "Owner"), h("dd", { "data-testid": "case-owner" }, c.owner || "unassigned"),
        h("dt", {}, "Reporter"), h("dd", {}, c.reporter || ""),
        h("dt", {}, "HCP"), h("dd", {}, c.hcp || ""),
        h("dt", {}, "Product"), h("dd", {}, c.product || ""),
        c.suspect_product ? [h("dt", {}, "Suspect product"), h("dd", {}, c.suspect_product)] : null,
        c.patient ? [h("dt", {}, "Patient"), h("dd", {}, c.patient)] : null,
        c.event ? [h("dt", {}, "Event"), h("dd", {}, c.event)] : null,
        h("dt", {}, "Opened"), h("dd", {}, fmtTime(c.created_at)),
        h("dt", {}, "Due"), h("dd", {}, fmtTime(c.due_at)),
        c.resolution ? [h("dt", {}, "Resolution"), h("dd", { "data-testid": "case-resolution" }, c.resolution)] : null
      ),
      h("h3", {}, "Question, verbatim"),
      h("blockquote", { "data-testid": "case-question" }, c.question || ""),
      flags.length ? [h("h3", {}, "Guard flags"), h("ul", {}, flags.map((f) => h("li", {}, (f.kind || "") + (f.rule_id ? " (" + f.rule_id + ")" : "") + (f.evidence ? ": “" + f.evidence + "”" : ""))))] : null
    );

    const out = h("div", { "aria-live": "polite", "data-testid": "case-action-result" });
    const DONE = { triage: "triaged", start: "started", resolve: "resolved and closed" };
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
      const owner = h("input", { id: "assign-owner", type: "text", required: true, value: c.owner || state.me.id, "data-testid": "assign-owner", autocomplete: "off" });
      const assignBtn = h("button", { type: "submit", class: "secondary", "data-testid": "assign" }, "Assign");
      const assign = h("form", { id: "assign-form" }, h("div", { class: "row" }, field("Owner (user id)", owner)), h("div", { class: "actions" }, assignBtn));
      assign.addEventListener("submit", (ev) => {
        ev.preventDefault();
        act("assign", { owner: owner.value.trim() }, assignBtn);
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
    }
    card.appendChild(out);
    const hist = d.history || [];
    append(
      card,
      h("h3", {}, "History"),
      h(
        "ol",
        { "data-testid": "case-history" },
        hist.map((e) => h("li", {}, fmtTime(e.at), " — ", e.actor, ": ", e.action, e.from_state && e.from_state !== e.to_state ? " " + e.from_state + " → " + e.to_state : e.action === "opened" ? " (" + e.to_state + ")" : "", e.note ? " — " + e.note : ""))
      )
    );
    detail.appendChild(card);
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
      h("div", { class: "row" }, field("Action", action), field("Actor (user id)", actor), field("Text contains", q)),
      h("div", { class: "row" }, field("From (UTC day)", from), field("To (UTC day, included)", to), field("Per page", limit)),
      h("div", { class: "actions" }, searchBtn, csvBtn, jsonlBtn),
      h("p", { class: "hint" }, "Exports hold every record of the date range (all of them when no date is set), in chain order; JSON Lines keeps the stored values exactly, for re-verifying the chain elsewhere."),
      exportOut,
      results
    );
    let offset = 0;
    const search = async () => {
      clear(results);
      const qs = new URLSearchParams();
      if (action.value.trim()) qs.set("action", action.value.trim());
      if (actor.value.trim()) qs.set("actor", actor.value.trim());
      if (q.value.trim()) qs.set("q", q.value.trim());
      if (from.value) qs.set("from", from.value);
      if (to.value) qs.set("to", to.value);
      qs.set("limit", limit.value);
      qs.set("offset", String(offset));
      try {
        const r = await api("GET", "/api/v1/audit?" + qs);
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
        results.appendChild(
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
        results.appendChild(errorBox(e));
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
      const r = await fetch("/api/v1/evals/" + encodeURIComponent(id) + "/report", { headers: headers() });
      if (!r.ok) return sec.appendChild(errorBox(await errorFrom(r)));
      const url = URL.createObjectURL(await r.blob());
      const a = h("a", { href: url, download: "eval-report-" + id + ".html", class: "offscreen" }, "report");
      document.body.appendChild(a);
      a.click();
      a.remove();
    });
    sec.appendChild(h("div", { class: "actions" }, dl));
    box.appendChild(sec);
  }

  /** The full audit record: who, what, model and prompt with hashes, passages, flags, citations, output. */
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

  // ------------------------------------------------------------- start ----

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token").value.trim();
      if (t) signIn(t);
    });
    $("sign-out").addEventListener("click", signOut);
    window.addEventListener("hashchange", () => route());
    route();
  });
})();
