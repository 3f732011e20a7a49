// pickwise labelling page: one item at a time, keys 1-9 / s / z, an at-least-once outbox in localStorage.
//
// Every answer gets a client_uuid and is written to localStorage (one key per entry, since all tabs of
// the origin share it) BEFORE it is sent; sends go in order, one at a time, retrying every second; the
// server stores a client_uuid once, so a resend is harmless. Nothing here builds markup from strings: item text,
// table cells and class names go through textContent / createElement only (never HTML parsing).
"use strict";

(function () {
  const POST_HEADERS = { "Content-Type": "application/json", "X-Pickwise": "1" };
  const HISTORY_MAX = 8;
  const $ = (id) => document.getElementById(id);

  const S = {
    project: null, // project uuid: the storage keys' prefix
    classes: [], // [{name, key}] in hotkey order
    defaultAnnotator: "",
    tab: null, // this tab's id (sessionStorage: survives a reload, differs between tabs)
    item: null, // the item on screen, or null
    shownAt: 0,
    leasedAt: 0,
    history: [], // this tab's last answers, oldest first
    gen: 0, // bumped whenever the item on screen changes; a late /api/next answer for an old gen is dropped
    loading: false,
    again: false,
    flushing: null,
    stopped: false, // after a 401: nothing is sent until the link is reopened
    done: false,
    progress: null,
    training: false,
    seq: 0,
  };

  function uuid4() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    // crypto.randomUUID needs a secure context (http://127.0.0.1 is one; a LAN address is not)
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // ------------------------------------------------------------------------------------------ storage
  const prefix = () => `pickwise.${S.project}.`;
  const outboxPrefix = () => `${prefix()}outbox.`;
  const rejectedPrefix = () => `${prefix()}rejected.`;

  function keysWith(p) {
    const out = [];
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (k !== null && k.startsWith(p)) out.push(k);
    }
    return out.sort(); // keys hold a zero-padded time and counter: sorted = the order answers were given
  }

  function readJSON(storage, key, fallback) {
    try {
      const raw = storage.getItem(key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }

  function enqueue(body) {
    const key = `${outboxPrefix()}${String(Date.now()).padStart(15, "0")}.${String(S.seq++).padStart(6, "0")}.${body.client_uuid}`;
    localStorage.setItem(key, JSON.stringify({ tab: S.tab, body }));
    renderPending();
    return key;
  }

  function ownPending() {
    return keysWith(outboxPrefix()).filter((k) => (readJSON(localStorage, k, {}) || {}).tab === S.tab).length;
  }

  function saveHistory() {
    sessionStorage.setItem(`${prefix()}history`, JSON.stringify(S.history));
  }

  // ------------------------------------------------------------------------------------------ network
  function post(path, body) {
    return fetch(path, { method: "POST", headers: POST_HEADERS, body: JSON.stringify(body), credentials: "same-origin", cache: "no-store" });
  }

  function get(path) {
    return fetch(path, { credentials: "same-origin", cache: "no-store" });
  }

  async function detailOf(response) {
    try {
      const j = await response.json();
      return typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail);
    } catch (e) {
      return response.statusText || String(response.status);
    }
  }

  function unauthorized() {
    S.stopped = true;
    const n = keysWith(outboxPrefix()).length;
    banner(`The server does not accept this page any more. Reopen the link that \`pickwise label\` printed` +
      (n ? ` — your ${n} pending answer${n === 1 ? " is" : "s are"} kept and will be sent then.` : "."));
  }

  function banner(text) {
    const b = $("banner");
    b.textContent = text || "";
    b.hidden = !text;
  }

  // send the outbox, oldest first, one at a time; stop at the first failure and try again in a second
  function flush() {
    if (!S.flushing) S.flushing = sendAll().finally(() => { S.flushing = null; });
    return S.flushing;
  }

  async function sendAll() {
    let sent = 0;
    try {
      while (!S.stopped) {
        const keys = keysWith(outboxPrefix());
        if (!keys.length) break;
        const key = keys[0];
        const entry = readJSON(localStorage, key, null);
        if (!entry || !entry.body) { localStorage.removeItem(key); continue; }
        let r;
        try {
          r = await post("/api/label", entry.body);
        } catch (e) {
          setOnline(false);
          break;
        }
        setOnline(true);
        if (r.ok) {
          localStorage.removeItem(key);
          sent++;
        } else if (r.status === 401) {
          unauthorized();
          break;
        } else if (r.status >= 400 && r.status < 500) {
          const detail = await detailOf(r);
          localStorage.setItem(`${rejectedPrefix()}${key.slice(outboxPrefix().length)}`,
            JSON.stringify({ body: entry.body, status: r.status, detail }));
          localStorage.removeItem(key);
          renderRejected();
        } else {
          break; // 5xx: keep it, retry
        }
      }
    } finally {
      renderPending();
      renderHistory();
    }
    if (sent) refreshProgress();
    return sent;
  }

  let online = true;
  function setOnline(ok) {
    if (ok === online) return;
    online = ok;
    if (!S.stopped) banner(ok ? "" : "The server cannot be reached: your answers are kept here and sent when it is back.");
  }

  async function refreshProgress() {
    try {
      const r = await get("/api/progress");
      if (r.status === 401) return unauthorized();
      if (!r.ok) return;
      S.progress = await r.json();
      renderProgress();
    } catch (e) {
      /* offline: the counter waits */
    }
  }

  // ------------------------------------------------------------------------------------------ flow
  async function advance() {
    if (S.stopped) return;
    if (S.loading) { S.again = true; return; }
    S.loading = true;
    const gen = S.gen;
    try {
      await flush();
      if (gen !== S.gen || S.stopped) return;
      if (ownPending() > 0) { clearItem("waiting", "waiting for the server…"); return; }
      let r;
      try {
        r = await post("/api/next", { annotator: annotator(), tab: S.tab });
      } catch (e) {
        setOnline(false);
        clearItem("waiting", "waiting for the server…");
        return;
      }
      setOnline(true);
      if (r.status === 401) return unauthorized();
      if (!r.ok) { banner(`The server refused the next item: ${await detailOf(r)}`); return; }
      const j = await r.json();
      if (gen !== S.gen) return; // an undo put another item on screen meanwhile
      if (j.done) showDone(j.progress);
      else show(j);
      refreshProgress();
    } finally {
      S.loading = false;
      if (S.again) { S.again = false; if (!S.item) advance(); }
    }
  }

  function annotator() {
    return $("annotator").value.trim().slice(0, 64) || S.defaultAnnotator || "";
  }

  function answer(event, label) {
    if (!S.item || S.stopped) return;
    const it = S.item;
    const who = annotator();
    const body = {
      client_uuid: uuid4(), idx: it.idx, round_id: it.round_id, event, label: event === "label" ? label : null,
      lead_time_ms: Math.max(0, Math.round(performance.now() - S.shownAt)), annotator: who,
    };
    enqueue(body); // stored before it is sent
    S.history.push({ item: it, event, label: body.label, annotator: who, client_uuid: body.client_uuid });
    while (S.history.length > HISTORY_MAX) S.history.shift();
    saveHistory();
    S.gen++;
    clearItem("loading", "…");
    renderHistory();
    advance();
  }

  async function undo() {
    if (S.stopped || S.training) return;
    const last = S.history.pop();
    if (!last) return;
    saveHistory();
    enqueue({
      client_uuid: uuid4(), idx: last.item.idx, round_id: last.item.round_id, event: "retract", label: null,
      lead_time_ms: null, annotator: last.annotator,
    });
    S.gen++;
    show(last.item);
    renderHistory();
    await flush();
    try {
      const r = await post("/api/lease", { idx: last.item.idx, tab: S.tab });
      if (r.status === 401) unauthorized();
    } catch (e) {
      /* offline: the item stays on screen; the lease follows with the next answer */
    }
  }

  // ------------------------------------------------------------------------------------------ rendering
  function clearItem(state, text) {
    S.item = null;
    const el = $("item");
    el.removeAttribute("data-item-id");
    el.removeAttribute("data-idx");
    el.dataset.state = state;
    $("work").dataset.mode = state;
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = text || "";
    el.replaceChildren(p);
    $("meta").textContent = "";
    setButtons(false);
  }

  function show(item) {
    S.item = item;
    S.done = false;
    S.shownAt = performance.now();
    S.leasedAt = S.shownAt;
    $("done").hidden = true;
    const el = $("item");
    const parts = [];
    if (item.kind === "image" && item.media) {
      const img = document.createElement("img");
      img.src = item.media;
      img.alt = `item ${item.item_id}`;
      img.decoding = "async";
      parts.push(img);
    } else if (item.kind === "tabular" || (item.text == null && item.data && Object.keys(item.data).length)) {
      const table = document.createElement("table");
      for (const [k, v] of Object.entries(item.data || {})) {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.textContent = k;
        const td = document.createElement("td");
        td.textContent = v === null || typeof v !== "object" ? String(v) : JSON.stringify(v);
        tr.append(th, td);
        table.append(tr);
      }
      parts.push(table);
    } else {
      const p = document.createElement("p");
      p.className = "text";
      p.textContent = item.text == null ? "" : String(item.text);
      parts.push(p);
    }
    el.replaceChildren(...parts);
    el.dataset.state = "item";
    $("work").dataset.mode = "item";
    el.dataset.itemId = String(item.item_id);
    el.dataset.idx = String(item.idx);
    const rank = item.rank == null ? "" : `#${Number(item.rank) + 1}`;
    $("meta").textContent = [rank && item.batch_size ? `${rank} of ${item.batch_size}` : rank, `item ${item.item_id}`]
      .filter(Boolean).join(" · ");
    setButtons(true);
  }

  function showDone(progress) {
    S.done = true;
    S.progress = progress || S.progress;
    clearItem("done", "");
    const p = S.progress || {};
    const msg = $("done-msg");
    const train = $("train");
    if (p.round_id == null) {
      msg.textContent = "No round is open: pick a first batch with `pickwise next PROJECT_DIR`.";
      train.hidden = true;
    } else if (p.remaining > 0) {
      msg.textContent = `Nothing left for this tab: ${p.remaining} item${p.remaining === 1 ? " is" : "s are"} open in other tabs.`;
      train.hidden = true;
    } else {
      msg.textContent = `Batch done: round ${p.round_id}, ${p.labelled} labelled` +
        (p.skipped ? `, ${p.skipped} skipped` : "") + ` of ${p.batch_size}.`;
      train.hidden = false;
    }
    $("done").hidden = false;
    renderProgress();
  }

  function setButtons(on) {
    for (const b of $("buttons").querySelectorAll("button")) b.disabled = !on;
    $("skip").disabled = !on;
    $("undo").disabled = S.history.length === 0;
  }

  function renderProgress() {
    const p = S.progress;
    if (!p) return;
    $("progress").textContent = p.round_id == null ? "no open round" : `round ${p.round_id} · ${p.labelled} / ${p.batch_size}`;
  }

  function renderPending() {
    if (!S.project) return;
    const n = keysWith(outboxPrefix()).length;
    const el = $("pending");
    el.textContent = `pending: ${n}`;
    el.dataset.count = String(n);
  }

  function renderHistory() {
    const pending = new Set(keysWith(outboxPrefix()).map((k) => k.slice(k.lastIndexOf(".") + 1)));
    const ol = $("history");
    const rows = S.history.slice().reverse().map((h) => {
      const li = document.createElement("li");
      const what = document.createElement("span");
      what.className = h.event === "skip" ? "answer skip" : "answer";
      what.textContent = h.event === "skip" ? "skipped" : h.label;
      const which = document.createElement("span");
      which.className = "which";
      const snippet = h.item.kind === "text" && h.item.text ? ` “${String(h.item.text).slice(0, 48)}${String(h.item.text).length > 48 ? "…" : ""}”` : "";
      which.textContent = `item ${h.item.item_id}${snippet}`;
      li.append(what, which);
      if (pending.has(h.client_uuid)) li.classList.add("unsent");
      return li;
    });
    ol.replaceChildren(...rows);
    $("undo").disabled = S.history.length === 0;
  }

  function renderRejected() {
    if (!S.project) return;
    const keys = keysWith(rejectedPrefix());
    const rows = keys.map((k) => {
      const e = readJSON(localStorage, k, {}) || {};
      const b = e.body || {};
      const li = document.createElement("li");
      li.textContent = `${b.event || "?"} ${b.label || ""} on item ${b.idx} — ${e.status}: ${e.detail || ""}`;
      return li;
    });
    $("rejected").replaceChildren(...rows);
    $("rejected-box").hidden = keys.length === 0;
  }

  function buildButtons() {
    const box = $("buttons");
    const buttons = S.classes.map((c) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "class";
      if (c.key) {
        const kbd = document.createElement("kbd");
        kbd.textContent = c.key;
        b.append(kbd);
      }
      const name = document.createElement("span");
      name.textContent = c.name;
      b.append(name);
      b.addEventListener("click", () => { b.blur(); answer("label", c.name); });
      return b;
    });
    box.replaceChildren(...buttons);
    $("last-key").textContent = String(Math.max(1, Math.min(9, S.classes.length)));
  }

  // ------------------------------------------------------------------------------------------ training
  async function trainNext() {
    if (S.training) return;
    const status = $("train-status");
    let r;
    try {
      r = await post("/api/round/next", {});
    } catch (e) {
      status.textContent = "The server cannot be reached.";
      return;
    }
    if (r.status === 401) return unauthorized();
    if (r.status !== 202) { status.textContent = await detailOf(r); return; }
    S.training = true;
    $("train").disabled = true;
    status.textContent = "Training and picking the next batch…";
    pollTraining();
  }

  async function pollTraining() {
    const status = $("train-status");
    try {
      const r = await get("/api/round/status");
      if (r.status === 401) { S.training = false; return unauthorized(); }
      const j = await r.json();
      if (j.state === "running") { status.textContent = `${j.message}…`; setTimeout(pollTraining, 1000); return; }
      S.training = false;
      $("train").disabled = false;
      status.textContent = j.message || "";
      if (j.state === "done") { S.done = false; $("done").hidden = true; advance(); }
    } catch (e) {
      setTimeout(pollTraining, 1000);
    }
  }

  // ------------------------------------------------------------------------------------------ input
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) {
      if (e.key === "Enter" || e.key === "Escape") t.blur();
      return;
    }
    if (e.repeat) return; // a held key must not answer a run of items
    const k = e.key.toLowerCase();
    if (/^[1-9]$/.test(k)) {
      const c = S.classes[Number(k) - 1];
      if (c) { e.preventDefault(); answer("label", c.name); }
    } else if (k === "s") {
      e.preventDefault();
      answer("skip", null);
    } else if (k === "z" || k === "u") {
      e.preventDefault();
      undo();
    }
  }

  function tick() {
    if (S.stopped) return;
    // leases last 120 s on the server: renew the one on screen while someone is still reading it
    if (S.item && performance.now() - S.leasedAt > 60000) {
      S.leasedAt = performance.now();
      post("/api/lease", { idx: S.item.idx, tab: S.tab }).catch(() => {});
    }
    flush().then(() => {
      if (!S.item && !S.training && (!S.done || (S.progress && S.progress.remaining > 0))) advance();
    });
  }

  async function start() {
    let r;
    try {
      r = await get("/api/classes");
    } catch (e) {
      banner("The server cannot be reached; retrying…");
      setTimeout(start, 1000);
      return;
    }
    if (r.status === 401) {
      S.stopped = true;
      banner("This page needs the link that `pickwise label` printed (http://127.0.0.1:PORT/?token=…): open it again.");
      clearItem("stopped", "");
      return;
    }
    if (!r.ok) { banner(`The server answered ${r.status}; retrying…`); setTimeout(start, 1000); return; }
    banner("");
    const j = await r.json();
    S.project = j.project;
    S.classes = j.classes;
    S.defaultAnnotator = j.annotator || "";
    S.tab = sessionStorage.getItem(`${prefix()}tab`);
    if (!S.tab) {
      S.tab = uuid4();
      sessionStorage.setItem(`${prefix()}tab`, S.tab);
    }
    S.history = readJSON(sessionStorage, `${prefix()}history`, []) || [];
    const input = $("annotator");
    input.value = localStorage.getItem("pickwise.annotator") || S.defaultAnnotator;
    input.addEventListener("input", () => localStorage.setItem("pickwise.annotator", input.value.slice(0, 64)));
    buildButtons();
    $("skip").addEventListener("click", (e) => { e.currentTarget.blur(); answer("skip", null); });
    $("undo").addEventListener("click", (e) => { e.currentTarget.blur(); undo(); });
    $("train").addEventListener("click", (e) => { e.currentTarget.blur(); trainNext(); });
    $("clear-rejected").addEventListener("click", () => {
      for (const k of keysWith(rejectedPrefix())) localStorage.removeItem(k);
      renderRejected();
    });
    document.addEventListener("keydown", onKey);
    window.addEventListener("storage", () => { renderPending(); renderRejected(); });
    renderPending();
    renderRejected();
    renderHistory();
    clearItem("loading", "loading…");
    setInterval(tick, 1000);
    advance();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
