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
  // An HTMX request whose session ran out (or was signed out elsewhere) answers 401: go to sign-in and come back.
  document.addEventListener("htmx:responseError", function (ev) {
    if (ev.detail && ev.detail.xhr && ev.detail.xhr.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    }
  });
})();
