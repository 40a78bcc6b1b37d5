/* Small behaviours every page shares, without inline script (the Content-Security-Policy allows none, so no
   onclick= either): the navigation menu button on narrow screens, confirmation prompts on buttons with
   data-confirm="Question?", "select all" checkboxes with data-select-all="CSS selector of the boxes", and a
   sign-in redirect when an HTMX request finds the session gone. */
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var toggle = ev.target.closest("[data-nav-toggle]");
    if (toggle) {
      var header = toggle.closest("header");
      var open = header.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    var all = ev.target.closest("[data-select-all]");
    if (all) {
      document.querySelectorAll(all.getAttribute("data-select-all")).forEach(function (box) { box.checked = all.checked; });
    }
    var confirmable = ev.target.closest("[data-confirm]");
    if (confirmable && !window.confirm(confirmable.getAttribute("data-confirm"))) {
      ev.preventDefault();
      ev.stopImmediatePropagation();
    }
  }, true);
  // A link to a row inside a panel that loads after the page (e.g. /accounts/7#product-12): scroll to it once it arrives.
  document.addEventListener("htmx:afterSwap", function (ev) {
    var id = window.location.hash.slice(1);
    if (!id || !ev.detail || !ev.detail.target) { return; }
    var row = ev.detail.target.querySelector("[id='" + id.replace(/'/g, "") + "']");
    if (row) { row.scrollIntoView({ block: "center" }); row.classList.add("highlight"); }
  });
  // An HTMX request whose session ran out (or was signed out elsewhere) answers 401: go to sign-in and come back.
  document.addEventListener("htmx:responseError", function (ev) {
    if (ev.detail && ev.detail.xhr && ev.detail.xhr.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    }
  });
})();
