// The test taker's page: autosave with a local journal, countdown, keyboard, submit.
//
// Every answer change gets the next per-attempt sequence number and goes into a journal in
// localStorage *before* it is sent. An entry leaves the journal only when the server says it
// stored that seq (or a newer one). While the network or server is away the page says so,
// keeps working, and replays the journal in order when it can; nothing the taker clicked is
// lost even if the PC is rebooted before the server answered (the journal survives reloads).
// The server owns time: the countdown only displays what the server last said is left.
// A pause reaches the page through an event stream (/ujian/peristiwa) within about a second;
// an answer the server refused because of a pause stays in the journal and is sent on resume.
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

  var refused = false;  // the last change was refused (422): never say "tersimpan" for it

  function isPaused() { return bar.dataset.state === "paused"; }

  function flush() {
    if (sending) return Promise.resolve();
    var queue = pending();
    if (!queue.length) {
      showState(refused ? "refused" : "saved"); offlineBanner.hidden = true; return Promise.resolve();
    }
    // While paused the server refuses every save: the journal keeps them until the resume.
    if (isPaused()) { showState("paused"); return Promise.resolve(); }
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
      if (r.status === 409 && r.body && (r.body.code === "taker.error_paused"
                                         || r.body.code === "taker.error_session_paused")) {
        // Paused before the page heard of it: keep the answer, send it after the resume.
        setPaused(true);
        return;
      }
      if (r.status === 409 || r.status === 401) {
        // Closed, time up, or the seat moved: the server decides what to show.
        dropEntry(entry);
        showState("rejected");
        setTimeout(function () { window.location.assign("/ujian"); }, 1500);
        return;
      }
      if (r.status === 422 || r.status === 404) { dropEntry(entry); refused = true; return flush(); }
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
  function minChoices(f) { return parseInt(f.dataset.minChoices || "0", 10) || 0; }
  function maxChoices(f) { return parseInt(f.dataset.maxChoices || "0", 10) || 0; }
  function answered(f) {
    // The server's rule (views.ItemView.answered): fewer than the item's minimum is not yet
    // an answer, though it is saved as the taker's work in progress.
    var response = responseOf(f);
    if (response === null) return false;
    return f.dataset.kind !== "multiple" || response.length >= minChoices(f);
  }

  function markChoices(f) {
    var labels = f.querySelectorAll("label.choice");
    for (var i = 0; i < labels.length; i++) {
      labels[i].classList.toggle("chosen", labels[i].querySelector("input").checked);
    }
    var hint = f.querySelector(".choice-hint.warn");
    var chosen = responseOf(f);
    if (hint && (!chosen || chosen.length < maxChoices(f))) {
      hint.textContent = hint.dataset.plain;  // room again: the plain hint is back
      hint.classList.remove("warn");
    }
    var cell = document.querySelector('.nav-grid a[data-item="' + f.dataset.item + '"]');
    if (cell) {
      cell.classList.toggle("answered", answered(f));
      cell.classList.toggle("flagged", flagOf(f));
    }
  }

  function tooMany(f, input) {
    // A multiple-response item's maximum: the extra tick is undone and the hint says why
    // (the server refuses more with 422 as well).
    var most = maxChoices(f);
    if (!most || f.dataset.kind !== "multiple" || !input.checked) return false;
    var chosen = responseOf(f);
    if (!chosen || chosen.length <= most) return false;
    input.checked = false;
    var hint = f.querySelector(".choice-hint");
    if (hint) {
      if (!hint.dataset.plain) hint.dataset.plain = hint.textContent;
      hint.textContent = hint.dataset.tooMany || hint.dataset.plain;
      hint.classList.add("warn");
    }
    return true;
  }

  function record(f) {
    refused = false;
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
    if (sectionHead) sectionHead.open = false;
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
  var testCountdown = document.getElementById("test-countdown");
  var deadline = null;  // in performance.now() milliseconds
  var testDeadline = null;
  var frozenLeft = null, frozenTestLeft = null;  // while paused the clocks stand still
  var submitted = false;
  function absent(value) { return value === "" || value === null || value === undefined; }
  function setRemaining(seconds, testSeconds) {
    deadline = absent(seconds) ? null : performance.now() + Number(seconds) * 1000;
    if (testSeconds !== undefined) {
      testDeadline = absent(testSeconds) ? null : performance.now() + Number(testSeconds) * 1000;
    }
    frozenLeft = frozenTestLeft = null;
    tick();
  }
  function clockText(left) {
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    return (h ? h + ":" : "") + (h && m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
  }
  function secondsLeft(until) { return Math.max(0, Math.round((until - performance.now()) / 1000)); }
  function tick() {
    if (isPaused()) {
      // The server does not count paused time; the page shows the clock stopped.
      if (frozenLeft === null && deadline !== null) frozenLeft = secondsLeft(deadline);
      if (frozenTestLeft === null && testDeadline !== null) frozenTestLeft = secondsLeft(testDeadline);
      return;
    }
    if (testCountdown && testDeadline !== null) testCountdown.textContent = clockText(secondsLeft(testDeadline));
    if (deadline === null) return;
    var left = secondsLeft(deadline);
    countdown.textContent = clockText(left);
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
        setRemaining(status.remaining_s, status.test_remaining_s);
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

  // -- pause, resume and the server's clock ---------------------------------------------------
  var pauseKept = document.getElementById("pause-kept");
  function setPaused(paused) {
    var was = isPaused();
    if (paused) {
      tick();  // freeze the clocks at what they show now
      bar.dataset.state = "paused";
      if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
      var open = document.querySelectorAll("dialog[open]");
      for (var i = 0; i < open.length; i++) open[i].close();
    }
    pauseOverlay.hidden = !paused;
    if (pauseKept) pauseKept.hidden = !(paused && pending().length);
    if (paused && pending().length) showState("paused");
    if (was && !paused) {
      bar.dataset.state = "active";
      flush();  // what was answered just before the pause goes now
    }
  }

  function applyStatus(status) {
    // One status from the poll or the event stream (same shape as /ujian/status).
    if (!status) return;
    if (status.state === "submitted" || status.state === "expired") { window.location.assign("/ujian"); return; }
    if (status.state === "not_started") { window.location.assign("/ujian"); return; }
    if (String(status.current_section) !== String(bar.dataset.section || status.current_section)) {
      flushThen(function () { window.location.assign("/ujian"); });
      return;
    }
    bar.dataset.section = status.current_section;
    if (status.state === "paused") {
      setPaused(true);
      return;
    }
    setPaused(false);
    setRemaining(status.remaining_s, status.test_remaining_s);
  }

  function poll() {
    fetch("/ujian/status", { credentials: "same-origin" }).then(function (res) {
      if (res.status === 401) { window.location.assign("/"); return null; }
      return res.ok ? res.json() : null;
    }).then(function (status) {
      if (!status) return;
      offlineBanner.hidden = pending().length === 0 || isPaused();
      applyStatus(status);
    }).catch(function () { if (pending().length) offline(); });
  }

  var stream = null;
  function listen() {
    // The server pushes a status whenever the attempt's state, section or deadlines change.
    if (!window.EventSource) return;
    stream = new EventSource("/ujian/peristiwa");
    stream.addEventListener("status", function (event) {
      try { applyStatus(JSON.parse(event.data)); } catch (e) { /* a broken line: the poll corrects */ }
    });
  }
  function streamOpen() { return stream !== null && stream.readyState === 1; }
  // Without a network the stream is dead even if the browser has not noticed yet: stop it,
  // and listen again (told the current state at once) when the network is back.
  window.addEventListener("offline", function () { if (stream) { stream.close(); stream = null; } });
  window.addEventListener("online", function () { if (!stream) listen(); });
  var polledAt = Date.now();
  function maybePoll() {
    // Every 10 s (the console's "last seen"), every 3 s while the stream is down but the
    // network is up.
    var every = streamOpen() || navigator.onLine === false ? 10000 : 3000;
    if (Date.now() - polledAt >= every) { polledAt = Date.now(); poll(); }
  }

  // -- wiring -------------------------------------------------------------------------------
  setRemaining(bar.dataset.remaining, bar.dataset.testRemaining);
  setInterval(tick, 1000);
  setInterval(maybePoll, 1000);
  window.addEventListener("online", flush);
  if (bar.dataset.state === "paused") setPaused(true);
  listen();

  var sectionHead = document.querySelector("details.section-head");
  if (sectionHead) {
    // Instructions open on a section's first view only; one click on the title reopens them.
    var seenKey = sectionHead.dataset.seenKey;
    if (localStorage.getItem(seenKey)) sectionHead.open = false;
    else localStorage.setItem(seenKey, "1");
  }

  forms.forEach(function (f) {
    f.addEventListener("change", function (event) {
      if (event.target.name === "response" && tooMany(f, event.target)) { markChoices(f); return; }
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
    if (document.querySelector("dialog[open]") || isPaused()) return;
    var key = event.key.toLowerCase();
    if (key === "r") {  // ragu-ragu
      var flag = form.querySelector("input[name=flagged]");
      flag.checked = !flag.checked; record(form); event.preventDefault(); return;
    }
    var input = form.querySelector('label.choice[data-key="' + key + '"] input');
    if (input) {
      input.checked = form.dataset.kind === "multiple" ? !input.checked : true;
      if (tooMany(form, input)) { markChoices(form); event.preventDefault(); return; }
      record(form); event.preventDefault(); return;
    }
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

  // -- the submit and next-section dialogs ----------------------------------------------------
  function gridState(onlySection) {
    // Every numbered cell of the grid: open sections as the taker left them (saved or in the
    // journal, sent before leaving), closed ones as the server stored them.
    var cells = document.querySelectorAll(".nav-grid .cell[data-position]");
    var out = { unanswered: [], flagged: [] };
    for (var i = 0; i < cells.length; i++) {
      var cell = cells[i];
      var link = cell.tagName === "A";
      if (onlySection && !(link && cellSection(cell) === String(bar.dataset.section))) continue;
      var entry = { position: cell.dataset.position, link: link };
      if (!cell.classList.contains("answered")) out.unanswered.push(entry);
      if (cell.classList.contains("flagged")) out.flagged.push(entry);
    }
    return out;
  }
  function cellSection(cell) {
    var f = document.getElementById("item-" + cell.dataset.position);
    return f ? f.dataset.section : null;
  }
  var closedTitle = document.getElementById("closed-item-title");
  var jumpLabel = document.getElementById("jump-label");
  function templateText(node, position) { return (node.content || node).textContent.replace("{n}", position); }
  function fillLinks(holder, entries, dialog) {
    while (holder.firstChild) holder.removeChild(holder.firstChild);
    holder.parentNode.hidden = entries.length === 0;
    entries.forEach(function (entry, index) {
      if (index) holder.appendChild(document.createTextNode(" "));
      var node;
      if (entry.link) {
        node = document.createElement("a");
        node.href = "/ujian/soal/" + entry.position;
        node.className = "jump";
        if (jumpLabel) node.setAttribute("aria-label", templateText(jumpLabel, entry.position));
        node.addEventListener("click", function (event) {
          event.preventDefault();
          dialog.close();
          show(entry.position);
        });
      } else {
        node = document.createElement("span");
        node.className = "jump closed";
        if (closedTitle) node.title = templateText(closedTitle, entry.position);
      }
      node.textContent = entry.position;
      holder.appendChild(node);
    });
  }

  var submitForm = document.getElementById("submit-form");
  var dialog = document.getElementById("submit-dialog");
  if (submitForm && dialog) {
    submitForm.addEventListener("submit", function (event) {
      if (submitted) return;
      event.preventDefault();
      var state = gridState(false);
      var summary = document.getElementById("submit-summary");
      summary.textContent = summary.dataset.template.replace("{u}", state.unanswered.length)
        .replace("{f}", state.flagged.length);
      fillLinks(document.getElementById("submit-unanswered"), state.unanswered, dialog);
      fillLinks(document.getElementById("submit-flagged"), state.flagged, dialog);
      dialog.showModal();
    });
    document.getElementById("submit-cancel").addEventListener("click", function () { dialog.close(); });
    document.getElementById("submit-confirm").addEventListener("click", function () {
      submitted = true;
      flushThen(function () { submitForm.submit(); });
    });
  }
  var nextSectionForm = document.getElementById("next-section-form");
  var nextDialog = document.getElementById("next-dialog");
  if (nextSectionForm && nextDialog) {
    nextSectionForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var state = gridState(true);
      var text = document.getElementById("next-summary");
      text.textContent = state.unanswered.length
        ? nextDialog.dataset.unanswered.replace("{n}", state.unanswered.length) : nextDialog.dataset.all;
      fillLinks(document.getElementById("next-unanswered"), state.unanswered, nextDialog);
      nextDialog.showModal();
    });
    document.getElementById("next-cancel").addEventListener("click", function () { nextDialog.close(); });
    document.getElementById("next-confirm").addEventListener("click", function () {
      nextDialog.close();
      flushThen(function () { nextSectionForm.submit(); });
    });
  }
  flush();
})();
