// medactive labelling page logic (served as /static/app.js: the CSP allows no inline script).
"use strict";
const $ = (id) => document.getElementById(id);
let state = null;
let focus = null;  // an image picked in the gallery ("jump to"), shown instead of the next one
let busy = false;  // one request at a time: the page moves on only after the commit
let reviewing = null;  // while answering the skipped images: the ids already shown again
let jobTimer = null;
const WATCH_MS = 5000;  // how often an idle page checks for a new round
const JOB_MS = 1000;  // how often while a job runs

// The session cookie (HttpOnly, SameSite=Strict, set when the page loaded) authenticates every
// request; the token, if any, never appears in a URL the page builds.
async function api(method, path, body) {
  const res = await fetch(path, { method, credentials: "same-origin",
                                  headers: body ? { "Content-Type": "application/json" } : {},
                                  body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.detail || res.statusText);
    err.status = res.status; err.data = data;
    throw err;
  }
  return data;
}

// Responses can arrive out of order (a reload's state after an answer's): each request that
// returns the page's state gets a number, and an older one never overwrites a newer one.
let asked = 0, shown = 0;
function show(s, ticket) {
  if (ticket < shown) return;
  shown = ticket;
  render(s);
}
async function fresh(request) {
  const ticket = ++asked;
  show(await request, ticket);
}

