// The rating sitting: the video is the media clock (requestVideoFrameCallback), the bar shows the dial.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const note = $("rate-note");
  const FRAMES_KEPT = 20000;
  const st = {
    hello: null, value: null, offsetNs: 0, bestRtt: Infinity, frames: [], sent: 0, session: null,
    state: "waiting", done: null, stalls: 0, errors: [], rvfc: "requestVideoFrameCallback" in HTMLVideoElement.prototype,
  };
  window.rateState = st;
  let ws = null;

  // wall clock of the server (ns, as a Number: ~256 ns resolution, plenty) for a performance.now() time
  function serverNs(perfMs) { return Math.round((performance.timeOrigin + perfMs) * 1e6 + st.offsetNs); }
  function send(body) { if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(body)); st.sent += 1; } }

  function frameOf(mediaTime) {
    const r = st.rate;
    return Math.floor((mediaTime * r.num) / r.den + 1e-6);
  }
  function position(state, mediaTime, perfMs) {
    send({ type: "position", state, position_s: mediaTime, speed: video.playbackRate, t_ns: serverNs(perfMs) });
  }

  // -- the media clock ----------------------------------------------------------------------
  // A frame is reported "playing" only when it follows the previous one on time: the first frame after
  // play, a seek or a stall may stay on screen for a while (the decoder catching up), so it is reported
  // "paused" there. A watchdog reports "paused" at the last frame when no frame comes for 1.5 frames
  // and the element's own clock has not moved a frame past it either: on a busy machine the frame
  // callback itself comes late while playback runs on, and that is no stall (holding the clock there
  // put samples on a frame 2 back, then jumped them forward).
  let last = null; // the last presented frame: {shown (performance ms), media (s)}
  let clockPlaying = false;
  let lastShownAt = -Infinity;
  function frameS() { return st.rate.den / st.rate.num; } // a frame's media duration
  function frameMs() { return (1000 * frameS()) / (video.playbackRate || 1); }
  function onFrame(now, meta) {
    // display times never go backwards (a frame after a seek may carry an earlier vsync than the one before)
    const shown = Math.max(meta.expectedDisplayTime || meta.presentationTime || now, last ? last.shown : -Infinity, lastShownAt);
    lastShownAt = shown;
    st.frames.push([serverNs(shown), frameOf(meta.mediaTime), meta.mediaTime]);
    if (st.frames.length > FRAMES_KEPT) st.frames.splice(0, st.frames.length - FRAMES_KEPT);
    const onTime = last !== null && !video.paused && !video.seeking && meta.mediaTime > last.media &&
      Math.abs((shown - last.shown) * (video.playbackRate || 1) - (meta.mediaTime - last.media) * 1000) <= 1.5 * frameMs();
    last = { shown, media: meta.mediaTime };
    clockPlaying = onTime;
    position(onTime ? "playing" : "paused", meta.mediaTime, shown);
    video.requestVideoFrameCallback(onFrame);
  }
  function watchdog() {
    if (clockPlaying && last && performance.now() - last.shown > 1.5 * frameMs() &&
        video.currentTime - last.media < frameS()) {
      clockPlaying = false;
      st.stalls += 1;
      position("paused", last.media, performance.now());
    }
    requestAnimationFrame(watchdog);
  }
  requestAnimationFrame(watchdog);
  if (st.rvfc) video.requestVideoFrameCallback(onFrame);
  else st.errors.push("this browser has no requestVideoFrameCallback: use Chromium, Chrome, Edge or Safari");
  function held(reason) {
    clockPlaying = false;
    if (last) last = { shown: -Infinity, media: last.media }; // the next frame starts afresh
    position("paused", last ? last.media : video.currentTime, performance.now());
  }
  video.addEventListener("pause", () => { if (!video.ended) held("pause"); });
  // While a seek is under way the old frame stays on screen: hold the clock there until new frames come on time.
  video.addEventListener("seeking", () => held("seek"));
  video.addEventListener("seeked", () => { if (video.paused) position("paused", video.currentTime, performance.now()); });
  video.addEventListener("ended", () => {
    send({ type: "ended", t_ns: serverNs(performance.now()) });
    note.textContent = "the end: thank you";
  });
  video.addEventListener("play", () => { note.textContent = ""; });
  video.addEventListener("pause", () => { if (!video.ended) note.textContent = "paused: space to go on"; });

  // -- the bar ------------------------------------------------------------------------------
  function labelsOf(scale) {
    const entries = Object.entries(scale.labels || {}).map(([k, v]) => [Number(k), v]).filter(([k]) => isFinite(k));
    if (!entries.length) entries.push([scale.min, String(scale.min)], [scale.max, String(scale.max)]);
    return entries.sort((a, b) => a[0] - b[0]);
  }
  function place(v) {
    const s = st.hello.scale;
    const lo = Math.min(s.min, s.max), hi = Math.max(s.min, s.max);
    const f = (v - s.min) / (s.max - s.min || 1);
    return Math.max(0, Math.min(1, hi === lo ? 0.5 : f));
  }
  function drawLabels() {
    const box = $("bar-labels");
    box.textContent = "";
    const entries = labelsOf(st.hello.scale);
    entries.forEach(([k, text], i) => {
      const span = document.createElement("span");
      span.textContent = text;
      span.style.left = (place(k) * 100) + "%";
      if (place(k) <= 0.001) span.className = "first"; else if (place(k) >= 0.999) span.className = "last";
      box.append(span);
    });
  }
  function drawValue() {
    const knob = $("bar-knob");
    if (st.value === null || st.value === undefined) { knob.hidden = true; $("bar-value").textContent = "no reading from the dial"; return; }
    knob.hidden = false;
    knob.style.left = (place(st.value) * 100) + "%";
    const step = st.hello.scale.step;
    $("bar-value").textContent = (step && step >= 1 ? st.value.toFixed(0) : st.value.toFixed(1)) + (st.hello.dimension ? "  ·  " + st.hello.dimension : "");
  }

  // -- keys ---------------------------------------------------------------------------------
  document.addEventListener("keydown", (ev) => {
    if (st.done) return;
    if (ev.key === " ") {
      ev.preventDefault();
      if (video.paused) video.play().catch((e) => st.errors.push(String(e))); else video.pause();
    } else if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") {
      ev.preventDefault();
      const r = st.rate;
      const step = ev.shiftKey ? r.den / r.num : 5;
      video.currentTime = Math.max(0, video.currentTime + (ev.key === "ArrowLeft" ? -step : step));
    }
  });

  // -- the server ---------------------------------------------------------------------------
  const RATES = { "23.976": [24000, 1001], "29.97": [30000, 1001], "29.97df": [30000, 1001], "59.94": [60000, 1001], "59.94df": [60000, 1001] };
  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.addEventListener("open", () => {
      for (let i = 0; i < 8; i++) setTimeout(() => send({ type: "ping", t: performance.now() }), i * 120);
      setInterval(() => send({ type: "ping", t: performance.now() }), 5000);
    });
    ws.addEventListener("message", async (ev) => {
      const text = typeof ev.data === "string" ? ev.data : await ev.data.text();
      const msg = JSON.parse(text);
      if (msg.type === "hello") {
        st.hello = msg;
        const r = RATES[msg.rate] || [Number(msg.rate), 1];
        st.rate = { num: r[0], den: r[1] };
        st.session = msg.session;
        if (!video.src) video.src = "/video";
        drawLabels();
        drawValue();
      } else if (msg.type === "pong") {
        const back = performance.now();
        const rtt = back - msg.t;
        if (rtt < st.bestRtt) {
          st.bestRtt = rtt;
          st.offsetNs = msg.server_ns - (performance.timeOrigin + (msg.t + back) / 2) * 1e6;
        }
      } else if (msg.type === "value") {
        st.value = msg.value;
        drawValue();
      } else if (msg.type === "session") {
        st.session = msg.session;
        st.state = msg.state;
      } else if (msg.type === "done") {
        st.done = msg;
        st.state = "ended";
      }
    });
    ws.addEventListener("close", () => { if (!st.done) { note.textContent = "lost the connection to daq rate"; note.className = "bad"; } });
  }
  connect();
})();
