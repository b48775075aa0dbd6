/* Proctor console: ticks the countdowns and "last seen" between pushes (rows carry absolute
   times, corrected by the server's clock in every push), keeps the selection when rows are
   replaced, opens a participant's panel in a drawer, filters the rows that need attention,
   and falls back to polling (and says so) while the event stream is down. */
(function () {
  "use strict";
  var stream = document.getElementById("live-stream");
  var live = document.getElementById("live");
  if (!stream || !live) return;
  var status = document.getElementById("stream-status");
  var offset = 0;  // server clock minus this computer's clock, in ms
  var selected = {};
  var pollTimer = null;

  function fmt(s) {
    s = Math.max(0, Math.floor(s));
    var m = Math.floor(s / 60), r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }

  function syncClock() {
    var counters = document.getElementById("counters");
    var serverNow = counters && parseInt(counters.getAttribute("data-server-now"), 10);
    if (serverNow) offset = serverNow - Date.now();
  }

  var clock = document.querySelector("[data-clock]");
  var clockFormat = null;
  try {
    clockFormat = new Intl.DateTimeFormat("en-GB", {timeZone: clock && clock.getAttribute("data-tz"),
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  } catch (e) { clockFormat = null; }  // an unknown zone: the server's time stays as rendered

  function tick() {
    var now = (Date.now() + offset) / 1000;
    if (clock && clockFormat) clock.textContent = clockFormat.format(new Date(now * 1000));
    var table = live.querySelector("[data-seen-label]");
    var label = table ? table.getAttribute("data-seen-label") : "{s}";
    // after two minutes in minutes: "31 mnt lalu" fits the column, "1901 dtk lalu" did not
    var minLabel = (table && table.getAttribute("data-seen-min-label")) || "";
    live.querySelectorAll("[data-deadline]").forEach(function (cell) {
      var time = cell.querySelector("time");
      if (time) time.textContent = fmt(parseInt(cell.getAttribute("data-deadline"), 10) - now);
    });
    live.querySelectorAll("[data-seen-at]").forEach(function (cell) {
      var time = cell.querySelector("time");
      var ago = Math.max(0, Math.floor(now - parseInt(cell.getAttribute("data-seen-at"), 10)));
      if (time) {
        time.textContent = ago >= 120 && minLabel ? minLabel.replace("{m}", Math.floor(ago / 60))
                                                  : label.replace("{s}", ago);
      }
    });
  }

  function countSelected() {
    var n = Object.keys(selected).length;
    document.querySelectorAll("[data-selected-count]").forEach(function (el) { el.textContent = n; });
  }

  function afterPush() {
    live.querySelectorAll('input[name="entry"]').forEach(function (box) {
      box.checked = !!selected[box.value];
    });
    countSelected();
    syncClock();
    tick();
  }

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.name === "entry") {
      if (box.checked) selected[box.value] = true; else delete selected[box.value];
      countSelected();
    } else if (box.hasAttribute && box.hasAttribute("data-select-all")) {
      // only the rows on screen: with "needing attention only", not the hidden ones
      var only = live.classList.contains("only-attention") ? "tr.needs-attention " : "";
      live.querySelectorAll(only + 'input[name="entry"]').forEach(function (b) {
        b.checked = box.checked;
        if (box.checked) selected[b.value] = true; else delete selected[b.value];
      });
      countSelected();
    }
  });

  // The participant's panel is a drawer at the right: at 1024x768 anything below the rows
  // would be out of sight. Opened by a name, closed by its button or Esc; the focus goes
  // into it and back to the name.
  var drawer = document.getElementById("panel-drawer");
  var opener = null;  // the href of the name that opened it (its row may be replaced since)

  function openDrawer() {
    if (!drawer) return;
    drawer.hidden = false;
    var title = document.getElementById("panel-title");
    if (title) title.focus();
  }

  function closeDrawer() {
    if (!drawer || drawer.hidden) return;
    drawer.hidden = true;
    var back = opener && live.querySelector('a[data-panel][href="' + opener + '"]');
    if (back) back.focus();
  }

  // One listener for every row's name (rows are replaced on pushes): open the panel.
  live.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-panel]");
    if (!link || !window.htmx || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    opener = link.getAttribute("href");
    window.htmx.ajax("GET", opener, {target: "#panel", swap: "innerHTML"}).then(openDrawer);
  });

  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-close-panel]");
    if (!close) return;
    event.preventDefault();
    closeDrawer();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" || event.key === "Esc") closeDrawer();
  });

  // "Needs attention only": a class on the live area, which pushes never replace.
  var filter = document.querySelector("[data-attention-filter]");
  if (filter) {
    filter.addEventListener("click", function () {
      var on = filter.getAttribute("aria-pressed") !== "true";
      filter.setAttribute("aria-pressed", on ? "true" : "false");
      live.classList.toggle("only-attention", on);
    });
  }

  function setStatus(kind) {
    if (!status) return;
    status.textContent = status.getAttribute("data-" + kind);
    status.className = "stream-status stream-" + kind;
  }

  function poll() {
    if (window.htmx) window.htmx.ajax("GET", live.getAttribute("data-grid-url"), {target: "#live", swap: "innerHTML"});
  }

  stream.addEventListener("htmx:sseOpen", function () {
    setStatus("live");
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  });
  stream.addEventListener("htmx:sseError", function () {
    setStatus("fallback");
    if (!pollTimer) { poll(); pollTimer = setInterval(poll, 3000); }
  });
  stream.addEventListener("htmx:sseMessage", afterPush);
  live.addEventListener("htmx:afterSwap", afterPush);
  afterPush();
  setInterval(tick, 1000);
})();
