package hss

// What Huawei's API gateway (APIGW) answers in front of HSS: the error body
// of every status >= 400 and the messages of its own refusals. The emulator
// and scanq's HSS-compatible endpoint both answer with these, so that a
// client cannot tell them from the real service.

// ErrorBody is the JSON of every HSS error response; request_id repeats
// the X-Request-Id header, as the gateway does.
type ErrorBody struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
	RequestID string `json:"request_id"`
}

// Gateway messages.
const (
	MsgIAMPrefix     = "Incorrect IAM authentication information: "
	MsgBadSignature  = MsgIAMPrefix + "verify aksk signature fail"
	MsgUnknownAK     = MsgIAMPrefix + "Get secretKey failed,ak:******,err:ak not exist"
	MsgNoToken       = MsgIAMPrefix + "x-auth-token not found"
	MsgBadToken      = MsgIAMPrefix + "decrypt token fail"
	MsgNotFoundRoute = "The API does not exist or has not been published in the environment."
	MsgTooLarge      = "Request entity too large."
)

// MsgSignatureExpired is the gateway's answer to a signature dated too far
// from its clock.
func MsgSignatureExpired(signatureTime, serverTime string) string {
	return MsgIAMPrefix + "signature expired, signature time:" + signatureTime + ",server time:" + serverTime
}
