// The reload page: polls the narrative's status through Traefik until the narrative itself
// answers, then goes on to the loader. traefiker marks its own answers (data-marker): while
// Traefik has not loaded the narrative's route, the poll reaches traefiker, which answers at
// once and does nothing else (data-poll-header says it is a poll). A 502 or 404 from Traefik
// (the container still starting) carries no marker but is no success either.
(function () {
  "use strict";
  var main = document.getElementById("wait");
  var state = document.getElementById("state");
  var progress = document.getElementById("progress");
  var gaveUp = document.getElementById("gave-up");
  var next = main.getAttribute("data-next");
  var poll = main.getAttribute("data-poll");
  var marker = main.getAttribute("data-marker");
  var headers = {};
  headers[main.getAttribute("data-poll-header")] = "1";
  var started = Date.now();
  var limit = started + 1000 * Number(main.getAttribute("data-wait-secs"));
  var delay = 250;

  // Without the marker, the answer came through the narrative's route. Traefik's own answers
  // (404 before any route matches, 502-504 while the container does not answer) mean "not
  // yet"; a 401 or 403 can only be the narrative itself refusing the status to an anonymous
  // caller, so it is up.
  function answeredByNarrative(response) {
    if (response.headers.has(marker)) {
      return false;
    }
    return response.ok || response.status === 401 || response.status === 403;
  }

  function again() {
    var now = Date.now();
    if (now >= limit) {
      progress.hidden = true;
      state.textContent = "";
      gaveUp.hidden = false;
      return;
    }
    var seconds = Math.round((now - started) / 1000);
    if (seconds >= 3) {
      state.textContent = "Still starting (" + seconds + " s). This page moves on by itself.";
    }
    delay = Math.min(delay * 1.5, 2000);
    setTimeout(ask, delay);
  }

  function ask() {
    fetch(poll, { credentials: "same-origin", cache: "no-store", redirect: "manual", headers: headers })
      .then(function (response) {
        if (answeredByNarrative(response)) {
          state.textContent = "Your narrative answers. Opening it…";
          location.replace(next);
        } else {
          again();
        }
      }, again);
  }

  ask();
})();
