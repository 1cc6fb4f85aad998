// Ardoise — shared browser module for the pupil, teacher and admin pages.
// i18n, HTTP helpers, WHEP/WHIP, the class-events WebSocket, link quality, DOM helpers.
// Plain ES module, no dependencies, no third-party requests (see docs/CLASS_EVENTS.md).

// ---------------------------------------------------------------- i18n
// key: [français, English]. Placeholders: {name}.
const STRINGS = {
  app: ["Ardoise", "Ardoise"],
  lang_group: ["Langue", "Language"],
  loading: ["Chargement…", "Loading…"],
  join_title: ["Rejoindre la classe", "Join the class"],
  code: ["Code de la classe", "Class code"],
  first_name: ["Ton prénom", "Your first name"],
  join: ["Rejoindre", "Join"],
  joining: ["Connexion à la classe…", "Joining the class…"],
  name_invalid: ["Le prénom doit faire de 1 à 32 caractères.", "The first name must be 1 to 32 characters."],
  code_invalid: ["Saisis le code de la classe.", "Enter the class code."],
  e404: ["Classe introuvable. Vérifie le code.", "Class not found. Check the code."],
  e410: ["Ce cours est terminé.", "This class has ended."],
  e423: ["La classe est verrouillée par le professeur.", "The teacher has locked the class."],
  e401: ["Session expirée : rejoins la classe à nouveau.", "Session expired: please join again."],
  e403: ["Action refusée.", "Action refused."],
  e429: ["Trop de tentatives : réessaie dans {s} s.", "Too many tries: try again in {s} s."],
  e503: ["La classe ou le serveur est plein : réessaie dans {s} s.", "The class or the server is full: try again in {s} s."],
  error: ["Erreur : {msg}", "Error: {msg}"],
  leave: ["Quitter", "Leave"],
  video_label: ["Vidéo de la classe", "Class video"],
  fullscreen: ["Plein écran", "Full screen"],
  unmute: ["Touchez pour activer le son", "Tap to start sound"],
  waiting_teacher: ["En attente du professeur…", "Waiting for the teacher…"],
  audio_only_on: ["Son seulement", "Audio only"],
  audio_only_weak: ["Son seulement — connexion trop faible pour l'image", "Audio only — connection too weak for the picture"],
  quality: ["Qualité", "Quality"],
  q_auto: ["Automatique", "Automatic"],
  q_saver: ["Économie de données", "Data saver"],
  q_audio: ["Son seulement", "Audio only"],
  conn_good: ["Bonne connexion", "Good connection"],
  conn_weak: ["Connexion faible", "Weak connection"],
  conn_offline: ["Hors ligne", "Offline"],
  conn_label: ["Qualité de connexion", "Connection quality"],
  st_connecting: ["Connexion…", "Connecting…"],
  st_connected: ["Connecté.", "Connected."],
  st_unstable: ["Connexion instable…", "Unstable connection…"],
  st_retry: ["Reconnexion… (nouvel essai dans {s} s)", "Reconnecting… (retry in {s} s)"],
  st_ws_down: ["Serveur injoignable, reconnexion dans {s} s…", "Server unreachable, reconnecting in {s} s…"],
  hand_raise: ["Lever la main", "Raise hand"],
  hand_lower: ["Baisser la main", "Lower hand"],
  chat: ["Discussion", "Chat"],
  chat_text: ["Message", "Message"],
  chat_send: ["Envoyer", "Send"],
  chat_offline: ["Message non envoyé : pas de connexion.", "Message not sent: no connection."],
  live_you: ["Vous êtes en direct", "You are live"],
  recording_on: ["● Enregistrement", "● Recording"],
  recording_notice: ["Ce cours est enregistré : le professeur et le tableau, jamais ta voix ni ta caméra.", "This class is recorded: the teacher and the board, never your voice or camera."],
  record_start: ["Enregistrer", "Record"],
  record_stop: ["Arrêter l'enregistrement", "Stop recording"],
  live_muted: ["Le professeur a coupé votre micro", "The teacher muted your microphone"],
  live_starting: ["Activation du micro…", "Starting the microphone…"],
  mic_denied: ["Micro ou caméra refusés : autorisez-les pour parler.", "Microphone or camera refused: allow them to speak."],
  floor_other: ["{name} a la parole", "{name} has the floor"],
  floor_camera: ["Caméra de {name}", "{name}'s camera"],
  removed: ["Le professeur vous a retiré de la classe.", "The teacher removed you from the class."],
  ended: ["Le cours est terminé. Merci !", "The class has ended. Thank you!"],
  rejoin: ["Rejoindre une classe", "Join a class"],
  replays: ["Revoir les cours", "Replays"],
  replay_video: ["Cours enregistré", "Recorded class"],
  replay_join_first: ["Rejoins d'abord ta classe avec son code : ses cours enregistrés apparaîtront ici.", "First join your class with its code: its recorded classes will show here."],
  replay_none: ["Aucun cours enregistré pour l'instant.", "No recorded class yet."],
  replay_minutes: ["{m} min", "{m} min"],
  recordings: ["Enregistrements", "Recordings"],
  recordings_none: ["Aucun enregistrement.", "No recording."],
  rec_title: ["Titre", "Title"],
  rec_published: ["Visible par les élèves", "Shown to pupils"],
  rec_downloadable: ["Téléchargeable (180p)", "Downloadable (180p)"],
  rec_delete: ["Supprimer", "Delete"],
  rec_meta: ["{when} · {min} min · {mb} Mo · {state}", "{when} · {min} min · {mb} MB · {state}"],
  rec_st_recording: ["en cours", "recording"], rec_st_ready: ["prêt", "ready"],
  rec_st_interrupted: ["interrompu (gardé)", "interrupted (kept)"], rec_st_failed: ["échec", "failed"],
  rec_until: ["gardé jusqu'au {date}", "kept until {date}"],
  confirm_rec_delete: ["Supprimer l'enregistrement « {title} » ? Les élèves ne pourront plus le revoir.", "Delete the recording \"{title}\"? Pupils will no longer be able to replay it."],
  rec_disk_full: ["L'enregistrement s'est arrêté : le disque du serveur est plein. Ce qui a été enregistré est gardé.", "Recording stopped: the server's disk is full. What was recorded is kept."],
  rec_write_error: ["L'enregistrement s'est arrêté : le serveur ne peut plus écrire ses fichiers. Ce qui a été enregistré est gardé.", "Recording stopped: the server cannot write its files. What was recorded is kept."],
  replay_download: ["Télécharger pour regarder hors ligne ({mb} Mo)", "Download to watch offline ({mb} MB)"],
  replay_layer: ["Qualité : {q}", "Quality: {q}"],
  replay_quality: ["Qualité de l'image", "Picture quality"],
  replay_auto: ["Automatique (selon la connexion)", "Automatic (fits the connection)"],
  replay_saver: ["180p — économise les données", "180p — saves data"],
  replay_chapters: ["Chapitres", "Chapters"],
  replay_chapter: ["{at} — {what}", "{at} — {what}"],
  replay_stalled: ["Chargement…", "Loading…"],
  replay_unsupported: ["Ce navigateur ne sait pas lire les cours enregistrés.", "This browser cannot play recorded classes."],
  back_to_class: ["Retour à la classe", "Back to the class"],
  // teacher
  teacher_title: ["Console du professeur", "Teacher console"],
  no_token: ["Aucun jeton : ouvrez le lien complet reçu (…#token=…).", "No token: open the full link you received (…#token=…)."],
  st_open: ["ouverte", "open"], st_live: ["en direct", "live"], st_ended: ["terminée", "ended"],
  pupil_link: ["Lien pour les élèves", "Link for pupils"],
  copy: ["Copier", "Copy"], copied: ["Copié !", "Copied!"],
  qr_alt: ["QR code du lien élève {link}", "QR code of the pupil link {link}"],
  lock: ["Verrouiller la classe", "Lock the class"], unlock: ["Déverrouiller la classe", "Unlock the class"],
  end: ["Terminer le cours", "End the class"],
  confirm_end: ["Terminer le cours pour tout le monde ?", "End the class for everyone?"],
  confirm_remove: ["Retirer {name} de la classe ? Le code de la classe changera (le nouveau s'affiche ici).", "Remove {name} from the class? The class code will change (the new one shows here)."],
  join_code: ["Code :", "Code:"], rotate_code: ["Nouveau code", "New code"],
  code_until: ["(valable jusqu'à {at})", "(valid until {at})"],
  confirm_rotate: ["Remplacer le code ? L'ancien lien ne marchera plus pour les nouveaux élèves.", "Replace the code? The old link will stop working for new pupils."],
  code_changed: ["Nouveau code de classe : partagez le nouveau lien.", "New class code: share the new link."],
  lock_players: ["Verrouiller ferme aussi les lecteurs", "Locking also closes players"],
  tr_tcp: ["TCP", "TCP"], tr_relay: ["relais", "relay"], tr_udp: ["UDP", "UDP"],
  fallback: ["connexion de secours ({t})", "fallback connection ({t})"],
  player: ["lecteur", "player"], player_hint: ["Regarde sans la page élève (lecteur vidéo ou script)", "Watching without the pupil page (video player or script)"],
  layout: ["Disposition", "Layout"],
  l_camera: ["Caméra", "Camera"], l_document: ["Document", "Document"], l_screen: ["Écran", "Screen"],
  "l_document+camera": ["Document + caméra", "Document + camera"],
  "l_screen+camera": ["Écran + caméra", "Screen + camera"], "l_side-by-side": ["Côte à côte", "Side by side"],
  pupils: ["Élèves", "Pupils"], no_pupils: ["Aucun élève connecté.", "No pupil connected."],
  hands: ["Mains levées", "Raised hands"], no_hands: ["Aucune main levée.", "No raised hand."],
  grant: ["Donner la parole (micro)", "Give the floor (mic)"],
  "grant-camera": ["Donner la parole avec caméra", "Give the floor with camera"],
  revoke: ["Reprendre la parole", "Take the floor back"],
  mute: ["Couper le micro", "Mute"], unmute_pupil: ["Rétablir le micro", "Unmute"],
  remove: ["Retirer", "Remove"], lower: ["Baisser la main", "Lower hand"],
  hand_up: ["main levée", "hand raised"], has_floor: ["a la parole", "has the floor"],
  muted: ["micro coupé", "muted"], q_unknown: ["qualité inconnue", "quality unknown"],
  floor: ["Élève qui a la parole", "Pupil with the floor"], floor_none: ["Personne n'a la parole.", "Nobody has the floor."],
  floor_listen: ["Écouter l'élève sur cet ordinateur", "Play the pupil on this computer"],
  publish: ["Publier depuis ce navigateur", "Publish from this browser"],
  publish_hint: ["Sans studio : votre caméra ou votre écran, avec le micro.", "No studio: your camera or your screen, with the microphone."],
  publish_camera: ["Caméra + micro", "Camera + mic"], publish_screen: ["Écran + micro", "Screen + mic"],
  publish_stop: ["Arrêter", "Stop"], publishing: ["En direct ({src}).", "Live ({src})."],
  not_publishing: ["Rien n'est publié depuis ce navigateur.", "Nothing is published from this browser."],
  class_live: ["Image de la classe : en direct", "Class picture: live"],
  class_not_live: ["Image de la classe : pas de source", "Class picture: no source"],
  new_class: ["Nouvelle classe", "New class"], title: ["Titre", "Title"], create: ["Créer", "Create"],
  new_class_link: ["Console de la nouvelle classe :", "Console of the new class:"],
  you_teacher: ["professeur", "teacher"], role_teacher: ["professeur", "teacher"], role_pupil: ["élève", "pupil"],
  role_admin: ["admin", "admin"], studio: ["studio", "studio"],
  // admin
  admin_title: ["Tableau de bord", "Dashboard"], classes: ["Classes", "Classes"], no_classes: ["Aucune classe.", "No class."],
  workers: ["Processus média", "Media workers"], process: ["Serveur", "Server"],
  memory: ["Mémoire", "Memory"], uptime: ["En service depuis", "Up for"], cpu: ["CPU", "CPU"],
  members: ["Membres", "Members"], media: ["Flux média", "Media"], name: ["Nom", "Name"], role: ["Rôle", "Role"],
  conn: ["Connexion", "Connection"], hand: ["Main", "Hand"], kind: ["Type", "Kind"], connected: ["Connecté", "Connected"],
  transport: ["Transport", "Transport"],
  ingress: ["Entrée kbit/s", "In kbit/s"], egress: ["Sortie kbit/s", "Out kbit/s"], loss: ["Pertes %", "Loss %"],
  rtt: ["RTT ms", "RTT ms"], nacks: ["NACK", "NACKs"], plis: ["Demandes d'image clé", "Keyframe requests"],
  worker: ["Processus", "Worker"], port: ["Port", "Port"], rooms: ["Classes", "Rooms"], participants: ["Participants", "Participants"],
  dgram_in: ["Datagrammes reçus", "Datagrams in"], dgram_out: ["Datagrammes envoyés", "Datagrams out"],
  restarts: ["Redémarrages", "Restarts"],
  nodes: ["Nœuds du service", "Service nodes"], node: ["Nœud", "Node"], heartbeat: ["Dernier signe", "Last heartbeat"],
  pupils_cap: ["Élèves / capacité", "Pupils / capacity"], node_classes: ["Classes", "Classes"], node_kbps: ["Sortant (kbit/s)", "Out (kbit/s)"],
  node_state: ["État", "State"], node_alive: ["en service", "serving"], node_draining: ["en vidange", "draining"], node_silent: ["muet", "silent"],
  drain: ["Vider", "Drain"], undrain: ["Rouvrir", "Reopen"], this_node: ["ce nœud", "this node"],
  recordings_unshared: ["Les enregistrements de ces nœuds ne sont pas visibles d'ici (le dossier [recording] dir n'est pas partagé) : leurs classes ne pourront pas les revoir par ce nœud : {nodes}",
    "These nodes' recordings cannot be seen from here ([recording] dir is not shared): their classes cannot replay them through this node: {nodes}"],
  chart_egress: ["Débit sortant total (Mbit/s), 2 dernières minutes", "Total egress (Mbit/s), last 2 minutes"],
  chart_cpu: ["CPU par processus média (%), 2 dernières minutes", "CPU per media worker (%), last 2 minutes"],
  yes: ["oui", "yes"], no: ["non", "no"], locked: ["verrouillée", "locked"],
  updated: ["Mis à jour {time}", "Updated {time}"],
  // accounts
  login_title: ["Connexion", "Log in"], email: ["Adresse e-mail", "Email"], password: ["Mot de passe", "Password"],
  login: ["Se connecter", "Log in"], logout: ["Se déconnecter", "Log out"],
  e401_login: ["E-mail ou mot de passe incorrect.", "Wrong email or password."],
  login_hint: ["Élèves : pas de compte, rejoignez la classe avec son code.", "Pupils: no account, join the class with its code."],
  my_classes: ["Mes classes", "My classes"], school: ["Établissement", "School"],
  p_waiting_room: ["Salle d'attente : j'admets chaque élève", "Waiting room: I let each pupil in"],
  p_autolock: ["Discussion et parole bloquées quand je suis absent·e", "Chat and floor locked while I am away"],
  p_private_messages: ["Messages privés des élèves vers moi", "Pupils' private messages to me"],
  p_recording: ["Enregistrer automatiquement", "Record automatically"],
  timetable: ["Emploi du temps", "Timetable"], add_slot: ["Ajouter un créneau", "Add a slot"],
  weekday: ["Jour", "Day"], start_at: ["Début", "Start"], minutes: ["Minutes", "Minutes"],
  days: ["lun.,mar.,mer.,jeu.,ven.,sam.,dim.", "Mon,Tue,Wed,Thu,Fri,Sat,Sun"],
  remove_slot: ["Retirer le créneau", "Remove the slot"], no_slots: ["Aucun créneau.", "No slot."],
  start_here: ["Démarrer depuis ce PC", "Start from this PC"], studio_cmd: ["Commande du studio", "Studio command"],
  attendance: ["Présences", "Attendance"], csv: ["Exporter en CSV", "Export as CSV"],
  no_attendance: ["Aucune présence enregistrée.", "No attendance recorded."],
  joined_at: ["Arrivée", "Joined"], left_at: ["Départ", "Left"], settings: ["Réglages", "Settings"], save: ["Enregistrer", "Save"],
  saved: ["Enregistré.", "Saved."], session: ["Séance", "Session"],
  schools: ["Établissements", "Schools"], teachers: ["Enseignant·es", "Teachers"], audit: ["Journal d'audit", "Audit log"],
  add_school: ["Ajouter un établissement", "Add a school"], departement: ["Département (code)", "Département (code)"],
  add_teacher: ["Ajouter un·e enseignant·e", "Add a teacher"], first_password: ["Premier mot de passe (12 caractères ou plus)", "First password (12 characters or more)"],
  reset_password: ["Nouveau mot de passe", "New password"], reset_prompt: ["Nouveau mot de passe pour {email} (12 caractères ou plus) :", "New password for {email} (12 characters or more):"],
  when: ["Quand", "When"], who: ["Qui", "Who"], action: ["Action", "Action"], target: ["Objet", "Target"],
  live_dashboard: ["Tableau de bord du relais", "Relay dashboard"], code_short: ["Code", "Code"], state: ["État", "State"],
  waiting_room: ["Salle d'attente", "Waiting room"], admit: ["Faire entrer", "Let in"], refuse: ["Refuser", "Refuse"],
  private: ["privé", "private"], to_teacher: ["Au professeur seulement", "To the teacher only"],
  nobody_waiting: ["Personne n'attend.", "Nobody is waiting."],
  waiting_admit: ["Tu es dans la salle d'attente : le professeur va te faire entrer.", "You are in the waiting room: the teacher will let you in."],
  yes: ["Oui", "Yes"], no: ["Non", "No"],
  check_title: ["Tester la tablette avant le cours", "Test the tablet before the class"],
  check_link: ["Tester la tablette", "Test the tablet"],
  check_s1: ["1. Le navigateur", "1. The browser"], check_s2: ["2. Le son", "2. The sound"],
  check_s3: ["3. La connexion à la classe", "3. The connection to the class"],
  check_s4: ["4. Micro et caméra (facultatif)", "4. Microphone and camera (optional)"],
  check_s4_help: ["Utile si l'élève prend la parole en classe. Ce test n'est vu ni entendu par personne d'autre.", "Useful if the pupil speaks in class. Nobody else sees or hears this test."],
  check_webrtc: ["Vidéo en direct (WebRTC)", "Live video (WebRTC)"], check_vp8: ["Décodage VP8", "VP8 decoding"],
  check_h264: ["Décodage H.264", "H.264 decoding"], check_audio: ["Son (Web Audio)", "Sound (Web Audio)"],
  check_mse: ["Revoir les cours (Media Source)", "Replays (Media Source)"],
  check_old_browser: ["Ce navigateur ne peut pas suivre la classe : mettez-le à jour ou utilisez Chrome, Firefox ou Safari récents.", "This browser cannot follow the class: update it, or use a recent Chrome, Firefox or Safari."],
  check_tone: ["Touchez pour tester le son", "Tap to test the sound"],
  check_heard_q: ["Avez-vous entendu le son ?", "Did you hear the sound?"],
  check_heard: ["Le son fonctionne.", "The sound works."],
  check_not_heard: ["Pas de son : montez le volume, retirez le mode silencieux, ou branchez un casque, puis réessayez.", "No sound: raise the volume, turn off silent mode or plug in headphones, then try again."],
  check_wait_tone: ["Le test commence après le test du son.", "The test starts after the sound test."],
  check_running: ["Test de la connexion… ({s} s)", "Testing the connection… ({s} s)"],
  check_video: ["Image d'essai", "Test picture"],
  check_m_connect: ["Connexion", "Connection"], check_m_transport: ["Passage", "Path"],
  check_m_rtt: ["Aller-retour", "Round trip"], check_m_loss: ["Pertes", "Loss"],
  check_m_estimate: ["Débit estimé par le serveur", "Throughput the server estimates"],
  check_m_layer: ["Image reçue", "Picture received"],
  check_t_udp: ["direct (UDP)", "direct (UDP)"], check_t_tcp: ["par TCP (le réseau bloque l'UDP)", "over TCP (the network blocks UDP)"],
  check_t_relay: ["par un relais (TURN)", "through a relay (TURN)"],
  check_l_high: ["720p", "720p"], check_l_medium: ["360p", "360p"], check_l_low: ["180p", "180p"], check_l_audio: ["son seulement", "sound only"],
  check_verdict: ["Résultat", "Result"], check_pending: ["Test en cours…", "Testing…"],
  check_v_ready: ["Tout est prêt", "All set"],
  check_v_reduced: ["Qualité réduite", "Reduced quality"],
  check_v_audio_only: ["Son seulement conseillé", "Sound only advised"],
  check_v_blocked: ["Le réseau bloque la vidéo : contactez l'établissement", "The network blocks the video: contact the school"],
  check_v_ready_help: ["La tablette recevra la classe en bonne qualité.", "The tablet will get the class in good quality."],
  check_v_reduced_help: ["La classe passera, avec une image moins nette. Rapprochez-vous du routeur si possible.", "The class will come through, with a less sharp picture. Move closer to the router if you can."],
  check_v_audio_only_help: ["La connexion est trop faible pour l'image : la tablette commencera par le son seul.", "The connection is too weak for the picture: the tablet will start with sound only."],
  check_v_blocked_help: ["Aucune image n'est passée. Le réseau (pare-feu, contrôle parental) bloque peut-être la vidéo en direct.", "No picture came through. The network (firewall, parental control) may block live video."],
  check_no_programme: ["Ce serveur n'a pas de flux d'essai : seuls le navigateur et le son sont testés.", "This server has no test stream: only the browser and the sound are tested."],
  check_link_ok: ["Lien de la classe valide : {title}", "Class link valid: {title}"],
  check_link_bad: ["Ce lien de classe n'est pas valable ou a expiré : demandez-en un nouveau. Le test de la tablette continue.", "This class link is not valid or has expired: ask for a new one. The tablet test goes on."],
  check_echo: ["Tester le micro et la caméra", "Test the microphone and camera"],
  check_level: ["Niveau du micro", "Microphone level"], check_echo_video: ["Retour du micro et de la caméra", "Microphone and camera coming back"],
  check_echo_running: ["Parlez : votre voix revient par le serveur pendant 5 secondes…", "Speak: your voice comes back through the server for 5 seconds…"],
  check_echo_ok: ["Le micro fonctionne : votre voix est revenue par le serveur.", "The microphone works: your voice came back through the server."],
  check_echo_silent: ["Rien n'est revenu du micro. Vérifiez qu'il n'est pas coupé.", "Nothing came back from the microphone. Check that it is not muted."],
  check_denied: ["Vous avez refusé le micro ou la caméra. Pour les autoriser : touchez le cadenas à côté de l'adresse, puis « Autoriser ».", "You refused the microphone or camera. To allow them: tap the lock beside the address, then \"Allow\"."],
  check_no_device: ["Aucun micro ni caméra trouvé sur cet appareil.", "No microphone or camera found on this device."],
  check_back: ["Aller à la classe", "Go to the class"],
  checks_line: ["Tablettes testées avec le lien de la classe : {n} (prêtes {ready}, qualité réduite {reduced}, son seulement {audio}, vidéo bloquée {blocked})", "Tablets checked with the class's link: {n} (all set {ready}, reduced quality {reduced}, sound only {audio}, video blocked {blocked})"],
};
const LANGS = ["fr", "en"];
let current = (() => { try { return localStorage.getItem("ardoise.lang"); } catch (_) { return null; } })();
if (!LANGS.includes(current)) current = "fr";
const langListeners = [];

