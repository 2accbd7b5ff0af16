// Swagger UI for /api/openapi.json, from assets the app serves itself (no CDN; CSP script-src 'self').
window.ui = SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
