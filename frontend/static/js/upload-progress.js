// Shows upload progress for forms marked data-progress="<id of a <progress>>" (htmx uploads).
(function () {
  document.addEventListener("htmx:xhr:progress", function (evt) {
    var form = evt.target.closest ? evt.target.closest("form[data-progress]") : null;
    if (!form || !evt.detail.lengthComputable) return;
    var bar = document.getElementById(form.dataset.progress);
    if (!bar) return;
    bar.hidden = false;
    bar.value = Math.round((evt.detail.loaded / evt.detail.total) * 100);
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.target.closest ? evt.target.closest("form[data-progress]") : null;
    if (!form) return;
    var bar = document.getElementById(form.dataset.progress);
    if (bar) { bar.hidden = true; bar.value = 0; }
  });
})();
