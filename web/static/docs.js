// Start Swagger UI on the OpenAPI document named by the script tag.
window.ui = SwaggerUIBundle({
  url: document.getElementById("docs-script").dataset.spec,
  dom_id: "#swagger-ui",
});
