// Package interop holds scanq's interoperability tests: the official Huawei
// Cloud Go SDK (huaweicloud-sdk-go-v3, services/hss/v5) as the real client of
// the HSS emulator (internal/emulator) and of scanq's HSS-compatible
// endpoint (internal/api), and the SDK's signer checked against scanq's
// (internal/hss/signer) in both directions.
//
// It is a module of its own so that the SDK and its dependencies stay out of
// the main module; `make interop` runs it, and so does CI. Being under
// github.com/scanq/scanq/ in import path, it may import scanq's internal
// packages. There is no non-test code: everything is in the _test.go files.
package interop
