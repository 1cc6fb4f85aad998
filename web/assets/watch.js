// Ardoise — the script of /watch (watch.html), served from /assets/watch.js: pages
// carry no inline script (CSP script-src 'self').
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const klass = params.get("class") || "demo";
  const video = document.getElementById("video");
  const statusEl = document.getElementById("status");
  document.getElementById("class-name").textContent = klass;
  document.getElementById("class-input").value = klass;

  let pc = null;
  let sessionUrl = null; // WHEP resource (Location header), for DELETE on leave
  let token = null;
  let lastError = null;
  let state = "idle";

  function setStatus(s, text) {
    state = s;
    statusEl.dataset.state = s;
    statusEl.textContent = text;
  }

  function fail(message) {
    lastError = message;
    setStatus("error", "Erreur : " + message);
    console.error("ardoise:", message);
  }

  // Turn a non-2xx response into "HTTP <status> — <problem+json detail>".
  async function httpError(what, res) {
    let detail = "";
    try {
      const type = res.headers.get("content-type") || "";
      const body = await res.text();
      if (type.includes("json")) {
        const p = JSON.parse(body);
        detail = p.detail || p.title || "";
      } else if (type.startsWith("text/plain")) {
        detail = body.trim().slice(0, 200);
      }
    } catch (_) { /* body unreadable: status alone */ }
    return `${what} : HTTP ${res.status}` + (detail ? ` — ${detail}` : "");
  }

  async function join() {
    const res = await fetch(`/api/classes/${encodeURIComponent(klass)}/join`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "Test" }),
    });
    if (!res.ok) throw new Error(await httpError("inscription", res));
    const body = await res.json();
    if (!body || typeof body.token !== "string") throw new Error("inscription : réponse sans jeton");
    return body.token;
  }

  function attach(ev) {
    let stream = ev.streams && ev.streams[0];
    if (!stream) {
      // Answer without msid: gather the tracks into our own stream.
      stream = video.srcObject instanceof MediaStream ? video.srcObject : new MediaStream();
      stream.addTrack(ev.track);
    }
    if (video.srcObject !== stream) {
      // Audio and video may arrive in different streams; merge them.
      if (video.srcObject instanceof MediaStream) {
        for (const t of stream.getTracks()) {
          if (!video.srcObject.getTracks().includes(t)) video.srcObject.addTrack(t);
        }
      } else {
        video.srcObject = stream;
      }
    }
    video.play().catch(() => { /* autoplay policy: muted, should not happen */ });
  }

  async function start() {
    setStatus("connecting", "Connexion…");
    token = await join();

    pc = new RTCPeerConnection();
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = attach;
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === "failed") fail("connexion WebRTC échouée");
      else if (s === "disconnected" && state !== "error") setStatus("connecting", "Connexion interrompue, nouvelle tentative…");
      else if (s === "closed" && state !== "error") setStatus("idle", "Terminé.");
    };

    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);

    // The server is ICE-lite: send the offer right away, no gathering wait.
    const whepUrl = `/whep/${encodeURIComponent(klass)}`;
    const res = await fetch(whepUrl, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", "Authorization": `Bearer ${token}` },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(await httpError("WHEP", res));
    const loc = res.headers.get("Location");
    if (loc) sessionUrl = new URL(loc, new URL(whepUrl, location.href)).href;
    const sdp = await res.text();
    await pc.setRemoteDescription({ type: "answer", sdp });
    setStatus("connecting", "Connexion… (négociation terminée, attente de la vidéo)");
  }

  video.addEventListener("playing", () => {
    if (state !== "error") setStatus("playing", "Lecture en cours.");
  });
  video.addEventListener("waiting", () => {
    if (state === "playing") setStatus("connecting", "Mise en mémoire tampon…");
  });

  window.addEventListener("pagehide", () => {
    if (sessionUrl && token) {
      fetch(sessionUrl, { method: "DELETE", keepalive: true,
                          headers: { "Authorization": `Bearer ${token}` } }).catch(() => {});
    }
    if (pc) pc.close();
  });

  window.ardoise = {
    // Summed over inbound-rtp reports; packetsLost covers audio and video.
    async stats() {
      const out = { framesDecoded: 0, framesPerSecond: 0, packetsLost: 0,
                    audioPacketsReceived: 0, state: pc ? pc.connectionState : state };
      if (!pc) return out;
      const report = await pc.getStats();
      report.forEach((r) => {
        if (r.type !== "inbound-rtp") return;
        const kind = r.kind || r.mediaType;
        out.packetsLost += r.packetsLost || 0;
        if (kind === "video") {
          out.framesDecoded += r.framesDecoded || 0;
          out.framesPerSecond += r.framesPerSecond || 0;
        } else if (kind === "audio") {
          out.audioPacketsReceived += r.packetsReceived || 0;
        }
      });
      return out;
    },
    get error() { return lastError; },
    get status() { return state; },
  };

  start().catch((e) => {
    fail(e && e.message ? e.message : String(e));
    if (pc) pc.close();
  });
})();