function annotator() { return $("annotator").value.trim(); }
function readerQuery() { return annotator() ? `?reader=${encodeURIComponent(annotator())}` : ""; }
function el(tag, text, cls) {  // textContent only: names and ids are data, never markup
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function pct(p) { return `${(100 * p).toFixed(0)}%`; }
function say(text) { $("msg").replaceChildren(); $("msg").textContent = text || ""; }
// keys label only while no text field has the focus: give it back to the image
function focusViewer() { $("viewer").focus({ preventScroll: true }); }

function renderMix(round) {
  const bar = $("mixbar");
  bar.replaceChildren();
  const h = round && round.health;
  if (!h) { bar.appendChild(el("span", round ? "no model yet (cold-start round): no predicted class mix" : "", "muted")); return; }
  bar.appendChild(el("span", "predicted class mix of this query:", "muted"));
  Object.entries(h.mix).filter(([, m]) => m > 0).sort((a, b) => b[1] - a[1])
    .forEach(([name, m]) => bar.appendChild(el("span", `${name} ${pct(m)}`, "chip")));
  (h.warnings || []).forEach((w) => bar.appendChild(el("span", `⚠ ${w}`, "warn")));
}

function renderPreds(box, item) {
  box.replaceChildren();
  if (!item) return;
  if (item.predictions_hidden) { box.appendChild(el("div", "model's guess hidden until you answer", "muted")); return; }
  if (!item.predictions) { box.appendChild(el("div", "no model yet (cold start)", "muted")); return; }
  item.predictions.forEach((p) => {
    const row = el("div", null, "pred");
    const name = el("span", p.class); name.title = p.class; row.appendChild(name);
    const b = el("span", null, "pbar"); const f = el("span"); f.style.width = pct(p.p);
    b.appendChild(f); row.appendChild(b); row.appendChild(el("span", pct(p.p), "pv"));
    box.appendChild(row);
  });
}

// why: the headline, the score with its meaning, then (not for the last answer, which only
// recalls it) what the strategy does and the rank
function renderWhy(box, item, total, brief) {
  box.replaceChildren();
  if (!item) return;
  const x = item.explain;
  box.appendChild(el("div", x.headline, "head"));
  if (x.score) box.appendChild(el("div", x.score, "score"));
  if (brief) return;
  if (item.purpose === "acquire") box.appendChild(el("div", x.strategy, "muted"));
  box.appendChild(el("div", `rank ${item.rank} of ${total} in round ${item.round_id}`, "muted"));
}

// ------------------------------------------------------------------ jobs and new rounds

function renderJob(job) {
  const box = $("jobbox");
  const running = job && job.status === "running";
  $("nextround").disabled = running || !state;
  if (!job || job.status === "done") { box.className = "hidden"; }
  else {
    box.className = job.status;
    $("jobtext").textContent = running
      ? `next round: ${job.stage || "starting"} ${pct(job.progress)} (you can keep labelling)`
      : `next round failed: ${job.error}`;
    $("jobbar").firstElementChild.style.width = pct(job.progress);
  }
  schedule(running ? JOB_MS : WATCH_MS);
}

function schedule(ms) {
  if (jobTimer && jobTimer.ms === ms) return;
  if (jobTimer) clearInterval(jobTimer.id);
  jobTimer = { ms, id: setInterval(watch, ms) };
}

function showRoundNotice(text) {
  $("roundnoticetext").textContent = text;
  $("roundnotice").classList.remove("hidden");
}

// Every open page polls the job (1 s while one runs, else 5 s) and the latest round's id: a
// round started anywhere (this page, another, a terminal) is noticed. The page never changes
// the image under a reader's eyes (a key pressed a moment later would answer another image):
// with nothing left to label it moves to the new round at once, otherwise it says so and
// waits for Reload.
async function watch() {
  let data;
  try { data = await api("GET", "/api/job"); } catch (e) { return; }
  if (!state) return;
  state.job = data.job;
  renderJob(data.job);
  const shown = state.round ? state.round.id : null;
  if (data.round_id == null || data.round_id === shown) return;
  if (!(focus || state.current)) { refresh(); return; }
  showRoundNotice(shown
    ? `Round ${data.round_id} has started and replaces round ${shown} — reload to continue with it.`
    : `Round ${data.round_id} has started — reload to label it.`);
}

// ------------------------------------------------------------------ the label tab

function render(s) {
  state = s;
  $("project").textContent = s.project;
  // which encoder the project's features come from (no server paths: the state leaves them out)
  $("project").title = s.encoder ? `features: ${s.encoder}` : "";
  $("encoder").textContent = s.encoder ? `encoder: ${String(s.encoder).split(" (")[0]}` : "";
  $("round").textContent = s.round ? `round ${s.round.id} · ${s.round.strategy}` : "no round yet";
  const skipped = s.skipped.length;
  $("progress").textContent = `${s.answered} / ${s.total}` + (skipped ? ` · ${skipped} skipped` : "");
  $("bar").firstElementChild.style.width = s.total ? `${100 * s.answered / s.total}%` : "0";
  renderMix(s.round);
  const box = $("classes");
  if (!box.childElementCount) {
    s.classes.forEach((name, i) => {
      const b = document.createElement("button");
      b.dataset.answer = name;
      b.textContent = name;
      // a class with a number key is answered by the key, never by Tab + Space/Enter
      if (i < 9) { const k = document.createElement("kbd"); k.textContent = i + 1; b.appendChild(k); b.tabIndex = -1; }
      b.onclick = () => send(name);
      box.appendChild(b);
    });
  }
  if (!$("annotator").value && s.annotator) $("annotator").value = s.annotator;
  if (s.reader && s.sign_in) { $("annotator").value = s.reader; }
  $("signin").className = s.sign_in && !s.reader ? "" : "hidden";
  const cur = focus || s.current;
  document.querySelectorAll("#classes button, #unsure, #skip")
    .forEach((b) => { b.disabled = !cur; });
  $("undo").disabled = !s.can_undo;
  $("img").style.display = cur ? "" : "none";
  $("noround").classList.toggle("hidden", !!s.round);
  $("donebox").classList.toggle("hidden", !!cur || !s.round);
  renderNoRound(s);
  renderDone(s);
  if (cur) {
    const src = `/api/image/${cur.image_id}`;
    if ($("img").getAttribute("src") !== src) $("img").setAttribute("src", src);
    $("img").dataset.imageId = cur.image_id;
    const where = focus ? (cur.skipped ? " · skipped earlier: answer it now" : " · picked in the gallery") : "";
    $("meta").textContent = `${cur.uid}${where}`;
  } else {
    $("meta").textContent = "";
    $("img").removeAttribute("src");
  }
  $("why").classList.toggle("hidden", !cur);
  renderWhy($("whytext"), cur, s.total);
  renderPreds($("preds"), cur);
  const last = s.last;
  $("lastbox").style.display = last ? "" : "none";
  if (last) {
    $("lasttext").replaceChildren(el("div", `${last.uid}: you said ${last.own_answer || "skip"}`));
    const why = el("div"); renderWhy(why, last, s.total, true); $("lasttext").appendChild(why);
    const p = el("div"); renderPreds(p, last); $("lasttext").appendChild(p);
  }
  const plan = s.next;
  $("budget").max = Math.max(1, plan.pool);
  $("budgethint").textContent = `up to ${plan.pool} unanswered images · ${plan.strategy}${plan.cold_start ? " (cold start)" : ""}`;
  if (s.round && $("roundnotice").dataset.round !== String(s.round.id)) {
    $("roundnotice").classList.add("hidden");
    $("roundnotice").dataset.round = String(s.round.id);
  }
  renderJob(s.job);
}

function renderNoRound(s) {
  if (s.round) return;
  const plan = s.next;
  const how = plan.cold_start
    ? `With no labels yet, medactive starts with ${plan.strategy}: it picks the most typical image of each cluster of similar images. The first round also trains an image encoder, which takes minutes; this page shows its progress, and you can close it meanwhile.`
    : `Your project already has labels, so the first round uses ${plan.strategy}.`;
  $("noroundtext").textContent = `Type your name under Reader, choose how many images to ask for under “Images in next round” (right) and press Next round. ${how}`;
  $("noroundcmd").textContent = `medactive project query ${s.project} --budget ${$("budget").value || 20}`;
}

function renderDone(s) {
  const n = s.skipped.length;
  $("donetitle").textContent = n ? "Round finished — with skipped images" : "Round complete";
  $("donetext").textContent = n
    ? `${s.answered} of ${s.total} images have your answer; ${n} skipped image${n > 1 ? "s" : ""} still need${n > 1 ? "" : "s"} one. Answer ${n > 1 ? "them" : "it"} now, or start the next round (right): a skipped image can come back in a later round.`
    : "Every queried image has an answer. Start the next round (right) or run `medactive project query`.";
  $("reviewskipped").classList.toggle("hidden", !n);
}

async function refresh() {
  try { await fresh(api("GET", `/api/state${readerQuery()}`)); }
  catch (e) { say(e.message); }
}

function rememberName() {
  sessionStorage.setItem("medactive-reader", annotator());
  localStorage.setItem("medactive-annotator", annotator());
}

function refused(e) {
  if (e.status === 409 && /reload to continue/.test(e.message)) showRoundNotice(e.message);
  say(`Not saved: ${e.message}`);
}

async function send(answer) {
  const cur = focus || (state && state.current);
  focusViewer();  // a clicked button must not keep the focus (Space would answer again)
  if (busy || !cur) return;
  if (!annotator()) { say("Enter your name first."); $("annotator").focus(); return; }
  rememberName();
  busy = true;
  try {
    const ticket = ++asked;
    const s = await api("POST", "/api/answer", { image_id: cur.image_id, answer, annotator: annotator(), round_id: cur.round_id });
    focus = null;
    if (reviewing) reviewing.add(cur.image_id);
    show(s, ticket);
    say("");
    if (reviewing) nextSkipped();
  } catch (e) { refused(e); }
  finally { busy = false; }
}

async function undo() {
  if (busy || !annotator()) return;
  busy = true;
  try {
    const ticket = ++asked;
    const s = await api("POST", "/api/undo", { annotator: annotator(), round_id: state && state.round ? state.round.id : null });
    focus = null;
    show(s, ticket);
    say("");
  } catch (e) { refused(e); }
  finally { busy = false; }
}

// A skipped image is not done: once the rest is answered, the page offers the skipped ones again.
function nextSkipped() {
  const left = state.skipped.filter((id) => !reviewing.has(id));
  if (state.current || !left.length) { reviewing = null; return; }
  jump(left[0]);
}

async function nextRound(force) {
  if (!annotator()) { say("Enter your name first."); $("annotator").focus(); return; }
  const budget = Number($("budget").value);
  try {
    const { job } = await api("POST", "/api/next-round", { budget, annotator: annotator(), force: !!force });
    state.job = job; renderJob(job); say("");
    if (job && job.status === "done") watch();  // finished already (a tiny project)
  } catch (e) {
    if (e.data && e.data.open_round) {
      const o = e.data.open_round;
      $("msg").replaceChildren(el("div", `Round ${o.round_id} still has ${o.open} of ${o.queried} images without an answer${o.skipped ? ` (${o.skipped} skipped)` : ""}.`));
      const b = el("button", `Close round ${o.round_id} and start a new one anyway`);
      b.id = "forceround";
      b.onclick = () => nextRound(true);
      $("msg").appendChild(b);
    } else say(`Next round not started: ${e.message}`);
  }
}

async function signIn() {
  try {
    await fresh(api("POST", "/api/signin", { name: annotator(), token: $("token").value }));
    $("token").value = ""; rememberName(); say(""); focusViewer();
  } catch (e) { say(e.message); }
}

function applyView() {
  const z = Number($("zoom").value), c = $("contrast").value, b = $("brightness").value;
  $("img").style.transform = `scale(${z})`;
  $("img").style.filter = `contrast(${c}%) brightness(${b}%)`;
  $("zoomv").textContent = `${z.toFixed(1)}×`;
  $("contrastv").textContent = `${c}%`;
  $("brightnessv").textContent = `${b}%`;
}

// ------------------------------------------------------------------ tabs

function showTab(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.tab === name));
  document.querySelectorAll(".pane").forEach((p) => p.classList.toggle("hidden", p.id !== `tab-${name}`));
  if (name === "gallery") loadGallery();
  if (name === "adjudicate") loadDisagreements();
  if (name === "stats") loadStats();
  if (name === "label") focusViewer();
}

