// The playground's page: reads the workspace from the Slack emulator, sends what a person does.
"use strict";

const page = {
  state: null,
  user: sessionStorage.getItem("user") || "U0REQUESTER",
  thread: null, // {channel, ts}
  shownModal: "", // id + hash + errors of the modal on screen: re-drawn only when it changes
  homeAsked: "",
};

const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    toast(text || response.statusText);
    throw new Error(text);
  }
  return text ? JSON.parse(text) : {};
}

function toast(message) {
  const t = $("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

function place() {
  const hash = location.hash.slice(1) || "general";
  return hash;
}

function channelOf(placeName) {
  if (placeName === "dm") return "D" + page.user.slice(1);
  const found = page.state.channels.find((c) => c.name === placeName);
  return found ? found.id : null;
}

function context(where) {
  return {
    names: page.state.names,
    channelNames: Object.fromEntries(page.state.channels.map((c) => [c.id, c.name])),
    act: (action) => api("/api/action", { user: page.user, ...where, ...action }).catch(() => {}),
    confirm,
  };
}

function confirm(dialog, go) {
  const layer = $("modal-layer");
  const box = document.createElement("div");
  box.className = "modal confirm";
  box.dataset.testid = "confirm";
  const text = (o) => BlockKit.textHtml(o, context({}));
  box.innerHTML = `<header>${text(dialog.title || { type: "plain_text", text: "Are you sure?" })}</header>
    <div class="modal-body">${text(dialog.text)}</div>
    <footer><button class="bk-button" data-role="deny">${text(dialog.deny || { type: "plain_text", text: "Cancel" })}</button>
    <button class="bk-button ${dialog.style === "danger" ? "danger" : "primary"}" data-role="confirm">${text(dialog.confirm || { type: "plain_text", text: "Yes" })}</button></footer>`;
  const close = () => { box.remove(); if (!layer.children.length) layer.hidden = true; };
  box.querySelector('[data-role="deny"]').addEventListener("click", close);
  box.querySelector('[data-role="confirm"]').addEventListener("click", () => { close(); go(); });
  layer.hidden = false;
  layer.appendChild(box);
}

function avatar(name) {
  const a = document.createElement("div");
  a.className = "avatar";
  a.textContent = (name || "?").slice(0, 1).toUpperCase();
  if (name === "policy-bot") a.classList.add("bot");
  return a;
}

function timeOf(ts) {
  const d = new Date(Number(ts) * 1000);
  return d.toISOString().slice(11, 16);
}

function messageNode(m, where, options = {}) {
  const node = document.createElement("div");
  node.className = "message" + (options.ephemeral ? " ephemeral" : "");
  node.dataset.ts = m.ts;
  node.dataset.testid = options.ephemeral ? "ephemeral" : "message";
  const name = page.state.names[m.user] || (options.ephemeral ? "policy-bot" : m.user);
  node.appendChild(avatar(name));
  const body = document.createElement("div");
  body.className = "message-body";
  const head = document.createElement("div");
  head.className = "message-head";
  head.innerHTML = `<b>${BlockKit.escapeHtml(name)}</b>${name === "policy-bot" ? '<span class="app">APP</span>' : ""}
    <span class="time">${timeOf(m.ts)}</span>${m.edited ? '<span class="time">(edited)</span>' : ""}`;
  body.appendChild(head);
  if (options.ephemeral) {
    const note = document.createElement("div");
    note.className = "only-you";
    note.textContent = "👁 Only visible to you";
    body.appendChild(note);
  }
  const ctx = context(where);
  if (m.blocks && m.blocks.length) {
    body.appendChild(BlockKit.render(m.blocks, ctx));
  } else if (m.text) {
    const text = document.createElement("div");
    text.className = "bk-text";
    text.innerHTML = BlockKit.mrkdwn(m.text, ctx);
    body.appendChild(text);
  }
  for (const attachment of m.attachments || []) {
    const a = document.createElement("div");
    a.className = "attachment";
    a.style.borderLeftColor = attachment.color && /^#?[0-9a-f]{3,6}$/i.test(attachment.color)
      ? (attachment.color.startsWith("#") ? attachment.color : "#" + attachment.color) : "#ddd";
    if (attachment.blocks) a.appendChild(BlockKit.render(attachment.blocks, ctx));
    else if (attachment.text) a.innerHTML = BlockKit.mrkdwn(attachment.text, ctx);
    body.appendChild(a);
  }
  if (options.replies) {
    const r = document.createElement("button");
    r.className = "replies";
    r.dataset.testid = "replies";
    r.textContent = `${options.replies} ${options.replies === 1 ? "reply" : "replies"}`;
    r.addEventListener("click", () => { page.thread = { channel: where.channel, ts: m.ts }; draw(); });
    body.appendChild(r);
  }
  node.appendChild(body);
  return node;
}

function drawChannelList() {
  const list = $("channels");
  list.innerHTML = "";
  for (const c of page.state.channels) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `#${c.name}`;
    a.textContent = `# ${c.name}`;
    a.dataset.testid = `channel-${c.name}`;
    if (place() === c.name) a.className = "active";
    li.appendChild(a);
    list.appendChild(li);
  }
  for (const a of document.querySelectorAll("#sidebar a[href='#home'], #sidebar a[href='#dm']")) {
    a.className = place() === a.getAttribute("href").slice(1) ? "active" : "";
  }
}

function drawMessages() {
  const where = place();
  const box = $("messages");
  const keepBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.innerHTML = "";
  $("composer").hidden = where === "home";
  if (where === "home") {
    $("title").textContent = "policy-bot · Home";
    const home = page.state.home;
    if (!home) {
      box.innerHTML = '<div class="empty">Opening Home…</div>';
    } else {
      const view = document.createElement("div");
      view.className = "home";
      view.dataset.testid = "home";
      view.appendChild(BlockKit.render(home.definition.blocks, context({ view_id: home.id })));
      box.appendChild(view);
    }
    return;
  }
  let items;
  let channel;
  if (where === "dm") {
    $("title").textContent = "policy-bot · Messages";
    channel = channelOf("dm");
    items = page.state.dms.map((m) => ({ m, ephemeral: m.channel !== undefined && m.user === undefined }));
  } else {
    const c = page.state.channels.find((x) => x.name === where);
    if (!c) { $("title").textContent = "no such channel"; return; }
    $("title").textContent = `# ${c.name}`;
    channel = c.id;
    items = [
      ...c.messages.map((m) => ({ m })),
      ...c.ephemeral.map((m) => ({ m, ephemeral: true })),
    ];
  }
  const replies = {};
  for (const { m } of items) if (m.thread_ts) replies[m.thread_ts] = (replies[m.thread_ts] || 0) + 1;
  items = items.filter(({ m, ephemeral }) => ephemeral || !m.thread_ts);
  items.sort((a, b) => Number(a.m.ts) - Number(b.m.ts));
  if (!items.length) box.innerHTML = '<div class="empty">No messages yet. Try <code>/policy help</code>.</div>';
  for (const { m, ephemeral } of items) {
    const target = ephemeral
      ? { channel: m.channel || channel, message_ts: m.ts, ephemeral: true }
      : { channel, message_ts: m.ts };
    box.appendChild(messageNode(m, target, { ephemeral, replies: replies[m.ts] }));
  }
  if (keepBottom || drawMessages.first) box.scrollTop = box.scrollHeight;
  drawMessages.first = false;
}
drawMessages.first = true;

function drawThread() {
  const panel = $("thread");
  if (!page.thread) { panel.hidden = true; return; }
  const c = page.state.channels.find((x) => x.id === page.thread.channel);
  const messages = c ? c.messages : page.state.dms;
  const parent = messages.find((m) => m.ts === page.thread.ts);
  if (!parent) { panel.hidden = true; return; }
  panel.hidden = false;
  $("thread-title").textContent = c ? `Thread in #${c.name}` : "Thread";
  const box = $("thread-messages");
  box.innerHTML = "";
  box.appendChild(messageNode(parent, { channel: page.thread.channel, message_ts: parent.ts }));
  const divider = document.createElement("div");
  divider.className = "thread-divider";
  const replies = messages.filter((m) => m.thread_ts === parent.ts);
  divider.textContent = `${replies.length} ${replies.length === 1 ? "reply" : "replies"}`;
  box.appendChild(divider);
  for (const m of replies) box.appendChild(messageNode(m, { channel: page.thread.channel, message_ts: m.ts }));
}

function drawModal() {
  const layer = $("modal-layer");
  const views = page.state.views;
  const view = views[views.length - 1];
  const key = view ? `${view.id}:${view.hash}` : "";
  if (view && key === page.shownModal) {
    showErrors(layer.querySelector(".modal.view"), view.errors);
    return;
  }
  page.shownModal = key;
  for (const old of layer.querySelectorAll(".modal.view")) old.remove();
  if (!view) { layer.hidden = !layer.children.length; return; }
  const d = view.definition;
  const box = document.createElement("form");
  box.className = "modal view";
  box.dataset.testid = "modal";
  box.dataset.viewId = view.id;
  const inputs = [];
  const ctx = { ...context({ view_id: view.id }), inputs, errors: view.errors };
  const title = document.createElement("header");
  title.innerHTML = BlockKit.textHtml(d.title, ctx);
  const close = document.createElement("button");
  close.type = "button";
  close.className = "modal-x";
  close.textContent = "✕";
  close.addEventListener("click", () => api("/api/close", { user: page.user, view_id: view.id }));
  title.appendChild(close);
  const body = document.createElement("div");
  body.className = "modal-body";
  body.appendChild(BlockKit.render(d.blocks, ctx));
  const footer = document.createElement("footer");
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "bk-button";
  cancel.innerHTML = BlockKit.textHtml(d.close || { type: "plain_text", text: "Cancel" }, ctx);
  cancel.addEventListener("click", () => api("/api/close", { user: page.user, view_id: view.id }));
  footer.appendChild(cancel);
  if (d.submit) {
    const submit = document.createElement("button");
    submit.type = "submit";
    submit.className = "bk-button primary";
    submit.dataset.testid = "modal-submit";
    submit.innerHTML = BlockKit.textHtml(d.submit, ctx);
    footer.appendChild(submit);
  }
  box.addEventListener("submit", (event) => {
    event.preventDefault();
    api("/api/submit", { user: page.user, view_id: view.id, values: BlockKit.values(inputs) }).catch(() => {});
  });
  box.append(title, body, footer);
  layer.prepend(box);
  layer.hidden = false;
}

// The bot's `errors` answer, under each input, keeping what the person typed (as Slack does).
function showErrors(form, errors) {
  if (!form) return;
  for (const old of form.querySelectorAll(".bk-error")) old.remove();
  for (const block of form.querySelectorAll(".bk-input-block")) {
    const error = errors[block.dataset.blockId];
    if (!error) continue;
    const note = document.createElement("div");
    note.className = "bk-error";
    note.textContent = error;
    block.appendChild(note);
  }
}

function drawWorld() {
  const env = $("env");
  if (!env.options.length) {
    for (const name of page.state.environments) {
      const o = document.createElement("option");
      o.value = o.textContent = name;
      env.appendChild(o);
    }
    env.value = page.state.environments[page.state.environments.length - 1];
  }
  const days = page.state.clock_offset_days;
  $("clock").textContent = days ? `the bot's clock is ${+days.toFixed(2)} days ahead` : "the bot's clock is the real time";
  const t = page.state.timings;
  $("status").textContent = t.page ? `world ready in ${t.page.toFixed(1)} s` : "";
  $("alert-chain").textContent = page.state.alert_chain || "";
}

function drawUsers() {
  const select = $("user");
  if (select.options.length) return;
  for (const p of page.state.people) {
    const o = document.createElement("option");
    o.value = p.id;
    o.textContent = `${p.name} (${p.role})`;
    select.appendChild(o);
  }
  select.value = page.user;
}

function draw() {
  drawUsers();
  drawChannelList();
  drawMessages();
  drawThread();
  drawModal();
  drawWorld();
  document.body.dataset.revision = page.state.revision;
  document.body.dataset.user = page.user;
}

async function refresh() {
  const state = await api(`/api/state?user=${encodeURIComponent(page.user)}`);
  page.state = state;
  if (place() === "home" && page.homeAsked !== page.user) {
    page.homeAsked = page.user;
    api("/api/home", { user: page.user }).catch(() => {});
  }
  draw();
}

let refreshing = null;
let again = false;
function scheduleRefresh() {
  if (refreshing) { again = true; return; }
  refreshing = refresh().catch(() => {}).finally(() => {
    refreshing = null;
    if (again) { again = false; scheduleRefresh(); }
  });
}

function listen() {
  const events = new EventSource("/api/events");
  events.onmessage = () => scheduleRefresh();
  events.onopen = () => { document.body.dataset.live = "yes"; };
  events.onerror = () => { document.body.dataset.live = "no"; };
}

function worldTarget() {
  return {
    environment: $("env").value,
    namespace: $("wl-namespace").value.trim(),
    name: $("wl-name").value.trim(),
    image: $("wl-image").value.trim(),
    labelled: $("wl-labelled").checked,
  };
}

function wire() {
  $("user").addEventListener("change", (e) => {
    page.user = e.target.value;
    sessionStorage.setItem("user", page.user);
    page.shownModal = "";
    page.homeAsked = "";
    scheduleRefresh();
  });
  window.addEventListener("hashchange", () => { page.thread = null; drawMessages.first = true; scheduleRefresh(); });
  $("thread-close").addEventListener("click", () => { page.thread = null; draw(); });
  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("box").value.trim();
    if (!text) return;
    if (!text.startsWith("/policy")) {
      toast("The bot answers slash commands: type /policy … (try /policy help)");
      return;
    }
    $("box").value = "";
    const where = place();
    const channel = where === "home" ? channelOf("general") : channelOf(where);
    await api("/api/command", { user: page.user, channel, text }).catch(() => {});
  });
  $("create-workload").addEventListener("click", async () => {
    const out = $("workload-result");
    out.textContent = "creating…";
    const answer = await api("/api/world/workload", worldTarget());
    out.className = "result " + (answer.admitted ? "admitted" : "refused");
    out.textContent = `${answer.admitted ? "admitted" : "refused"} (${answer.code}): ${answer.message}`;
  });
  $("fire-alert").addEventListener("click", () => api("/api/world/alert", { ...worldTarget(), status: "firing" }));
  $("resolve-alert").addEventListener("click", () => api("/api/world/alert", { ...worldTarget(), status: "resolved" }));
  $("advance").addEventListener("click", async () => {
    const answer = await api("/api/world/clock", { days: Number($("days").value) });
    $("clock").dataset.advanced = String(answer.offset_days);  // the sweeps have run by now
  });
  $("show-objects").addEventListener("click", async () => {
    $("objects").textContent = "reading…";
    const answer = await api(`/api/world/objects?environment=${encodeURIComponent($("env").value)}`);
    $("objects").textContent = answer.text;
  });
}

wire();
scheduleRefresh();
listen();
