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

// Control requests go out one at a time, in the order they were asked for: a click made while
// another request is in flight waits for it instead of being lost (the recorder refuses what no
// longer fits, e.g. a second start, and the page shows that answer).
let queue = Promise.resolve();
let inFlight = 0;
function act(action) {
  inFlight += 1;
  document.body.classList.add("busy");
  queue = queue.then(async () => {
    const answer = await post(`/api/control/${action}`);
    showEvent(action.replace("_", " "), answer);
    if (answer.ok) refreshEpisodes();
  }).catch((e) => showEvent(action, { ok: false, message: String(e) })).finally(() => {
    inFlight -= 1;
    if (!inFlight) document.body.classList.remove("busy");
  });
  return queue;
}

// The e-stop answer stays on screen while the arm reports it latched; every page shows the
// latched state from the arm's diagnostics, not only the page that pressed the button.
let estopAnswer = "";
async function estop() {
  const answer = await post("/api/estop");
  showEvent("E-STOP", answer);
  estopAnswer = answer.ok ? `E-STOP sent at ${new Date().toLocaleTimeString()}: ${answer.message}`
                          : `E-STOP FAILED: ${answer.message}. Use the hardware stop!`;
  renderArm(arm, true);
}

async function resumeArm() {
  $("#resume-confirm").hidden = true;
  const answer = await post("/api/arm/resume", { confirm: true });
  showEvent("resume arm", answer);
  if (answer.ok) estopAnswer = "";
  renderArm(Object.assign({}, arm, answer.ok ? { estopped: false, latched: false, state: "following" } : {}), true);
}

