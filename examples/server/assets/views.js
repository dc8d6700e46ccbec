// infraai dashboard, second level: architecture canvas, Terraform view, run
// timeline and incident view. Plain JS and hand-written SVG, no build step;
// the Terraform view uses the vendored CodeMirror 6 bundle (global `CM`,
// /assets/vendor/codemirror.js, built by ../editor-build). Nothing is fetched
// from anywhere but this server. Untrusted text goes through textContent /
// createTextNode (or CodeMirror, which renders documents and diagnostic
// messages as text) only. Uses `el`, `api`, `when` from app.js.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const ms = (t) => new Date(t).getTime();
function dur(msec) {
  if (!(msec >= 0)) return "";
  if (msec < 1000) return Math.round(msec) + " ms";
  if (msec < 60000) return (msec / 1000).toFixed(1) + " s";
  return Math.floor(msec / 60000) + " m " + Math.round((msec % 60000) / 1000) + " s";
}

// ================================================================ architecture canvas

const KIND_ICON = { compute: "▣", instance_group: "▦", database: "⛁", network: "⌗", subnet: "⌗", firewall: "▤",
  load_balancer: "⇶", bucket: "◫", storage: "◫", cache: "◇", monitoring_policy: "◉" };

// Layered layout: longest-path layering (edges point from dependent to
// dependency, so dependencies sit lower), then a few barycenter sweeps to
// order each layer. Fine for the 1–30 nodes of a plan.
function layout(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const out = new Map(ids.map((i) => [i, []]));
  const inc = new Map(ids.map((i) => [i, []]));
  for (const e of edges) {
    if (!out.has(e.from) || !inc.has(e.to) || e.from === e.to) continue;
    out.get(e.from).push(e.to);
    inc.get(e.to).push(e.from);
  }
  const layer = new Map();
  const visiting = new Set();
  const depth = (id) => { // longest path to a sink; cycles are cut
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    let d = 0;
    for (const t of out.get(id)) d = Math.max(d, depth(t) + 1);
    visiting.delete(id);
    layer.set(id, d);
    return d;
  };
  ids.forEach(depth);
  const maxL = Math.max(0, ...layer.values());
  const layers = [];
  for (let l = maxL; l >= 0; l--) layers.push(ids.filter((i) => layer.get(i) === l));
  const pos = new Map();
  const index = () => layers.forEach((ls) => ls.forEach((id, k) => pos.set(id, k / Math.max(1, ls.length - 1 || 1))));
  index();
  for (let sweep = 0; sweep < 4; sweep++) {
    for (const ls of layers) {
      const bc = (id) => {
        const nb = [...out.get(id), ...inc.get(id)].filter((x) => pos.has(x));
        return nb.length ? nb.reduce((a, x) => a + pos.get(x), 0) / nb.length : pos.get(id);
      };
      const b = new Map(ls.map((id) => [id, bc(id)]));
      ls.sort((x, y) => b.get(x) - b.get(y));
      index();
    }
  }
  return layers;
}

/** Fewest nodes side by side on the canvas (a phone scrolls sideways). */
const ARCH_MIN_ROW = 2;
const clip = (t, n) => { t = String(t); return t.length > n ? t.slice(0, n - 1) + "…" : t; };
let archSelected = null;
// Where a deployed resource runs, from its run's outputs (an HTTP URL, or a
// database's or cache's host:port); undefined before it is deployed.
function runningAt(outputs, name) {
  return outputs && ((outputs.urls || {})[name] || (outputs.endpoints || {})[name]);
}

