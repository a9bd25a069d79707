/* Auto-refresh and chart start-up. Refresh re-fetches the same URL and swaps <main>, so
   filters and the scroll position survive; a failed refresh keeps the old content. */
(function () {
  "use strict";

  function drawCharts() {
    var canvas = document.getElementById("chart");
    var source = document.getElementById("chart-data");
    if (!canvas || !source || !window.CoinChart) return;
    window.CoinChart.draw(canvas, JSON.parse(source.textContent));
  }

  function refresh() {
    // Never yank content the operator is reading or editing.
    if (document.hidden || document.querySelector("main details[open]")) return Promise.resolve();
    if (document.activeElement && document.activeElement.closest("form")) return Promise.resolve();
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var main = doc.getElementById("main");
        var stamp = doc.getElementById("stamp");
        if (!main) return;
        document.getElementById("main").replaceWith(main);
        if (stamp) document.getElementById("stamp").textContent = stamp.textContent;
        document.body.classList.remove("stale");
        drawCharts();
      })
      .catch(function (err) {
        document.body.classList.add("stale");
        console.warn("dashboard refresh failed:", err.message);
      });
  }

  window.CoinPilotDashboard = { refresh: refresh, drawCharts: drawCharts };

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    var seconds = parseInt(document.body.getAttribute("data-refresh-s") || "0", 10);
    if (seconds > 0) window.setInterval(refresh, seconds * 1000);
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(drawCharts, 150);
    });
  });
})();
