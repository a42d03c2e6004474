// vla-robot recording console: plain JS, no build step, nothing loaded from elsewhere.
// Data: /api/config once, /ws (status + live joint samples, ~10 Hz), /stream/<cam>.mjpg, /api/episodes.
// Controls: POST /api/control/<action>, /api/estop, /api/instruction (with the X-VLA-Console header).
"use strict";

const $ = (sel) => document.querySelector(sel);
const COLORS = { state: "#1f6feb", action: "#b35900" };
const WINDOW_S = 10;
let config = null;
let status = {};
let statusAt = 0;
let storeEpisodes = -1;
const live = { state: [], action: [] };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST", headers: { "X-VLA-Console": "1", "Content-Type": "application/json" },
    body: JSON.stringify(body || {}), credentials: "same-origin",
  });
  let data;
  try { data = await res.json(); } catch (e) { data = { ok: false, message: `HTTP ${res.status}` }; }
  return data;
}

// What anyone did from any page (or with curl), newest first: the server keeps the list.
let lastEvents = "";
function showEvents(events) {
  const key = JSON.stringify(events);
  if (key === lastEvents) return;
  lastEvents = key;
  $("#events").replaceChildren(...events.slice().reverse().map((e) => el("li", {
    class: e.ok ? "" : "bad", text: `${new Date(e.time * 1000).toLocaleTimeString()}  ${e.action.replace("_", " ")}: ${e.message}` })));
}

function showEvent(action, answer) {  // at once, before the next status push lists it
  $("#events").prepend(el("li", { class: answer.ok ? "" : "bad", text: `${new Date().toLocaleTimeString()}  ${action}: ${answer.message}` }));
}

let pending = false;  // one control request at a time: a double click must not start two episodes
async function act(action) {
  if (pending) return;
  pending = true;
  document.body.classList.add("busy");
  try {
    const answer = await post(`/api/control/${action}`);
    showEvent(action.replace("_", " "), answer);
    if (answer.ok) refreshEpisodes();
  } finally {
    pending = false;
    document.body.classList.remove("busy");
  }
}

async function estop() {
  const answer = await post("/api/estop");
  showEvent("E-STOP", answer);
  const banner = $("#banner");
  banner.hidden = false;
  banner.textContent = answer.ok ? `E-STOP sent at ${new Date().toLocaleTimeString()}: ${answer.message}`
                                 : `E-STOP FAILED: ${answer.message}. Use the hardware stop!`;
}

// -- live plots ----------------------------------------------------------------------------
function makePlots(container, names) {
  container.replaceChildren();
  return names.map((name) => {
    const canvas = el("canvas", { width: 300, height: 70, title: name });
    container.append(canvas);
    const ratio = window.devicePixelRatio || 1;  // draw at the size it is shown, so text stays sharp
    if (canvas.clientWidth) canvas.width = Math.round(canvas.clientWidth * ratio);
    if (canvas.clientHeight) canvas.height = Math.round(canvas.clientHeight * ratio);
    return { name, canvas };
  });
}

function drawPlot(plot, series, t0, t1, cursor) {
  const { canvas, name } = plot;
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  let lo = Infinity, hi = -Infinity;
  for (const s of Object.values(series)) for (const [, v] of s) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!isFinite(lo)) { lo = -1; hi = 1; }
  if (hi - lo < 1e-3) { lo -= 0.05; hi += 0.05; }
  const pad = (hi - lo) * 0.1;
  lo -= pad; hi += pad;
  const x = (t) => ((t - t0) / Math.max(t1 - t0, 1e-6)) * w;
  const y = (v) => h - ((v - lo) / (hi - lo)) * h;
  for (const [kind, pts] of Object.entries(series)) {
    ctx.strokeStyle = COLORS[kind];
    ctx.lineWidth = 1.5;
    ctx.setLineDash(kind === "action" ? [4, 3] : []);
    ctx.beginPath();
    pts.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
  }
  ctx.setLineDash([]);
  if (cursor !== undefined) {
    ctx.strokeStyle = "#000";
    ctx.beginPath(); ctx.moveTo(x(cursor), 0); ctx.lineTo(x(cursor), h); ctx.stroke();
  }
  ctx.fillStyle = "#57606a";
  ctx.font = "11px system-ui";
  ctx.fillText(`${name}  ${lo.toFixed(2)}…${hi.toFixed(2)}`, 4, 12);
}

let livePlots = [];
function drawLive() {
  const newest = Math.max(...["state", "action"].map((k) => (live[k].length ? live[k][live[k].length - 1][0] : -Infinity)));
  if (!isFinite(newest)) return;
  for (const k of ["state", "action"]) while (live[k].length && live[k][0][0] < newest - WINDOW_S) live[k].shift();
  livePlots.forEach((plot, j) => {
    const series = {};
    for (const k of ["state", "action"]) series[k] = live[k].map(([t, v]) => [t, v[j]]);
    drawPlot(plot, series, newest - WINDOW_S, newest);
  });
}

