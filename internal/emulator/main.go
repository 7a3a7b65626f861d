package emulator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"time"
)

// shutdownTimeout bounds how long Main waits for requests in flight.
const shutdownTimeout = 5 * time.Second

// Main runs `scanq emulator`: it parses args (without the command name),
// listens, prints "listening http://HOST:PORT" as the first line of stdout
// (the bound address, so --addr 127.0.0.1:0 works), logs to stdout after
// it, and serves until ctx is done, then shuts down gracefully.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("scanq emulator", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		addr     = fs.String("addr", "127.0.0.1:8090", "listen address `HOST:PORT` (port 0 picks a free one)")
		images   = fs.Int("images", 1000, "registry images in the synthetic inventory")
		local    = fs.Int("local-images", 100, "images on hosts in the synthetic inventory")
		seed     = fs.Int64("seed", 1, "seed of the inventory and of random faults")
		project  = fs.String("project-id", "", "the only project_id answered (default any)")
		ak       = fs.String("ak", "", "access key of AK/SK-signed requests (with --sk)")
		sk       = fs.String("sk", "", "secret key for --ak")
		token    = fs.String("token", "", "accepted X-Auth-Token")
		apiRate  = fs.Float64("api-rate", 0, "API calls per second before 429 APIGW.0308 (0 = no limit)")
		failRate = fs.Float64("fail-rate", 0, "fraction of API calls answered with a 5xx")
		thrRate  = fs.Float64("throttle-rate", 0, "fraction of API calls answered with 429")
		latency  = fs.Duration("latency", 0, "delay added to every API call")
		scanTime = fs.Duration("scan-time", time.Second, "time a scan task takes per image")
		churn    = fs.Float64("churn", 0, "registry changes per second: images inserted at random positions of the list and deleted, half each (0 = none)")
		delay    = fs.Duration("scan-delay", 0, "time from a scan request to each image's success or failed, registry or local, through waiting_for_scan and scanning; a request's rate_limit makes its images wait longer, and its task's success_num and failed_num count them (0 = scans change no status)")
		failScan = fs.Float64("scan-fail-rate", 0, "fraction of --scan-delay scans that end failed")
		keep     = fs.Int("max-submissions", 10000, "accepted scan requests kept for /emulator/v1/submissions (-1 none, 0 all)")
		logLevel = fs.String("log-level", "info", "log level: debug, info, warn, error")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("emulator: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("emulator: unexpected argument %q", fs.Arg(0))
	}
	if err := checkFlags(*images, *local, *apiRate, *failRate, *thrRate, *latency, *scanTime, *keep, *ak, *sk); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	if err := checkChangeFlags(*churn, *delay, *failScan); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("emulator: --log-level %q is not debug, info, warn or error", *logLevel)
	}
	opts := Options{
		Images: *images, LocalImages: *local, Seed: *seed, ProjectID: *project, Token: *token,
		APIRate: *apiRate, FailRate: *failRate, ThrottleRate: *thrRate, Latency: *latency,
		ScanTime: *scanTime, MaxSubmissions: *keep,
		Churn: Churn{Rate: *churn}, ScanDelay: *delay, ScanFailRate: *failScan,
	}
	if *ak != "" {
		opts.Credentials = map[string]string{*ak: *sk}
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("emulator: listen on --addr %s: %w", *addr, err)
	}
	if _, err := fmt.Fprintf(stdout, "listening http://%s\n", ln.Addr()); err != nil {
		ln.Close()
		return fmt.Errorf("emulator: write listening line: %w", err)
	}
	opts.Logger = slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level})).With("component", "hss-emulator")
	e := NewHandler(opts)
	auth := "off"
	switch {
	case *ak != "" && *token != "":
		auth = "aksk+token"
	case *ak != "":
		auth = "aksk"
	case *token != "":
		auth = "token"
	}
	opts.Logger.Info("hss emulator serving", "addr", ln.Addr().String(), "images", *images,
		"local_images", *local, "seed", *seed, "auth", auth, "api_rate", *apiRate,
		"fail_rate", *failRate, "throttle_rate", *thrRate, "latency", *latency,
		"churn", *churn, "scan_delay", *delay, "scan_fail_rate", *failScan)

	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("emulator: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("emulator: shut down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("emulator: serve: %w", err)
	}
	opts.Logger.Info("hss emulator stopped")
	return nil
}

func checkFlags(images, local int, apiRate, failRate, thrRate float64, latency, scanTime time.Duration, keep int, ak, sk string) error {
	var bad []string
	if images < 0 {
		bad = append(bad, fmt.Sprintf("--images %d is negative", images))
	}
	if local < 0 {
		bad = append(bad, fmt.Sprintf("--local-images %d is negative", local))
	}
	if !(apiRate >= 0) {
		bad = append(bad, fmt.Sprintf("--api-rate %v is negative", apiRate))
	}
	if !(failRate >= 0 && failRate <= 1) {
		bad = append(bad, fmt.Sprintf("--fail-rate %v is outside 0..1", failRate))
	}
	if !(thrRate >= 0 && thrRate <= 1) {
		bad = append(bad, fmt.Sprintf("--throttle-rate %v is outside 0..1", thrRate))
	}
	if failRate+thrRate > 1 {
		bad = append(bad, "--fail-rate + --throttle-rate exceeds 1")
	}
	if latency < 0 {
		bad = append(bad, fmt.Sprintf("--latency %s is negative", latency))
	}
	if scanTime < 0 {
		bad = append(bad, fmt.Sprintf("--scan-time %s is negative", scanTime))
	}
	if keep < -1 {
		bad = append(bad, fmt.Sprintf("--max-submissions %d is below -1", keep))
	}
	if (ak == "") != (sk == "") {
		bad = append(bad, "--ak and --sk must be given together")
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// checkChangeFlags checks the flags that make the inventory change.
func checkChangeFlags(churn float64, delay time.Duration, failScan float64) error {
	var bad []string
	if !(churn >= 0) || math.IsInf(churn, 1) {
		bad = append(bad, fmt.Sprintf("--churn %v is not a non-negative rate", churn))
	}
	if delay < 0 {
		bad = append(bad, fmt.Sprintf("--scan-delay %s is negative", delay))
	}
	if !(failScan >= 0 && failScan <= 1) {
		bad = append(bad, fmt.Sprintf("--scan-fail-rate %v is outside 0..1", failScan))
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}
