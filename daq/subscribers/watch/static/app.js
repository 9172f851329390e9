// dialdaq watch: draws what the bridge pushes over /ws. Plain JS, no build step, no CDN.
// window.dialdaqState is a small debug summary (tests read it); window.dialdaq holds helpers.
"use strict";

(function () {
  const PALETTE = [
    "#4fc3f7", "#ffb74d", "#81c784", "#f06292", "#ba68c8", "#fff176", "#4db6ac", "#ff8a65",
    "#9fa8da", "#aed581", "#f48fb1", "#80deea", "#ce93d8", "#ffcc80", "#90caf9", "#c5e1a5",
  ];
  const MARGIN = { left: 64, right: 18, top: 30, bottom: 40 };
  const REDRAW_MS = 50;
  const VIDEO_SYNC_MS = 200;

  const app = {
    config: { bin_s: 0.25, window_s: 600, video: null, root: "daq", station: "+" },
    broker: { connected: false, address: "", error: "" },
    stations: new Map(), // id -> station model
    ws: null,
    wsOpen: false,
    messages: 0,
    deltas: [], // recent (client ms - server ms), their minimum estimates the clock offset
    span: 120,
    dirty: true,
    lastDraw: 0,
    follow: null, // station id the video follows
    colors: new Map(), // "station/dial" -> colour
  };

  // -- timecode ----------------------------------------------------------------------

  function frameOf(seconds, tb) {
    return Math.floor((seconds * tb.num) / tb.den + 1e-6);
  }

  function two(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function frameToTimecode(frame, tb) {
    const n = tb.nominal;
    const drop = tb.drop || 0;
    const firstMinute = n * 60;
    const perMinute = firstMinute - drop;
    const per10 = drop ? firstMinute + 9 * perMinute : firstMinute * 10;
    const perDay = per10 * 6 * 24;
    frame = ((frame % perDay) + perDay) % perDay;
    let hh, mm, ss, ff;
    if (drop) {
      const tens = Math.floor(frame / per10);
      let rem = frame % per10;
      let minutes = tens * 10;
      if (rem >= firstMinute) {
        rem -= firstMinute;
        minutes += 1 + Math.floor(rem / perMinute);
        rem = (rem % perMinute) + drop;
      }
      ss = Math.floor(rem / n);
      ff = rem % n;
      hh = Math.floor(minutes / 60);
      mm = minutes % 60;
    } else {
      const secs = Math.floor(frame / n);
      ff = frame % n;
      mm = Math.floor(secs / 60) % 60;
      ss = secs % 60;
      hh = Math.floor(secs / 3600);
    }
    return two(hh) + ":" + two(mm) + ":" + two(ss) + (drop ? ";" : ":") + two(ff);
  }

  function timecode(seconds, tb) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "--:--:--:--";
    if (!tb) return secondsLabel(seconds);
    return frameToTimecode(frameOf(Math.max(0, seconds), tb), tb);
  }

  function timecodeToSeconds(text, tb) {
    const m = /^(\d{2}):(\d{2}):(\d{2})[:;.](\d{2})$/.exec(String(text || "").trim());
    if (!m || !tb) return 0;
    const [hh, mm, ss, ff] = [m[1], m[2], m[3], m[4]].map(Number);
    const n = tb.nominal;
    const totalMinutes = hh * 60 + mm;
    let frame = (totalMinutes * 60 + ss) * n + ff;
    if (tb.drop) frame -= tb.drop * (totalMinutes - Math.floor(totalMinutes / 10));
    return (frame * tb.den) / tb.num;
  }

  function secondsLabel(s) {
    const sign = s < 0 ? "-" : "";
    s = Math.abs(s);
    const m = Math.floor(s / 60);
    return sign + m + ":" + (s % 60).toFixed(1).padStart(4, "0");
  }

  // -- clocks ------------------------------------------------------------------------

  function serverNowMs() {
    if (!app.deltas.length) return Date.now();
    return Date.now() - Math.min(...app.deltas);
  }

  function noteServerTime(tNs) {
    if (typeof tNs !== "number") return;
    app.deltas.push(Date.now() - tNs / 1e6);
    if (app.deltas.length > 40) app.deltas.shift();
  }

  // Media seconds of a session clock now: position_s + speed * (now - anchor).
  function mediaNow(clock) {
    if (!clock || clock.position_s === null || clock.position_s === undefined) return null;
    if (clock.state === "paused") return clock.position_s;
    if (clock.state !== "running" || clock.anchor_t_ns === null) return null;
    const speed = typeof clock.speed === "number" ? clock.speed : 1;
    return clock.position_s + (speed * (serverNowMs() - clock.anchor_t_ns / 1e6)) / 1000;
  }

  // -- the model ---------------------------------------------------------------------

  function newStation(id) {
    return {
      id,
      status: null,
      session: null,
      metas: {},
      dials: new Map(), // dial -> {first, points: [[x, y, brk]], samples, missing, gaps, last_value}
      mean: new Map(), // bin -> [bin, x, mean, sd, n]
      meanSorted: null,
      events: [],
      lastEventId: 0,
      el: null,
      drawn: { mean: 0, points: {} },
    };
  }

  function station(id) {
    let st = app.stations.get(id);
    if (!st) {
      st = newStation(id);
      app.stations.set(id, st);
    }
    return st;
  }

  function applyDial(st, dial, change) {
    let d = st.dials.get(dial);
    if (!d) {
      d = { first: change.first, points: [] };
      st.dials.set(dial, d);
    }
    const drop = change.first - d.first;
    if (drop > 0) d.points.splice(0, drop);
    d.first = change.first;
    const keep = Math.max(0, change.from - d.first);
    if (d.points.length > keep) d.points.length = keep;
    for (const p of change.points) d.points.push(p);
    d.samples = change.samples;
    d.missing = change.missing;
    d.gaps = change.gaps;
    d.last_value = change.last_value;
  }

  function applyMean(st, change) {
    if (change.reset) st.mean.clear();
    for (const row of change.set || []) st.mean.set(row[0], row);
    for (const b of change.del || []) st.mean.delete(b);
    st.meanSorted = null;
  }

  function applyStation(id, change, full) {
    const st = full ? newStation(id) : station(id);
    if (full) {
      const old = app.stations.get(id);
      if (old) st.el = old.el;
      app.stations.set(id, st);
    }
    if ("status" in change) st.status = change.status;
    if ("session" in change) st.session = change.session;
    if (change.metas) Object.assign(st.metas, change.metas);
    if (change.dials) for (const [dial, c] of Object.entries(change.dials)) applyDial(st, dial, c);
    if (change.mean) applyMean(st, change.mean);
    for (const ev of change.events || []) {
      if (ev.id > st.lastEventId) {
        st.events.push(ev);
        st.lastEventId = ev.id;
      }
    }
    if (st.events.length > 500) st.events.splice(0, st.events.length - 500);
  }

  function onMessage(msg) {
    app.messages += 1;
    noteServerTime(msg.t_ns);
    if (msg.type === "snapshot") {
      Object.assign(app.config, msg.config || {});
      app.broker = msg.broker || app.broker;
      const seen = new Set(Object.keys(msg.stations || {}));
      for (const [id, st] of app.stations) {
        if (!seen.has(id)) {
          if (st.el) st.el.remove();
          app.stations.delete(id);
        }
      }
      for (const [id, change] of Object.entries(msg.stations || {})) applyStation(id, change, true);
      setupVideo();
      document.getElementById("bin-s").textContent = String(app.config.bin_s);
      document.getElementById("source").textContent =
        app.config.root + "/" + app.config.station + " on " + (app.broker.address || "the broker");
    } else if (msg.type === "update") {
      if (msg.broker) app.broker = msg.broker;
      for (const [id, change] of Object.entries(msg.stations || {})) applyStation(id, change, false);
    }
    app.dirty = true;
  }

  // -- the connection ----------------------------------------------------------------

  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    const ws = new WebSocket(url);
    app.ws = ws;
    ws.onopen = () => {
      app.wsOpen = true;
      app.deltas = [];
      app.dirty = true;
    };
    ws.onmessage = (e) => {
      try {
        onMessage(JSON.parse(e.data));
      } catch (err) {
        console.error("dialdaq watch: bad message", err);
      }
    };
    ws.onclose = () => {
      app.wsOpen = false;
      app.dirty = true;
      setTimeout(connect, 1000);
    };
  }

  // -- the page ----------------------------------------------------------------------

  function colorOf(stationId, dial) {
    const key = stationId + "/" + dial;
    let c = app.colors.get(key);
    if (!c) {
      c = PALETTE[app.colors.size % PALETTE.length];
      app.colors.set(key, c);
    }
    return c;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function stationElement(st) {
    if (st.el) return st.el;
    const box = el("section", "station");
    box.dataset.station = st.id;
    const head = el("div", "station-head");
    const title = el("h2", "", st.id);
    const status = el("span", "pill status");
    const clock = el("span", "clock muted");
    const tc = el("div", "timecode");
    tc.title = "media time of the session clock";
    head.append(title, status, clock, el("span", "spacer"), tc);
    const wrap = el("div", "chart-wrap");
    const canvas = el("canvas", "chart");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "each dial's rating and the group mean of station " + st.id + " against media time");
    const overlay = el("div", "overlay", "waiting for samples…");
    wrap.append(canvas, overlay);
    const legend = el("ul", "legend");
    box.append(head, wrap, legend);
    box._parts = { status, clock, tc, canvas, overlay, legend };
    const main = document.getElementById("stations");
    const sorted = [...app.stations.keys()].sort();
    const after = sorted.slice(sorted.indexOf(st.id) + 1).map((id) => app.stations.get(id).el).find(Boolean);
    main.insertBefore(box, after || null);
    st.el = box;
    return box;
  }

  function dialState(st, dial) {
    const meta = st.metas[dial];
    const offline = st.status && st.status.state && st.status.state !== "online";
    if (offline) return { state: "disconnected", text: "station offline" };
    if (!meta) return { state: "unknown", text: "no meta yet" };
    return meta.connected ? { state: "connected", text: "connected" } : { state: "disconnected", text: "disconnected" };
  }

  function dialIds(st) {
    const ids = new Set([...Object.keys(st.metas), ...st.dials.keys()]);
    return [...ids].sort();
  }

  function fmtValue(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1);
  }

  function sortedMean(st) {
    if (!st.meanSorted) st.meanSorted = [...st.mean.values()].sort((a, b) => a[0] - b[0]);
    return st.meanSorted;
  }

  function updateLegend(st, parts, head) {
    const legend = parts.legend;
    const ids = dialIds(st);
    const want = ["__mean", ...ids];
    const have = [...legend.children].map((li) => li.dataset.dial);
    if (want.join("\n") !== have.join("\n")) {
      legend.replaceChildren();
      const mean = el("li", "legend-mean");
      mean.dataset.dial = "__mean";
      mean.append(el("span", "swatch swatch-mean"), el("span", "dial", "group mean ± 1 SD"), el("span", "value"), el("span", "note muted"));
      legend.append(mean);
      for (const dial of ids) {
        const li = el("li", "legend-dial");
        li.dataset.dial = dial;
        const sw = el("span", "swatch");
        sw.style.background = colorOf(st.id, dial);
        li.append(sw, el("span", "dial", dial), el("span", "state"), el("span", "value"), el("span", "note muted"));
        legend.append(li);
      }
    }
    const meanLi = legend.firstChild;
    const row = head ? head : null;
    meanLi.querySelector(".value").textContent = row ? fmtValue(row[2]) : "–";
    meanLi.querySelector(".note").textContent = row ? "SD " + fmtValue(row[3]) + ", n = " + row[4] : "";
    for (const li of legend.children) {
      const dial = li.dataset.dial;
      if (dial === "__mean") continue;
      const s = dialState(st, dial);
      li.dataset.state = s.state;
      li.querySelector(".state").textContent = s.text;
      const d = st.dials.get(dial);
      li.querySelector(".value").textContent = d ? fmtValue(d.last_value) : "–";
      const notes = [];
      if (d && d.missing) notes.push(d.missing + " lost in " + d.gaps + (d.gaps === 1 ? " gap" : " gaps"));
      li.querySelector(".note").textContent = notes.join(", ");
    }
  }

  // The mean row at (or just before) media time x.
  function meanAt(st, x) {
    const rows = sortedMean(st);
    if (!rows.length || x === null) return rows.length ? rows[rows.length - 1] : null;
    const b = Math.floor(x / app.config.bin_s + 1e-9);
    let best = null;
    for (const r of rows) {
      if (r[0] <= b) best = r;
      else break;
    }
    return best;
  }

  // -- drawing -----------------------------------------------------------------------

  function scaleRange(st) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const meta of Object.values(st.metas)) {
      const s = meta && meta.scale;
      if (s && isFinite(s.min) && isFinite(s.max)) {
        lo = Math.min(lo, s.min, s.max);
        hi = Math.max(hi, s.min, s.max);
      }
    }
    if (!isFinite(lo)) {
      for (const d of st.dials.values()) for (const p of d.points) {
        lo = Math.min(lo, p[1]);
        hi = Math.max(hi, p[1]);
      }
    }
    if (!isFinite(lo)) return [0, 100];
    if (hi === lo) return [lo - 1, hi + 1];
    return [lo, hi];
  }

  function scaleInfo(st) {
    for (const meta of Object.values(st.metas)) if (meta && meta.scale) return meta.scale;
    return null;
  }

  function niceStep(range, target) {
    const raw = range / Math.max(1, target);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  function timeStep(span, px) {
    const target = Math.max(2, Math.floor(px / 130));
    const raw = span / target;
    for (const s of [0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600]) if (s >= raw) return s;
    return 7200;
  }

  function dataExtent(st) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const d of st.dials.values()) for (const p of d.points) {
      if (p[0] < lo) lo = p[0];
      if (p[0] > hi) hi = p[0];
    }
    return isFinite(lo) ? [lo, hi] : null;
  }

  function xRange(st, head) {
    const ext = dataExtent(st);
    const bin = app.config.bin_s;
    let right = head !== null ? head : ext ? ext[1] + bin : 0;
    if (ext && ext[1] + bin > right) right = ext[1] + bin;
    if (app.span === 0) {
      const left = ext ? Math.min(ext[0] - bin / 2, right) : right - 60;
      const span = Math.max(10, right - left);
      return [left, left + span * 1.03];
    }
    const span = app.span;
    let end = right + span * 0.04;
    let start = end - span;
    const floorX = ext ? Math.min(ext[0] - bin / 2, head !== null ? head : ext[0]) : head !== null ? head : 0;
    if (start < floorX && floorX >= 0) {
      // Not a full span of data yet: start at a round time at or before the first point.
      const round = timeStep(span, 900);
      start = Math.max(0, Math.floor(floorX / round) * round);
      end = start + span;
    }
    return [start, end];
  }

  function draw(st) {
    const box = stationElement(st);
    const parts = box._parts;
    const clock = st.session && st.session.clock;
    const tb = st.session && st.session.timebase;
    const head = mediaNow(clock);
    st.head = head;
    st.timecode = timecode(head, tb);

    // Header.
    const online = st.status ? st.status.state === "online" : null;
    parts.status.textContent = online === null ? "no status" : online ? "online" : "offline" + (st.status.reason ? " (" + st.status.reason + ")" : "");
    parts.status.className = "pill status " + (online ? "pill-ok" : online === null ? "pill-wait" : "pill-bad");
    if (clock) {
      const bits = [clock.state];
      if (clock.kind) bits.push(clock.kind + " clock");
      if (tb) bits.push(tb.label + " fps");
      if (st.session.session) bits.push(st.session.session);
      parts.clock.textContent = bits.join(" · ");
    } else parts.clock.textContent = "no session yet";
    parts.tc.textContent = st.timecode;
    parts.tc.classList.toggle("paused", !!clock && clock.state === "paused");

    const headRow = meanAt(st, head);
    updateLegend(st, parts, headRow);

    // Canvas.
    const canvas = parts.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 800;
    const cssH = canvas.clientHeight || 320;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const plotW = cssW - MARGIN.left - MARGIN.right;
    const plotH = cssH - MARGIN.top - MARGIN.bottom;
    const [x0, x1] = xRange(st, head);
    const [y0, y1] = scaleRange(st);
    const pad = (y1 - y0) * 0.04;
    const ylo = y0 - pad;
    const yhi = y1 + pad;
    const X = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
    const Y = (y) => MARGIN.top + (1 - (y - ylo) / (yhi - ylo)) * plotH;

    const style = getComputedStyle(document.body);
    const fg = style.getPropertyValue("--fg").trim() || "#e5e7eb";
    const muted = style.getPropertyValue("--muted").trim() || "#9ca3af";
    const grid = style.getPropertyValue("--grid").trim() || "#374151";

    // Axes and grid.
    ctx.font = "13px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = grid;
    ctx.fillStyle = muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const scale = scaleInfo(st);
    const labels = scale && scale.labels ? Object.entries(scale.labels) : [];
    const ystep = niceStep(y1 - y0, 5);
    for (let v = Math.ceil(y0 / ystep) * ystep; v <= y1 + 1e-9; v += ystep) {
      const y = Y(v);
      ctx.beginPath();
      ctx.moveTo(MARGIN.left, y);
      ctx.lineTo(MARGIN.left + plotW, y);
      ctx.stroke();
      ctx.fillText(fmtAxis(v), MARGIN.left - 8, y);
    }
    if (labels.length) {
      ctx.textAlign = "left";
      ctx.font = "12px system-ui, sans-serif";
      for (const [k, text] of labels) {
        const v = Number(k);
        if (!isFinite(v)) continue;
        ctx.fillStyle = muted;
        ctx.fillText(text, MARGIN.left + 6, Math.min(Math.max(Y(v), MARGIN.top + 8), MARGIN.top + plotH - 8));
      }
    }
    if (scale && scale.unit) {
      ctx.textAlign = "left";
      ctx.textBaseline = "alphabetic";
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillStyle = muted;
      ctx.fillText(scale.unit, MARGIN.left, 14);
    }
    const tstep = timeStep(x1 - x0, plotW);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.font = "12px ui-monospace, 'DejaVu Sans Mono', monospace";
    for (let t = Math.ceil(x0 / tstep) * tstep; t <= x1; t += tstep) {
      if (t < 0) continue;
      const x = X(t);
      ctx.strokeStyle = grid;
      ctx.beginPath();
      ctx.moveTo(x, MARGIN.top);
      ctx.lineTo(x, MARGIN.top + plotH + 4);
      ctx.stroke();
      const label = timecode(t, tb);
      const half = ctx.measureText(label).width / 2;
      if (x - half >= 2 && x + half <= cssW - 2) {
        ctx.fillStyle = muted;
        ctx.fillText(label, x, MARGIN.top + plotH + 8);
      }
    }
    ctx.strokeStyle = muted;
    ctx.strokeRect(MARGIN.left + 0.5, MARGIN.top + 0.5, plotW - 1, plotH - 1);

    ctx.save();
    ctx.beginPath();
    ctx.rect(MARGIN.left, MARGIN.top, plotW, plotH);
    ctx.clip();

    // Group band and mean.
    const rows = sortedMean(st);
    const maxStep = Math.max(1, Math.round(1.0 / app.config.bin_s));
    const runs = [];
    let run = [];
    for (const r of rows) {
      if (r[1] < x0 - 2 || r[1] > x1 + 2) {
        if (run.length) runs.push(run);
        run = [];
        continue;
      }
      if (run.length && r[0] - run[run.length - 1][0] > maxStep) {
        runs.push(run);
        run = [];
      }
      run.push(r);
    }
    if (run.length) runs.push(run);
    let meanDrawn = 0;
    ctx.fillStyle = "rgba(255,255,255,0.16)";
    for (const r of runs) {
      ctx.beginPath();
      r.forEach((p, i) => (i ? ctx.lineTo(X(p[1]), Y(p[2] + p[3])) : ctx.moveTo(X(p[1]), Y(p[2] + p[3]))));
      for (let i = r.length - 1; i >= 0; i--) ctx.lineTo(X(r[i][1]), Y(r[i][2] - r[i][3]));
      ctx.closePath();
      ctx.fill();
    }

    // Dial traces.
    const drawnPoints = {};
    for (const dial of dialIds(st)) {
      const d = st.dials.get(dial);
      if (!d) continue;
      const s = dialState(st, dial);
      ctx.strokeStyle = colorOf(st.id, dial);
      ctx.globalAlpha = s.state === "connected" ? 0.8 : 0.4;
      ctx.lineWidth = 1.6;
      ctx.setLineDash(s.state === "connected" ? [] : [5, 4]);
      ctx.beginPath();
      let open = false;
      let n = 0;
      for (const p of d.points) {
        const x = X(p[0]);
        const y = Y(p[1]);
        if (!open || p[2]) {
          ctx.moveTo(x, y);
          open = true;
        } else ctx.lineTo(x, y);
        if (p[0] >= x0 && p[0] <= x1) n += 1;
      }
      ctx.stroke();
      // A lone point after a break would not show as a line: draw it as a dot.
      ctx.fillStyle = ctx.strokeStyle;
      for (let i = 0; i < d.points.length; i++) {
        const p = d.points[i];
        const alone = (i === 0 || p[2]) && (i + 1 >= d.points.length || d.points[i + 1][2]);
        if (alone) {
          ctx.beginPath();
          ctx.arc(X(p[0]), Y(p[1]), 2, 0, Math.PI * 2);
          ctx.fill();
        }
      }
      drawnPoints[dial] = n;
    }
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);

    // The mean on top: a dark outline, then white.
    for (const [width, color] of [[6, "rgba(0,0,0,0.55)"], [3, "#ffffff"]]) {
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.lineJoin = "round";
      for (const r of runs) {
        ctx.beginPath();
        r.forEach((p, i) => (i ? ctx.lineTo(X(p[1]), Y(p[2])) : ctx.moveTo(X(p[1]), Y(p[2]))));
        if (r.length === 1) ctx.lineTo(X(r[0][1]) + 1, Y(r[0][2]));
        ctx.stroke();
      }
    }
    for (const r of runs) meanDrawn += r.length;
    ctx.restore();

    // Event markers: marks, pauses (with how long), seeks, a dial unplugged or plugged in again.
    let markers = 0;
    ctx.textBaseline = "alphabetic";
    ctx.font = "12px system-ui, sans-serif";
    const lanes = [-Infinity, -Infinity]; // right edge of the last label in each top lane
    let deviceRight = -Infinity; // the same for the device labels along the bottom
    let lastPause = null;
    const unplugged = new Set();
    for (const ev of st.events) {
      let m = markerStyle(ev);
      if (ev.kind === "clock.pause") lastPause = ev;
      if (ev.kind === "clock.resume" && lastPause) {
        const pause = lastPause;
        lastPause = null;
        if (pause.media_s !== null && ev.media_s !== null && Math.abs(pause.media_s - ev.media_s) < app.config.bin_s) {
          pause.pausedFor = (ev.t_ns - pause.t_ns) / 1e9;
          m = null; // shown as the pause's duration
        }
      }
      if (ev.kind === "device.disconnected") unplugged.add(ev.dial);
      if (ev.kind === "device.connected") {
        if (!unplugged.has(ev.dial)) m = null; // the first connect at start-up is not news
        unplugged.delete(ev.dial);
      }
      if (!m || ev.media_s === null || ev.media_s < x0 || ev.media_s > x1) continue;
      if (ev.kind === "clock.pause" && ev.pausedFor !== undefined) m.text += " " + ev.pausedFor.toFixed(1) + " s";
      markers += 1;
      const x = X(ev.media_s);
      ctx.strokeStyle = m.color;
      ctx.fillStyle = m.color;
      ctx.lineWidth = m.device ? 1 : 1.5;
      ctx.setLineDash(m.device ? [2, 3] : [6, 4]);
      ctx.beginPath();
      ctx.moveTo(x, MARGIN.top);
      ctx.lineTo(x, MARGIN.top + plotH);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.textAlign = "left";
      if (m.device) {
        const yb = MARGIN.top + plotH;
        ctx.beginPath();
        ctx.moveTo(x, yb - 10);
        ctx.lineTo(x - 6, yb);
        ctx.lineTo(x + 6, yb);
        ctx.closePath();
        ctx.fill();
        const w = ctx.measureText(m.text).width + 8;
        const lx = Math.min(x + 8, MARGIN.left + plotW - w);
        if (lx >= deviceRight + 4) {
          deviceRight = lx + w;
          ctx.fillStyle = "rgba(15,23,42,0.85)";
          ctx.fillRect(lx, yb - 19, w, 16);
          ctx.fillStyle = m.color;
          ctx.fillText(m.text, lx + 4, yb - 7);
        }
      } else {
        const text = m.text.length > 28 ? m.text.slice(0, 27) + "…" : m.text;
        const w = ctx.measureText(text).width + 10;
        const lx = Math.min(x, MARGIN.left + plotW - w);
        let lane = lanes.findIndex((right) => right + 4 <= lx);
        if (lane < 0) lane = lanes[0] <= lanes[1] ? 0 : 1;
        lanes[lane] = lx + w;
        const top = lane === 0 ? MARGIN.top - 22 : MARGIN.top + 3;
        ctx.fillRect(lx, top, w, 18);
        ctx.fillStyle = "#111827";
        ctx.fillText(text, lx + 5, top + 14);
      }
    }

    // Playhead.
    if (head !== null && head >= x0 && head <= x1) {
      const x = X(head);
      ctx.strokeStyle = "#ef4444";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x, MARGIN.top - 4);
      ctx.lineTo(x, MARGIN.top + plotH + 4);
      ctx.stroke();
      ctx.fillStyle = "#ef4444";
      ctx.beginPath();
      ctx.moveTo(x - 6, MARGIN.top - 8);
      ctx.lineTo(x + 6, MARGIN.top - 8);
      ctx.lineTo(x, MARGIN.top);
      ctx.closePath();
      ctx.fill();
    }

    const anyPoints = [...st.dials.values()].some((d) => d.points.length > 0);
    parts.overlay.hidden = anyPoints;
    parts.overlay.textContent = !st.status
      ? "waiting for the station…"
      : st.status.state !== "online"
        ? "station offline"
        : clock && clock.state !== "running" && clock.state !== "paused"
          ? "waiting for samples (no media clock running)…"
          : "waiting for samples…";
    st.drawn = { mean: meanDrawn, points: drawnPoints, markers, x0, x1 };
  }

  function fmtAxis(v) {
    return Math.abs(v) < 1e-9 ? "0" : Number.isInteger(v) ? String(v) : v.toFixed(1);
  }

  function markerStyle(ev) {
    switch (ev.kind) {
      case "mark":
        return { color: "#f59e0b", text: "● " + (ev.label || ev.message || "mark") };
      case "clock.pause":
        return { color: "#9ca3af", text: "❚❚ pause" };
      case "clock.resume":
        return { color: "#9ca3af", text: "▶ resume" };
      case "clock.seek":
        return { color: "#a78bfa", text: "↷ seek" };
      case "device.disconnected":
        return { color: "#f87171", text: (ev.dial || "dial") + " unplugged", device: true };
      case "device.connected":
        return { color: "#4ade80", text: (ev.dial || "dial") + " plugged", device: true };
      default:
        return null;
    }
  }

  // -- video -------------------------------------------------------------------------

  const video = document.getElementById("video");
  const videoNote = document.getElementById("video-note");
  const videoInfo = { present: false, target: null, drift: null, seeks: 0, blocked: false, error: null };

  function setupVideo() {
    const box = document.getElementById("video-box");
    if (app.config.video && !videoInfo.present) {
      videoInfo.present = true;
      box.hidden = false;
      video.src = app.config.video;
      video.addEventListener("error", () => {
        videoInfo.error = video.error ? "cannot play this video (code " + video.error.code + ")" : "cannot play";
        videoNote.textContent = videoInfo.error;
      });
      video.addEventListener("click", () => {
        video.muted = !video.muted;
      });
    }
    updateFollow();
  }

  function updateFollow() {
    const ids = [...app.stations.keys()].sort();
    const sel = document.getElementById("follow");
    const box = document.getElementById("follow-box");
    box.hidden = !app.config.video || ids.length < 2;
    if ([...sel.options].map((o) => o.value).join() !== ids.join()) {
      sel.replaceChildren(...ids.map((id) => new Option(id, id)));
    }
    if (!app.follow || !app.stations.has(app.follow)) {
      const running = ids.find((id) => {
        const c = app.stations.get(id).session && app.stations.get(id).session.clock;
        return c && (c.state === "running" || c.state === "paused");
      });
      app.follow = running || ids[0] || null;
    }
    if (app.follow) sel.value = app.follow;
  }

  function syncVideo() {
    if (!videoInfo.present) return;
    updateFollow();
    const st = app.follow ? app.stations.get(app.follow) : null;
    const clock = st && st.session && st.session.clock;
    const tb = st && st.session && st.session.timebase;
    const media = mediaNow(clock);
    if (media === null) {
      if (!video.paused) video.pause();
      videoInfo.target = null;
      videoNote.textContent = videoInfo.error || "no media clock running: the video waits";
      return;
    }
    const offset = clock.start_timecode && tb ? timecodeToSeconds(clock.start_timecode, tb) : 0;
    let target = media - offset;
    const running = clock.state === "running" && clock.speed > 0;
    if (video.readyState < 1 || video.seeking) {
      videoInfo.target = target;
      return;
    }
    const duration = isFinite(video.duration) ? video.duration : Infinity;
    let note = "";
    if (target < 0 || target > duration) {
      note = target < 0 ? "media time is before the video starts" : "media time is past the end of the video";
      target = Math.min(Math.max(0, target), duration);
      if (!video.paused) video.pause();
      if (Math.abs(video.currentTime - target) > 0.1) video.currentTime = target;
      videoInfo.target = target;
      videoInfo.drift = video.currentTime - target;
      videoNote.textContent = videoInfo.error || note;
      return;
    }
    const drift = video.currentTime - target;
    videoInfo.target = target;
    videoInfo.drift = drift;
    if (!running) {
      if (!video.paused) video.pause();
      video.playbackRate = 1;
      if (Math.abs(drift) > 0.04) {
        video.currentTime = target;
        videoInfo.seeks += 1;
      }
      note = "paused with the session";
    } else {
      const speed = clock.speed || 1;
      if (Math.abs(drift) > 0.5 || (video.paused && Math.abs(drift) > 0.15)) {
        video.currentTime = target;
        videoInfo.seeks += 1;
        video.playbackRate = speed;
      } else {
        // Small drift: lean on the playback rate instead of jumping.
        const nudge = Math.max(-0.1, Math.min(0.1, -drift));
        video.playbackRate = Math.max(0.1, speed * (1 + nudge));
      }
      if (video.paused) {
        video.play().then(
          () => {
            videoInfo.blocked = false;
          },
          () => {
            videoInfo.blocked = true;
          },
        );
      }
      note = videoInfo.blocked ? "the browser blocked playback: click the video" : "following the session clock";
    }
    videoNote.textContent = videoInfo.error || note + (video.muted ? " · muted (click the video for sound)" : "");
  }

  // -- main loop ---------------------------------------------------------------------

  function drawAll() {
    const conn = document.getElementById("conn");
    if (!app.wsOpen) {
      conn.textContent = "no connection to daq watch: retrying…";
      conn.className = "pill pill-bad";
    } else if (!app.broker.connected) {
      conn.textContent = "broker unreachable" + (app.broker.error ? ": " + app.broker.error : "") + ", retrying…";
      conn.className = "pill pill-bad";
    } else {
      conn.textContent = "live";
      conn.className = "pill pill-ok";
    }
    const none = document.getElementById("no-station");
    none.hidden = app.stations.size > 0;
    none.textContent = app.wsOpen
      ? "waiting for a station on " + app.config.root + "/" + app.config.station + "…"
      : "connecting…";
    const summary = { connected: app.wsOpen, broker: app.broker.connected, messages: app.messages, stations: {} };
    for (const st of [...app.stations.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      draw(st);
      const dials = {};
      for (const dial of dialIds(st)) {
        const d = st.dials.get(dial);
        const s = dialState(st, dial);
        dials[dial] = {
          points: d ? d.points.length : 0,
          drawn: st.drawn.points[dial] || 0,
          state: s.state,
          connected: s.state === "connected",
          samples: d ? d.samples : 0,
          gaps: d ? d.gaps : 0,
          breaks: d ? d.points.filter((p) => p[2]).length : 0,
        };
      }
      summary.stations[st.id] = {
        dials,
        mean: { points: st.mean.size, drawn: st.drawn.mean },
        timecode: st.timecode,
        media_s: st.head,
        clock: st.session && st.session.clock ? st.session.clock.state : null,
        events: st.events.length,
        markers: st.drawn.markers,
        eventKinds: st.events.map((e) => e.kind),
        x: [st.drawn.x0, st.drawn.x1],
      };
    }
    summary.video = videoInfo.present
      ? {
          present: true,
          currentTime: video.currentTime,
          paused: video.paused,
          readyState: video.readyState,
          target: videoInfo.target,
          drift: videoInfo.drift,
          seeks: videoInfo.seeks,
          blocked: videoInfo.blocked,
          error: videoInfo.error,
          follows: app.follow,
        }
      : { present: false };
    window.dialdaqState = summary;
  }

  function frame(now) {
    const moving = [...app.stations.values()].some((st) => st.session && st.session.clock && st.session.clock.state === "running");
    if ((app.dirty || moving) && now - app.lastDraw >= REDRAW_MS) {
      app.dirty = false;
      app.lastDraw = now;
      try {
        drawAll();
      } catch (err) {
        console.error("dialdaq watch: draw failed", err);
      }
    }
    requestAnimationFrame(frame);
  }

  document.getElementById("spans").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    app.span = Number(b.dataset.span);
    for (const other of document.querySelectorAll("#spans button")) other.classList.toggle("on", other === b);
    app.dirty = true;
  });
  document.getElementById("follow").addEventListener("change", (e) => {
    app.follow = e.target.value;
  });
  window.addEventListener("resize", () => {
    app.dirty = true;
  });

  window.dialdaq = { timecode, frameToTimecode, timecodeToSeconds, mediaNow, app };
  window.dialdaqState = { connected: false, stations: {}, video: { present: false } };
  connect();
  setInterval(syncVideo, VIDEO_SYNC_MS);
  requestAnimationFrame(frame);
})();