// -- status ----------------------------------------------------------------------------------
function fmtClock(s) {
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(1).padStart(4, "0")}`;
}

function fmtSkew(v) {
  if (v === undefined || v === null) return "–";
  if (typeof v === "number") return `${(v * 1000).toFixed(1)} ms`;
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k} ${typeof x === "number" ? (x * 1000).toFixed(1) : x}`).join(" ");
  return String(v);
}

function renderStatus(payload) {
  const rec = payload.recorder || {};
  status = rec;
  statusAt = performance.now();
  const badge = $("#state");
  const problem = !rec.reachable ? "recorder not reachable" : (rec.stale_cameras && rec.stale_cameras.length)
    ? `camera stopped: ${rec.stale_cameras.join(", ")}` : (rec.write_errors ? "write error" : "");
  badge.className = "badge " + (problem ? "error" : rec.recording ? "rec" : "idle");
  badge.textContent = problem ? problem.toUpperCase() : rec.recording ? "● REC" : "IDLE";
  $("#btn-start").disabled = !!rec.recording;
  for (const id of ["#btn-save-success", "#btn-save-failure", "#btn-discard"]) $(id).disabled = !rec.recording;
  const input = $("#instruction");
  if (document.activeElement !== input && rec.instruction !== undefined && input.dataset.shown !== rec.instruction) {
    input.value = rec.instruction || "";
    input.dataset.shown = rec.instruction || "";
  }
  $("#stat-episode").textContent = rec.episode ?? "–";
  $("#stat-steps").textContent = rec.recording || rec.frames ? `${rec.frames ?? 0} @ ${(rec.fps ?? 0).toFixed(1)} Hz` : "–";
  const dropped = (rec.dropped_steps ?? 0) + (rec.queue_overflows ?? 0);
  $("#stat-dropped").textContent = `${dropped}` + (rec.warmup_steps ? ` (warm-up ${rec.warmup_steps})` : "")
    + (rec.trimmed_steps ? ` (trimmed ${rec.trimmed_steps})` : "");
  $("#stat-lag").textContent = rec.lag_p99_s !== undefined ? `${(rec.lag_p99_s * 1000).toFixed(0)} ms` : "–";
  const disk = rec.disk_free_bytes;
  $("#stat-disk").textContent = disk === undefined || disk < 0 ? "n/a" : `${(disk / 1e9).toFixed(1)} GB`;
  const body = $("#streams tbody");
  body.replaceChildren();
  const skew = rec.skew || rec.skew_s || {};
  const gaps = rec.gaps || {};
  for (const [name, s] of Object.entries(payload.streams || {})) {
    const key = name === "state" || name === "action" ? name : `images/${name}`;
    const stale = s.age_s === null || s.age_s > 1.0;
    body.append(el("tr", {},
      el("td", { text: name }),
      el("td", { class: stale ? "bad" : "", text: stale ? (s.age_s === null ? "no data" : `silent ${s.age_s.toFixed(1)} s`) : `${s.hz.toFixed(1)} Hz` }),
      el("td", { text: fmtSkew(skew[key]) }),
      el("td", { class: gaps[key] ? "bad" : "", text: gaps[key] ?? "–" })));
  }
  showEvents(payload.events || []);
  if (payload.store && payload.store.episodes !== storeEpisodes) {
    storeEpisodes = payload.store.episodes;
    $("#store-url").textContent = `${payload.store.url} · ${storeEpisodes} saved`;
    refreshEpisodes();
  }
}

function tickClock() {
  const rec = status;
  const age = (performance.now() - statusAt) / 1000 + (rec.status_age_s || 0);
  $("#clock").textContent = fmtClock(rec.recording ? (rec.duration_s || 0) + age : 0);
  drawLive();
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onmessage = (ev) => {
    const payload = JSON.parse(ev.data);
    for (const k of ["state", "action"]) for (const s of payload[k] || []) live[k].push(s);
    renderStatus(payload);
  };
  ws.onclose = () => {
    $("#state").className = "badge error";
    $("#state").textContent = "CONSOLE DISCONNECTED";
    setTimeout(connect, 1000);
  };
}

