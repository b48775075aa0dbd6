// The test taker's page: autosave with a local journal, countdown, keyboard, submit.
//
// Every answer change gets the next per-attempt sequence number and goes into a journal in
// localStorage *before* it is sent. An entry leaves the journal only when the server says it
// stored that seq (or a newer one). While the network or server is away the page says so,
// keeps working, and replays the journal in order when it can; nothing the taker clicked is
// lost even if the PC is rebooted before the server answered (the journal survives reloads).
// The server owns time: the countdown only displays what the server last said is left.
(function () {
  "use strict";
  var bar = document.getElementById("exam-bar");
  if (!bar) return;
  var attemptId = bar.dataset.attempt;
  var csrf = bar.dataset.csrf;
  var journalKey = "cact:" + attemptId + ":journal";
  var seqKey = "cact:" + attemptId + ":seq";
  var saveState = document.getElementById("save-state");
  var offlineBanner = document.getElementById("offline-banner");
  var pauseOverlay = document.getElementById("pause-overlay");
  var forms = Array.prototype.slice.call(document.querySelectorAll("form.item-form"));
  var form = forms.filter(function (f) { return !f.hidden; })[0] || null;
  var sending = false;
  var retryDelay = 1000;
  var retryTimer = null;

  // -- storage ------------------------------------------------------------------------------
  function readJournal() {
    try { return JSON.parse(localStorage.getItem(journalKey) || "{}"); } catch (e) { return {}; }
  }
  function writeJournal(journal) { localStorage.setItem(journalKey, JSON.stringify(journal)); }
  function nextSeq() {
    var stored = parseInt(localStorage.getItem(seqKey) || "0", 10) || 0;
    var seq = Math.max(stored, parseInt(bar.dataset.lastSeq || "0", 10) || 0) + 1;
    localStorage.setItem(seqKey, String(seq));
    return seq;
  }

  function showState(kind) {
    var text = bar.dataset["msg" + kind.charAt(0).toUpperCase() + kind.slice(1)];
    saveState.textContent = text || "";
    saveState.className = "save-state state-" + kind;
  }

  // -- sending ------------------------------------------------------------------------------
  function pending() {
    var journal = readJournal();
    return Object.keys(journal).map(function (k) { return journal[k]; })
      .sort(function (a, b) { return a.seq - b.seq; });
  }

  function scheduleRetry() {
    if (retryTimer) return;
    retryTimer = setTimeout(function () { retryTimer = null; flush(); }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  }

  var failures = 0;

  function flush() {
    if (sending) return Promise.resolve();
    var queue = pending();
    if (!queue.length) { showState("saved"); offlineBanner.hidden = true; return Promise.resolve(); }
    sending = true;
    showState("saving");
    var entry = queue[0];
    return fetch("/ujian/jawaban/" + entry.item, {
      method: "PUT",
      // How many tries failed before this one: the proctor console flags a struggling PC.
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf,
                 "X-Save-Failures": String(failures) },
      credentials: "same-origin",
      body: JSON.stringify({ response: entry.response, seq: entry.seq, flagged: entry.flagged })
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        return { status: res.status, body: body };
      });
    }).then(function (r) {
      sending = false;
      if (r.status === 200) {
        failures = 0;
        var journal = readJournal();
        var current = journal[entry.item];
        if (current && current.seq <= r.body.stored_seq) { delete journal[entry.item]; writeJournal(journal); }
        retryDelay = 1000;
        offlineBanner.hidden = true;
        if (r.body.remaining_s !== null && r.body.remaining_s !== undefined) setRemaining(r.body.remaining_s);
        return flush();
      }
      if (r.status === 409 || r.status === 401) {
        // Closed, paused, time up, or the seat moved: the server decides what to show.
        dropEntry(entry);
        showState("rejected");
        setTimeout(function () { window.location.assign("/ujian"); }, 1500);
        return;
      }
      if (r.status === 422 || r.status === 404) { dropEntry(entry); return flush(); }
      offline(r.status === 503 ? "storage" : "offline");  // keep the answer and try again
    }).catch(function () { sending = false; offline(); });
  }

  function dropEntry(entry) {
    var journal = readJournal();
    if (journal[entry.item] && journal[entry.item].seq === entry.seq) {
      delete journal[entry.item]; writeJournal(journal);
    }
  }

  function offline(reason) {
    sending = false;
    failures += 1;
    // The server answered but could not store (busy, disk full), or it did not answer at all.
    offlineBanner.textContent = offlineBanner.getAttribute("data-" + (reason || "offline"));
    offlineBanner.hidden = false;
    showState("unsent");
    scheduleRetry();
  }

  // -- the item on this page ----------------------------------------------------------------
  function responseOf(f) {
    var inputs = f.querySelectorAll("input[name=response]");
    var chosen = [];
    for (var i = 0; i < inputs.length; i++) if (inputs[i].checked) chosen.push(parseInt(inputs[i].value, 10));
    if (f.dataset.kind === "multiple") return chosen.length ? chosen : null;
    return chosen.length ? chosen[0] : null;
  }
  function flagOf(f) { return f.querySelector("input[name=flagged]").checked; }

  function markChoices(f) {
    var labels = f.querySelectorAll("label.choice");
    for (var i = 0; i < labels.length; i++) {
      labels[i].classList.toggle("chosen", labels[i].querySelector("input").checked);
    }
    var cell = document.querySelector('.nav-grid a[data-item="' + f.dataset.item + '"]');
    if (cell) {
      cell.classList.toggle("answered", responseOf(f) !== null);
      cell.classList.toggle("flagged", flagOf(f));
    }
  }

  function record(f) {
    var journal = readJournal();
    journal[f.dataset.item] = {
      item: parseInt(f.dataset.item, 10), response: responseOf(f), flagged: flagOf(f), seq: nextSeq()
    };
    writeJournal(journal);
    markChoices(f);
    flush();
  }

  function applyJournal() {
    // An answer not yet acknowledged (given offline, or before a reload) is shown as given.
    var journal = readJournal();
    forms.forEach(function (f) {
      var mine = journal[f.dataset.item];
      if (!mine) return;
      var wanted = mine.response === null ? [] : [].concat(mine.response);
      var inputs = f.querySelectorAll("input[name=response]");
      for (var i = 0; i < inputs.length; i++) inputs[i].checked = wanted.indexOf(parseInt(inputs[i].value, 10)) >= 0;
      f.querySelector("input[name=flagged]").checked = !!mine.flagged;
      markChoices(f);
    });
  }

  function show(position) {
    // Move between the items already in the page: no network needed.
    var target = document.getElementById("item-" + position);
    if (!target) return false;
    forms.forEach(function (f) { f.hidden = f !== target; });
    form = target;
    // The section's instructions were read on its first item; keep the question in view.
    var head = document.querySelector("details.section-head");
    if (head) head.open = false;
    var cells = document.querySelectorAll(".nav-grid a.cell");
    for (var i = 0; i < cells.length; i++) {
      var current = cells[i].dataset.position === String(position);
      cells[i].classList.toggle("current", current);
      if (current) cells[i].setAttribute("aria-current", "step"); else cells[i].removeAttribute("aria-current");
    }
    if (window.history && history.replaceState) history.replaceState(null, "", "/ujian/soal/" + position);
    window.scrollTo(0, 0);
    return true;
  }

  // -- countdown ----------------------------------------------------------------------------
  var countdown = document.getElementById("countdown");
  var deadline = null;  // in performance.now() milliseconds
  var submitted = false;
  function setRemaining(seconds) {
    if (seconds === "" || seconds === null || seconds === undefined) { deadline = null; return; }
    deadline = performance.now() + Number(seconds) * 1000;
    tick();
  }
  function tick() {
    if (deadline === null) return;
    var left = Math.max(0, Math.round((deadline - performance.now()) / 1000));
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    countdown.textContent = (h ? h + ":" : "") + (h && m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
    countdown.classList.toggle("low", left <= 300);
    if (left === 0 && !submitted && bar.dataset.state === "active") timeUp();
  }
  function timeUp() {
    // The server closes the section (opening the next one) or hands the test in at its
    // deadline; the page sends what it still holds, then asks the server where things stand.
    submitted = true;
    flushThen(function () { setTimeout(afterTimeUp, 1500); });
  }
  function afterTimeUp() {
    // Leave for the next section or the end page only once the server answers: while it is
    // down (an outage) the page waits here instead of showing the browser's error page, and a
    // restarted server that gave the outage back lets the taker carry on where they were.
    fetch("/ujian/status", { credentials: "same-origin" }).then(function (res) {
      if (!res.ok) { window.location.assign("/ujian"); return null; }
      return res.json();
    }).then(function (status) {
      if (!status) return;
      if (status.state === "active" && status.remaining_s > 0
          && String(status.current_section) === String(bar.dataset.section || status.current_section)) {
        submitted = false;
        offlineBanner.hidden = pending().length === 0;
        setRemaining(status.remaining_s);
        return;
      }
      window.location.assign("/ujian");
    }).catch(function () {
      offlineBanner.textContent = offlineBanner.getAttribute("data-offline");
      offlineBanner.hidden = false;
      setTimeout(afterTimeUp, 2000);
    });
  }

  function flushThen(done) {
    var started = Date.now();
    (function wait() {
      flush().then(function () {
        if (!pending().length || Date.now() - started > 10000) done();
        else setTimeout(wait, 500);
      });
    })();
  }

  function poll() {
    fetch("/ujian/status", { credentials: "same-origin" }).then(function (res) {
      if (res.status === 401) { window.location.assign("/"); return null; }
      return res.ok ? res.json() : null;
    }).then(function (status) {
      if (!status) return;
      offlineBanner.hidden = pending().length === 0;
      if (status.state === "submitted" || status.state === "expired") { window.location.assign("/ujian"); return; }
      var wasPaused = bar.dataset.state === "paused";
      bar.dataset.state = status.state;
      pauseOverlay.hidden = status.state !== "paused";
      if (String(status.current_section) !== String(bar.dataset.section || status.current_section) || (wasPaused && status.state === "active")) {
        window.location.assign("/ujian");
        return;
      }
      bar.dataset.section = status.current_section;
      setRemaining(status.remaining_s);
    }).catch(function () { if (pending().length) offline(); });
  }

  // -- wiring -------------------------------------------------------------------------------
  setRemaining(bar.dataset.remaining);
  setInterval(tick, 1000);
  setInterval(poll, 10000);  // pause, extra time and section changes show within 10 s
  window.addEventListener("online", flush);
  if (bar.dataset.state === "paused") pauseOverlay.hidden = false;

  forms.forEach(function (f) {
    f.addEventListener("change", function (event) {
      if (event.target.name === "response" || event.target.name === "flagged") record(f);
    });
    f.querySelector(".clear-answer").addEventListener("click", function () {
      var inputs = f.querySelectorAll("input[name=response]");
      for (var i = 0; i < inputs.length; i++) inputs[i].checked = false;
      record(f);
    });
    f.addEventListener("submit", function (event) { event.preventDefault(); record(f); });
  });
  applyJournal();
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.nav-prev, a.nav-next, .nav-grid a.cell") : null;
    if (!link) return;
    var position = link.dataset.position || (link.getAttribute("href") || "").split("/").pop();
    if (show(position)) event.preventDefault();
  });

  document.addEventListener("keydown", function (event) {
    if (!form || event.ctrlKey || event.altKey || event.metaKey) return;
    if (event.target.tagName === "TEXTAREA" || (event.target.tagName === "INPUT" && event.target.type === "text")) return;
    if (document.getElementById("submit-dialog") && document.getElementById("submit-dialog").open) return;
    var key = event.key.toLowerCase();
    var input = form.querySelector('label.choice[data-key="' + key + '"] input');
    if (input) { input.checked = form.dataset.kind === "multiple" ? !input.checked : true; record(form); event.preventDefault(); return; }
    if (event.key === "ArrowRight" && form.dataset.next) { show(form.dataset.next); event.preventDefault(); }
    if (event.key === "ArrowLeft" && form.dataset.prev) { show(form.dataset.prev); event.preventDefault(); }
  });

  var fontToggle = document.getElementById("font-toggle");
  function applyFont(large) {
    document.body.classList.toggle("large-font", large);
    fontToggle.setAttribute("aria-pressed", large ? "true" : "false");
  }
  applyFont(localStorage.getItem("cact:large-font") === "1");
  fontToggle.addEventListener("click", function () {
    var large = !document.body.classList.contains("large-font");
    localStorage.setItem("cact:large-font", large ? "1" : "0");
    applyFont(large);
  });

  var submitForm = document.getElementById("submit-form");
  var dialog = document.getElementById("submit-dialog");
  if (submitForm && dialog) {
    submitForm.addEventListener("submit", function (event) {
      if (submitted) return;
      event.preventDefault();
      var cells = document.querySelectorAll(".nav-grid .cell");
      var unanswered = 0, flagged = 0;
      for (var i = 0; i < cells.length; i++) {
        if (!cells[i].classList.contains("answered")) unanswered++;
        if (cells[i].classList.contains("flagged")) flagged++;
      }
      var summary = document.getElementById("submit-summary");
      summary.textContent = summary.dataset.template.replace("{u}", unanswered).replace("{f}", flagged);
      dialog.showModal();
    });
    document.getElementById("submit-cancel").addEventListener("click", function () { dialog.close(); });
    document.getElementById("submit-confirm").addEventListener("click", function () {
      submitted = true;
      flushThen(function () { submitForm.submit(); });
    });
  }
  var nextSectionForm = document.getElementById("next-section-form");
  if (nextSectionForm) {
    nextSectionForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (window.confirm(nextSectionForm.dataset.confirm)) flushThen(function () { nextSectionForm.submit(); });
    });
  }
  flush();
})();
