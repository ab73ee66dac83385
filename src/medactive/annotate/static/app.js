// medactive labelling page logic (served as /static/app.js: the CSP allows no inline script).
"use strict";
const $ = (id) => document.getElementById(id);
let state = null;
let focus = null;  // an image picked in the gallery ("jump to"), shown instead of the next one
let busy = false;  // one request at a time: the page moves on only after the commit
let polling = null;

// The session cookie (HttpOnly, SameSite=Strict, set when the page loaded) authenticates every
// request; the token, if any, never appears in a URL the page builds.
async function api(method, path, body) {
  const res = await fetch(path, { method, credentials: "same-origin",
                                  headers: body ? { "Content-Type": "application/json" } : {},
                                  body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.detail || res.statusText);
  return data;
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
    row.appendChild(el("span", p.class));
    const b = el("span", null, "pbar"); const f = el("span"); f.style.width = pct(p.p);
    b.appendChild(f); row.appendChild(b); row.appendChild(el("span", pct(p.p), "pv"));
    box.appendChild(row);
  });
}

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
  if (running && !polling) polling = setInterval(pollJob, 1000);
  if (!running && polling) { clearInterval(polling); polling = null; }
}

async function pollJob() {
  try {
    const { job } = await api("GET", "/api/job");
    const wasRunning = state && state.job && state.job.status === "running";
    if (state) state.job = job;
    renderJob(job);
    if (wasRunning && job && job.status !== "running") refresh();
  } catch (e) { $("msg").textContent = e.message; }
}