// -- episode library and playback --------------------------------------------------------------
async function refreshEpisodes() {
  const res = await fetch("/api/episodes", { credentials: "same-origin" });
  if (!res.ok) return;
  const { episodes } = await res.json();
  const body = $("#episodes tbody");
  body.replaceChildren();
  for (const e of episodes) {
    const row = el("tr", { "data-index": e.index },
      el("td", {}, el("img", { src: `/api/episodes/${e.index}/thumbnail.jpg`, alt: `episode ${e.index}`, loading: "lazy" })),
      el("td", { text: e.index }),
      el("td", { text: e.instruction }),
      el("td", {}, el("span", { class: `label ${e.label}`, text: e.label })),
      el("td", { text: e.duration_s != null ? `${e.duration_s.toFixed(1)} s` : "–" }),
      el("td", { text: e.steps }),
      el("td", { text: e.dropped_steps || 0 }));
    row.addEventListener("click", () => openPlayer(e.index));
    body.append(row);
  }
}

const player = { timer: null, data: null, t: 0, plots: [] };
async function openPlayer(index) {
  stopPlayback();
  const res = await fetch(`/api/episodes/${index}`, { credentials: "same-origin" });
  if (!res.ok) return;
  const data = await res.json();
  player.data = data;
  $("#player").hidden = false;
  const m = data.meta;
  $("#player-title").textContent = `Episode ${index}: ${m.instruction} (${m.dropped ? "dropped" : m.success ? "success" : "failure"}, ${data.steps} steps)`;
  const cams = $("#player-cameras");
  cams.replaceChildren();
  for (const cam of data.cameras) cams.append(el("figure", {}, el("img", { "data-camera": cam, alt: cam }), el("figcaption", { text: cam })));
  player.plots = makePlots($("#player-plots"), data.joint_names);
  const slider = $("#player-slider");
  slider.max = Math.max(data.steps - 1, 0);
  showFrame(0);
  $("#player").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function showFrame(t) {
  const d = player.data;
  if (!d) return;
  player.t = t;
  $("#player-slider").value = t;
  $("#player-pos").textContent = `${t + 1} / ${d.steps} · ${(t / d.control_rate_hz).toFixed(1)} s`;
  for (const img of document.querySelectorAll("#player-cameras img")) img.src = `/api/episodes/${d.index}/frames/${img.dataset.camera}/${t}.jpg`;
  player.plots.forEach((plot, j) => {
    const series = { state: d.state.map((v, i) => [i, v[j]]), action: d.action.map((v, i) => [i, v[j]]) };
    drawPlot(plot, series, 0, Math.max(d.steps - 1, 1), t);
  });
}

function stopPlayback() {
  clearInterval(player.timer);
  player.timer = null;
  $("#player-play").textContent = "Play";
}

function togglePlayback() {
  if (player.timer) return stopPlayback();
  const d = player.data;
  if (!d) return;
  if (player.t >= d.steps - 1) player.t = -1;
  $("#player-play").textContent = "Pause";
  player.timer = setInterval(() => (player.t < d.steps - 1 ? showFrame(player.t + 1) : stopPlayback()), 1000 / d.control_rate_hz);
}

// -- wiring --------------------------------------------------------------------------------------
function buildCameras() {
  const box = $("#cameras");
  box.replaceChildren();
  for (const cam of config.cameras) {
    // MJPEG starts after the page's load event, so the endless stream never holds the page "loading"
    box.append(el("figure", {}, el("img", { id: `camera-${cam}`, "data-src": `/stream/${cam}.mjpg`, alt: cam }), el("figcaption", { text: cam })));
  }
}

function onKey(ev) {
  if (ev.target.closest("input, textarea, select") || ev.repeat || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const action = config.keys[ev.key === " " ? " " : ev.key.toLowerCase()];
  if (!action || action === "quit") return;
  ev.preventDefault();
  act(action);
}

async function init() {
  config = await (await fetch("/api/config", { credentials: "same-origin" })).json();
  $("#title").textContent = config.title;
  document.title = `${config.title} · recording console`;
  buildCameras();
  livePlots = makePlots($("#plots"), config.joint_names);
  for (const b of document.querySelectorAll(".controls button")) b.addEventListener("click", () => act(b.dataset.action));
  $("#estop").addEventListener("click", estop);
  $("#instruction-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("#instruction").value;
    const answer = await post("/api/instruction", { text });
    showEvent("instruction", answer);
    $("#instruction").blur();
  });
  $("#player-close").addEventListener("click", () => { stopPlayback(); $("#player").hidden = true; player.data = null; });
  $("#player-play").addEventListener("click", togglePlayback);
  $("#player-slider").addEventListener("input", (ev) => { stopPlayback(); showFrame(Number(ev.target.value)); });
  document.addEventListener("keydown", onKey);
  connect();
  setInterval(tickClock, 100);
  setInterval(refreshEpisodes, 10000);
}

function startStreams() {
  for (const img of document.querySelectorAll("#cameras img[data-src]")) {
    img.src = img.dataset.src;
    img.removeAttribute("data-src");
  }
}
window.addEventListener("load", startStreams);
document.addEventListener("DOMContentLoaded", () => init().then(() => {
  if (document.readyState === "complete") startStreams();
}));
