"use strict";
const KEY = "recsvc-admin-key";
const $ = (id) => document.getElementById(id);
const view = { kind: "videos", offset: 0, limit: 20, asked: 0, typing: null };
const rules = { asked: 0, waiting: null }; // the campaigns section: its last request, its wait

class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(problemText(detail));
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

function problemText(detail) {
  // the service's own sentence, or a list of {loc, msg} (a bad query parameter)
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (d && d.msg !== undefined
      ? (d.loc || []).filter((p) => p !== "query" && p !== "body").join(".") + ": " + d.msg
      : JSON.stringify(d))).join("; ");
  }
  return JSON.stringify(detail);
}

async function api(method, path, body, type) {
  const headers = { Authorization: "Bearer " + (sessionStorage.getItem(KEY) || "") };
  if (body !== undefined) headers["Content-Type"] = type || "application/json";
  const response = await fetch(path, { method, headers, body });
  const text = await response.text();
  let data = text;
  try { data = JSON.parse(text); } catch (e) { /* plain text */ }
  if (!response.ok) {
    throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : data,
      response.headers.get("Retry-After"));
  }
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
    : error.status === 503 ? "The service cannot answer now (503): " + error.message
      + (error.retryAfter ? "; try again in " + error.retryAfter + " s." : "; try again shortly.")
    : "Error " + (error.status || "") + ": " + error.message;
  target.replaceChildren(el("div", message, "problem"));
}

function refused(target, error) {
  // a 422 names every problem: shown as the service wrote it
  if (error.status === 422) target.replaceChildren(el("div", "Refused: " + error.message, "problem"));
  else say(target, error);
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
  } catch (error) { refused(target, error); }
}

function schedule(rule) {
  // "from 2026-12-01T00:00:00Z to 2027-01-01T00:00:00Z; quiet 22:00–07:00 Europe/London"
  const span = rule.start && rule.end ? "from " + rule.start + " to " + rule.end
    : rule.start ? "from " + rule.start : rule.end ? "until " + rule.end : "always";
  const quiet = rule.quiet_hours
    ? "; quiet " + rule.quiet_hours[0] + "–" + rule.quiet_hours[1] + " " + (rule.timezone || "UTC") : "";
  return span + quiet;
}

function audience(target) {
  // "segments mass; risk tolerance 1–3"; no target: everyone
  const parts = Object.entries(target || {}).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) =>
    k === "risk_tolerance" ? "risk tolerance " + v[0] + "–" + v[1] : k + " " + (v.length ? v.join(", ") : "none"));
  return parts.join("; ") || "everyone";
}

function actsOn(rule) {
  // what the rule matches, and how much
  if (rule.kind === "pin") return rule.video + " at slot " + rule.slot;
  const parts = ["topics", "videos", "categories", "products"].filter((k) => rule[k] && rule[k].length)
    .map((k) => k + " " + rule[k].join(", "));
  if (rule.kind === "cap") parts.push(rule.daily_cap + " a user and day");
  if (rule.strength !== undefined) parts.push("strength " + rule.strength);
  return parts.join("; ");
}

async function loadCampaigns(fill) {
  // fill: put the stored definition in the editor (not while waiting for a save to serve)
  const target = $("campaigns-serving");
  try {
    const data = await api("GET", "v1/admin/campaigns");
    if (fill) $("campaigns-text").value = data.definition || "";
    $("campaigns-state").textContent = "Stored revision " + (data.revision || "none") +
      "; this replica serves " + (data.serving_revision || "none") + ".";
    const rows = data.serving.map((r) => [r.name, r.kind, r.priority || 0, actsOn(r), schedule(r),
      audience(r.target), el("span", r.active_now ? "yes" : "no", r.active_now ? "ok" : "muted")]);
    if (!rows.length) target.replaceChildren(el("p", "No campaign rule serving.", "muted"));
    else table(target, ["name", "kind", "priority", "acts on", "schedule", "target", "active now"], rows);
    if (data.revision && data.refused_revision === data.revision) {
      target.prepend(el("p", "This replica refused the stored revision " + data.revision +
        " (its log says why): it keeps serving " + (data.serving_revision || "no rule") + ".", "problem"));
    }
    return data;
  } catch (error) { say(target, error); return null; }
}

function waitUntilServed(revision, tries) {
  // the replica picks a saved revision up on its next poll: show the rules once it does
  clearTimeout(rules.waiting);
  rules.waiting = setTimeout(async () => {
    const data = await loadCampaigns(false);
    if (data && data.serving_revision !== revision && tries > 1) waitUntilServed(revision, tries - 1);
  }, 500);
}

async function checkCampaigns(store) {
  const target = $("campaigns-result");
  const asked = ++rules.asked; // a reply to an earlier click than the last is dropped
  try {
    const data = await api(store ? "PUT" : "POST", store ? "v1/admin/campaigns" : "v1/admin/campaigns/validate",
      $("campaigns-text").value, "application/toml");
    if (asked !== rules.asked) return;
    const names = data.campaigns.join(", ") || "no rule";
    target.replaceChildren(el("span", store
      ? "Saved as revision " + data.revision + ": " + names + ". Every replica serves it from its next poll."
      : "Valid: " + names + ".", "ok"));
    if (store) waitUntilServed(data.revision, 60);
  } catch (error) { if (asked === rules.asked) refused(target, error); }
}

