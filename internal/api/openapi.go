package api

import (
	_ "embed"
	"net/http"
)

// OpenAPIPath is where the API's OpenAPI 3.1 document is served.
const OpenAPIPath = "/api/v1/openapi.json"

// openAPIDocument describes every route the Handler serves but asynqmon's
// (/monitoring/, a UI with its own API): bodies, parameters, limits,
// errors, headers and authentication. It is written by hand and served as
// it is; openapi_test.go drives every route and validates each request and
// answer against it, and fails when a route of the mux and the document
// part ways.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns a copy of the document served at OpenAPIPath.
func OpenAPIDocument() []byte { return append([]byte(nil), openAPIDocument...) }

// serveOpenAPI answers GET /api/v1/openapi.json without authentication: the
// document says nothing the repository does not, and a client reads it
// before it has credentials.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDocument)
}