export function t(key, vars) {
  const entry = STRINGS[key];
  let s = entry ? entry[LANGS.indexOf(current)] : key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}
export const lang = () => current;
export function onLang(fn) { langListeners.push(fn); }
export function setLang(l) {
  if (!LANGS.includes(l)) return;
  current = l;
  try { localStorage.setItem("ardoise.lang", l); } catch (_) { /* private mode */ }
  applyI18n();
  for (const fn of langListeners) fn(l);
}
/** Fill `data-i18n` (text) and `data-i18n-label|ph|title|alt` (attributes) from the dictionary. */
export function applyI18n(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const attrs = { i18nLabel: "aria-label", i18nPh: "placeholder", i18nTitle: "title", i18nAlt: "alt" };
  for (const [k, attr] of Object.entries(attrs)) {
    const sel = "[data-" + k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()) + "]";
    for (const el of root.querySelectorAll(sel)) el.setAttribute(attr, t(el.dataset[k]));
  }
}
/** The visible FR/EN toggle. */
export function mountLangToggle(container) {
  const group = h("div", { class: "lang", role: "group", "data-i18n-label": "lang_group", "aria-label": t("lang_group") });
  for (const l of LANGS) {
    const b = h("button", { type: "button", lang: l, "aria-pressed": String(l === current),
      "aria-label": l === "fr" ? "Français" : "English", onclick: () => setLang(l) }, l.toUpperCase());
    group.append(b);
  }
  onLang(() => group.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b.lang === current))));
  container.append(group);
}

