// medactive labelling page logic (served as /static/app.js: the CSP allows no inline script).
"use strict";
const $ = (id) => document.getElementById(id);
let state = null;
let busy = false;  // one request at a time: the page moves on only after the commit

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

function render(s) {
  state = s;
  $("project").textContent = s.project;
  $("round").textContent = s.round ? `round ${s.round.id} · ${s.round.strategy}` : "no round yet";
  $("progress").textContent = `${s.done} / ${s.total}`;
  $("bar").firstElementChild.style.width = s.total ? `${100 * s.done / s.total}%` : "0";
  const box = $("classes");
  if (!box.childElementCount) {
    s.classes.forEach((name, i) => {
      const b = document.createElement("button");
      b.dataset.answer = name;
      b.textContent = name;  // textContent: class names are data, never markup
      if (i < 9) { const k = document.createElement("kbd"); k.textContent = i + 1; b.appendChild(k); }
      b.onclick = () => send(name);
      box.appendChild(b);
    });
  }
  if (!$("annotator").value && s.annotator) $("annotator").value = s.annotator;
  const cur = s.current;
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
    $("meta").textContent = `#${cur.rank} · ${cur.uid}${score}`;
  } else {
    $("meta").textContent = "";
  }
}

async function send(answer) {
  if (busy || !state || !state.current) return;
  if (!annotator()) { $("msg").textContent = "Enter your name first."; $("annotator").focus(); return; }
  localStorage.setItem("medactive-annotator", annotator());
  busy = true;
  try {
    render(await api("POST", "/api/answer",
                     { image_id: state.current.image_id, answer, annotator: annotator() }));
    $("msg").textContent = "";
  } catch (e) { $("msg").textContent = `Not saved: ${e.message}`; }
  finally { busy = false; }
}

async function undo() {
  if (busy || !annotator()) return;
  busy = true;
  try { render(await api("POST", "/api/undo", { annotator: annotator() })); $("msg").textContent = ""; }
  catch (e) { $("msg").textContent = e.message; }
  finally { busy = false; }
}

function applyView() {
  const z = Number($("zoom").value), c = $("contrast").value, b = $("brightness").value;
  $("img").style.transform = `scale(${z})`;
  $("img").style.filter = `contrast(${c}%) brightness(${b}%)`;
  $("zoomv").textContent = `${z.toFixed(1)}×`;
  $("contrastv").textContent = `${c}%`;
  $("brightnessv").textContent = `${b}%`;
}

$("img").onload = () => { $("img").classList.toggle("pixel", $("img").naturalWidth < 256); };
$("unsure").onclick = () => send("unsure");
$("skip").onclick = () => send("skip");
$("undo").onclick = undo;
["zoom", "contrast", "brightness"].forEach((id) => { $(id).oninput = applyView; });

document.addEventListener("keydown", (ev) => {
  if (ev.target instanceof HTMLInputElement && ev.target.type === "text") return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const k = ev.key.toLowerCase();
  if (/^[1-9]$/.test(k) && state && Number(k) <= state.classes.length) send(state.classes[Number(k) - 1]);
  else if (k === "u") send("unsure");
  else if (k === "s") send("skip");
  else if (k === "z" || k === "backspace") undo();
  else if (k === "+" || k === "=") { $("zoom").value = Number($("zoom").value) + 0.25; applyView(); }
  else if (k === "-") { $("zoom").value = Number($("zoom").value) - 0.25; applyView(); }
  else return;
  ev.preventDefault();
});

$("annotator").value = localStorage.getItem("medactive-annotator") || "";
applyView();
api("GET", "/api/state").then(render).catch((e) => { $("msg").textContent = e.message; });
