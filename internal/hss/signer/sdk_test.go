package signer_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	sdksigner "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	sdkrequest "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"

	"github.com/scanq/scanq/internal/hss/signer"
)

const (
	interopAK = "AKINTEROP"
	interopSK = "interop-secret"
)

// sdkRequest builds a request the way the SDK's HcHttpClient does for an HSS
// call, with values that stress escaping: spaces, "+", reserved characters,
// multi-byte text, a repeated key and an empty value.
func sdkRequest(endpoint, date string) *sdkrequest.DefaultHttpRequest {
	b := sdkrequest.NewHttpRequestBuilder().
		WithEndpoint(endpoint).
		WithMethod(http.MethodPost).
		WithPath("/v5/proj-1/image/image-scan/tasks").
		AddQueryParam("global_image_type", reflect.ValueOf("local")).
		AddQueryParam("image_name", reflect.ValueOf("一 a+b (&=?!#%.*)/~")).
		AddQueryParam("multi", reflect.ValueOf([]string{"z", "a", "m"})).
		AddQueryParam("empty", reflect.ValueOf("")).
		AddHeaderParam("Content-Type", "application/json").
		AddHeaderParam("User-Agent", "huaweicloud-usdk-go/3.0").
		AddHeaderParam("region", "cn-north-4").
		AddHeaderParam("X-Project-Id", "proj-1").
		AddHeaderParam("X-Security-Token", "temporary-token").
		WithBody("body", map[string]any{"is_all": true, "query_info": map[string]string{"image_name": "<nginx>&"}})
	if date != "" {
		b.AddHeaderParam("X-Sdk-Date", date)
	}
	return b.Build()
}

func TestSDKSignsVerifyAccepts(t *testing.T) {
	t.Parallel()
	now := time.Now()
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			_, err = signer.Verify(r, body, func(ak string) (string, bool) { return interopSK, ak == interopAK }, now, 0)
		}
		got <- err
	}))
	defer srv.Close()

	req := sdkRequest(srv.URL, "")
	headers, err := sdksigner.Sign(req, interopAK, interopSK)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.AddHeaderParam(k, v)
	}
	httpReq, err := req.ConvertRequest()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(httpReq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-got; err != nil {
		t.Errorf("Verify rejected the SDK's signature: %v", err)
	}
}

func TestSignMatchesSDK(t *testing.T) {
	t.Parallel()
	const date = "20250301T120000Z"
	now, _ := time.Parse(signer.DateLayout, date)

	// The exact request the SDK would send, signed by us.
	sdkReq := sdkRequest("https://hss.cn-north-4.myhuaweicloud.com", date)
	httpReq, err := sdkReq.ConvertRequest()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(httpReq.Body)
	if err != nil {
		t.Fatal(err)
	}
	httpReq.Header.Del("X-Sdk-Date")
	if err := signer.Sign(httpReq, body, interopAK, interopSK, now); err != nil {
		t.Fatal(err)
	}

	want, err := sdksigner.Sign(sdkReq, interopAK, interopSK)
	if err != nil {
		t.Fatal(err)
	}
	if got := httpReq.Header.Get("Authorization"); got != want["Authorization"] {
		t.Errorf("Authorization\n ours %s\n  sdk %s", got, want["Authorization"])
	}
	if !strings.Contains(want["Authorization"], "SignedHeaders=region;user-agent;x-project-id;x-sdk-date;x-security-token,") {
		t.Errorf("unexpected SDK signed headers: %s", want["Authorization"])
	}
}