async function jump(imageId) {
  try {
    focus = await api("GET", `/api/item/${imageId}${readerQuery()}`);
    showTab("label"); render(state);
  } catch (e) { refused(e); }
}

async function loadGallery() {
  const sep = readerQuery() ? "&" : "?";
  try {
    const g = await api("GET", `/api/gallery${readerQuery()}${sep}show=${$("filter").value}`);
    const grid = $("grid"); grid.replaceChildren();
    $("gcount").textContent = `${g.items.length} image(s) in round ${g.round}`;
    g.items.forEach((it) => {
      const card = el("button", null, `card ${it.status}`);
      card.dataset.imageId = it.image_id;
      const img = el("img"); img.setAttribute("src", `/api/thumb/${it.image_id}`); img.alt = it.uid;
      card.appendChild(img);
      card.appendChild(el("span", `#${it.rank} ${it.uid}`, "cap"));
      card.appendChild(el("span", `${it.status}${it.own_answer ? " · you: " + it.own_answer : ""}${it.purpose !== "acquire" ? " · " + it.purpose : ""}`, "cap muted"));
      card.onclick = () => jump(it.image_id);
      grid.appendChild(card);
    });
  } catch (e) { $("grid").replaceChildren(el("p", e.message)); }
}

// ------------------------------------------------------------------ adjudication

