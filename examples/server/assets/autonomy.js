// Autonomy card: what the agent's actions cost, the change windows, and the
// earned level of each (action, resource type) pair with its pin.
"use strict";

function usd(n) {
  return (n < 0 ? "-$" : "+$") + Math.abs(n).toFixed(2);
}

function scheduleText(s) {
  if (s.type === "once") return when(s.start) + " → " + when(s.end);
  return s.cron + " for " + s.duration_minutes + " min (" + s.time_zone + ")";
}

function windowItem(w) {
  const del = may("operator") ? el("button", { class: "btn btn-small", type: "button", "data-action": "delete-window" }, "Delete") : null;
  if (del) del.addEventListener("click", async () => {
    if (!confirm(`Delete the ${w.kind} window "${w.name}"?`)) return;
    try { await api("DELETE", "/ops/windows/" + w.id); } catch (e) { banner(e.message); }
    refreshAutonomy();
  });
  const open = w.open_until ? el("span", { class: "status status-pending" }, "open until " + when(w.open_until)) : el("span", { class: "muted" }, "closed");
  return el("div", { class: "item", "data-window": w.id },
    el("div", { class: "item-head" }, el("span", { class: "sev" }, w.kind), el("strong", {}, w.name), open),
    el("div", { class: "small muted" }, scheduleText(w.schedule) + (w.resources.length ? " · " + w.resources.join(", ") : " · every resource") + " · by " + w.created_by),
    del);
}

function earnedItem(p) {
  const pin = el("select", { "aria-label": "pin " + p.action + " on " + p.resource_type, "data-pair": p.action + "/" + p.resource_type });
  for (const [v, label] of [["", p.pinned ? "unpin" : "earned"], ["auto", "pin auto"], ["shadow", "pin shadow"], ["never", "pin never"]]) {
    const o = el("option", { value: v }, label);
    if (p.pinned && v === p.level) o.selected = true;
    pin.append(o);
  }
  if (!p.pinned) pin.value = "";
  pin.disabled = !may("admin");
  pin.addEventListener("change", async () => {
    try {
      await api("PUT", "/ops/autonomy/levels/" + p.action + "/" + encodeURIComponent(p.resource_type), { pin: pin.value || null });
    } catch (e) { banner(e.message); }
    refreshAutonomy();
  });
  const counts = p.approved + " approved, " + p.rejected + " rejected, " + p.resolved + " resolved, " + p.unresolved + " unresolved · " + p.promotions + "↑ " + p.demotions + "↓";
  const last = p.last_change ? " · last: " + p.last_change.from + " → " + p.last_change.to + " (" + p.last_change.reason + ")" : "";
  const pill = "pill " + (p.level === "auto" ? "pill-on" : p.level === "never" ? "pill-off" : "pill-unknown");
  return el("div", { class: "item", "data-level": p.level },
    el("div", { class: "item-head" },
      el("strong", { class: "mono" }, p.action + " on " + p.resource_type),
      el("span", { class: pill }, p.level + (p.pinned ? " (pinned)" : "")),
      pin),
    el("div", { class: "small" }, p.standing),
    el("div", { class: "small muted" }, counts + last));
}

async function refreshAutonomy() {
  if (!signedIn()) return;
  try {
    const [c, w, e, changes] = await Promise.all([api("GET", "/ops/costs"), api("GET", "/ops/windows"),
      api("GET", "/ops/autonomy/levels"), api("GET", "/ops/audit?step=autonomy&limit=10")]);
    const deployments = Object.entries(c.deployments).map(([id, d]) =>
      el("div", { "data-deployment": id }, "Deployment ", el("span", { class: "mono" }, id.slice(0, 8)), ": " + usd(d.monthly_usd) + "/month from " + d.actions + " action(s)"));
    fill($("costs"),
      el("div", {}, "Automatic actions, last 24 h: " + usd(c.automatic_last_24h_usd) + "/month of the $" + c.max_auto_daily_increase_usd.toFixed(2) + " daily cap (at most $" + c.max_auto_monthly_increase_usd.toFixed(2) + " per action)"),
      ...deployments);
    $("windows").replaceChildren(...(w.windows.length ? w.windows.map(windowItem) : [el("p", { class: "muted small" }, "No change windows.")]));
    $("earned-settings").textContent = e.enabled
      ? "(on: auto after " + Math.round(e.precision * 100) + "% of at least " + e.min_decisions + " decisions approved and resolved)"
      : "(off: every unpinned pair is trusted)";
    $("earned").replaceChildren(...e.pairs.map(earnedItem));
    const rows = changes.records.slice().reverse().map((r) => el("li", { class: "small" },
      el("span", { class: "when" }, when(r.at)), " ", el("strong", {}, r.outcome),
      r.reasoning ? " — " + r.reasoning : "", el("span", { class: "muted" }, " · " + r.actor)));
    $("autonomy-changes").replaceChildren(...(rows.length ? rows : [el("li", { class: "small muted" }, "No changes yet.")]));
  } catch (err) {
    if (err.status !== 401) banner("Could not refresh autonomy: " + err.message);
  }
}

$("window-tz").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
$("window-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const resources = $("window-resources").value.split(",").map((r) => r.trim()).filter(Boolean);
  try {
    await api("POST", "/ops/windows", {
      name: $("window-name").value,
      kind: $("window-kind").value,
      schedule: { type: "recurring", cron: $("window-cron").value, duration_minutes: Number($("window-minutes").value), time_zone: $("window-tz").value || "UTC" },
      resources,
    });
    $("window-name").value = "";
    banner("");
  } catch (e) { banner(e.message); }
  refreshAutonomy();
});

refreshAutonomy();
setInterval(refreshAutonomy, 5000);
