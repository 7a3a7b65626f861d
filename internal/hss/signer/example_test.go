package signer_test

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/scanq/scanq/internal/hss/signer"
)

func ExampleSign() {
	body := []byte(`{"Name":"test","Id":1}` + "\n")
	req, _ := http.NewRequest(http.MethodPost, "https://example.huaweicloud.com/path?key=value", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	now := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
	if err := signer.Sign(req, body, "AccessKey", "SecretKey", now); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Header.Get("X-Sdk-Date"))
	fmt.Println(req.Header.Get("Authorization"))
	// Output:
	// 20060102T150405Z
	// SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59
}

func ExampleVerify() {
	keys := map[string]string{"AccessKey": "SecretKey"}
	lookup := func(ak string) (string, bool) { sk, ok := keys[ak]; return sk, ok }
	now := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)

	req, _ := http.NewRequest(http.MethodGet, "https://hss.example/v5/p/image/tasks?type=image_scan", nil)
	_ = signer.Sign(req, nil, "AccessKey", "SecretKey", now)
	ak, err := signer.Verify(req, nil, lookup, now.Add(time.Minute), 0)
	fmt.Println(ak, err)

	_, err = signer.Verify(req, nil, lookup, now.Add(time.Hour), 0)
	fmt.Println(err)
	// Output:
	// AccessKey <nil>
	// verify: X-Sdk-Date 20060102T150405Z is 1h0m0s from server time, limit 15m0s: request date outside the allowed clock skew
}