async function loadDisagreements() {
  try { renderDisagreements(await api("GET", "/api/disagreements")); }
  catch (e) { say(e.message); }
}

function openLarge(imageId, caption) {
  $("lbimg").setAttribute("src", `/api/image/${imageId}`);
  $("lbcaption").textContent = caption;
  $("lightbox").showModal();
}

function renderDisagreements(d) {
  const body = $("distable").tBodies[0]; body.replaceChildren();
  $("ndis").textContent = d.items.length ? `(${d.items.length})` : "";
  d.items.forEach((it) => {
    const tr = el("tr"); tr.dataset.imageId = it.image_id;
    const td0 = el("td");
    const thumb = el("button", null, "mini"); thumb.title = `${it.uid}: click to see it large`;
    const img = el("img"); img.setAttribute("src", `/api/thumb/${it.image_id}`); img.alt = it.uid;
    thumb.appendChild(img); thumb.onclick = () => openLarge(it.image_id, it.uid);
    td0.appendChild(thumb); td0.appendChild(el("span", it.uid)); tr.appendChild(td0);
    tr.appendChild(el("td", Object.entries(it.answers).map(([r, a]) => `${r}: ${a}`).join(" · ")));
    tr.appendChild(el("td", it.decided ? `${it.decided} (${it.status})` : "unresolved", it.decided ? "" : "warn"));
    const td = el("td"); const sel = el("select");
    // no class is chosen for the adjudicator: Decide waits for a choice
    const none = el("option", "choose a class…"); none.value = ""; none.disabled = true; none.selected = true;
    sel.appendChild(none);
    [...d.classes, "unsure"].forEach((c) => { const o = el("option", c); o.value = c; sel.appendChild(o); });
    const b = el("button", "Decide", "small"); b.disabled = true;
    sel.onchange = () => { b.disabled = !sel.value; };
    b.onclick = async () => {
      if (!sel.value) return;
      if (!annotator()) { say("Enter your name first."); return; }
      try { renderDisagreements(await api("POST", "/api/adjudicate", { image_id: it.image_id, answer: sel.value, annotator: annotator() })); }
      catch (e) { say(e.message); }
    };
    td.appendChild(sel); td.appendChild(b); tr.appendChild(td);
    body.appendChild(tr);
  });
}