function render(s) {
  state = s;
  $("project").textContent = s.project;
  $("round").textContent = s.round ? `round ${s.round.id} · ${s.round.strategy}` : "no round yet";
  $("progress").textContent = `${s.done} / ${s.total}`;
  $("bar").firstElementChild.style.width = s.total ? `${100 * s.done / s.total}%` : "0";
  renderMix(s.round);
  const box = $("classes");
  if (!box.childElementCount) {
    s.classes.forEach((name, i) => {
      const b = document.createElement("button");
      b.dataset.answer = name;
      b.textContent = name;
      if (i < 9) { const k = document.createElement("kbd"); k.textContent = i + 1; b.appendChild(k); }
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
  $("donebox").style.display = cur || !s.round ? "none" : "block";
  if (cur) {
    const src = `/api/image/${cur.image_id}`;
    if ($("img").getAttribute("src") !== src) $("img").setAttribute("src", src);
    $("img").dataset.imageId = cur.image_id;
    const score = cur.score == null ? "" : ` · score ${cur.score.toFixed(4)}`;
    $("meta").textContent = `#${cur.rank} · ${cur.uid}${score}${focus ? " (picked in the gallery)" : ""}`;
    $("whytext").textContent = `rank ${cur.rank} · ${cur.strategy}${score} — ${cur.why}`;
  } else {
    $("meta").textContent = "";
    $("whytext").textContent = "";
  }
  renderPreds($("preds"), cur);
  const last = s.last;
  $("lastbox").style.display = last ? "" : "none";
  if (last) {
    $("lasttext").textContent = `${last.uid}: you said ${last.own_answer || "skip"}`;
    const p = el("div"); renderPreds(p, last); $("lasttext").appendChild(p);
  }
  renderJob(s.job);
}

async function refresh() {
  try { render(await api("GET", `/api/state${readerQuery()}`)); }
  catch (e) { $("msg").textContent = e.message; }
}

function rememberName() {
  sessionStorage.setItem("medactive-reader", annotator());
  localStorage.setItem("medactive-annotator", annotator());
}

async function send(answer) {
  const cur = focus || (state && state.current);
  if (busy || !cur) return;
  if (!annotator()) { $("msg").textContent = "Enter your name first."; $("annotator").focus(); return; }
  rememberName();
  busy = true;
  try {
    const s = await api("POST", "/api/answer", { image_id: cur.image_id, answer, annotator: annotator() });
    focus = null;
    render(s);
    $("msg").textContent = "";
  } catch (e) { $("msg").textContent = `Not saved: ${e.message}`; }
  finally { busy = false; }
}

async function undo() {
  if (busy || !annotator()) return;
  busy = true;
  try { focus = null; render(await api("POST", "/api/undo", { annotator: annotator() })); $("msg").textContent = ""; }
  catch (e) { $("msg").textContent = e.message; }
  finally { busy = false; }
}

async function nextRound() {
  if (!annotator()) { $("msg").textContent = "Enter your name first."; return; }
  try {
    const { job } = await api("POST", "/api/next-round", { budget: Number($("budget").value), annotator: annotator() });
    state.job = job; renderJob(job); $("msg").textContent = "";
  } catch (e) { $("msg").textContent = e.message; }
}

async function signIn() {
  try {
    render(await api("POST", "/api/signin", { name: annotator(), token: $("token").value }));
    $("token").value = ""; rememberName(); $("msg").textContent = "";
  } catch (e) { $("msg").textContent = e.message; }
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
}

async function jump(imageId) {
  try {
    focus = await api("GET", `/api/item/${imageId}${readerQuery()}`);
    showTab("label"); render(state);
  } catch (e) { $("msg").textContent = e.message; }
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

async function loadDisagreements() {
  try { renderDisagreements(await api("GET", "/api/disagreements")); }
  catch (e) { $("msg").textContent = e.message; }
}

function renderDisagreements(d) {
  const body = $("distable").tBodies[0]; body.replaceChildren();
  $("ndis").textContent = d.items.length ? `(${d.items.length})` : "";
  d.items.forEach((it) => {
    const tr = el("tr"); tr.dataset.imageId = it.image_id;
    const td0 = el("td"); const img = el("img", null, "mini"); img.setAttribute("src", `/api/thumb/${it.image_id}`);
    td0.appendChild(img); td0.appendChild(el("span", it.uid)); tr.appendChild(td0);
    tr.appendChild(el("td", Object.entries(it.answers).map(([r, a]) => `${r}: ${a}`).join(" · ")));
    tr.appendChild(el("td", it.decided ? `${it.decided} (${it.status})` : "unresolved", it.decided ? "" : "warn"));
    const td = el("td"); const sel = el("select");
    [...d.classes, "unsure"].forEach((c) => { const o = el("option", c); o.value = c; sel.appendChild(o); });
    const b = el("button", "Decide", "small");
    b.onclick = async () => {
      if (!annotator()) { $("msg").textContent = "Enter your name first."; return; }
      try { renderDisagreements(await api("POST", "/api/adjudicate", { image_id: it.image_id, answer: sel.value, annotator: annotator() })); }
      catch (e) { $("msg").textContent = e.message; }
    };
    td.appendChild(sel); td.appendChild(b); tr.appendChild(td);
    body.appendChild(tr);
  });
}

function k(v, digits = 3) { return v == null ? "–" : v.toFixed(digits); }

async function loadStats() {
  try {
    const p = await api("GET", "/api/progress");
    $("stop").textContent = `Stopping: ${p.stop_reason}`;
    $("stop").className = p.consider_stopping ? "stop yes" : "stop";
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
      [r.id, r.strategy, r.queried, r.answered, k(r.agreement.kappa),
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

$("img").onload = () => { $("img").classList.toggle("pixel", $("img").naturalWidth < 256); };
$("unsure").onclick = () => send("unsure");
$("skip").onclick = () => send("skip");
$("undo").onclick = undo;
$("nextround").onclick = nextRound;
$("signinbtn").onclick = signIn;
$("filter").onchange = loadGallery;
$("annotator").onchange = () => { rememberName(); focus = null; refresh(); };
document.querySelectorAll(".tab").forEach((t) => { t.onclick = () => showTab(t.dataset.tab); });
["zoom", "contrast", "brightness"].forEach((id) => { $(id).oninput = applyView; });

document.addEventListener("keydown", (ev) => {
  if (ev.target instanceof HTMLInputElement && ["text", "password", "number"].includes(ev.target.type)) return;
  if (ev.target instanceof HTMLSelectElement) return;
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
refresh();
api("GET", "/api/disagreements").then(renderDisagreements).catch(() => {});
