// Ardoise — the script of /login (login.html), served from /assets/login.js: pages
// carry no inline script (CSP script-src 'self').
import { t, applyI18n, mountLangToggle, $, show, api, errorText } from "/assets/ardoise.js";
mountLangToggle($("#lang-slot"));
applyI18n();
const home = (me) => (me.role === "admin" ? "/admin/schools" : "/my");
// Already logged in: straight to the right page.
api("/api/me").then((me) => location.replace(home(me))).catch(() => $("#email").focus());
$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = $("#login-error");
  $("#login").disabled = true;
  try {
    const me = await api("/api/login", { method: "POST", json: { email: $("#email").value.trim(), password: $("#password").value } });
    location.assign(home(me));
  } catch (e) {
    err.textContent = e.status === 401 ? t("e401_login") : e.status === 400 ? t("e401_login") : errorText(e);
    show(err, true);
    $("#password").select();
  } finally { $("#login").disabled = false; }
});