// ------------------------------------------------------------------ progress and its plots

function k(v, digits = 3) { return v == null ? "–" : v.toFixed(digits); }

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#4f8cff", "#6fcf97", "#ffb74d", "#e57373", "#ba68c8", "#4dd0e1", "#f06292",
                "#aed581", "#fff176", "#90a4ae", "#ff8a65", "#7986cb"];
function svg(tag, attrs, text) {  // attributes only: the CSP forbids inline style
  const e = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([a, v]) => e.setAttribute(a, String(v)));
  if (text !== undefined) e.textContent = text;
  return e;
}

// A line plot: x = rounds, one polyline (and a dot per value) per series; values may be null.
function linePlot(fig, title, rounds, series, opts) {
  fig.replaceChildren(el("figcaption", title));
  const W = 440, H = 220, L = 44, R = 12, T = 10, B = 34;
  const values = series.flatMap((s) => s.values).filter((v) => v != null);
  if (!values.length) { fig.appendChild(el("div", opts.empty, "empty")); return; }
  let lo = opts.min != null ? Math.min(opts.min, ...values) : Math.min(...values);
  let hi = opts.max != null ? Math.max(opts.max, ...values) : Math.max(...values);
  if (hi === lo) { hi += 1; lo = Math.min(lo, 0); }
  let ticks = [0, 1, 2, 3, 4].map((t) => lo + ((hi - lo) * t) / 4);
  if (opts.integer) {  // counts: whole-number ticks only
    const step = Math.max(1, Math.ceil((hi - lo) / 4));
    hi = lo + step * Math.ceil((hi - lo) / step);
    ticks = [];
    for (let v = lo; v <= hi; v += step) ticks.push(v);
  }
  const x = (i) => L + (rounds.length > 1 ? (i * (W - L - R)) / (rounds.length - 1) : (W - L - R) / 2);
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const g = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  for (const v of ticks) {
    g.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#333" }));
    g.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", fill: "#9aa0a6", "font-size": 11 }, opts.integer ? Math.round(v) : v.toFixed(2)));
  }
  rounds.forEach((r, i) => g.appendChild(svg("text", { x: x(i), y: H - B + 16, "text-anchor": "middle", fill: "#9aa0a6", "font-size": 11 }, r)));
  g.appendChild(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", fill: "#9aa0a6", "font-size": 11 }, "round"));
  if (opts.hline != null && opts.hline >= lo && opts.hline <= hi) {
    g.appendChild(svg("line", { x1: L, x2: W - R, y1: y(opts.hline), y2: y(opts.hline), stroke: "#6fcf97", "stroke-dasharray": "4 3", class: "threshold" }));
  }
  series.forEach((s, j) => {
    const color = s.color || COLORS[j % COLORS.length];
    const pts = s.values.map((v, i) => (v == null ? null : [x(i), y(v)])).filter(Boolean);
    if (pts.length > 1) g.appendChild(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name }));
    s.values.forEach((v, i) => {
      if (v == null) return;
      const dot = svg("circle", { cx: x(i), cy: y(v), r: 3.5, fill: color, "data-series": s.name });
      dot.appendChild(svg("title", {}, `${s.name}, round ${rounds[i]}: ${opts.integer ? v : v.toFixed(3)}`));
      g.appendChild(dot);
    });
  });
  fig.appendChild(g);
  if (series.length > 1 || opts.legend) {
    const legend = el("div", null, "legend");
    series.forEach((s, j) => {
      const item = el("span"); const sw = el("i"); sw.style.background = s.color || COLORS[j % COLORS.length];
      item.appendChild(sw); item.appendChild(document.createTextNode(s.name)); legend.appendChild(item);
    });
    fig.appendChild(legend);
  }
}

