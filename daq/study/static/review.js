// The recall interview page: the trace, the segments, the video of each, the answers (saved on every change).
(function () {
  "use strict";
  const TC = window.dialdaqTimecode;
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const canvas = $("trace");
  const SETTINGS = ["count", "window_s", "gap_s", "lag_s", "lead_s"];
  const app = {
    data: null, segments: [], settings: {}, answers: {}, selected: null,
    stopAt: null, stoppedAt: null, playedFrom: null, pending: 0, saves: 0, errors: [],
  };
  window.reviewState = app;

  function fmt(seconds) { return TC.of(seconds, app.data ? app.data.rate : "25"); }
  function frameStep() { const r = TC.rate(app.data ? app.data.rate : "25"); return r.den / r.num; }

  async function getJSON(url, options) {
    const res = await fetch(url, options);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  // -- saving ----------------------------------------------------------------------------
  const chains = {};
  function setSaved(text, cls) { const el = $("saved"); el.textContent = text; el.className = "pill " + (cls || ""); }
  function save(seg) {
    const item = document.querySelector(`li[data-key="${CSS.escape(seg.key)}"]`);
    if (!item) return;
    const text = item.querySelector("textarea").value;
    const tags = [...item.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
    app.answers[seg.key] = Object.assign({}, app.answers[seg.key] || {}, { text, tags });
    app.pending += 1;
    setSaved("saving…", "pill-wait");
    const status = item.querySelector(".status");
    status.textContent = "saving…";
    chains[seg.key] = (chains[seg.key] || Promise.resolve()).then(() =>
      getJSON("/api/answer", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key: seg.key, segment: seg, text, tags }),
      }).then(
        (reply) => { app.saves += 1; app.answers[seg.key] = reply.answer; status.textContent = "saved " + reply.answer.updated_utc; },
        (err) => { app.errors.push(String(err)); status.textContent = "NOT saved: " + err.message; setSaved("not saved", "pill-bad"); },
      ).finally(() => {
        app.pending -= 1;
        if (app.pending === 0 && !$("saved").classList.contains("pill-bad")) setSaved("all saved", "pill-ok");
      }));
  }
  const timers = {};
  function saveSoon(seg) { clearTimeout(timers[seg.key]); timers[seg.key] = setTimeout(() => save(seg), 250); }

  // -- segments --------------------------------------------------------------------------
  function tagsFor(kind) { return app.data.codebook[kind] || []; }
  function renderSegments() {
    const list = $("segments");
    list.textContent = "";
    app.segments.forEach((seg, i) => {
      const li = document.createElement("li");
      li.dataset.key = seg.key;
      li.dataset.kind = seg.kind;
      li.className = "segment " + seg.kind + (app.selected === i ? " selected" : "");
      const head = document.createElement("div");
      head.className = "seg-head";
      const play = document.createElement("button");
      play.type = "button";
      play.className = "play";
      play.textContent = `${i + 1} ▶`;
      play.title = `play this segment (key ${i + 1})`;
      play.addEventListener("click", () => playSegment(i));
      const title = document.createElement("span");
      title.className = "seg-title";
      title.textContent = `${seg.kind} #${seg.rank}`;
      const when = document.createElement("span");
      when.className = "seg-time";
      when.textContent = `${seg.start_timecode || fmt(seg.start_s)} – ${seg.end_timecode || fmt(seg.end_s)}`;
      const mean = document.createElement("span");
      mean.className = "seg-mean";
      mean.textContent = `mean ${seg.mean.toFixed(2)}`;
      head.append(play, title, when, mean);
      const answer = app.answers[seg.key] || {};
      const text = document.createElement("textarea");
      text.rows = 2;
      text.placeholder = "what was happening, and why did it help or hinder?";
      text.setAttribute("aria-label", `answer for segment ${i + 1}`);
      text.value = answer.text || "";
      text.addEventListener("input", () => saveSoon(seg));
      const tags = document.createElement("fieldset");
      tags.className = "tags";
      const legend = document.createElement("legend");
      legend.textContent = "categories";
      tags.append(legend);
      const chosen = new Set(answer.tags || []);
      for (const tag of tagsFor(seg.kind)) {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = tag;
        box.checked = chosen.has(tag);
        box.addEventListener("change", () => save(seg));
        label.append(box, " " + tag);
        tags.append(label);
      }
      const status = document.createElement("span");
      status.className = "status muted";
      status.textContent = answer.updated_utc ? "saved " + answer.updated_utc : "";
      li.append(head, text, tags, status);
      list.append(li);
    });
    const shown = new Set(app.segments.map((s) => s.key));
    const others = Object.entries(app.answers).filter(([k]) => !shown.has(k));
    $("others").hidden = others.length === 0;
    $("other-list").textContent = "";
    for (const [, a] of others) {
      const li = document.createElement("li");
      li.textContent = `${a.kind} ${a.start_timecode || a.start_s} – ${a.end_timecode || a.end_s}: [${(a.tags || []).join(", ")}] ${a.text || ""}`;
      $("other-list").append(li);
    }
    draw();
  }

  async function applySettings() {
    const body = {};
    for (const k of SETTINGS) body[k] = Number($("set-" + k).value);
    try {
      const reply = await getJSON("/api/settings", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      $("settings-error").textContent = "";
      app.settings = reply.settings;
      app.segments = reply.segments;
      app.selected = null;
      note();
      renderSegments();
    } catch (err) {
      $("settings-error").textContent = err.message;
    }
  }

  function note() {
    const want = app.settings.count;
    const got = { helpful: 0, hindering: 0 };
    for (const s of app.segments) got[s.kind] += 1;
    if (got.helpful < want || got.hindering < want) {
      $("settings-error").textContent = `only ${got.helpful} helpful and ${got.hindering} hindering windows of ` +
        `${app.settings.window_s} s fit without overlapping (and the minimum gap): shorten the window or the gap`;
    }
  }

  // -- video -----------------------------------------------------------------------------
  function playSegment(i) {
    const seg = app.segments[i];
    if (!seg) return;
    app.selected = i;
    document.querySelectorAll("#segments li").forEach((li, j) => li.classList.toggle("selected", j === i));
    if (!app.data.video.ok) return;
    const from = Math.max(0, seg.start_s - (app.settings.lead_s || 0));
    app.stopAt = seg.end_s;
    app.stoppedAt = null;
    app.reachedAt = null;
    app.stopping = false;
    app.playedFrom = from;
    app.landedAt = null;
    app.awaitSeek = true;
    video.pause();
    video.currentTime = from; // plays once the seek has landed (the seeked handler)
  }
  function checkStop(now) {
    if (app.stopAt === null) return;
    // A segment may end past the video (its window starts at the last grid point, which a position
    // reported a little past the end can make): it stops at the video's end, not never.
    const end = isFinite(video.duration) ? Math.min(app.stopAt, video.duration) : app.stopAt;
    if (now >= end - 1e-3) {
      // Played up to the end: pause, and show the frame at the segment's end exactly.
      app.stopAt = null;
      app.reachedAt = now;
      app.stopping = true;
      video.pause();
      video.currentTime = end;
    }
  }
  function onFrame(_now, meta) {
    checkStop(meta.mediaTime);
    draw();
    video.requestVideoFrameCallback(onFrame);
  }
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) video.requestVideoFrameCallback(onFrame);
  video.addEventListener("ended", () => checkStop(video.currentTime));
  video.addEventListener("timeupdate", () => { checkStop(video.currentTime); $("now").textContent = fmt(video.currentTime); draw(); });
  video.addEventListener("seeked", () => {
    if (app.stopping) { app.stopping = false; app.stoppedAt = video.currentTime; }
    if (app.awaitSeek) {
      app.landedAt = video.currentTime;
      app.awaitSeek = false;
      video.play().catch((err) => app.errors.push(String(err)));
    }
  });
  video.addEventListener("seeked", () => { $("now").textContent = fmt(video.currentTime); draw(); });

  // -- trace -----------------------------------------------------------------------------
  function draw() {
    if (!app.data) return;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const t = app.data.trace;
    const starts = t.starts, mean = t.mean;
    if (!starts.length) return;
    const t0 = Math.min(0, starts[0]), t1 = Math.max(starts[starts.length - 1], isFinite(video.duration) ? video.duration : 0);
    const scale = app.data.scale || {};
    let lo = typeof scale.min === "number" ? Math.min(scale.min, scale.max) : Infinity;
    let hi = typeof scale.max === "number" ? Math.max(scale.min, scale.max) : -Infinity;
    for (const v of mean) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (hi <= lo) { hi = lo + 1; }
    const x = (s) => ((s - t0) / (t1 - t0 || 1)) * w;
    const y = (v) => h - 14 - ((v - lo) / (hi - lo)) * (h - 28);
    app.segments.forEach((seg, i) => {
      ctx.fillStyle = seg.kind === "helpful" ? "rgba(40,160,90,0.25)" : "rgba(210,60,60,0.25)";
      ctx.fillRect(x(seg.start_s), 0, Math.max(2, x(seg.end_s) - x(seg.start_s)), h);
      ctx.fillStyle = "#222";
      ctx.font = "bold 13px sans-serif";
      ctx.fillText(String(i + 1), x(seg.start_s) + 3, 13);
    });
    ctx.strokeStyle = "#1f4e9c";
    ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < starts.length; i++) {
      const v = mean[i];
      if (v === null) { pen = false; continue; }
      if (!pen) ctx.moveTo(x(starts[i]), y(v)); else ctx.lineTo(x(starts[i]), y(v));
      pen = true;
    }
    ctx.stroke();
    ctx.fillStyle = "#555";
    ctx.font = "11px sans-serif";
    const labels = scale.labels || {};
    const named = (v) => labels[String(v)] || labels[String(Number(v).toFixed(1))] || String(Math.round(v * 100) / 100);
    const top = named(hi), bottom = named(lo);
    ctx.fillText(top, w - ctx.measureText(top).width - 2, 12);
    ctx.fillText(bottom, w - ctx.measureText(bottom).width - 2, h - 16);
    ctx.fillText(fmt(t0), 2, h - 2);
    const end = fmt(t1);
    ctx.fillText(end, w - ctx.measureText(end).width - 2, h - 2);
    if (app.data.video.ok) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x(video.currentTime), 0);
      ctx.lineTo(x(video.currentTime), h);
      ctx.stroke();
    }
  }
  canvas.addEventListener("click", (ev) => {
    if (!app.data || !app.data.video.ok) return;
    const starts = app.data.trace.starts;
    const t1 = Math.max(starts[starts.length - 1], isFinite(video.duration) ? video.duration : 0);
    const t0 = Math.min(0, starts[0]);
    app.stopAt = null;
    video.currentTime = t0 + (ev.offsetX / canvas.clientWidth) * (t1 - t0);
  });
  window.addEventListener("resize", draw);

  // -- keyboard --------------------------------------------------------------------------
  document.addEventListener("keydown", (ev) => {
    const typing = ev.target instanceof HTMLTextAreaElement || (ev.target instanceof HTMLInputElement && ev.target.type !== "checkbox");
    if (typing) {
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    // On a tag's checkbox, space ticks it (as everywhere); Esc leaves it, so space plays again.
    if (ev.target instanceof HTMLInputElement && ev.target.type === "checkbox") {
      if (ev.key === "Escape") ev.target.blur();
      if (ev.key === " ") return;
    }
    if (ev.key === " ") {
      ev.preventDefault();
      if (!app.data.video.ok) return;
      app.stopAt = null;
      if (video.paused) video.play(); else video.pause();
    } else if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") {
      ev.preventDefault();
      if (!video.paused) video.pause();
      const step = ev.shiftKey ? frameStep() : 1;
      video.currentTime = Math.max(0, video.currentTime + (ev.key === "ArrowLeft" ? -step : step));
    } else if (/^[1-9]$/.test(ev.key) && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      playSegment(Number(ev.key) - 1);
    }
  });

  // -- start -----------------------------------------------------------------------------
  async function start() {
    const data = await getJSON("/api/state");
    app.data = data;
    app.settings = data.settings;
    app.segments = data.segments;
    app.answers = data.answers || {};
    const sit = data.sitting || {};
    $("who").textContent = `${data.station} / ${data.session}` + (sit.rater ? ` · rater ${sit.rater}` : "") +
      (sit.dimension ? ` · ${sit.dimension}` : "") +
      ` · segments of ${data.target === "mean" ? "the group mean" : "dial " + data.target} · ${data.codebook.name}`;
    for (const k of SETTINGS) {
      const input = $("set-" + k);
      input.value = data.settings[k];
      input.addEventListener("change", applySettings);
    }
    if (data.segments_error) $("settings-error").textContent = data.segments_error; else note();
    const vnote = $("video-note");
    vnote.hidden = !data.video.note;
    vnote.textContent = data.video.note;
    vnote.classList.toggle("bad", !data.video.ok);
    if (data.video.ok) video.src = data.video.url; else video.hidden = true;
    $("files").textContent = `answers are saved on every change to ${data.files.json} and ${data.files.csv}`;
    renderSegments();
    app.ready = true;
  }
  start().catch((err) => { app.errors.push(String(err)); $("settings-error").textContent = String(err); });
})();
