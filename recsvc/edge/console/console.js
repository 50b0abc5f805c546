"use strict";
const KEY = "recsvc-admin-key";
const $ = (id) => document.getElementById(id);
const view = { kind: "videos", offset: 0, limit: 20, asked: 0, typing: null };

class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

async function api(method, path, body, type) {
  const headers = { Authorization: "Bearer " + (sessionStorage.getItem(KEY) || "") };
  if (body !== undefined) headers["Content-Type"] = type || "application/json";
  const response = await fetch(path, { method, headers, body });
  const text = await response.text();
  let data = text;
  try { data = JSON.parse(text); } catch (e) { /* plain text */ }
  if (!response.ok) throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : data);
  return data;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function table(target, head, rows) {
  const t = el("table");
  const tr = el("tr");
  head.forEach((h) => tr.appendChild(el("th", h)));
  t.appendChild(tr);
  rows.forEach((cells) => {
    const row = el("tr");
    cells.forEach((c) => {
      const td = el("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "–" : String(c);
      row.appendChild(td);
    });
    t.appendChild(row);
  });
  target.replaceChildren(t);
}

function say(target, error) {
  const message = error.status === 401 || error.status === 403
    ? "The service refused the key (" + error.status + "): sign in with an admin key."
    : error.status === 503 ? "Redis is unreachable; try again shortly."
    : "Error " + (error.status || "") + ": " + error.message;
  target.replaceChildren(el("div", message, "problem"));
}

function metricsText(metrics, prefix) {
  // numbers, one level of nesting shown as "holdout ndcg_at_10 0.3412"
  if (!metrics) return "–";
  const parts = [];
  Object.entries(metrics).forEach(([k, v]) => {
    const name = prefix ? prefix + " " + k : k;
    if (typeof v === "number") parts.push(name + " " + (Math.abs(v) < 10 ? v.toFixed(4) : v));
    else if (v && typeof v === "object" && !prefix) parts.push(metricsText(v, k));
  });
  return parts.filter((t) => t && t !== "–").join(", ") || "–";
}

async function loadModels() {
  const target = $("models-body");
  try {
    const data = await api("GET", "v1/admin/models");
    const rows = [["current", data.current], ["challenger", data.challenger]]
      .filter(([, m]) => m)
      .map(([role, m]) => [role, m.version, m.generation, m.created_at || m.problem,
        m.data_window && m.data_window.last_event ? m.data_window.last_event : null,
        m.videos, m.products, metricsText(m.metrics)]);
    if (!rows.length) { target.replaceChildren(el("p", "No model published yet.", "muted")); }
    else table(target, ["role", "version", "generation", "created", "data until", "videos", "products", "offline metrics"], rows);
    $("models-serving").textContent = "This replica serves " + (data.serving.model_version || "no model") +
      "; experiments: " + (data.serving.experiments.join(", ") || "none") + ".";
  } catch (error) { say(target, error); }
}

async function loadCatalog() {
  const target = $("catalog-body");
  const asked = ++view.asked; // a reply to an earlier request than the last is dropped
  const params = new URLSearchParams({ offset: view.offset, limit: view.limit });
  if ($("catalog-status").value) params.set("status", $("catalog-status").value);
  if ($("catalog-search").value) params.set("contains", $("catalog-search").value);
  try {
    const data = await api("GET", "v1/admin/catalog/" + view.kind + "?" + params);
    if (asked !== view.asked) return;
    const rows = data.items.map((r) => {
      const status = el("span", r.status, "status-" + r.status);
      status.dataset.id = r.id;
      const next = r.status === "live" ? "retired" : "live";
      const button = el("button", r.status === "live" ? "Retire" : "Make live");
      button.dataset.id = r.id;
      button.addEventListener("click", () => setStatus(r.id, next));
      const about = view.kind === "videos" ? (r.topics || []).join(", ") : (r.category || "") + ", risk " + r.risk_level;
      return [r.id, r.title || r.name || "", about, status, button];
    });
    table(target, ["id", view.kind === "videos" ? "title" : "name", view.kind === "videos" ? "topics" : "category",
      "status", ""], rows);
    const last = Math.min(view.offset + view.limit, data.total);
    $("catalog-page").textContent = data.total ? (view.offset + 1) + "–" + last + " of " + data.total : "none";
    $("catalog-prev").disabled = view.offset === 0;
    $("catalog-next").disabled = last >= data.total;
  } catch (error) { say(target, error); }
}

async function setStatus(id, status) {
  try {
    const path = "v1/catalog/" + view.kind + "/" + encodeURIComponent(id) + "/status";
    const stored = await api("PUT", path, JSON.stringify({ status }));
    const message = id + " is now " + stored.status + " on every replica within a poll.";
    $("catalog-result").replaceChildren(el("span", message, "ok"));
    document.querySelectorAll("#catalog-body span[data-id]").forEach((span) => {
      if (span.dataset.id !== id) return; // this row, shown as stored, until the next load
      span.textContent = stored.status;
      span.className = "status-" + stored.status;
    });
  } catch (error) { say($("catalog-result"), error); }
}

async function loadExperiments() {
  try {
    const data = await api("GET", "v1/admin/experiments");
    $("experiments-text").value = data.definition || "";
    $("experiments-state").textContent = "Stored revision " + (data.revision || "none") +
      "; this replica serves " + (data.serving_revision || "none") + ".";
  } catch (error) { say($("experiments-result"), error); }
}

async function checkExperiments(store) {
  const target = $("experiments-result");
  try {
    const data = await api(store ? "PUT" : "POST", store ? "v1/admin/experiments" : "v1/admin/experiments/validate",
      $("experiments-text").value, "application/toml");
    const names = data.experiments.join(", ") || "no experiment";
    target.replaceChildren(el("span", (store ? "Saved as revision " + data.revision + ": " : "Valid: ") + names + ".", "ok"));
    if (store) await loadExperiments();
  } catch (error) {
    if (error.status === 422) target.replaceChildren(el("div", "Refused: " + (typeof error.detail === "string" ? error.detail : error.message), "problem"));
    else say(target, error);
  }
}

async function lookUp() {
  const id = $("user-id").value.trim();
  const target = $("user-body");
  if (!id) return;
  try {
    const data = await api("GET", "v1/users/" + encodeURIComponent(id));
    const p = data.profile;
    const facts = el("div");
    [["risk tolerance", p.risk_tolerance], ["segment", p.segment], ["lifecycle", p.lifecycle],
     ["holdings", p.holdings.join(", ") || "none"],
     ["vector in " + (data.model_version || "no model"), data.has_vector ? "yes" : "no (fold-in or popularity)"]]
      .forEach(([k, v]) => { const line = el("div"); line.appendChild(el("b", k + ": ")); line.appendChild(el("span", v === null ? "unknown" : v)); facts.appendChild(line); });
    const recent = el("div");
    table(recent, ["item", "type", "action", "watch ratio"], data.recent.map((e) => [e.item_id, e.item_type, e.action, e.watch_ratio]));
    const heading = el("h3", "Recent events (" + data.recent.length + ", newest first)");
    const explained = el("div");
    target.replaceChildren(facts, heading, recent, el("h3", "Their next feed, explained"), explained);
    await explainFeed(id, explained);
  } catch (error) { say(target, error); }
}

function checks(card) {
  // "risk 4 of 5 allowed; not held; cap 0 of 2 used today" and the disclosure
  if (!card) return "no card";
  const c = card.checks;
  return card.product_id + ": risk " + c.risk_level + " (allowed up to " + c.risk_allowed_up_to + ")"
    + (c.holdable_once ? (c.held ? "; held" : "; not held (holdable once)") : "")
    + "; " + (c.at_daily_cap ? "at" : "under") + " today's cap of " + c.daily_cap
    + (c.disclosure_required ? "; disclosure required, " + (c.disclosure_shown ? "shown" : "MISSING") : "");
}

async function explainFeed(id, target) {
  try {
    const data = await api("GET", "v1/users/" + encodeURIComponent(id) + "/feed/explain?n=10");
    const round = (x) => (x === undefined ? "–" : Number(x).toFixed(3));
    table(target, ["rank", "video", "score", "model", "trending", "freshness", "popularity", "card and its checks"],
      data.explanations.map((e, i) => [i + 1, e.video_id + (e.explored ? " (explored)" : ""),
        round(e.score.total), round(e.score.model), round(e.score.trending), round(e.score.freshness),
        round(e.score.popularity), checks(e.card)]));
    target.prepend(el("p", "Model " + data.model_version + ", " + data.variant + ", source " + data.source
      + ". Explaining uses no daily cap.", "muted"));
  } catch (error) { say(target, error); }
}

function signIn() {
  sessionStorage.setItem(KEY, $("key").value);
  $("key").value = "";
  refresh();
}

function refresh() {
  $("signed").textContent = sessionStorage.getItem(KEY) ? "key set for this tab" : "no key";
  loadModels(); loadCatalog(); loadExperiments();
}

$("sign-in").addEventListener("click", signIn);
$("key").addEventListener("keydown", (e) => { if (e.key === "Enter") signIn(); });
$("catalog-kind").addEventListener("change", (e) => { view.kind = e.target.value; view.offset = 0; loadCatalog(); });
$("catalog-status").addEventListener("change", () => { view.offset = 0; loadCatalog(); });
$("catalog-search").addEventListener("input", () => { // one request once typing pauses
  clearTimeout(view.typing);
  view.typing = setTimeout(() => { view.offset = 0; loadCatalog(); }, 300);
});
$("catalog-prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - view.limit); loadCatalog(); });
$("catalog-next").addEventListener("click", () => { view.offset += view.limit; loadCatalog(); });
$("experiments-validate").addEventListener("click", () => checkExperiments(false));
$("experiments-save").addEventListener("click", () => checkExperiments(true));
$("user-look-up").addEventListener("click", lookUp);
$("user-id").addEventListener("keydown", (e) => { if (e.key === "Enter") lookUp(); });
if (sessionStorage.getItem(KEY)) refresh();