function drawPlots(p) {
  const ids = p.rounds.map((r) => r.id);
  linePlot($("plot-auc"), "Validation AUC per round (macro, on the current validation sample)", ids,
           [{ name: "validation AUC", values: p.rounds.map((r) => r.validation_auc), color: COLORS[0] }],
           { min: 0.5, max: 1, empty: "No validation AUC yet: it needs a round with a model and validation labels of two classes." });
  linePlot($("plot-kappa"), `Stability κ per round (stop advice at κ ≥ ${p.stop_kappa} for ${p.stop_rounds} rounds)`, ids,
           [{ name: "stability κ", values: p.rounds.map((r) => r.stability_kappa), color: COLORS[1] }],
           { max: 1, hline: p.stop_kappa, empty: "No stability κ yet: it compares two consecutive rounds' models." });
  const marks = p.labels_by_round.map((m) => (m.round === 0 ? "start" : m.round));
  linePlot($("plot-classes"), "Labels per class over rounds (training + validation)", marks,
           p.classes.map((c) => ({ name: c, values: p.labels_by_round.map((m) => m.per_class[c]) })),
           { min: 0, integer: true, legend: true, empty: "No labels yet." });
}

async function loadStats() {
  try {
    const p = await api("GET", "/api/progress");
    $("stop").textContent = `Stopping: ${p.stop_reason}`;
    $("stop").className = p.consider_stopping ? "stop yes" : "stop";
    drawPlots(p);
    const pc = $("perclass").tBodies[0]; pc.replaceChildren();
    p.classes.forEach((c) => {
      const tr = el("tr");
      [c, p.train_per_class[c], p.validation_per_class[c], k(p.overall_agreement.per_class[c], 2)]
        .forEach((v) => tr.appendChild(el("td", String(v))));
      pc.appendChild(tr);
    });
    const rb = $("rounds").tBodies[0]; rb.replaceChildren();
    p.rounds.forEach((r) => {
      const tr = el("tr");
      const st = r.state === "closed" ? `closed, ${r.closed_open ?? r.open} unanswered` : r.state === "open" && r.open ? `open: ${r.open} to answer` : r.state;
      [r.id, r.strategy, r.queried, r.answered, st, k(r.agreement.kappa),
       r.validation_auc == null ? "–" : `${k(r.validation_auc)} (n=${r.validation_n})`, k(r.stability_kappa, 4)]
        .forEach((v) => tr.appendChild(el("td", String(v))));
      rb.appendChild(tr);
    });
    const a = p.overall_agreement;
    $("agree").textContent = a.method
      ? `Readers' agreement (${a.method === "cohen" ? "Cohen's" : "Fleiss'"} κ over ${a.n_items} images, ${a.readers.join(", ")}): ${k(a.kappa)} · unresolved disagreements: ${p.unresolved}`
      : "Readers' agreement: needs two readers on the same images.";
  } catch (e) { $("stop").textContent = e.message; }
}

