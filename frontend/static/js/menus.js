// The top bar's <details> menus (frontend/templates/layouts/admin.html, staff.html) open and
// close without this script; it only closes them the way menus are expected to close: another
// menu opening, a click elsewhere, or Escape (which gives focus back to the menu's button).
// Plain ES2017 for Chrome 109 / Firefox ESR 115.
(function () {
  "use strict";
  function menus() {
    return Array.prototype.slice.call(document.querySelectorAll(".topbar details.nav-menu"));
  }
  document.addEventListener("toggle", function (event) {
    var opened = event.target;
    if (!opened.matches || !opened.matches(".topbar details.nav-menu") || !opened.open) {
      return;
    }
    menus().forEach(function (menu) {
      if (menu !== opened) { menu.open = false; }
    });
  }, true);
  document.addEventListener("click", function (event) {
    menus().forEach(function (menu) {
      if (menu.open && !menu.contains(event.target)) { menu.open = false; }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    menus().forEach(function (menu) {
      if (menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  });
})();
