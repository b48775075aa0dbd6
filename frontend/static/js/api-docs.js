// Starts the vendored Swagger UI; kept out of the HTML so the page satisfies the CSP.
(function () {
  var el = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: el.dataset.openapiUrl, domNode: el, deepLinking: true });
})();
