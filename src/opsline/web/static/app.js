/* Small behaviours every page shares, without inline script (the Content-Security-Policy allows none, so no
   onclick= either): the navigation menu button on narrow screens, confirmation prompts on buttons with
   data-confirm="Question?", and "select all" checkboxes with data-select-all="CSS selector of the boxes". */
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
})();
