// Package hss is scanq's client for the Huawei Cloud HSS v5 image-scan API:
// the request and response models, their validation (shared by the HSS
// emulator and scanq's HSS-compatible endpoint, so all three accept exactly
// the same requests), the error type and its retry classification, and the
// listing calls that turn is_all and query_info into concrete images.
// Request signing lives in the signer subpackage.
package hss
