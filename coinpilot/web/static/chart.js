/* CoinPilot candle chart: candles, MA20, Bollinger bands, regime shading, fill markers,
   the open position's exit levels, an RSI14 pane under the price and volume below it.
   Plain canvas 2D, no dependencies. Usage: CoinChart.draw(canvas, data) where data is the
   /api/market/{symbol} payload. */
(function () {
  "use strict";

  var COLORS = {
    up: "#1a7f37", down: "#cf222e", ma: "#8250df", band: "rgba(9,105,218,0.10)",
    bandLine: "rgba(9,105,218,0.55)", grid: "rgba(127,127,127,0.18)", text: "#57606a",
    buy: "#1a7f37", sell: "#cf222e", volume: "rgba(87,96,106,0.35)",
    BULL: "rgba(26,127,55,0.08)", SIDEWAYS: "rgba(154,103,0,0.07)",
    BEAR: "rgba(207,34,46,0.08)", UNKNOWN: "rgba(127,127,127,0.05)",
    entry: "#57606a", stop_loss: "#cf222e", take_profit: "#1a7f37",
    trailing_stop: "#bc4c00", trailing_activation: "#bc4c00", rsi: "#0969da"
  };
  var PAD = { left: 8, right: 64, top: 10, bottom: 22 };
  var FONT = "11px system-ui, sans-serif";

  function extent(data) {
    var lo = Infinity, hi = -Infinity, vmax = 0;
    function take(v) { if (v !== null && v !== undefined) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
    data.candles.forEach(function (c) { take(c.l); take(c.h); vmax = Math.max(vmax, c.v); });
    data.bb_upper.forEach(take);
    data.bb_lower.forEach(take);
    (data.levels || []).forEach(function (lv) { take(Number(lv.price)); });
    if (hi === lo) { hi += 1; lo -= 1; }
    var margin = (hi - lo) * 0.04;
    return { lo: lo - margin, hi: hi + margin, vmax: vmax || 1 };
  }

  function scales(data, w, h) {
    var ext = extent(data);
    var n = data.candles.length;
    var plotW = w - PAD.left - PAD.right;
    var inner = h - PAD.top - PAD.bottom;
    var priceH = inner * 0.62;
    var rsiTop = PAD.top + priceH + 8;
    var rsiH = inner * 0.2;
    var volTop = rsiTop + rsiH + 6;
    var volH = h - PAD.bottom - volTop;
    var step = plotW / Math.max(n, 1);
    var t0 = n ? data.candles[0].t : 0;
    var dt = n > 1 ? (data.candles[n - 1].t - t0) / (n - 1) : 60;
    return {
      step: step, priceH: priceH, volTop: volTop, volH: volH, plotW: plotW,
      rsiTop: rsiTop, rsiH: rsiH,
      yr: function (r) { return rsiTop + rsiH * (100 - r) / 100; },
      x: function (i) { return PAD.left + step * (i + 0.5); },
      xt: function (t) { return PAD.left + step * ((t - t0) / dt + 0.5); },
      y: function (p) { return PAD.top + priceH * (ext.hi - p) / (ext.hi - ext.lo); },
      yv: function (v) { return volTop + volH * (1 - v / ext.vmax); },
      ext: ext
    };
  }

  function shadeRegimes(ctx, data, s, h) {
    data.regimes.forEach(function (r) {
      var first = -1, last = -1;
      data.candles.forEach(function (c, i) {
        if (c.t >= r.start && c.t < r.end) { if (first < 0) first = i; last = i; }
      });
      if (first < 0) return;
      var x0 = s.x(first) - s.step / 2;
      var x1 = s.x(last) + s.step / 2;
      ctx.fillStyle = COLORS[r.regime] || COLORS.UNKNOWN;
      ctx.fillRect(x0, PAD.top, x1 - x0, h - PAD.top - PAD.bottom);
    });
  }

  function grid(ctx, data, s, w, tz) {
    ctx.strokeStyle = COLORS.grid;
    ctx.fillStyle = COLORS.text;
    ctx.lineWidth = 1;
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    for (var k = 0; k <= 4; k++) {
      var p = s.ext.lo + (s.ext.hi - s.ext.lo) * k / 4;
      var y = Math.round(s.y(p)) + 0.5;
      ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(w - PAD.right, y); ctx.stroke();
      ctx.fillText(formatPrice(p), w - PAD.right + 4, y);
    }
    var n = data.candles.length;
    var fmt = new Intl.DateTimeFormat("en-CA", {
      timeZone: tz, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23"
    });
    function stamp(t) {
      var parts = {};
      fmt.formatToParts(new Date(t * 1000)).forEach(function (p) { parts[p.type] = p.value; });
      return parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
    }
    ctx.textBaseline = "top";
    var ticks = Math.max(2, Math.min(6, Math.floor(s.plotW / 110)));
    for (var j = 0; j < ticks && n > 1; j++) {
      var i = Math.round((n - 1) * j / (ticks - 1));
      var label = stamp(data.candles[i].t);
      var tw = ctx.measureText(label).width;
      var x = Math.min(Math.max(s.x(i) - tw / 2, PAD.left), w - PAD.right - tw);
      ctx.fillText(label, x, s.volTop + s.volH + 6);
    }
  }

  function formatPrice(p) {
    var digits = Math.abs(p) >= 1000 ? 0 : Math.abs(p) >= 10 ? 2 : 4;
    return p.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  function line(ctx, values, s, color, width) {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    var open = false;
    values.forEach(function (v, i) {
      if (v === null || v === undefined) { open = false; return; }
      if (open) ctx.lineTo(s.x(i), s.y(v)); else ctx.moveTo(s.x(i), s.y(v));
      open = true;
    });
    ctx.stroke();
  }

  function band(ctx, data, s) {
    var first = data.bb_upper.findIndex(function (v) { return v !== null; });
    if (first < 0) return;
    ctx.fillStyle = COLORS.band;
    ctx.beginPath();
    for (var i = first; i < data.bb_upper.length; i++) ctx.lineTo(s.x(i), s.y(data.bb_upper[i]));
    for (var k = data.bb_lower.length - 1; k >= first; k--) ctx.lineTo(s.x(k), s.y(data.bb_lower[k]));
    ctx.closePath();
    ctx.fill();
    line(ctx, data.bb_upper, s, COLORS.bandLine, 1);
    line(ctx, data.bb_lower, s, COLORS.bandLine, 1);
  }

  function candles(ctx, data, s) {
    var bw = Math.max(1, s.step * 0.7);
    data.candles.forEach(function (c, i) {
      var color = c.c >= c.o ? COLORS.up : COLORS.down;
      var x = s.x(i);
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(x, s.y(c.h)); ctx.lineTo(x, s.y(c.l)); ctx.stroke();
      var top = s.y(Math.max(c.o, c.c));
      ctx.fillRect(x - bw / 2, top, bw, Math.max(1, s.y(Math.min(c.o, c.c)) - top));
      ctx.fillStyle = COLORS.volume;
      ctx.fillRect(x - bw / 2, s.yv(c.v), bw, s.volTop + s.volH - s.yv(c.v));
    });
  }

  function markers(ctx, data, s) {
    var byT = {};
    data.candles.forEach(function (c, i) { byT[c.t] = i; });
    data.trades.forEach(function (t) {
      var i = byT[t.t];
      var c = i === undefined ? null : data.candles[i];
      var x = c ? s.x(i) : s.xt(t.t);
      var buy = t.side === "BUY";
      var y = buy ? s.y(c ? c.l : t.price) + 4 : s.y(c ? c.h : t.price) - 4;
      var d = buy ? 1 : -1;
      ctx.fillStyle = buy ? COLORS.buy : COLORS.sell;
      ctx.beginPath();
      ctx.moveTo(x, y);
      ctx.lineTo(x - 6, y + 10 * d);
      ctx.lineTo(x + 6, y + 10 * d);
      ctx.closePath();
      ctx.fill();
    });
  }

  function levels(ctx, data, s, w) {
    ctx.font = FONT;
    ctx.textBaseline = "bottom";
    (data.levels || []).forEach(function (lv) {
      var y = Math.round(s.y(Number(lv.price))) + 0.5;
      ctx.strokeStyle = COLORS[lv.kind] || COLORS.text;
      ctx.fillStyle = ctx.strokeStyle;
      ctx.lineWidth = 1.25;
      ctx.setLineDash(lv.kind === "entry" ? [2, 3] : [6, 4]);
      ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(w - PAD.right, y); ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillText(lv.label + " " + formatPrice(Number(lv.price)), PAD.left + 4, y - 2);
    });
  }

  function rsiPane(ctx, data, s, w) {
    var values = data.rsi14 || [];
    ctx.strokeStyle = COLORS.grid;
    ctx.strokeRect(PAD.left + 0.5, s.rsiTop + 0.5, w - PAD.right - PAD.left, s.rsiH);
    ctx.font = FONT;
    ctx.fillStyle = COLORS.text;
    ctx.textBaseline = "middle";
    [30, 70].forEach(function (r) {
      var y = Math.round(s.yr(r)) + 0.5;
      ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(w - PAD.right, y); ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillText(String(r), w - PAD.right + 4, y);
    });
    ctx.fillText("RSI14", w - PAD.right + 4, s.rsiTop + 6);
    ctx.strokeStyle = COLORS.rsi;
    ctx.lineWidth = 1.25;
    ctx.beginPath();
    var open = false;
    values.forEach(function (v, i) {
      if (v === null || v === undefined) { open = false; return; }
      if (open) ctx.lineTo(s.x(i), s.yr(v)); else ctx.moveTo(s.x(i), s.yr(v));
      open = true;
    });
    ctx.stroke();
  }

  function draw(canvas, data) {
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 600;
    var h = canvas.clientHeight || 320;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (!data.candles.length) return;
    ctx.font = FONT;
    var ext = extent(data);
    PAD.right = Math.ceil(Math.max(
      ctx.measureText(formatPrice(ext.hi)).width, ctx.measureText(formatPrice(ext.lo)).width
    )) + 10;
    var s = scales(data, w, h);
    shadeRegimes(ctx, data, s, h);
    grid(ctx, data, s, w, data.timezone || "UTC");
    band(ctx, data, s);
    candles(ctx, data, s);
    line(ctx, data.ma20, s, COLORS.ma, 1.5);
    levels(ctx, data, s, w);
    markers(ctx, data, s);
    rsiPane(ctx, data, s, w);
    ctx.fillStyle = COLORS.text;
    ctx.textBaseline = "top";
    ctx.fillText(data.tz_label || data.timezone || "UTC", w - PAD.right + 4, s.volTop + s.volH + 6);
    canvas.setAttribute("data-candles", String(data.candles.length));
    canvas.setAttribute("data-markers", String(data.trades.length));
    canvas.setAttribute("data-levels", String((data.levels || []).length));
    canvas.setAttribute("data-rsi", String((data.rsi14 || []).filter(function (v) {
      return v !== null; }).length));
    // Where candle i and price p were drawn (CSS pixels), so a test can check the picture
    // against the data: x = left + step × (i + 0.5), y = top + height × (hi − p) / (hi − lo).
    canvas.setAttribute("data-geometry", JSON.stringify({
      left: PAD.left, step: s.step, top: PAD.top, height: s.priceH, hi: s.ext.hi, lo: s.ext.lo
    }));
  }

  window.CoinChart = { draw: draw };
})();
