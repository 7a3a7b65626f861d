package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// TestSecretsNeverLeak runs scans with every kind of secret configured
// (HSS AK/SK and security token, the API token, the webhook secret and a
// token in the webhook URL), including calls HSS refuses, and then reads
// everything an operator or attacker could see: the logs, every key in
// Redis (task payloads, run records, tickets), asynqmon's API and the
// errors the API and the run records carry. No secret may appear.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		ak       = "AKLEAKCANARY0000001"
		sk       = "SKLEAKCANARYsecretkey0000000000000002"
		stsToken = "STSLEAKCANARYtoken0003"
		apiToken = "APITOKENLEAKCANARY0004"
		whSecret = "WHSECRETLEAKCANARY0005"
		whPath   = "WHPATHLEAKCANARY0006"
	)
	secrets := []string{ak, sk, stsToken, apiToken, whSecret, whPath}

	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		emu := emulator.NewServer(emulator.Options{Images: 250, Seed: 9, ProjectID: "proj", Credentials: map[string]string{ak: sk}})
		t.Cleanup(emu.Close)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
		t.Cleanup(hook.Close)

		cfg, err := configs.Load(configs.LoadOptions{
			Env: []string{"CLOUD_SDK_AK=" + ak, "CLOUD_SDK_SK=" + sk, "CLOUD_SDK_SECURITY_TOKEN=" + stsToken},
			Set: map[string]string{
				"redis.url": b.URL, "hss.endpoint": emu.URL, "hss.project_id": "proj", "hss.request_rate": "1000",
				"api.token": apiToken, "api.addr": "127.0.0.1:0", "webhook.url": hook.URL + "/" + whPath,
				"webhook.secret": whSecret, "webhook.max_attempts": "2", "retry.max_attempts": "2", "retry.base": "10ms",
				"log.level": "debug",
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		logs := &testkit.Buffer{}
		a, err := app.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ready := make(chan string, 1)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = a.RunWorker(ctx) }()
		go func() { defer wg.Done(); _ = a.RunAPI(ctx, ready) }()
		defer wg.Wait()
		defer cancel()
		addr := <-ready

		// One run that succeeds, one that HSS refuses (401 on every call).
		r1, err := a.Starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{}, jobs.Trigger{Kind: "cli"})
		if err != nil {
			t.Fatal(err)
		}
		waitFinal(t, a, r1.ID)
		emu.FailNext(100, 401, "APIGW.0301")
		r2, err := a.Starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{}, jobs.Trigger{Kind: "cli"})
		if err != nil {
			t.Fatal(err)
		}
		waitFinal(t, a, r2.ID)
		if _, err := a.Starter.AddImage(ctx, hss.ImageInfo{Namespace: "n", ImageName: "i", ImageVersion: "v"}, jobs.ImageParams{}); err != nil {
			t.Fatal(err)
		}
		// Until both webhook tasks have made their two attempts (the hook
		// answers 500 to each) and are archived, their errors logged.
		insp := asynq.NewInspectorFromRedisClient(b.Client)
		for _, id := range []string{r1.ID, r2.ID} {
			testkit.Eventually(t, 30*time.Second, func() bool {
				ti, err := insp.GetTaskInfo(jobs.QueueDefault, jobs.NotifyTaskID(id))
				return err == nil && ti.State == asynq.TaskStateArchived
			}, "the webhook task of run %s to be archived", id)
		}

		var seen strings.Builder
		seen.WriteString(logs.String())
		// Every key in Redis, whatever its type.
		keys, err := b.Client.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			seen.WriteString(k)
			switch typ := b.Client.Type(ctx, k).Val(); typ {
			case "string":
				seen.WriteString(b.Client.Get(ctx, k).Val())
			case "hash":
				fmt.Fprint(&seen, b.Client.HGetAll(ctx, k).Val())
			case "list":
				fmt.Fprint(&seen, b.Client.LRange(ctx, k, 0, -1).Val())
			case "set":
				fmt.Fprint(&seen, b.Client.SMembers(ctx, k).Val())
			case "zset":
				fmt.Fprint(&seen, b.Client.ZRange(ctx, k, 0, -1).Val())
			}
		}
		// The API: run records, errors (with and without auth), asynqmon.
		get := func(path, token string) {
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen.Write(body)
			fmt.Fprint(&seen, resp.Header)
		}
		get("/api/v1/runs/"+r2.ID, apiToken)
		get("/api/v1/runs", apiToken)
		get("/api/v1/runs", "wrong-"+apiToken[:5])
		get("/monitoring/api/queues", apiToken)
		for _, q := range []string{"critical", "default", "bulk"} {
			for _, state := range []string{"pending", "scheduled", "retry", "archived", "completed"} {
				get("/monitoring/api/queues/"+q+"/"+state+"_tasks", apiToken)
			}
		}
		get("/metrics", "")

		all := seen.String()
		if len(all) < 1000 {
			t.Fatalf("too little was read (%d bytes) for the check to mean anything", len(all))
		}
		if !strings.Contains(all, "APIGW.0301") || !strings.Contains(all, r2.ID) {
			t.Fatal("the refused run's error is not in what was read: the check would not see a leak in it")
		}
		for _, s := range secrets {
			if i := strings.Index(all, s); i >= 0 {
				lo, hi := max(0, i-200), min(len(all), i+len(s)+50)
				t.Errorf("secret %q leaked: ...%s...", s, all[lo:hi])
			}
		}
	})
}

func waitFinal(t *testing.T, a *app.App, id string) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, func() bool {
		r, err := a.Runs.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return r.State.Final()
	}, "run %s to finish", id)
}
