// Media seconds as SMPTE timecode labels (non-drop and drop-frame), as daq.timecode does.
(function () {
  "use strict";
  const RATES = {
    "23.976": [24000, 1001, false], "24": [24, 1, false], "25": [25, 1, false], "29.97": [30000, 1001, false],
    "29.97df": [30000, 1001, true], "30": [30, 1, false], "48": [48, 1, false], "50": [50, 1, false],
    "59.94": [60000, 1001, false], "59.94df": [60000, 1001, true], "60": [60, 1, false],
  };
  function rate(label) {
    const r = RATES[label] || RATES["25"];
    return { num: r[0], den: r[1], drop: r[2], nominal: Math.round(r[0] / r[1]) };
  }
  function pad(n) { return String(n).padStart(2, "0"); }
  function frameAt(seconds, label) {
    const r = rate(label);
    return Math.floor((seconds * r.num) / r.den + 1e-6);
  }
  function label(frame, lbl) {
    const r = rate(lbl);
    let f = frame;
    if (r.drop) {
      const dropped = r.nominal === 60 ? 4 : 2;
      const perMin = r.nominal * 60 - dropped;
      const per10 = perMin * 10 + dropped;
      const d = Math.floor(f / per10);
      const m = f % per10;
      f += dropped * 9 * d + (m > dropped ? dropped * Math.floor((m - dropped) / perMin) : 0);
    }
    const ff = f % r.nominal;
    const s = Math.floor(f / r.nominal);
    return pad(Math.floor(s / 3600) % 24) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60) + (r.drop ? ";" : ":") + pad(ff);
  }
  window.dialdaqTimecode = { rate, frameAt, label, of: (seconds, lbl) => (seconds < 0 ? "-" : label(frameAt(seconds, lbl), lbl)) };
})();