let arm = {};
function renderArm(a, fromClick) {
  arm = a || {};
  const badge = $("#arm-state");
  const held = arm.estopped || arm.latched;
  if (!arm.reachable && !fromClick) {
    badge.className = "badge arm unknown";
    badge.textContent = "ARM ?";
    badge.title = `no diagnostics from ${arm.name || "the arm"}`;
  } else {
    badge.className = "badge arm " + (arm.estopped ? "error" : held ? "held" : "ok");
    badge.textContent = arm.estopped ? "ARM E-STOPPED" : held ? "ARM HOLDING" : "ARM OK";
    badge.title = `${arm.state || ""} ${arm.message || ""}`.trim();
  }
  const banner = $("#banner");
  banner.hidden = !(held || estopAnswer);
  $("#banner-answer").textContent = estopAnswer;
  $("#banner-state").textContent = arm.estopped
    ? "E-STOP LATCHED: the arm holds its last commanded pose with torque on and ignores commands until it is released and started."
    : held ? `The arm holds (${arm.hold_reason || arm.state}), latched until it is started.` : "";
  $("#arm-resume").hidden = !held;
  if (!held) $("#resume-confirm").hidden = true;
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

function fmtMs(v) {
  return v === undefined || v === null ? "–" : v < 10 ? v.toFixed(1) : v.toFixed(0);
}

function streamLabel(name) {  // images/front -> front, depth/front -> front depth
  const [kind, cam] = name.split("/");
  return cam === undefined ? name : kind === "images" ? cam : `${cam} ${kind}`;
}

// The recorder's view of each stream when it is reachable (its rate from stamps, skew, holes);
// otherwise what reaches the console itself.
function renderStreams(rec, own) {
  const body = $("#streams tbody");
  body.replaceChildren();
  if (rec.reachable && rec.streams) {
    for (const [name, s] of Object.entries(rec.streams)) {
      const state = !s.alive ? (s.age_s === null || s.age_s === undefined ? "no data" : `silent ${s.age_s.toFixed(1)} s`)
        : s.rejected ? `${s.rejected} rejected` : s.late ? `${s.late} late` : "ok";
      const over = s.skew_max_ms > s.max_skew_ms;
      body.append(el("tr", { "data-stream": name },
        el("td", { text: streamLabel(name) }),
        el("td", { class: s.alive ? "" : "bad", text: `${(s.rate_hz || 0).toFixed(1)} Hz` }),
        el("td", { class: over ? "bad" : "", text: `${fmtMs(s.skew_p50_ms)} / ${fmtMs(s.skew_p99_ms)} (${fmtMs(s.max_skew_ms)})` }),
        el("td", { class: s.gap_steps ? "bad" : "", text: s.gap_steps || 0 }),
        el("td", { class: state === "ok" ? "" : "bad", text: state })));
    }
    return;
  }
  for (const [name, s] of Object.entries(own || {})) {
    const stale = s.age_s === null || s.age_s > 1.0;
    body.append(el("tr", { "data-stream": name },
      el("td", { text: name }),
      el("td", { class: stale ? "bad" : "", text: stale ? (s.age_s === null ? "no data" : `silent ${s.age_s.toFixed(1)} s`) : `${s.hz.toFixed(1)} Hz` }),
      el("td", { text: "–" }), el("td", { text: "–" }), el("td", { text: "at the console" })));
  }
}

// Loud: an ERROR (a stream gone while recording, a failed episode, a write error) is a red
// banner across the page; a WARN is amber. The problems are the recorder's own sentences.
function renderAlarm(rec) {
  const alarm = $("#alarm");
  let level = rec.level, problems = rec.problems || [];
  if (!rec.reachable) {
    level = "ERROR";
    problems = [`the recorder's status is not arriving${rec.status_age_s ? ` (last ${rec.status_age_s.toFixed(0)} s ago)` : ""}: is it running in this ROS domain?`];
  }
  alarm.hidden = !(level === "ERROR" || level === "WARN") || !problems.length;
  alarm.className = "alarm " + (level === "ERROR" ? "error" : "warn");
  alarm.textContent = `${level}: ${problems.join(" · ")}`;
}

function renderStatus(payload) {
  const rec = payload.recorder || {};
  status = rec;
  statusAt = performance.now();
  const badge = $("#state");
  const failed = rec.state === "failed";
  badge.className = "badge " + (!rec.reachable || failed ? "error" : rec.recording ? "rec" : "idle");
  badge.textContent = !rec.reachable ? "RECORDER NOT REACHABLE" : failed ? "EPISODE FAILED" : rec.recording ? "● REC" : "IDLE";
  $("#btn-start").disabled = !!rec.recording;
  for (const id of ["#btn-save-success", "#btn-save-failure", "#btn-rerecord"]) $(id).disabled = !rec.recording;
  $("#btn-discard").disabled = !(rec.recording || failed);  // a failed episode is acknowledged with discard
  renderAlarm(rec);
  renderArm(payload.arm);
  const input = $("#instruction");
  if (document.activeElement !== input && rec.instruction !== undefined && input.dataset.shown !== rec.instruction) {
    input.value = rec.instruction || "";
    input.dataset.shown = rec.instruction || "";
  }
  $("#stat-episode").textContent = rec.episode ?? "–";
  $("#stat-steps").textContent = rec.recording
    ? `${rec.frames ?? 0} @ ${(rec.fps ?? 0).toFixed(1)} Hz · ${rec.expected_steps ?? 0} on the grid` : "–";
  const holes = rec.holes || [];
  $("#stat-dropped").textContent = `${rec.dropped_steps ?? 0}` + (holes.length ? ` in ${holes.length} hole(s): `
    + [...new Set(holes.flatMap((h) => h.streams))].map(streamLabel).join(", ") : "")
    + (rec.warmup_steps ? ` · warm-up ${rec.warmup_steps}` : "") + (rec.trimmed_steps ? ` · trimmed ${rec.trimmed_steps}` : "");
  $("#stat-dropped").className = rec.dropped_steps ? "bad" : "";
  $("#stat-lag").textContent = rec.lag_p99_s !== undefined
    ? `lag p99 ${(rec.lag_p99_s * 1000).toFixed(0)} ms · queue ${rec.queue_depth ?? 0}` + (rec.write_errors ? ` · ${rec.write_errors} write error(s)` : "") : "–";
  $("#stat-lag").className = rec.write_errors ? "bad" : "";
  const disk = rec.disk_free_bytes;
  $("#stat-disk").textContent = disk === undefined || disk < 0 ? "n/a" : `${(disk / 1e9).toFixed(1)} GB`;
  $("#stat-session").textContent = rec.episodes_saved === undefined ? "–"
    : `${rec.episodes_saved} saved · ${rec.episodes_discarded} discarded · ${rec.episodes_failed} failed`;
  const last = rec.last_episode || {};
  $("#stat-last").textContent = last.result === undefined ? "–"
    : `#${last.index} ${last.result}` + (last.steps !== undefined ? `, ${last.steps} steps` : "")
      + (last.error ? `: ${last.error}` : "") + ((last.notes || []).length ? `: ${last.notes.join("; ")}` : "");
  $("#stat-last").className = last.result && last.result.startsWith("failed") ? "bad" : "";
  renderStreams(rec, payload.streams);
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
      el("td", { class: e.hole_steps ? "bad" : "", text: e.hole_steps || 0 }));
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
  // resuming the arm takes two explicit clicks and has no keyboard shortcut
  $("#arm-resume").addEventListener("click", () => { $("#resume-confirm").hidden = false; });
  $("#arm-resume-cancel").addEventListener("click", () => { $("#resume-confirm").hidden = true; });
  $("#arm-resume-confirm").addEventListener("click", resumeArm);
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
