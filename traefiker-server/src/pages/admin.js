// The status page refreshes its live part every few seconds from the same URL, unless the
// keyboard focus is in it (someone is about to press a button) or the tab is hidden.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var state = document.getElementById("refresh-state");
  var every = 1000 * Number(live.getAttribute("data-refresh-secs"));

  function focusInside(node) {
    var active = document.activeElement;
    return active && active !== document.body && node.contains(active);
  }

  function refresh() {
    if (document.visibilityState !== "visible" || focusInside(live)) {
      return;
    }
    fetch(location.pathname, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        var next = fresh.getElementById("live");
        var stamp = fresh.getElementById("refresh-state");
        if (!next || focusInside(live)) {
          return;
        }
        live.replaceWith(document.adoptNode(next));
        live = next;
        if (stamp) {
          state.replaceWith(document.adoptNode(stamp));
          state = stamp;
        }
      })
      .catch(function (e) {
        state.textContent = "Could not refresh (" + e.message + "); showing the last answer. Reload the page to try again.";
      });
  }

  setInterval(refresh, every);
})();
