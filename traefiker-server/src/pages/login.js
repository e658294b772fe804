// The demo login page: KBase's login redirect puts the path to go back to in the fragment,
// `#login?nextrequest=<JSON {"path": …}, form-encoded>`, which only the browser sees. Copy it
// into every form's `next` field (the server checks it is a path of this site).
(function () {
  "use strict";
  var hash = location.hash;
  var prefix = "#login?nextrequest=";
  if (hash.indexOf(prefix) !== 0) {
    return;
  }
  var path;
  try {
    var raw = decodeURIComponent(hash.slice(prefix.length).replace(/\+/g, " "));
    path = JSON.parse(raw).path;
  } catch (e) {
    return;
  }
  if (typeof path !== "string" || path.charAt(0) !== "/" || path.charAt(1) === "/") {
    return;
  }
  if (path.charAt(path.length - 1) === "?") {
    path = path.slice(0, -1);
  }
  var fields = document.querySelectorAll("input[name=next]");
  for (var i = 0; i < fields.length; i++) {
    fields[i].value = path;
  }
  document.getElementById("next-path").textContent = path;
})();