function renderGraph(graph, plan, outputs) {
  const card = $("arch-card");
  card.hidden = false;
  const nodes = graph.nodes || [];
  const edges = (graph.edges || []).filter((e) => nodes.some((n) => n.id === e.from) && nodes.some((n) => n.id === e.to));
  $("arch-count").textContent = nodes.length + " nodes · " + edges.length + " edges";
  const W = 180, H = 46, GX = 24, GY = 56, PAD = 16;
  // A layer wider than the card wraps onto more rows, so 30 nodes stay
  // readable at their natural size instead of shrinking to fit one row.
  const room = $("arch-canvas").parentElement.clientWidth - 12;
  const perRow = Math.max(ARCH_MIN_ROW, Math.floor((room - 2 * PAD + GX) / (W + GX)));
  const rows = layout(nodes, edges).flatMap((ls) => {
    const r = [];
    for (let i = 0; i < ls.length; i += perRow) r.push(ls.slice(i, i + perRow));
    return r;
  });
  const widest = Math.max(1, ...rows.map((l) => l.length));
  const width = PAD * 2 + widest * W + (widest - 1) * GX;
  const height = PAD * 2 + rows.length * H + Math.max(0, rows.length - 1) * GY;
  const at = new Map();
  rows.forEach((ls, li) => {
    const rowW = ls.length * W + (ls.length - 1) * GX;
    ls.forEach((id, k) => at.set(id, { x: (width - rowW) / 2 + k * (W + GX), y: PAD + li * (H + GY) }));
  });
  const canvas = $("arch-canvas");
  canvas.setAttribute("viewBox", "0 0 " + width + " " + height);
  // Natural size, scaled down (height following) in a narrower card, but
  // never below 520 px: a phone scrolls the canvas instead.
  canvas.setAttribute("width", width);
  canvas.setAttribute("height", height);
  canvas.style.minWidth = Math.min(520, width) + "px";
  const defs = svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8a98a8" })));
  const edgeEls = edges.map((e) => {
    const a = at.get(e.from), b = at.get(e.to);
    const x1 = a.x + W / 2, y1 = a.y + (b.y > a.y ? H : b.y < a.y ? 0 : H / 2);
    const x2 = b.x + W / 2, y2 = b.y + (b.y > a.y ? 0 : b.y < a.y ? H : H / 2);
    const my = (y1 + y2) / 2;
    return svg("path", { class: "edge edge-" + e.type, d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`, "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to },
      svg("title", {}, e.type.replace("_", " ")));
  });
  const nodeEls = nodes.map((n) => {
    const p = at.get(n.id);
    const kind = n.type === "monitoring_policy" ? "monitoring_policy" : n.kind;
    const sub = n.type === "monitoring_policy" ? (n.comparison === "less_than" ? "< " : "> ") + n.threshold + " · " + n.severity : (n.resource_type || n.kind) + (n.machine_type ? " · " + n.machine_type : "");
    const deployed = n.type === "resource" && runningAt(outputs, n.label) ? " deployed" : "";
    const g = svg("g", { class: "node node-" + n.type + deployed, transform: `translate(${p.x},${p.y})`, tabindex: "0", role: "button", "data-node": n.id,
      "aria-label": (n.type === "monitoring_policy" ? "monitoring policy " : (n.kind || "") + " ") + n.label },
      svg("rect", { width: W, height: H, rx: "8" }),
      svg("text", { x: "12", y: "28", class: "icon" }, KIND_ICON[kind] || "●"),
      svg("text", { x: "34", y: "20", class: "label" }, clip(n.label, 18)),
      svg("text", { x: "34", y: "36", class: "sub" }, clip(sub, 21)),
      svg("title", {}, n.label + " — " + sub));
    const pick = () => selectNode(n, graph, plan, outputs);
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(); } });
    return g;
  });
  canvas.replaceChildren(defs, ...edgeEls, ...nodeEls);
  $("arch-details").replaceChildren(el("p", { class: "muted small" }, "Select a node (click, or Tab then Enter) to see its plan details and monitoring policies."));
  archSelected = null;
}

function selectNode(n, graph, plan, outputs) {
  archSelected = n.id;
  for (const g of document.querySelectorAll("#arch-canvas .node")) g.classList.toggle("selected", g.getAttribute("data-node") === n.id);
  const d = $("arch-details");
  const rows = [];
  const fact = (k, v) => { if (v !== null && v !== undefined && v !== "") rows.push(el("div", {}, el("dt", {}, k), el("dd", { class: "mono" }, String(v)))); };
  if (n.type === "resource") {
    const r = (plan.resources || []).find((x) => "resource:" + x.name === n.id) || {};
    fact("Kind", n.kind); fact("Type", n.resource_type); fact("Machine", n.machine_type); fact("Count", n.count);
    fact("Depends on", (r.depends_on || []).join(", "));
    fact("Running at", runningAt(outputs, n.label));
    const pols = (plan.monitoring || []).filter((m) => "resource:" + m.resource_ref === n.id);
    fill(d, el("h3", {}, n.label), n.description ? el("p", { class: "small" }, n.description) : null, el("dl", { class: "kv" }, ...rows),
      el("div", { class: "small muted" }, "Monitoring policies (" + pols.length + ")"),
      el("ul", { class: "policies" }, ...(pols.length ? pols.map((m) => el("li", { class: "small" },
        el("strong", {}, m.metric_name), " ", el("span", { class: "mono" }, m.metric_path || ""), " · " + (m.comparison === "less_than" ? "< " : "> ") + m.threshold + " for " + m.duration_secs + " s · " + m.severity))
        : [el("li", { class: "small muted" }, "none")])));
  } else {
    const target = (graph.edges || []).find((e) => e.from === n.id);
    fact("Metric", n.metric); fact("Threshold", (n.comparison === "less_than" ? "< " : "> ") + n.threshold); fact("For", n.duration_secs + " s");
    fact("Severity", n.severity); fact("Watches", target ? target.to.replace("resource:", "") : "");
    d.replaceChildren(el("h3", {}, "Monitoring: " + n.label), el("dl", { class: "kv" }, ...rows));
  }
}

// ================================================================ Terraform view

// Files, diagnostics and fix-attempt diffs in CodeMirror 6, from the vendored
// bundle /assets/vendor/codemirror.js (global `CM`, built by
// examples/server/editor-build). Read-only: the view shows what the run
// validated and applied; nothing typed here reaches Terraform.

// Colors and fonts of the dashboard (style.css).
const CM_THEME = CM.EditorView.theme({
  "&": { color: "var(--text)", backgroundColor: "#0b0f13", border: "1px solid var(--line)", borderRadius: "6px", fontSize: "12px" },
  "&.cm-focused": { outline: "2px solid var(--blue)", outlineOffset: "1px" },
  ".cm-scroller": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", lineHeight: "1.5", overflow: "auto" },
  ".cm-content": { caretColor: "var(--text)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--text)" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection": { backgroundColor: "#1d3a5c" },
  ".cm-gutters": { backgroundColor: "#0b0f13", color: "#7d8c9c", borderRight: "1px solid var(--line)", borderRadius: "6px 0 0 6px" },
  ".cm-activeLine": { backgroundColor: "#121a2280" },
  ".cm-activeLineGutter": { backgroundColor: "#121a22", color: "var(--text)" },
  "&.cm-focused .cm-matchingBracket": { backgroundColor: "#2a3440", outline: "1px solid #4c9aff80" },
  ".cm-tooltip": { backgroundColor: "var(--panel)", color: "var(--text)", border: "1px solid var(--line)", borderRadius: "6px", fontFamily: "system-ui, sans-serif" },
  ".cm-tooltip-lint": { padding: "0" },
  ".cm-diagnostic": { padding: "6px 10px", whiteSpace: "pre-wrap", maxWidth: "560px" },
  ".cm-diagnostic-error": { borderLeft: "4px solid var(--red)" },
  ".cm-diagnostic-warning": { borderLeft: "4px solid var(--amber)" },
  ".cm-lintRange-error": { backgroundImage: "none", backgroundColor: "#f0525c26", textDecoration: "underline wavy var(--red)", textUnderlineOffset: "4px", textDecorationSkipInk: "none" },
  ".cm-lintRange-warning": { backgroundImage: "none", backgroundColor: "#f2b23326", textDecoration: "underline wavy var(--amber)", textUnderlineOffset: "4px", textDecorationSkipInk: "none" },
  // Unified diff (@codemirror/merge): inserted lines green, deleted red.
  ".cm-changedLine": { backgroundColor: "#12332299 !important" },
  ".cm-changedText": { backgroundColor: "#2fbf7140 !important", backgroundImage: "none !important" },
  ".cm-deletedChunk": { backgroundColor: "#3a1d2099 !important", paddingLeft: "6px" },
  ".cm-deletedChunk .cm-deletedText, .cm-deletedChunk del": { backgroundColor: "#f0525c40 !important", backgroundImage: "none !important", textDecoration: "none" },
  ".cm-changedLineGutter": { backgroundColor: "var(--green) !important" },
  ".cm-deletedLineGutter": { backgroundColor: "var(--red) !important" },
  ".cm-collapsedLines": { backgroundColor: "#121a22", backgroundImage: "none", color: "var(--muted)", fontFamily: "system-ui, sans-serif", fontSize: "11px" },
  ".cm-collapsedLines:before, .cm-collapsedLines:after": { content: "'↕'" },
}, { dark: true });

const HL = CM.tags;
const CM_HIGHLIGHT = CM.HighlightStyle.define([
  { tag: [HL.typeName, HL.controlKeyword, HL.special(HL.controlKeyword)], color: "#c792ea" },
  { tag: HL.labelName, color: "#ffcb6b" },
  { tag: HL.definition(HL.propertyName), color: "#82aaff" },
  { tag: HL.string, color: "#c3e88d" },
  { tag: HL.number, color: "#f78c6c" },
  { tag: [HL.bool, HL.null], color: "#ff9cac" },
  { tag: HL.comment, color: "#7f8c98", fontStyle: "italic" },
  { tag: [HL.variableName, HL.namespace], color: "#89ddff" },
  { tag: HL.function(HL.variableName), color: "#82aaff" },
  { tag: HL.special(HL.brace), color: "#89ddff" },
  { tag: [HL.brace, HL.paren, HL.squareBracket, HL.separator, HL.definitionOperator, HL.derefOperator, HL.operator], color: "#a9b6c4" },
]);

function cmView(parent, doc, label, extra) {
  return new CM.EditorView({
    parent,
    doc,
    extensions: [
      CM.lineNumbers(), CM.highlightActiveLineGutter(), CM.highlightSpecialChars(), CM.drawSelection(), CM.highlightActiveLine(),
      CM.bracketMatching(), CM.hcl(), CM.syntaxHighlighting(CM_HIGHLIGHT), CM_THEME,
      // Focusable and keyboard-navigable (arrows, F8 / Ctrl-Shift-M for
      // diagnostics), but nothing can be typed.
      CM.EditorState.readOnly.of(true), CM.keymap.of(CM.lintKeymap),
      CM.EditorView.contentAttributes.of({ "aria-label": label, "aria-readonly": "true" }),
      ...extra,
    ],
  });
}

// A Terraform diagnostic as a CodeMirror one: its lines, from the first
// non-blank character (Terraform's SourceRange as stored has no columns).
// Null when the range is outside the text.
function cmDiagnostic(doc, d) {
  const r = d.range;
  if (!r || !(r.start_line >= 1) || r.start_line > doc.lines) return null;
  const first = doc.line(r.start_line);
  const last = doc.line(Math.min(doc.lines, Math.max(r.start_line, r.end_line || r.start_line)));
  const from = first.from + (first.text.length - first.text.trimStart().length);
  return { from: Math.min(from, last.to), to: last.to, severity: d.severity === "error" ? "error" : "warning",
    message: d.summary + (d.detail ? "\n" + d.detail : "") };
}

const lineSpan = (r) => "line " + r.start_line + (r.end_line > r.start_line ? "–" + r.end_line : "");

const ACTION_WORD = { create: "+ create", update: "~ update", replace: "± replace", delete: "− delete", read: "read", no_op: "no-op" };
function changeSetView(cs) {
  if (!cs) return [el("p", { class: "muted small" }, "No change set yet (it appears after terraform plan).")];
  if (!cs.changes.length) return [el("p", { class: "muted small" }, "Plan: no changes.")];
  const counts = {};
  cs.changes.forEach((c) => { counts[c.action] = (counts[c.action] || 0) + 1; });
  const show = (v) => v === null || v === undefined ? "null" : typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v);
  return [
    el("p", { class: "small" }, "Plan: " + Object.entries(counts).map(([a, n]) => n + " to " + a.replace("_", " ")).join(", ")),
    ...cs.changes.map((c) => el("details", { class: "change change-" + c.action, open: "" },
      el("summary", {}, el("span", { class: "act act-" + c.action }, ACTION_WORD[c.action] || c.action), " ", el("span", { class: "mono" }, c.address)),
      c.attributes.length ? el("table", { class: "table attrs" }, el("tbody", {}, ...c.attributes.map((a) => el("tr", {},
        el("td", { class: "mono" }, a.path),
        el("td", { class: "mono before" }, c.action === "create" ? "" : show(a.before)),
        el("td", {}, "→"),
        el("td", { class: "mono after" }, a.after_unknown ? "(known after apply)" : show(a.after))))))
        : el("div", { class: "small muted" }, "no attribute changes listed"))),
  ];
}

let tfRun = null;
let tfFile = null;
let tfSource = "current";
function renderTerraform(run) {
  tfRun = run;
  const card = $("tf-card");
  card.hidden = false;
  $("tf-run").textContent = run.id + " · " + run.phase;
  // Sources: the current files (with the latest diagnostics), and each fix
  // attempt's output files (with the diagnostics the next attempt saw).
  const sel = $("tf-source");
  const opts = [el("option", { value: "current" }, "current files (" + run.diagnostics.length + " diagnostic(s))")];
  const firstAttempt = run.fix_attempts[0];
  if (firstAttempt && firstAttempt.files_before) opts.push(el("option", { value: "before" }, "generated files, before attempt 1 (" + firstAttempt.diagnostics.length + " diagnostic(s))"));
  run.fix_attempts.forEach((f) => { if (f.files) opts.push(el("option", { value: "attempt:" + f.attempt }, "after fix attempt " + f.attempt + " (" + f.fixer + ")")); });
  sel.replaceChildren(...opts);
  if (![...sel.options].some((o) => o.value === tfSource)) tfSource = "current";
  sel.value = tfSource;
  // Diff pairs: attempt k-1 → attempt k for consecutive attempts with files.
  const withFiles = run.fix_attempts.filter((f) => f.files);
  const dsel = $("tf-diff-pair");
  const pairs = [];
  if (firstAttempt && firstAttempt.files_before && firstAttempt.files) pairs.push(el("option", { value: "before:1" }, "generated → attempt 1"));
  for (let k = 1; k < withFiles.length; k++) pairs.push(el("option", { value: withFiles[k - 1].attempt + ":" + withFiles[k].attempt }, "attempt " + withFiles[k - 1].attempt + " → " + withFiles[k].attempt));
  if (withFiles.length && run.files) pairs.push(el("option", { value: withFiles[withFiles.length - 1].attempt + ":current" }, "attempt " + withFiles[withFiles.length - 1].attempt + " → current"));
  const keep = dsel.value;
  dsel.replaceChildren(...(pairs.length ? pairs : [el("option", { value: "" }, "no fix attempts with files")]));
  dsel.disabled = !pairs.length;
  if (pairs.some((o) => o.value === keep)) dsel.value = keep;
  const attemptsList = $("tf-attempts");
  attemptsList.replaceChildren(...(run.fix_attempts.length ? run.fix_attempts.map((f) => el("li", { class: "small" },
    el("strong", {}, "Attempt " + f.attempt), " · fixer " + f.fixer + " · " + f.diagnostics.length + " diagnostic(s): ",
    el("span", { class: "muted" }, f.diagnostics.map((d) => d.summary + (d.range ? " (" + d.range.filename + ":" + d.range.start_line + ")" : "")).join("; "))))
    : [el("li", { class: "small muted" }, "No fix attempts: the configuration validated first time.")]));
  renderTfCode();
  renderTfDiff();
  $("tf-plan").replaceChildren(...changeSetView(run.change_set));
}

function tfSourceFiles() {
  if (tfSource === "current") return { files: (tfRun.files || {}).files || {}, diags: tfRun.diagnostics };
  if (tfSource === "before") return { files: tfRun.fix_attempts[0].files_before.files, diags: tfRun.fix_attempts[0].diagnostics };
  const n = Number(tfSource.split(":")[1]);
  const f = tfRun.fix_attempts.find((x) => x.attempt === n);
  const next = tfRun.fix_attempts.find((x) => x.attempt === n + 1);
  // The diagnostics of attempt n+1 were found on attempt n's files.
  return { files: (f && f.files && f.files.files) || {}, diags: next ? next.diagnostics : (tfRun.fix_attempts[tfRun.fix_attempts.length - 1] === f ? tfRun.diagnostics : []) };
}

let tfEditor = null;
function renderTfCode() {
  const { files, diags } = tfSourceFiles();
  const names = Object.keys(files).sort();
  if (!names.includes(tfFile)) {
    const withDiag = diags.find((d) => d.range && names.includes(d.range.filename));
    tfFile = withDiag ? withDiag.range.filename : names.includes("main.tf") ? "main.tf" : names[0];
  }
  $("tf-tabs").replaceChildren(...names.map((n) => {
    const count = diags.filter((d) => d.range && d.range.filename === n).length;
    return el("button", { type: "button", class: "tab" + (n === tfFile ? " active" : ""), role: "tab", "aria-selected": String(n === tfFile), "data-file": n,
      onclick: () => { tfFile = n; renderTfCode(); } }, n + (count ? " (" + count + ")" : ""));
  }));
  if (tfEditor) { tfEditor.destroy(); tfEditor = null; }
  const box = $("tf-code");
  box.replaceChildren();
  const placed = [];
  const unplaced = [];
  if (tfFile) {
    tfEditor = cmView(box, files[tfFile] || "", "Terraform file " + tfFile + " (read-only)", [CM.lintGutter()]);
    for (const d of diags) {
      const c = d.range && d.range.filename === tfFile ? cmDiagnostic(tfEditor.state.doc, d) : null;
      if (c) placed.push([d, c]);
      else if (!d.range || !names.includes(d.range.filename) || d.range.filename === tfFile) unplaced.push(d);
    }
    placed.sort((x, y) => x[1].from - y[1].from);
    tfEditor.dispatch(CM.setDiagnostics(tfEditor.state, placed.map(([, c]) => c)));
    // Bring the first diagnostic into view.
    if (placed.length) tfEditor.dispatch({ effects: CM.EditorView.scrollIntoView(placed[0][1].from, { y: "center" }) });
  } else {
    box.append(el("p", { class: "muted small" }, "No files."));
    unplaced.push(...diags);
  }
  // The same diagnostics as a list under the editor: a click selects the
  // range in the editor. Diagnostics without a place in this file's text
  // are listed too, saying why.
  const item = (d, c) => el("li", { class: "tf-diag tf-diag-" + (d.severity === "error" ? "error" : "warning"), "data-file": d.range ? d.range.filename : "", "data-start": d.range ? d.range.start_line : "" },
    c ? el("button", { type: "button", class: "linkish", onclick: () => {
      tfEditor.dispatch({ selection: { anchor: c.from, head: c.to }, effects: CM.EditorView.scrollIntoView(c.from, { y: "center" }) });
      tfEditor.focus();
    } }, lineSpan(d.range)) : el("span", { class: "muted" }, d.range ? d.range.filename + ":" + d.range.start_line + (names.includes(d.range.filename) ? " (outside the file)" : " (file not in this version)") : "no source position"),
    " ", el("strong", {}, (d.severity === "error" ? "✘ " : "⚠ ") + d.summary), d.detail ? el("span", { class: "muted" }, " — " + d.detail) : null);
  const rows = [...unplaced.map((d) => item(d, null)), ...placed.map(([d, c]) => item(d, c))];
  $("tf-diags").replaceChildren(...(rows.length ? rows : [el("li", { class: "muted" }, diags.length ? "No diagnostics in " + tfFile + " (see the file tabs)." : "No diagnostics for this version.")]));
}

let tfDiffViews = [];
function renderTfDiff() {
  for (const v of tfDiffViews) v.destroy();
  tfDiffViews = [];
  const sel = $("tf-diff-pair");
  $("tf-diff-prev").disabled = sel.disabled || sel.selectedIndex <= 0;
  $("tf-diff-next").disabled = sel.disabled || sel.selectedIndex >= sel.options.length - 1;
  const v = sel.value;
  if (!v) { $("tf-diff").replaceChildren(el("p", { class: "muted small" }, "Diffs appear when a run needed fix attempts.")); return; }
  const [a, b] = v.split(":");
  const filesOf = (x) => (x === "before" ? tfRun.fix_attempts[0].files_before.files : x === "current" ? (tfRun.files || {}).files : ((tfRun.fix_attempts.find((f) => String(f.attempt) === x) || {}).files || {}).files) || {};
  const before = filesOf(a), after = filesOf(b);
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort().filter((n) => before[n] !== after[n]);
  $("tf-diff").replaceChildren(...(names.length ? [] : [el("p", { class: "muted small" }, "No differences.")]));
  // One unified diff per changed file: the later text, the earlier one's
  // deleted lines shown above the lines that replaced them, unchanged
  // stretches collapsed.
  for (const n of names) {
    const box = el("div", { class: "diff-file", "data-file": n });
    $("tf-diff").append(el("div", { class: "mono small muted" }, n + (before[n] === undefined ? " (new)" : after[n] === undefined ? " (removed)" : "")), box);
    tfDiffViews.push(cmView(box, after[n] || "", "changes to " + n + ", " + sel.options[sel.selectedIndex].text + " (read-only)",
      [CM.unifiedMergeView({ original: before[n] || "", mergeControls: false, gutter: true, highlightChanges: true, collapseUnchanged: { margin: 3, minSize: 4 } })]));
  }
}

$("tf-source").addEventListener("change", () => { tfSource = $("tf-source").value; renderTfCode(); });
$("tf-diff-pair").addEventListener("change", renderTfDiff);
const stepDiff = (k) => () => {
  const sel = $("tf-diff-pair");
  sel.selectedIndex = Math.max(0, Math.min(sel.options.length - 1, sel.selectedIndex + k));
  renderTfDiff();
};
$("tf-diff-prev").addEventListener("click", stepDiff(-1));
$("tf-diff-next").addEventListener("click", stepDiff(1));

async function loadRunViews(runId) {
  try {
    const r = await api("GET", "/runs/" + runId);
    renderTerraform(r.run);
    renderTimeline(r.run.history, r.run.phase);
    if (r.run.plan && $("arch-card").hidden) renderGraph(graphOf(r.run.plan), r.run.plan);
    return r.run;
  } catch (e) {
    banner("Could not load run " + runId + ": " + e.message);
    return null;
  }
}

// The same graph the server builds for /generate-graph, for runs opened by id.
function graphOf(plan) {
  const nodes = [], edges = [];
  for (const r of plan.resources) {
    nodes.push({ id: "resource:" + r.name, type: "resource", label: r.name, kind: r.kind, resource_type: r.resource_type, machine_type: r.machine_type, count: r.count, description: r.description });
    for (const d of r.depends_on || []) edges.push({ from: "resource:" + r.name, to: "resource:" + d, type: "depends_on" });
  }
  for (const m of plan.monitoring) {
    const id = "policy:" + m.resource_ref + ":" + m.metric_name;
    nodes.push({ id, type: "monitoring_policy", label: m.metric_name, metric: m.metric_path, threshold: m.threshold, comparison: m.comparison, duration_secs: m.duration_secs, severity: m.severity });
    edges.push({ from: id, to: "resource:" + m.resource_ref, type: "monitors" });
  }
  return { nodes, edges };
}

// ================================================================ run timeline

let tlHistory = [];
let tlTimer = null;
/** The phases a run ends in. */
const TERMINAL = ["verified", "deploy_success_verify_failed", "completed", "failed"];
function renderTimeline(history, phase) {
  tlHistory = history.slice();
  const terminal = TERMINAL.includes(phase);
  drawTimeline(terminal);
  clearInterval(tlTimer);
  tlTimer = terminal ? null : setInterval(() => drawTimeline(false), 500);
}
function timelinePhase(ev) {
  if (!tlHistory.length || tlHistory[tlHistory.length - 1].at !== ev.at) tlHistory.push({ phase: ev.phase, at: ev.at, note: ev.note });
  const terminal = TERMINAL.includes(ev.phase);
  drawTimeline(terminal);
  if (terminal) { clearInterval(tlTimer); tlTimer = null; } else if (!tlTimer) tlTimer = setInterval(() => drawTimeline(false), 500);
}
function drawTimeline(terminal) {
  const box = $("timeline");
  if (!tlHistory.length) { box.replaceChildren(); return; }
  const now = Date.now();
  const rows = tlHistory.map((h, k) => {
    const start = ms(h.at);
    const last = k === tlHistory.length - 1;
    const end = last ? (terminal ? start : now) : ms(tlHistory[k + 1].at);
    return { h, start, d: Math.max(0, end - start), live: last && !terminal };
  });
  // `starting` is the wait between planning and /execute, not work: it is
  // listed but neither scaled nor counted in the run time.
  const work = rows.filter((r) => r.h.phase !== "starting");
  const total = Math.max(1, work.reduce((a, r) => a + r.d, 0));
  box.replaceChildren(...rows.map((r) => {
    const waiting = r.h.phase === "starting";
    const end = TERMINAL.includes(r.h.phase);
    return el("div", { class: "tl-row" + (r.live ? " live" : "") + (r.h.phase.startsWith("fix_attempt") ? " fix" : r.h.phase.startsWith("apply_retry") || r.h.phase === "diagnosing" ? " retry" : r.h.phase === "failed" || r.h.phase === "deploy_success_verify_failed" ? " failed" : "") + (waiting ? " waiting" : ""), "data-phase": r.h.phase, title: r.h.note || "" },
      el("span", { class: "tl-name" }, waiting ? "queued" : r.h.phase.replace(/_/g, " ")),
      el("span", { class: "tl-track" }, waiting ? null : el("span", { class: "tl-bar", style: "width:" + Math.max(1, (100 * r.d) / total).toFixed(1) + "%" })),
      el("span", { class: "tl-dur mono" }, end ? "" : dur(r.d) + (r.live ? " …" : "")));
  }),
  el("div", { class: "small muted tl-total" }, "run time " + dur(total) + (terminal ? "" : " (running)")));
}

// ================================================================ incident view

let incidentOpen = null;
let incidentTimer = null;
async function openIncident(id) {
  incidentOpen = id;
  const dlg = $("incident-view");
  $("iv-title").textContent = "Incident " + id;
  if (!dlg.open) dlg.showModal();
  await refreshIncident();
  clearInterval(incidentTimer);
  incidentTimer = setInterval(refreshIncident, 2000);
}
$("iv-close").addEventListener("click", () => $("incident-view").close());
$("incident-view").addEventListener("close", () => { clearInterval(incidentTimer); incidentTimer = null; incidentOpen = null; });

async function refreshIncident() {
  const id = incidentOpen;
  if (!id) return;
  let detail, series;
  try {
    [detail, series] = await Promise.all([api("GET", "/ops/alerts/" + id), api("GET", "/ops/alerts/" + id + "/series")]);
  } catch (e) {
    $("iv-error").textContent = "Could not load: " + e.message;
    return;
  }
  if (id !== incidentOpen) return;
  $("iv-error").textContent = series.sample_error ? "Latest metric sample failed: " + series.sample_error : "";
  const i = detail.incident, a = i.alert, d = detail.decision;
  $("iv-title").textContent = a.policy_name + " · " + a.resource + " · " + i.status;
  $("iv-chart").replaceChildren(...chart(series, detail));
  const ev = [];
  const fact = (k, v) => { if (v !== null && v !== undefined && v !== "") ev.push(el("div", {}, el("dt", {}, k), el("dd", { class: "mono" }, String(v)))); };
  fact("Metric", a.metric); fact("Value at alert", a.value); fact("Threshold", a.threshold); fact("Severity", a.severity);
  fact("Resource", a.resource + " (" + a.resource_type + ")"); fact("Occurrences", i.occurrences); fact("Precedent", d && d.precedent);
  fill($("iv-decision"),
    d ? el("div", {}, el("div", {}, "Decision: ", el("strong", {}, describe(d.recommended_action))),
      el("div", { class: "small" }, "Confidence ", el("strong", { class: "conf" }, Math.round(d.confidence * 100) + "%"), " · risk " + d.risk + " · " + (d.requires_approval ? "needs approval" : "automatic")),
      el("p", { class: "reason small" }, d.reasoning)) : el("p", { class: "muted" }, "No decision yet."),
    el("div", { class: "small muted" }, "Evidence"), el("dl", { class: "kv" }, ...ev),
    i.guardrail_notes.length ? el("ul", { class: "small" }, ...i.guardrail_notes.map((n) => el("li", {}, n))) : null,
    i.note ? el("p", { class: "small muted" }, i.note) : null);
  const audit = detail.audit.slice().sort((x, y) => ms(x.at) - ms(y.at));
  $("iv-audit").replaceChildren(...(audit.length ? audit.map((r) => el("li", { class: "step-" + r.step },
    el("span", { class: "when mono" }, when(r.at)), el("strong", {}, r.step.replace(/_/g, " ")), el("span", { class: "muted" }, " · " + r.actor),
    el("div", { class: "small" }, r.outcome), r.reasoning ? el("div", { class: "small muted" }, r.reasoning) : null)) : [el("li", { class: "muted" }, "No audit records.")]));
  if (detail.audit_truncated) $("iv-audit").prepend(el("li", { class: "muted small" }, "Older records not shown: these are the newest " + audit.length + "."));
}

function markersOf(detail) {
  const i = detail.incident;
  const m = [{ at: i.alert.started_at, kind: "alert", label: "alert fired" }];
  for (const r of detail.audit) {
    if (r.step === "decision") m.push({ at: r.at, kind: "decision", label: "decision" });
    if (r.step === "feedback") m.push({ at: r.at, kind: "feedback", label: r.outcome.startsWith("resolved") ? "feedback: resolved" : "feedback: unresolved" });
  }
  for (const p of detail.approvals) if (p.effective) m.push({ at: p.at, kind: p.approved ? "approval" : "rejection", label: p.approved ? "approved" : "rejected" });
  for (const x of detail.actions) m.push({ at: x.finished_at, kind: "action", label: (x.success ? "action: " : "action failed: ") + describe(x.action) });
  return m;
}

// The metric over the incident's window as an SVG line chart with the
// threshold as a dashed line and a vertical marker per event.
function chart(series, detail) {
  const W = 720, H = 240, L = 48, R = 12, T = 14, B = 64;
  const pts = series.points.map((p) => ({ t: ms(p.at), v: p.value, src: p.source }));
  const marks = markersOf(detail).map((m) => ({ ...m, t: ms(m.at) }));
  const times = [...pts.map((p) => p.t), ...marks.map((m) => m.t)];
  let t0 = Math.min(...times), t1 = Math.max(...times, series.to ? ms(series.to) : Date.now());
  if (!(t1 > t0)) t1 = t0 + 60000;
  const pad = (t1 - t0) * 0.04;
  t0 -= pad; t1 += pad;
  const vals = pts.map((p) => p.v);
  if (series.threshold !== null && series.threshold !== undefined) vals.push(series.threshold);
  let v0 = Math.min(0, ...vals), v1 = Math.max(...vals, 1e-9);
  v1 += (v1 - v0) * 0.12;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  const kids = [];
  for (let k = 0; k <= 4; k++) {
    const v = v0 + ((v1 - v0) * k) / 4;
    kids.push(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }), svg("text", { class: "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, +v.toPrecision(3)));
  }
  kids.push(svg("text", { class: "axis", x: L, y: H - B + 16 }, new Date(t0).toLocaleTimeString(undefined, { hour12: false })),
    svg("text", { class: "axis", x: W - R, y: H - B + 16, "text-anchor": "end" }, new Date(t1).toLocaleTimeString(undefined, { hour12: false })));
  if (series.threshold !== null && series.threshold !== undefined) {
    kids.push(svg("line", { class: "threshold", x1: L, x2: W - R, y1: y(series.threshold), y2: y(series.threshold), "data-threshold": series.threshold }),
      svg("text", { class: "threshold-label", x: W - R - 4, y: y(series.threshold) - 5, "text-anchor": "end" }, "threshold " + series.threshold));
  }
  marks.sort((a, b) => a.t - b.t).forEach((m, k) => {
    kids.push(svg("g", { class: "marker marker-" + m.kind, "data-kind": m.kind },
      svg("line", { x1: x(m.t), x2: x(m.t), y1: T, y2: H - B }),
      svg("circle", { cx: x(m.t), cy: H - B, r: 4 }),
      svg("text", { x: x(m.t), y: H - B + 30 + (k % 2) * 14, "text-anchor": "middle" }, m.label),
      svg("title", {}, m.label + " at " + when(m.at))));
  });
  if (pts.length) {
    pts.sort((a, b) => a.t - b.t);
    kids.push(svg("polyline", { class: "series", points: pts.map((p) => x(p.t).toFixed(1) + "," + y(p.v).toFixed(1)).join(" ") }));
    for (const p of pts) kids.push(svg("circle", { class: "pt pt-" + p.src, cx: x(p.t), cy: y(p.v), r: 3 }, svg("title", {}, p.v + " at " + new Date(p.t).toLocaleTimeString())));
  }
  return [
    svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": series.metric + " on " + series.resource + ", " + pts.length + " points" }, ...kids),
    el("div", { class: "small muted" }, series.metric + " · " + pts.length + " point(s): the alert's value, then the metric's history over the incident window (for the local cloud: what the threshold watcher and re-checks read)"),
  ];
}
