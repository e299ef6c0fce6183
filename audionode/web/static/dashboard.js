// The live dashboard: asks for the password once (kept in sessionStorage, never in a URL),
// sends it as the first frame of /dashboard/ws, then renders each overview the node pushes.
// Dependency-free; the chart is drawn on a canvas by hand.
"use strict";

const KEY = "audionode.password";
const WINDOW_S = 300;
const points = []; // {t, sent, misses}: rates per second between two engine reports
let last = null;   // the previous cumulative frame counters {t, sent, misses}
let socket = null;
let latest = null;

function fmtTime(s) {
  if (s === null || s === undefined) return "–";
  s = Math.max(0, Math.floor(s));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function connect(password) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/dashboard/ws`);
  socket.onopen = () => socket.send(JSON.stringify({ password }));
  socket.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.error) {
      sessionStorage.removeItem(KEY);
      showLogin(msg.error);
      return;
    }
    document.getElementById("login").classList.add("hidden");
    document.getElementById("board").classList.remove("hidden");
    document.getElementById("link").textContent = "live";
    render(msg.overview);
  };
  socket.onclose = () => {
    document.getElementById("link").textContent = "disconnected";
    if (sessionStorage.getItem(KEY)) setTimeout(() => connect(sessionStorage.getItem(KEY)), 2000);
  };
}

function showLogin(error) {
  document.getElementById("login").classList.remove("hidden");
  document.getElementById("board").classList.add("hidden");
  document.getElementById("login-error").textContent = error || "";
}

function sample(view) {
  const f = view.frames || {};
  const now = { t: view.at, sent: f.sent || 0, misses: (f.nulled || 0) + (f.deficit || 0) };
  // The engine reports every few seconds: a point is added when its counters moved (or after
  // 5 s without a report, a zero), so rates are not sawtooths of the report interval.
  if (last === null || now.sent < last.sent) { last = now; return; }
  const dt = now.t - last.t;
  if (now.sent === last.sent && now.misses === last.misses && dt < 5) return;
  if (dt <= 0) return;
  points.push({ t: now.t, sent: (now.sent - last.sent) / dt, misses: Math.max(0, now.misses - last.misses) / dt });
  last = now;
  while (points.length && points[0].t < now.t - WINDOW_S) points.shift();
}

function drawChart(now) {
  const canvas = document.getElementById("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 34;
  ctx.clearRect(0, 0, w, h);
  const top = Math.max(60, ...points.map((p) => Math.max(p.sent, p.misses)));
  ctx.strokeStyle = "#2a323b"; ctx.fillStyle = "#8b96a1"; ctx.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + (h - pad) * (i / 4);
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke();
    ctx.fillText(String(Math.round(top * (1 - i / 4))), 2, y + 4);
  }
  const x = (t) => pad + (w - pad - 4) * (1 - (now - t) / WINDOW_S);
  const y = (v) => pad / 2 + (h - pad) * (1 - v / top);
  for (const [key, color] of [["sent", "#4fb3ff"], ["misses", "#ff5c5c"]]) {
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p[key])) : ctx.moveTo(x(p.t), y(p[key]))));
    ctx.stroke();
  }
  canvas.setAttribute("data-points", String(points.length));
}

function playerRow(p, at) {
  let position = p.position;
  if (position !== null && p.state === "PLAYING" && !p.paused && p.as_of) position += Date.now() / 1000 - p.as_of;
  if (p.duration) position = Math.min(position, p.duration);
  const share = p.duration && position !== null ? Math.min(100, (100 * position) / p.duration) : 0;
  const rates = (p.frames && p.frames.per_minute) || {};
  const fill = el("div");
  fill.style.width = `${share.toFixed(1)}%`; // CSSOM, not a style attribute: the CSP allows it
  return el("tr", { "data-guild": p.guild_id, "data-position": position === null ? "" : position.toFixed(2) },
    el("td", {}, el("code", {}, p.guild_id), el("div", { class: "dim" }, "channel ", p.channel_id || "–")),
    el("td", {}, p.state, p.paused ? " (paused)" : ""),
    el("td", {}, p.title || el("span", { class: "dim" }, "nothing"), el("div", { class: "dim" }, p.source || "")),
    el("td", {}, el("div", { class: "bar" }, fill),
       el("span", { class: "dim" }, `${fmtTime(position)} / ${fmtTime(p.duration)}`)),
    el("td", {}, String(p.queue_length)),
    el("td", {}, `${Math.round(p.volume * 100)}%`, el("div", { class: "dim" }, p.filters.join(", ") || "no filters")),
    el("td", {}, p.voice_mode || el("span", { class: "dim" }, "no voice"),
       el("div", { class: "dim" }, p.dave_protocol_version === null ? "" : `DAVE v${p.dave_protocol_version}${p.dave ? " · encrypting" : ""}`)),
    el("td", {}, rates.sent === undefined ? "–" : `${Math.round(rates.sent)}/min`,
       el("div", { class: "dim" }, rates.nulled === undefined ? "" : `nulled ${Math.round(rates.nulled)}/min`)));
}

function render(view) {
  latest = view;
  sample(view);
  const s = view.status;
  document.getElementById("node").textContent = `v${s.version} · up ${fmtTime(s.uptime)}`;
  const card = (label, value) => el("div", { class: "card" }, el("b", {}, value), el("span", { class: "dim" }, label));
  const fpm = (s.engine && s.engine.frames_per_minute) || {};
  document.getElementById("cards").replaceChildren(
    card("sessions", `${s.connected_sessions}/${s.sessions}`), card("players", s.players), card("playing", s.playing),
    card("CPU (control)", `${(s.cpu.process || 0).toFixed(1)}%`), card("memory", `${Math.round(s.memory.rss / 1048576)} MB`),
    card("frames/min", Math.round(fpm.sent || 0)));
  const sessions = el("div");
  for (const session of view.sessions) {
    const table = el("table", {}, el("tr", {}, ...["guild", "state", "playing", "position", "queue", "volume · filters", "voice", "frames"].map((h) => el("th", {}, h))));
    for (const p of session.players) table.append(playerRow(p, view.at));
    sessions.append(el("div", { "data-session": session.user_id },
      el("h3", {}, `bot ${session.user_id}`, session.shard_id === null ? "" : ` shard ${session.shard_id}`,
         session.name ? ` (${session.name})` : "", el("span", { class: "dim" }, session.connected ? " · connected" : " · detached")),
      session.players.length ? table : el("p", { class: "dim" }, "no voice clients")));
  }
  if (!view.sessions.length) sessions.append(el("p", { class: "dim" }, "no sessions"));
  document.getElementById("sessions").replaceChildren(sessions);
  const workers = el("table", {}, el("tr", {}, ...["engine", "players", "ticks", "resyncs", "worst lateness", "longest tick"].map((h) => el("th", {}, h))));
  for (const [slot, w] of Object.entries(view.workers)) {
    workers.append(el("tr", { "data-worker": slot }, el("td", {}, slot), el("td", {}, w.players), el("td", {}, w.ticks), el("td", {}, w.resyncs),
                      el("td", {}, `${w.late_max_ms} ms`), el("td", {}, `${w.tick_max_ms} ms`)));
  }
  document.getElementById("workers").replaceChildren(Object.keys(view.workers).length ? workers : el("p", { class: "dim" }, "no engine report yet"));
  drawChart(view.at);
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const password = document.getElementById("password").value;
  sessionStorage.setItem(KEY, password);
  document.getElementById("login-error").textContent = "";
  connect(password);
});

if (sessionStorage.getItem(KEY)) connect(sessionStorage.getItem(KEY));
