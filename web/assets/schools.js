// Ardoise — the script of /schools (schools.html), served from /assets/schools.js: pages
// carry no inline script (CSP script-src 'self').
import { t, applyI18n, mountLangToggle, onLang, $, h, show, api, errorText, setCsrf, clock } from "/assets/ardoise.js";
let me = null, data = { departements: [], schools: [] }, teachers = [], classes = [], audit = [];
mountLangToggle($("#lang-slot"));
applyI18n();
onLang(render);
function status(text, kind) { const el = $("#status"); el.textContent = text || ""; el.dataset.kind = kind || ""; show(el, !!text); }
const date = (ms) => new Date(ms).toLocaleDateString() + " " + clock(ms);
const schoolName = (id) => (data.schools.find((s) => s.id === id) || { name: "#" + id }).name;

async function load() {
  try { me = await api("/api/me"); } catch (e) { if (e.status === 401) return location.replace("/login"); return status(errorText(e), "error"); }
  if (me.role !== "admin") return location.replace("/my");
  setCsrf(me.csrf);
  $("#who").textContent = me.email;
  show($("#school-form"), me.school === null || me.school === undefined);
  await refresh();
}
async function refresh() {
  try {
    [data, teachers, audit] = await Promise.all([api("/api/admin/schools"), api("/api/admin/teachers"), api("/api/admin/audit?limit=100")]);
    classes = (await Promise.all(data.schools.map((s) => api(`/api/admin/schools/${s.id}/classes`)))).flat();
    render();
  } catch (e) { status(errorText(e), "error"); }
}
function render() {
  const dep = (id) => (data.departements.find((d) => d.id === id) || {}).code || "?";
  $("#schools").replaceChildren(h("tr", {}, h("th", {}, "#"), h("th", {}, t("departement")), h("th", {}, t("name"))),
    ...data.schools.map((s) => h("tr", { "data-id": s.id }, h("td", {}, String(s.id)), h("td", {}, dep(s.departement)), h("td", {}, s.name))));
  $("#t-school").replaceChildren(...data.schools.map((s) => h("option", { value: s.id }, s.name)));
  $("#teachers").replaceChildren(...teachers.map((u) => h("li", { "data-id": u.id },
    h("b", {}, u.email), " ", h("span", { class: "empty" }, u.schools.map(schoolName).join(", ")),
    h("span", { class: "acts" }, h("button", { type: "button", class: "secondary", "data-action": "reset", onclick: () => reset(u) }, t("reset_password"))))));
  $("#classes").replaceChildren(h("tr", {}, ...["title", "school", "code_short", "state"].map((k) => h("th", {}, t(k)))),
    ...classes.map((c) => h("tr", { "data-id": c.id }, h("td", {}, c.title), h("td", {}, schoolName(c.school)),
      h("td", {}, c.code), h("td", {}, t(c.ended_at ? "st_ended" : "st_open")))));
  $("#audit").replaceChildren(h("tr", {}, ...["when", "who", "action", "target"].map((k) => h("th", {}, t(k)))),
    ...audit.map((a) => h("tr", {}, h("td", {}, date(a.at)), h("td", {}, a.actor), h("td", {}, a.action), h("td", {}, a.target + (a.detail ? " — " + a.detail : "")))));
}
async function reset(u) {
  const pw = window.prompt(t("reset_prompt", { email: u.email }));
  if (!pw) return;
  try { await api(`/api/admin/users/${u.id}/password`, { method: "POST", json: { password: pw } }); status(t("saved"), "ok"); await refresh(); }
  catch (e) { status(errorText(e), "error"); }
}
$("#school-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api("/api/admin/schools", { method: "POST", json: { departement: $("#dep").value.trim(), name: $("#school-name").value.trim() } });
    $("#school-form").reset(); status(t("saved"), "ok"); await refresh();
  } catch (e) { status(errorText(e), "error"); }
});
$("#teacher-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api("/api/admin/teachers", { method: "POST", json: { email: $("#t-email").value.trim(), school: parseInt($("#t-school").value, 10), password: $("#t-password").value } });
    $("#teacher-form").reset(); status(t("saved"), "ok"); await refresh();
  } catch (e) { status(errorText(e), "error"); }
});
$("#logout").addEventListener("click", async () => {
  try { await api("/api/logout", { method: "POST" }); } catch (_) { /* gone anyway */ }
  location.replace("/login");
});
load();
