// The API reference page (/docs/api/): Swagger UI reads the OpenAPI document of /v1 from the URL
// the page names. "Try it out" sends real requests with the key typed into "Authorize".
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    // The document is the server's: nothing is fetched from elsewhere (no validator badge).
    validatorUrl: null,
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    tryItOutEnabled: false,
  });
});