// ---------------------------------------------------------------- DOM helpers
export const $ = (sel, root = document) => root.querySelector(sel);
/** h("button", {class, onclick, "data-x": 1, ...}, ...children) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
export function show(el, on) { if (el) el.hidden = !on; }
/** The line saying how many tablets were checked with a class's link (`/api/classes/{id}/checks`). */
export function checksText(c) {
  return t("checks_line", { n: c.checked, ready: c.ready, reduced: c.reduced, audio: c.audio_only, blocked: c.blocked });
}
export const confirmed = (msg) => window.ardoiseAutoConfirm === true || window.confirm(msg);
/** Re-render a list without losing keyboard focus on a `[data-action]` button inside `li[data-id]`. */
export function keepFocus(fn) {
  const a = document.activeElement;
  const li = a && a.closest && a.closest("li[data-id]");
  const key = li && a.dataset.action && li.parentElement.id ? [li.parentElement.id, li.dataset.id, a.dataset.action] : null;
  fn();
  if (key) {
    const sel = `#${key[0]} li[data-id="${CSS.escape(key[1])}"] [data-action="${key[2]}"]`;
    const b = document.querySelector(sel);
    if (b) b.focus();
  }
}
export function clock(ms) {
  const d = new Date(ms || Date.now());
  return d.toLocaleTimeString(current === "fr" ? "fr-FR" : "en-GB", { hour: "2-digit", minute: "2-digit" });
}
/** Append one chat message {name, role, text, at} to a list element (keeps the last 200). */
export function appendChat(log, m) {
  const li = h("li", { class: "role-" + (m.role || "pupil") + (m.private ? " private" : "") },
    h("time", {}, clock(m.at)), " ", h("b", {}, m.name || "?"), " ", m.private && h("i", {}, "(" + t("private") + ") "), h("span", {}, m.text));
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  while (log.children.length > 200) log.firstElementChild.remove();
  if (atEnd) log.scrollTop = log.scrollHeight;
}

