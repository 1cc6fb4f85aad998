// Ardoise — the script of /my-classes (my-classes.html), served from /assets/my-classes.js: pages
// carry no inline script (CSP script-src 'self').
import { t, applyI18n, mountLangToggle, onLang, $, h, show, api, errorText, setCsrf, clock } from "/assets/ardoise.js";
const POLICIES = ["waiting_room", "autolock", "private_messages", "recording"];
let me = null, classes = [], editing = null, slots = [], attendanceOf = null;
mountLangToggle($("#lang-slot"));
applyI18n();
onLang(() => { renderDays(); render(); renderSlots(); });

function status(text, kind) { const el = $("#status"); el.textContent = text || ""; el.dataset.kind = kind || ""; show(el, !!text); }
const days = () => t("days").split(",");
function renderDays() {
  const sel = $("#slot-day"), v = sel.value || "1";
  sel.replaceChildren(...days().map((d, i) => h("option", { value: i + 1 }, d)));
  sel.value = v;
}
const hhmm = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
const slotText = (s) => `${days()[s.weekday - 1]} ${hhmm(s.start_min)} (${s.minutes} min)`;

async function load() {
  try { me = await api("/api/me"); } catch (e) { if (e.status === 401) return location.replace("/login"); return status(errorText(e), "error"); }
  if (me.role !== "teacher") return location.replace("/admin/schools");
  setCsrf(me.csrf);
  $("#who").textContent = me.email;
  $("#school").replaceChildren(...me.schools.map((s) => h("option", { value: s.id }, s.name)));
  show($("#school-field"), me.schools.length > 1);
  $("#policies").replaceChildren(...POLICIES.map((p) => h("label", { class: "check" },
    h("input", { type: "checkbox", id: "p-" + p }), " ", h("span", { "data-i18n": "p_" + p }, t("p_" + p)))));
  await refresh();
}
async function refresh() {
  try { classes = await api("/api/my/classes"); render(); } catch (e) { status(errorText(e), "error"); }
}
function render() {
  const ul = $("#classes");
  if (!classes.length) return ul.replaceChildren(h("li", { class: "empty" }, t("no_classes")));
  ul.replaceChildren(...classes.map((c) => h("li", { "data-id": c.id, class: "class-item" },
    h("b", {}, c.title), " · ", t("code_short"), " ", h("code", { class: "code" }, c.code), " · ", t("st_" + c.state),
    h("br"), h("span", { class: "empty" }, c.slots.length ? c.slots.map(slotText).join(", ") : t("no_slots")),
    h("div", { class: "row" },
      h("button", { type: "button", "data-action": "start", onclick: () => start(c, "console") }, t("start_here")),
      h("button", { type: "button", class: "secondary", "data-action": "studio", onclick: () => start(c, "studio") }, t("studio_cmd")),
      h("button", { type: "button", class: "secondary", "data-action": "attendance", onclick: () => attendance(c) }, t("attendance")),
      h("button", { type: "button", class: "secondary", "data-action": "settings", onclick: () => edit(c) }, t("settings"))))));
}
async function start(c, target) {
  try {
    const r = await api(`/api/classes/${encodeURIComponent(c.id)}/tokens`, { method: "POST", json: { for: target } });
    if (target === "console") return location.assign(new URL(r.use_it, location.origin).pathname + "#token=" + encodeURIComponent(r.token));
    $("#studio-cmd").textContent = r.use_it.replace(/^ardoise studio --server (\S*)/, (m, o) => `ardoise studio --server ${o || location.origin}`);
    show($("#studio-cmd-wrap"), true);
  } catch (e) { status(errorText(e), "error"); }
}
async function attendance(c) {
  attendanceOf = c;
  $("#att-title").textContent = c.title;
  $("#csv").href = `/api/classes/${encodeURIComponent(c.id)}/attendance.csv`;
  let rows = [];
  try { rows = await api(`/api/classes/${encodeURIComponent(c.id)}/attendance`); } catch (e) { return status(errorText(e), "error"); }
  const date = (ms) => new Date(ms).toLocaleDateString() + " " + clock(ms);
  $("#att-table").replaceChildren(
    h("tr", {}, ...["session", "name", "joined_at", "left_at", "minutes", "transport", "quality"].map((k) => h("th", {}, t(k)))),
    ...(rows.length ? rows.map((r) => h("tr", { "data-pupil": r.pupil },
      h("td", {}, String(r.session)), h("td", {}, r.name), h("td", {}, date(r.joined_at)), h("td", {}, r.left_at ? date(r.left_at) : "—"),
      h("td", {}, r.left_at ? String(Math.round((r.left_at - r.joined_at) / 60000)) : "—"),
      h("td", {}, r.transport || "—"), h("td", {}, r.quality || "—")))
      : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, t("no_attendance")))]));
  show($("#attendance"), true);
}
function edit(c) {
  editing = c;
  $("#edit-h").textContent = t("settings") + " — " + c.title;
  $("#title").value = c.title;
  for (const p of POLICIES) $("#p-" + p).checked = !!c.policies[p];
  slots = c.slots.slice();
  show($("#school-field"), false);
  $("#save").textContent = t("save");
  show($("#cancel"), true);
  renderSlots();
  $("#title").focus();
}
function reset() {
  editing = null; slots = [];
  $("#edit-h").textContent = t("new_class");
  $("#class-form").reset();
  show($("#school-field"), me && me.schools.length > 1);
  $("#save").textContent = t("create");
  show($("#cancel"), false);
  renderSlots();
}
function renderSlots() {
  $("#slots").replaceChildren(...(slots.length ? slots.map((s, i) => h("li", { "data-id": i }, slotText(s), " ",
    h("button", { type: "button", class: "secondary", "data-action": "remove-slot", "aria-label": t("remove_slot"),
      onclick: () => { slots.splice(i, 1); renderSlots(); } }, "✕"))) : [h("li", { class: "empty" }, t("no_slots"))]));
}
$("#slot-add").addEventListener("click", () => {
  const [hh, mm] = ($("#slot-time").value || "09:00").split(":").map(Number);
  const minutes = Math.max(1, Math.min(600, parseInt($("#slot-minutes").value, 10) || 55));
  slots.push({ weekday: parseInt($("#slot-day").value, 10), start_min: hh * 60 + mm, minutes });
  renderSlots();
});
$("#cancel").addEventListener("click", reset);
$("#class-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const title = $("#title").value.trim();
  if (!title) return status(t("title") + " ?", "error");
  const policies = Object.fromEntries(POLICIES.map((p) => [p, $("#p-" + p).checked]));
  $("#save").disabled = true;
  try {
    if (editing) {
      await api(`/api/classes/${encodeURIComponent(editing.id)}/settings`, { method: "PUT", json: { title, policies, slots } });
    } else {
      const school = me.schools.length ? parseInt($("#school").value, 10) : undefined;
      await api("/api/classes", { method: "POST", json: { title, school, policies, slots } });
    }
    status(t("saved"), "ok");
    reset();
    await refresh();
  } catch (e) { status(errorText(e), "error"); } finally { $("#save").disabled = false; }
});
$("#logout").addEventListener("click", async () => {
  try { await api("/api/logout", { method: "POST" }); } catch (_) { /* gone anyway */ }
  location.replace("/login");
});
renderDays(); renderSlots();
load();