// ------------------------------------------------------------------ wiring

$("img").onload = () => { $("img").classList.toggle("pixel", $("img").naturalWidth < 256); };
$("unsure").onclick = () => send("unsure");
$("skip").onclick = () => send("skip");
$("undo").onclick = () => { focusViewer(); undo(); };
$("nextround").onclick = () => nextRound(false);
$("signinbtn").onclick = signIn;
$("filter").onchange = loadGallery;
$("reviewskipped").onclick = () => { reviewing = new Set(); nextSkipped(); };
$("reloadbtn").onclick = () => { focus = null; reviewing = null; $("roundnotice").classList.add("hidden"); say(""); refresh(); };
$("lbclose").onclick = () => $("lightbox").close();
$("lightbox").onclick = (ev) => { if (ev.target === $("lightbox")) $("lightbox").close(); };
$("annotator").onchange = () => { rememberName(); focus = null; refresh(); };
document.querySelectorAll(".tab").forEach((t) => { t.onclick = () => showTab(t.dataset.tab); });
["zoom", "contrast", "brightness"].forEach((id) => { $(id).oninput = applyView; });

document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  if (t === $("annotator")) {
    // Enter or Tab confirms the name and hands the keys to the image (Tab would otherwise
    // land on a button that Space or Enter presses)
    if ((ev.key === "Enter" || (ev.key === "Tab" && !ev.shiftKey)) && annotator()) {
      ev.preventDefault(); rememberName(); focus = null; refresh(); focusViewer();
    } else if (ev.key === "Escape") { ev.preventDefault(); focusViewer(); }
    return;
  }
  if (t === $("budget") && ev.key === "Enter") { ev.preventDefault(); nextRound(false); return; }
  if (t instanceof HTMLInputElement && ["text", "password", "number"].includes(t.type)) {
    if (ev.key === "Escape") { ev.preventDefault(); focusViewer(); }
    return;
  }
  if (t instanceof HTMLSelectElement || $("lightbox").open) return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if ($("tab-label").classList.contains("hidden")) return;
  const key = ev.key.toLowerCase();
  if (/^[1-9]$/.test(key) && state && Number(key) <= state.classes.length) send(state.classes[Number(key) - 1]);
  else if (key === "u") send("unsure");
  else if (key === "s") send("skip");
  else if (key === "z" || key === "backspace") undo();
  else if (key === "+" || key === "=") { $("zoom").value = Number($("zoom").value) + 0.25; applyView(); }
  else if (key === "-") { $("zoom").value = Number($("zoom").value) - 0.25; applyView(); }
  else return;
  ev.preventDefault();
});

// a name per browser session (a tab keeps its reader across reloads); the last one as default
$("annotator").value = sessionStorage.getItem("medactive-reader")
  || localStorage.getItem("medactive-annotator") || "";
applyView();
refresh().then(() => { if (annotator()) focusViewer(); else $("annotator").focus(); });
api("GET", "/api/disagreements").then(renderDisagreements).catch(() => {});