// ---------------------------------------------------------------- tokens + HTTP
/** Token from `#token=…` (then stripped from the address), else from sessionStorage. */
export function tokenFromHash(storageKey) {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    const tok = decodeURIComponent(m[1]);
    try { sessionStorage.setItem(storageKey, tok); } catch (_) { /* ignore */ }
    history.replaceState(null, "", location.pathname + location.search);
    return tok;
  }
  try { return sessionStorage.getItem(storageKey); } catch (_) { return null; }
}
/** The JWT payload (unverified; only used to know our class and id). */
export function jwtClaims(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(p + "===".slice((p.length + 3) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch (_) { return null; }
}
export class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
async function httpError(res, what) {
  let detail = "";
  try {
    const body = await res.text();
    if ((res.headers.get("content-type") || "").includes("json")) {
      const p = JSON.parse(body);
      detail = p.detail || p.title || "";
    } else detail = body.trim().slice(0, 200);
  } catch (_) { /* status alone */ }
  const err = new HttpError(res.status, `${what}: HTTP ${res.status}` + (detail ? ` — ${detail}` : ""));
  const retry = parseInt(res.headers.get("retry-after") || "", 10);
  if (retry > 0) err.retryAfter = retry;
  return err;
}
let csrf = null;
/** The login's CSRF token, sent with every change made with the session cookie. */
export function setCsrf(v) { csrf = v; }
/** JSON API call; throws HttpError on a non-2xx answer. Without a token, the session cookie
 *  authenticates (changes carry the CSRF token of `setCsrf`). */
export async function api(path, { method = "GET", token, json } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  else if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  const res = await fetch(path, { method, headers, body, cache: "no-store" });
  if (!res.ok) throw await httpError(res, `${method} ${path}`);
  if (res.status === 204) return null;
  return (res.headers.get("content-type") || "").includes("json") ? res.json() : res.text();
}
/** A user-facing message for an error (known statuses translated). */
export function errorText(e) {
  if (e && [401, 403, 404, 410, 423].includes(e.status)) return t("e" + e.status);
  if (e && [429, 503].includes(e.status)) return t("e" + e.status, { s: e.retryAfter || 5 });
  return t("error", { msg: (e && e.message) || String(e) });
}

// ---------------------------------------------------------------- WHEP / WHIP
const iceCache = new Map(); // token -> {at, servers}
/**
 * The RTCPeerConnection configuration: the server's TURN servers with a fresh credential
 * (`/api/ice-servers`, kept 10 minutes), every transport allowed — UDP first, then ICE-TCP
 * and the relay when the network drops UDP. `?ice=relay` in the page's URL forces the relay
 * (support staff, tests).
 */
export async function rtcConfig(token) {
  let cached = iceCache.get(token);
  if (!cached || Date.now() - cached.at > 600000) {
    let servers = [];
    try { servers = (await api("/api/ice-servers", { token })).ice_servers || []; } catch (_) { /* none: UDP and TCP still work */ }
    cached = { at: Date.now(), servers };
    iceCache.set(token, cached);
  }
  const relay = new URLSearchParams(location.search).get("ice") === "relay";
  return { bundlePolicy: "max-bundle", iceServers: cached.servers, iceTransportPolicy: relay ? "relay" : "all" };
}
/** How the connection's media travels now: "udp", "tcp" (ICE-TCP) or "relay" (TURN); null before it connects. */
export async function transportOf(pc) {
  if (!pc) return null;
  const rep = await pc.getStats();
  let pair = null;
  rep.forEach((r) => { if (r.type === "transport" && r.selectedCandidatePairId) pair = rep.get(r.selectedCandidatePairId); });
  if (!pair) rep.forEach((r) => { if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r; });
  const local = pair && rep.get(pair.localCandidateId);
  if (!local) return null;
  if (local.candidateType === "relay") return "relay";
  return local.protocol === "tcp" ? "tcp" : "udp";
}
/**
 * Offer → POST application/sdp (Bearer) → 201 answer. Returns the absolute session URL (Location).
 *
 * Trickle ICE (RFC 9725): the offer goes at once, with whatever candidates it has, and the
 * candidates the browser finds after it follow in PATCH requests. The server is ICE-lite:
 * the browser's checks reach it whatever the offer lists, so nothing waits for gathering,
 * which takes up to seconds on a tablet with a TURN server or several networks. The server
 * reads trickled candidates to know a relayed pupil; mDNS host names are not sent (it has
 * no use for them).
 */
export async function negotiate(pc, url, token, timing = {}) {
  const queued = [];
  let session = null, etag = "*", flushing = false, ended = false;
  const flush = () => {
    if (!session || flushing || (!queued.length && !ended)) return;
    flushing = true;
    setTimeout(() => {
      const lines = queued.splice(0).map((c) => `a=${c}\r\n`).join("") + (ended ? "a=end-of-candidates\r\n" : "");
      ended = false;
      flushing = false;
      if (!lines || pc.connectionState === "closed") return;
      fetch(session, {
        method: "PATCH", body: lines, cache: "no-store",
        headers: { "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": etag, Authorization: `Bearer ${token}` },
      }).catch(() => { /* a lost candidate: the checks still reach the server */ });
    }, 0);
  };
  pc.addEventListener("icecandidate", (ev) => {
    if (!ev.candidate) { ended = true; flush(); return; }
    const c = ev.candidate.candidate;
    if (!c || / [0-9a-f-]+\.local /i.test(c)) return;
    queued.push(c);
    flush();
  });
  await pc.setLocalDescription(await pc.createOffer());
  timing.post = performance.now();
  const res = await fetch(url, {
    method: "POST", body: pc.localDescription.sdp, cache: "no-store",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
  });
  if (res.status !== 201) throw await httpError(res, url.startsWith("/whip") ? "WHIP" : "WHEP");
  const loc = res.headers.get("Location");
  // Against the URL that answered: a class's owner may send a pupil to an edge (307).
  const answered = loc ? new URL(loc, res.url || new URL(url, location.href)).href : null;
  etag = res.headers.get("ETag") || "*";
  const sdp = await res.text();
  timing.answer = performance.now();
  try { await pc.setRemoteDescription({ type: "answer", sdp }); } catch (e) { hangup(answered, token); throw e; }
  session = answered;
  flush();
  return session;
}
/** DELETE a WHIP/WHEP session (keepalive so it also works from pagehide). */
export function hangup(session, token) {
  if (!session) return;
  fetch(session, { method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
}
/** WHIP: `setup(pc)` adds the send transceivers. Returns {pc, session, stop()}. */
export async function publish(url, token, setup) {
  const pc = new RTCPeerConnection(await rtcConfig(token));
  try {
    setup(pc);
    const session = await negotiate(pc, url, token);
    return { pc, session, stop() { hangup(session, token); pc.close(); } };
  } catch (e) { pc.close(); throw e; }
}

/**
 * A WHEP player that keeps itself connected: a fresh session when the connection fails,
 * stays disconnected > 3 s, or the POST fails (backoff 1 s → 8 s). 401/403/404/410 are final.
 * opts: {url: () => string, token, kinds: () => ["audio", "video", …],
 *        onTrack(index, track), onState(state, info), videoCodecs?: () => {mimes, only} | null}
 *        states: connecting|connected|unstable|retrying|fatal|stopped
 * `videoCodecs` orders the video codecs the offer lists (`setCodecPreferences`): `mimes`
 * first; with `only`, nothing else (retransmission and FEC entries are always kept).
 */
export class Receiver {
  constructor(opts) {
    this.o = opts; this.pc = null; this.tx = []; this.session = null;
    this.gen = 0; this.retries = 0; this.timer = 0; this.dTimer = 0; this.running = false;
    // When the latest session's steps happened (performance.now() ms): start, post (the
    // WHEP POST sent), answer (its 201 read), connected (ICE and DTLS up); the page adds
    // firstFrame. Where a pupil's first picture spends its time.
    this.timing = null;
  }
  start() { this.running = true; this.retries = 0; this.connect(); }
  restart() { if (this.running) { this.retries = 0; this.connect(); } }
  stop() { this.running = false; this.gen++; clearTimeout(this.timer); this.close(); this.o.onState && this.o.onState("stopped"); }
  close() {
    clearTimeout(this.dTimer);
    if (this.pc) { this.pc.ontrack = null; this.pc.onconnectionstatechange = null; this.pc.close(); }
    hangup(this.session, this.o.token);
    this.pc = null; this.session = null; this.tx = [];
  }
  state(s, info) { if (this.o.onState) this.o.onState(s, info); }
  async connect() {
    clearTimeout(this.timer);
    this.close();
    const gen = ++this.gen;
    const timing = (this.timing = { start: performance.now() });
    const config = await rtcConfig(this.o.token);
    if (gen !== this.gen) return;
    const pc = (this.pc = new RTCPeerConnection(config));
    const tx = (this.tx = this.o.kinds().map((k) => pc.addTransceiver(k, { direction: "recvonly" })));
    const order = this.o.videoCodecs && this.o.videoCodecs();
    if (order) this.o.kinds().forEach((k, i) => { if (k === "video") preferCodecs(tx[i], order); });
    pc.ontrack = (ev) => { const i = tx.indexOf(ev.transceiver); if (i >= 0 && this.o.onTrack) this.o.onTrack(i, ev.track); };
    pc.onconnectionstatechange = () => {
      if (gen !== this.gen) return;
      const s = pc.connectionState;
      if (s === "connected") { timing.connected = timing.connected || performance.now(); this.retries = 0; clearTimeout(this.dTimer); this.state("connected"); }
      else if (s === "failed") this.fail("failed");
      else if (s === "disconnected") {
        this.state("unstable");
        clearTimeout(this.dTimer);
        this.dTimer = setTimeout(() => {
          if (gen === this.gen && pc.connectionState !== "connected") this.fail("disconnected");
        }, 3000);
      }
    };
    this.state("connecting");
    try {
      const session = await negotiate(pc, this.o.url(), this.o.token, timing);
      if (gen !== this.gen) { hangup(session, this.o.token); return; }
      this.session = session;
    } catch (e) {
      if (gen !== this.gen) return;
      if ([401, 403, 404, 410].includes(e.status)) {
        this.running = false; this.gen++; this.close(); this.state("fatal", e);
      } else this.fail(e.message || String(e));
    }
  }
  fail(why) {
    if (!this.running) return;
    this.gen++; this.close();
    const delay = Math.min(8000, 1000 * 2 ** this.retries++);
    this.state("retrying", { delay, why });
    this.timer = setTimeout(() => this.connect(), delay);
  }
}

/** Order a video transceiver's codecs: `mimes` first (`only`: nothing else but rtx/red/fec). */
export function preferCodecs(transceiver, { mimes, only }) {
  if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
  const caps = RTCRtpReceiver.getCapabilities("video").codecs;
  const want = mimes.map((m) => m.toLowerCase());
  const helper = (c) => /\/(rtx|red|ulpfec|flexfec-03)$/i.test(c.mimeType);
  const rank = (c) => { const i = want.indexOf(c.mimeType.toLowerCase()); return i < 0 ? want.length : i; };
  const chosen = caps.filter((c) => helper(c) || !only || rank(c) < want.length);
  chosen.sort((a, b) => (helper(a) - helper(b)) || (rank(a) - rank(b)));
  try { transceiver.setCodecPreferences(chosen); } catch (_) { /* the browser's own order stays */ }
}

/** Inbound-rtp stats per transceiver index (matched by mid, else by track id). */
export async function inboundByTransceiver(pc, tx) {
  const out = tx.map(() => null);
  if (!pc) return out;
  const rep = await pc.getStats();
  rep.forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    let i = tx.findIndex((x) => x.mid !== null && r.mid !== undefined && x.mid === r.mid);
    if (i < 0) i = tx.findIndex((x) => x.receiver.track && x.receiver.track.id === r.trackIdentifier);
    if (i >= 0) out[i] = r;
  });
  return out;
}

/**
 * Link quality from getStats: offline (not connected, or media expected and no new bytes),
 * weak (loss > 3 %, RTT > 300 ms or audio jitter > 50 ms), else good.
 */
export class LinkMeter {
  constructor() { this.prev = null; }
  async measure(pc, expectMedia) {
    if (!pc || pc.connectionState !== "connected") { this.prev = null; return { level: "offline" }; }
    const rep = await pc.getStats();
    let bytes = 0, recv = 0, lost = 0, jitter = 0, rtt = null;
    rep.forEach((r) => {
      if (r.type === "inbound-rtp") {
        bytes += r.bytesReceived || 0; recv += r.packetsReceived || 0; lost += Math.max(0, r.packetsLost || 0);
        if ((r.kind || r.mediaType) === "audio" && r.jitter > jitter) jitter = r.jitter;
      } else if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded" && r.currentRoundTripTime !== undefined) {
        rtt = r.currentRoundTripTime;
      }
    });
    const prev = this.prev;
    this.prev = { pc, bytes, recv, lost };
    if (!prev || prev.pc !== pc) return { level: "good", rtt, jitter, loss: 0 };
    const dr = recv - prev.recv, dl = lost - prev.lost;
    const loss = dr + dl > 0 ? Math.max(0, dl) / (dr + dl) : 0;
    if (expectMedia && bytes <= prev.bytes) return { level: "offline", rtt, jitter, loss };
    const weak = loss > 0.03 || (rtt || 0) > 0.3 || jitter > 0.05;
    return { level: weak ? "weak" : "good", rtt, jitter, loss };
  }
}

// ---------------------------------------------------------------- glass to glass (test mode)
/**
 * Reads the capture time the studio burns into the picture (`studio.timecode`: 32 black or
 * white cells across the top 40/720 of the frame, the capture's wall-clock ms modulo 2^32,
 * most significant first) from each frame `video` presents, and keeps per frame where the
 * time went (ms): `g2g` capture → display; `toReceive` capture → its last packet received
 * (mix, encode, pacing, SFU, network); `decode` the decoder's time; `toDisplay` received →
 * displayed (jitter buffer, decode, render). Wall clocks: the page's and the studio's must
 * be one (same machine) or in step. A measuring tool, never on in a class.
 */
export class TimecodeReader {
  constructor(video, keep = 3000) {
    this.video = video; this.keep = keep; this.samples = []; this.unread = 0; this.stopped = false;
    this.canvas = document.createElement("canvas");
    this.canvas.width = 128; this.canvas.height = 4;
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.ctx.imageSmoothingEnabled = false;
    const frame = (now, meta) => { if (!this.stopped) { this.read(meta); video.requestVideoFrameCallback(frame); } };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(frame);
  }
  stop() { this.stopped = true; }
  read(meta) {
    const v = this.video, w = v.videoWidth, hgt = v.videoHeight;
    if (!w || !hgt) return;
    // The code's strip, scaled to 4 × 4 canvas pixels per cell; each cell read at its centre.
    this.ctx.drawImage(v, 0, 0, w, (hgt * 40) / 720, 0, 0, 128, 4);
    const px = this.ctx.getImageData(0, 0, 128, 4).data;
    let code = 0;
    for (let i = 0; i < 32; i++) {
      const o = (2 * 128 + i * 4 + 2) * 4;
      code = code * 2 + ((px[o] + px[o + 1] + px[o + 2]) / 3 > 128 ? 1 : 0);
    }
    // performance.now() and the wall clock, paired now.
    const wallOf = (t) => Date.now() + (t - performance.now());
    const mod = (x) => ((x % 4294967296) + 4294967296) % 4294967296;
    const g2g = mod(wallOf(meta.expectedDisplayTime) - code);
    if (g2g > 10000) { this.unread++; return; } // no code in this picture (or a misread)
    const s = { g2g: Math.round(g2g), decode: meta.processingDuration !== undefined ? Math.round(meta.processingDuration * 1000) : null };
    if (meta.receiveTime) {
      s.toReceive = Math.round(mod(wallOf(meta.receiveTime) - code));
      s.toDisplay = Math.round(meta.expectedDisplayTime - meta.receiveTime);
    }
    this.samples.push(s);
    if (this.samples.length > this.keep) this.samples.shift();
  }
}

// ---------------------------------------------------------------- a cluster's other servers
/**
 * The origin of the server that owns a class, asked through the server at `origin` (which
 * sends the question on to the owner): null when that server, or the owner it names, does
 * not answer, or the class has no server yet. `what`: the class id or join code.
 */
export function classServer(origin, what) {
  return fetch(`${origin}/api/classes/${encodeURIComponent(what)}/node`, { cache: "no-store" })
    .then((r) => (r.ok ? r.json() : null))
    .then((j) => (j && j.origin) || null, () => null);
}

/**
 * A page's way back when its class's server dies or the class moves (a cluster of
 * servers): while the class socket is down, every 2 s the page asks where its class lives
 * (`locate(origin)`, through its own server, then, after two failures, through each other
 * server), and goes there (`go(origin)`) as soon as a server names a live owner other than
 * its own. nodes(): the cluster's origins (none on a single server, whose answer names no
 * owner: the page only waits for its socket).
 */
export class Failover {
  constructor(nodes, locate, go) { this.nodes = nodes; this.locate = locate; this.go = go; this.timer = 0; this.failures = 0; this.busy = false; }
  /** The class socket's state: open | reconnecting | closed. */
  socket(state) {
    if (state !== "reconnecting") { this.stop(); return; }
    if (this.timer) return;
    this.timer = setInterval(() => this.probe(), 2000);
  }
  stop() { clearInterval(this.timer); this.timer = 0; this.failures = 0; }
  async probe() {
    if (this.busy) return;
    this.busy = true;
    try {
      const owner = await this.locate(location.origin);
      if (owner) {
        this.failures = 0;
        if (owner !== location.origin) { this.stop(); this.go(owner); }
        return;
      }
      if (++this.failures < 2) return;
      for (const origin of this.nodes()) {
        if (origin === location.origin) continue;
        const named = await this.locate(origin);
        if (named) { this.stop(); this.go(named); return; }
      }
    } finally { this.busy = false; }
  }
}

// ---------------------------------------------------------------- class events WebSocket
/**
 * `hello` first, reconnect with backoff 0.5 s → 8 s (reset on `welcome`), `ping` every 20 s.
 * Stops for good on `close()` or when the server answers `error` `unauthorized`.
 * onState(state, info): open | reconnecting {delay} | closed
 */
export class ClassSocket {
  constructor(classId, token, onMessage, onState) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/${encodeURIComponent(classId)}`;
    this.token = token; this.onMessage = onMessage; this.onState = onState || (() => {});
    this.backoff = 500; this.stopped = false; this.ws = null; this.ping = 0; this.timer = 0;
    this.connect();
  }
  get open() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }
  connect() {
    if (this.stopped) return;
    const ws = (this.ws = new WebSocket(this.url));
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "hello", token: this.token }));
      clearInterval(this.ping);
      this.ping = setInterval(() => this.send({ type: "ping" }), 20000);
      this.onState("open");
    };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      if (m.type === "welcome") this.backoff = 500;
      if (m.type === "error" && m.code === "unauthorized") this.close();
      if (m.type === "pong") return;
      this.onMessage(m);
    };
    ws.onclose = () => {
      clearInterval(this.ping);
      if (this.ws !== ws) return;
      if (this.stopped) { this.onState("closed"); return; }
      const delay = this.backoff;
      this.backoff = Math.min(8000, this.backoff * 2);
      this.onState("reconnecting", { delay });
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }
  send(obj) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }
  close() {
    this.stopped = true; clearTimeout(this.timer); clearInterval(this.ping);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }
}

/** Play with sound if the browser allows it, else muted; `onBlocked` shows a "tap for sound" button. */
export function playWithSound(media, onBlocked) {
  media.muted = false;
  const p = media.play();
  if (!p) return;
  p.catch((e) => {
    if (e && e.name === "AbortError") return; // a newer source replaced this one
    media.muted = true;
    media.play().catch(() => {});
    onBlocked();
  });
}
export function stopTracks(stream) { if (stream) for (const tr of stream.getTracks()) tr.stop(); }