async function dryRun() {
  const target = $("campaigns-result");
  const asked = ++rules.asked;
  const params = new URLSearchParams({ users: $("campaigns-users").value.trim() || "1000" });
  const at = $("campaigns-at").value.trim();
  if (at) params.set("at", at);
  target.replaceChildren(el("span", "Running the rules on a sample of users…", "muted"));
  try {
    const data = await api("POST", "v1/admin/campaigns/dry-run?" + params, $("campaigns-text").value,
      "application/toml");
    if (asked !== rules.asked) return;
    const report = el("div");
    report.className = "dry-run";
    report.appendChild(el("p", "Judged at " + data.at + " on " + data.users_scanned + " users with a profile"
      + (data.scan_complete ? " (all of them)" : " (a sample: more have one)") + ", on "
      + (data.surfaces.join(", ") || "no surface") + "."));
    const counts = el("p");
    [["users scanned", data.users_scanned], ["feeds compared", data.feeds_compared],
     ["feeds changed", data.feeds_changed]].forEach(([k, v], i) => {
      if (i) counts.appendChild(document.createTextNode(" · "));
      counts.appendChild(el("b", k + ": "));
      counts.appendChild(el("span", v, "count-" + k.replace(" ", "-")));
    });
    report.appendChild(counts);
    const perRule = el("div");
    table(perRule, ["rule", "kind", "active then", "users targeted", "feeds acted on"],
      data.campaigns.map((c) => [c.name, c.kind, el("span", c.active ? "yes" : "no", c.active ? "ok" : "muted"),
        c.users_targeted, c.feeds_acted_on]));
    report.appendChild(perRule);
    const unknown = Object.entries(data.unknown_items || {});
    report.appendChild(unknown.length
      ? el("p", "Unknown items (they match nothing until they exist): "
        + unknown.map(([rule, ids]) => rule + ": " + ids.join(", ")).join("; ") + ".", "warning")
      : el("p", "Every video and product the rules name is known.", "muted"));
    if ((data.unknown_surfaces || []).length) {
      report.appendChild(el("p", "Unknown surfaces (no page is built for them): "
        + data.unknown_surfaces.join(", ") + ".", "warning"));
    }
    report.appendChild(el("p", "Nothing was stored; the rules serving are unchanged.", "muted"));
    target.replaceChildren(report);
  } catch (error) { if (asked === rules.asked) refused(target, error); }
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
  const category = c.category === undefined ? ""
    : "; " + c.category + " cards today " + c.category_count_today
      + (c.category_cap === null || c.category_cap === undefined ? " (no category cap)" : " of a cap of " + c.category_cap);
  const ruled = card.campaigns && card.campaigns.length ? "; campaigns " + card.campaigns.join(", ") : "";
  return card.product_id + ": risk " + c.risk_level + " (allowed up to " + c.risk_allowed_up_to + ")"
    + (c.holdable_once ? (c.held ? "; held" : "; not held (holdable once)") : "")
    + "; " + (c.at_daily_cap ? "at" : "under") + " today's cap of " + c.daily_cap
    + (c.disclosure_required ? "; disclosure required, " + (c.disclosure_shown ? "shown" : "MISSING") : "")
    + category + ruled;
}

function ruledBy(e) {
  // "pinned by launch; boost-credit, launch": the campaign rules that acted on a video
  const parts = [];
  if (e.pinned) parts.push("pinned by " + e.pinned);
  const others = (e.campaigns || []).filter((name) => name !== e.pinned); // a pin lists its own rule
  if (others.length) parts.push(others.join(", "));
  return parts.join("; ") || "–";
}

async function explainFeed(id, target) {
  try {
    const data = await api("GET", "v1/users/" + encodeURIComponent(id) + "/feed/explain?n=10");
    const round = (x) => (x === undefined ? "–" : Number(x).toFixed(3));
    table(target, ["rank", "video", "score", "model", "trending", "freshness", "popularity", "campaign",
      "campaign rules", "card and its checks"],
      data.explanations.map((e, i) => [i + 1, e.video_id + (e.explored ? " (explored)" : e.pinned ? " (pinned)" : ""),
        round(e.score.total), round(e.score.model), round(e.score.trending), round(e.score.freshness),
        round(e.score.popularity), round(e.score.campaign), ruledBy(e), checks(e.card)]));
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
  loadModels(); loadCatalog(); loadExperiments(); loadCampaigns(true);
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
$("campaigns-validate").addEventListener("click", () => checkCampaigns(false));
$("campaigns-dry-run").addEventListener("click", dryRun);
$("campaigns-save").addEventListener("click", () => checkCampaigns(true));
$("user-look-up").addEventListener("click", lookUp);
$("user-id").addEventListener("keydown", (e) => { if (e.key === "Enter") lookUp(); });
if (sessionStorage.getItem(KEY)) refresh();
