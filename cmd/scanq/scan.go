package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// scanFlags are the flags of `scan` and `enqueue`.
type scanFlags struct {
	target            string
	all               bool
	images            []string
	query             []string
	rateLimit         int
	scanScope         int64
	batchSize         int
	imageType         string
	enterpriseProject string
	region            string
	dryRun            bool
	verify            bool
	forward           bool
	includeUnscan     bool
	widen, expand     bool
	skipScannedWithin time.Duration
	priority          string
	json              bool
	wait              bool
	setFlags          map[string]bool
}

// newScanCmd is `scanq scan` (run to completion in this process, with its
// own worker) and `scanq enqueue` (hand the run to the fleet; --wait
// follows it): the same flags, and the run in its one JSON shape with
// --json.
func newScanCmd(enqueue bool) *cobra.Command {
	name, short := "scan", "run one scan to completion in this process"
	if enqueue {
		name, short = "enqueue", "hand a scan to the fleet (--wait to follow it)"
	}
	var cf configFlags
	var f scanFlags
	cmd := &cobra.Command{
		Use:   name + " (--all | --image NS/NAME:TAG ... | --query KEY=VALUE ...) [flags]",
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.setFlags = map[string]bool{}
			cmd.Flags().Visit(func(fl *pflag.Flag) { f.setFlags[fl.Name] = true })
			return runScan(cmd.Context(), name, &cf, &f, enqueue, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	cf.register(fs)
	fs.StringVar(&f.target, "target", "", "the `TARGET` to scan on, a name from the configuration's targets, or all for one run on each (default: the only target)")
	fs.BoolVar(&f.all, "all", false, "scan every image (is_all)")
	fs.StringArrayVar(&f.images, "image", nil, "scan this image, `NS/NAME:TAG` or NS/NAME@DIGEST (repeatable)")
	fs.StringArrayVar(&f.query, "query", nil, "scan the images matching `KEY=VALUE`, a query_info field (repeatable)")
	fs.IntVar(&f.rateLimit, "rate-limit", 0, "images per hour, 0..1000 (0 = no limit)")
	fs.Int64Var(&f.scanScope, "scan-scope", int64(hss.ScanScopeAll), "scan_scope bit field")
	fs.IntVar(&f.batchSize, "batch-size", 0, "images per API call (0 = scan.batch_size)")
	fs.StringVar(&f.imageType, "global-image-type", "registry", "registry or local")
	fs.StringVar(&f.enterpriseProject, "enterprise-project-id", "", "enterprise project (default: hss.enterprise_project_id)")
	fs.StringVar(&f.region, "region", "", "region header (default: hss.region)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "resolve and count, submit nothing")
	fs.BoolVar(&f.forward, "forward", false, "send the request unexpanded as one API call (HSS fans out)")
	fs.BoolVar(&f.widen, "widen", false, "list a query whose fields no list API can evaluate without those fields (the run covers more images than the query; it says so)")
	fs.BoolVar(&f.expand, "expand", false, "refuse a query that cannot be resolved by listing, instead of forwarding it to HSS unexpanded")
	fs.BoolVar(&f.verify, "verify", false, "after the last batch, follow the submitted images until each shows a scan result (or verify.timeout passes); scan and enqueue --wait wait for it, and exit 1 unless every image was scanned successfully")
	fs.BoolVar(&f.includeUnscan, "include-unscannable", false, "submit listed images HSS reports it cannot scan (skipped as not_scannable otherwise)")
	fs.DurationVar(&f.skipScannedWithin, "skip-scanned-within", 0, "skip images scanned successfully within this `DURATION`")
	fs.StringVar(&f.priority, "priority", "", "queue: critical (default for scan/enqueue), default or bulk")
	if enqueue {
		fs.BoolVar(&f.json, "json", false, "print the run as JSON (the API's run object): as created, or with --wait as it ended")
		fs.BoolVar(&f.wait, "wait", false, "follow the run to its end")
	} else {
		fs.BoolVar(&f.json, "json", false, "print the run as it ended, as JSON (the API's run object)")
	}
	completeScanFlags(cmd)
	return cmd
}

// runScan is scan and enqueue once their flags are parsed.
func runScan(ctx context.Context, name string, cf *configFlags, f *scanFlags, enqueue bool, stdout, stderr io.Writer) error {
	req, opts, err := f.request()
	if err != nil {
		fmt.Fprintf(stderr, "scanq %s: %v\n", name, err)
		return exitError{exitUsage}
	}

	// The process's logs (its worker's, for scan) go through the
	// progress display, so that they never land on the bar's line.
	p := newProgress(stderr, f.json)
	// scan runs its own worker, so it works on an embedded Redis of its
	// own; enqueue hands the run to a fleet, which it must reach.
	var a *app.App
	if enqueue {
		cf.client = true // never calls HSS
		a, err = openClient(ctx, name, cf, p.LogWriter())
	} else {
		a, err = open(cf, p.LogWriter())
	}
	if err != nil {
		return err
	}
	p.RatePeriod = a.Cfg.Scan.RatePeriod
	defer a.Close()
	if !enqueue {
		wctx, stopWorker := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.RunWorker(wctx) }()
		defer func() { stopWorker(); <-done }()
	}
	if opts.Target == jobs.AllTargets {
		return runGroup(ctx, a, p, name, f, req, opts, enqueue, stdout, stderr)
	}
	r, err := a.Starter.Start(ctx, req, opts, jobs.Trigger{Kind: "cli"})
	if err != nil {
		fmt.Fprintf(stderr, "scanq %s: %s\n", name, refusal(err))
		return exitError{exitUsage}
	}
	if enqueue && !f.wait {
		if f.json {
			err = writeJSON(stdout, viewOf(a, r))
		} else {
			_, err = fmt.Fprintln(stdout, r.ID)
		}
		if n, werr := a.Workers(jobs.TaskQueue(r.Queue, r.Target)); werr == nil && n == 0 {
			fmt.Fprintf(stderr, "scanq enqueue: no worker serves queue %s on this Redis yet: run %s waits until one starts (scanq worker)\n", jobs.TaskQueue(r.Queue, r.Target), r.ID)
		}
		return err
	}
	return follow(ctx, a, p, r.ID, f.json, enqueue, stdout, stderr)
}

// runGroup is scan and enqueue with --target all: one run on each target,
// grouped under one id. enqueue without --wait prints the group's id (its
// view with --json); otherwise each run is followed in turn, and the
// group's summary ends it, failing when any run did not submit everything.
func runGroup(ctx context.Context, a *app.App, p *app.Progress, name string, f *scanFlags, req jobs.ScanRequest, opts jobs.Options, enqueue bool, stdout, stderr io.Writer) error {
	id := runs.NewID(time.Now())
	started, err := a.Starter.StartGroup(ctx, id, nil, req, opts, jobs.Trigger{Kind: "cli"})
	if err != nil {
		fmt.Fprintf(stderr, "scanq %s: %s\n", name, refusal(err))
		return exitError{exitUsage}
	}
	failed := false
	if !enqueue || f.wait {
		for _, r := range started {
			fmt.Fprintf(stderr, "run %s on target %s:\n", r.ID, r.Target)
			if err := follow(ctx, a, p, r.ID, false, enqueue, io.Discard, stderr); err != nil {
				if !errors.As(err, new(exitError)) {
					return err
				}
				failed = true
			}
		}
	}
	g, gerr := a.Runs.GroupView(ctx, id, a.Cfg.Scan.RatePeriod)
	if gerr != nil {
		return gerr
	}
	if f.json {
		return writeJSON(stdout, g)
	}
	if enqueue && !f.wait {
		_, err = fmt.Fprintln(stdout, id)
		return err
	}
	printGroup(stdout, g)
	if failed {
		return exitError{exitFailure}
	}
	return nil
}

// refusal is err as the CLI says it: a refusal of the request's target
// names the flag, --target, where the API names its field ("invalid
// parameter target").
func refusal(err error) string {
	if ve, ok := errors.AsType[*hss.ValidationError](err); ok && ve.Field == "target" {
		return "--target: " + ve.Reason
	}
	return err.Error()
}

// newProgress is the progress display of a run followed on stderr: a bar
// on a terminal, lines otherwise, nothing but logs with --json.
func newProgress(stderr io.Writer, asJSON bool) *app.Progress {
	tty := false
	if fd, ok := stderr.(*os.File); ok {
		tty = term.IsTerminal(int(fd.Fd()))
	}
	return &app.Progress{W: stderr, TTY: tty && !asJSON, LineEvery: 5 * time.Second}
}

// noWorkerGrace is how long `enqueue --wait` waits for a worker to show up
// before it stops following: one asynq heartbeat (5s) and a margin, so that
// a worker that has just started is not missed.
const noWorkerGrace = 7 * time.Second

// follow shows a run's progress until it ends (and its verification, when
// it asked for one) and prints the summary; the exit code is 0 only when no
// image failed, and with verification, when every image showed a
// successful scan. With fleet set (enqueue
// --wait) the run is the fleet's: following stops, saying so, when no
// worker serves its queue, as it would otherwise wait forever.
func follow(ctx context.Context, a *app.App, p *app.Progress, id string, asJSON, fleet bool, stdout, stderr io.Writer) error {
	interval := time.Second
	if p.TTY {
		interval = 200 * time.Millisecond
	}
	fctx, stopFollowing := context.WithCancelCause(ctx)
	defer stopFollowing(nil)
	var noWorkerSince time.Time
	workers := 0
	errNoWorker := errors.New("no worker")
	r, err := a.Follow(fctx, id, interval, func(r *jobs.Run) {
		if !asJSON {
			p.Update(r)
		}
		if !fleet || (r.State.Final() && (r.Verification == nil || r.Verification.Ended())) {
			return
		}
		n, err := a.Workers(followedQueue(r))
		if err != nil {
			return // Follow's next read reports a Redis that is gone
		}
		workers = n
		switch {
		case n > 0:
			noWorkerSince = time.Time{}
		case noWorkerSince.IsZero():
			noWorkerSince = time.Now()
		case time.Since(noWorkerSince) >= noWorkerGrace:
			stopFollowing(errNoWorker)
		}
	})
	if err != nil && r != nil && errors.Is(context.Cause(fctx), errNoWorker) {
		p.Break()
		what := string(r.State)
		if r.State.Final() {
			what += ", its verification " + r.Verification.State
		}
		fmt.Fprintf(stderr, "scanq: no worker serves queue %s on this Redis: run %s stays %s until one starts (scanq worker, or scanq serve); then: scanq runs show %s\n",
			followedQueue(r), id, what, id)
		return exitError{exitFailure}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && r != nil {
			p.Break()
			switch {
			case r.State.Final() && r.Verification != nil && !fleet && a.Redis.Mini != nil:
				fmt.Fprintf(stderr, "scanq: stopped the verification of run %s (%s; its %d images were submitted, and HSS scans them): it ends with this process and its embedded Redis\n",
					id, r.State, r.Counters.ImagesSubmitted)
			case r.State.Final() && r.Verification != nil:
				fmt.Fprintf(stderr, "scanq: stopped following the verification of run %s (%s); it goes on where a worker of the fleet runs: scanq runs show %s\n", id, r.State, id)
			case !fleet && a.Redis.Mini != nil:
				fmt.Fprintf(stderr, "scanq: stopped run %s: it ends with this process and its embedded Redis\n", id)
			case !fleet:
				fmt.Fprintf(stderr, "scanq: stopped following run %s; it stays in Redis, where a worker of the fleet, if one runs, carries it on: scanq runs show %s\n", id, id)
			default:
				fmt.Fprintf(stderr, "scanq: stopped following run %s; it goes on (%d worker(s) serve queue %s): scanq runs show %s, scanq runs cancel %s\n",
					id, workers, jobs.TaskQueue(r.Queue, r.Target), id, id)
			}
			return exitError{exitInterrupted}
		}
		return err
	}
	if asJSON {
		if err := writeJSON(stdout, viewOf(a, r)); err != nil {
			return err
		}
	} else {
		p.Break()
		(&app.Progress{W: stdout, RatePeriod: p.RatePeriod}).Summary(r)
	}
	if r.State != jobs.StateSucceeded && r.State != jobs.StateResolved {
		return exitError{exitFailure}
	}
	if v := r.Verification; v != nil && (v.ScanFailed > 0 || v.Unverified > 0 || v.State == jobs.VerifyUnverifiable) {
		// Submitted, but not every image shown scanned: say why the exit
		// code is 1 under a summary that says succeeded.
		fmt.Fprintf(stderr, "scanq: not every image was shown scanned: %d scan failed, %d unverified (exit 1)\n", v.ScanFailed, v.Unverified)
		return exitError{exitFailure}
	}
	return nil
}

// followedQueue is the queue the work of run r that is left goes to: its
// own until it ends, then its target's bulk queue, where its verification's
// rounds go.
func followedQueue(r *jobs.Run) string {
	if r.State.Final() {
		return jobs.TaskQueue(jobs.QueueBulk, r.Target)
	}
	return jobs.TaskQueue(r.Queue, r.Target)
}

// request builds the scan request and options from the flags, with the
// same validation as the API.
func (f *scanFlags) request() (jobs.ScanRequest, jobs.Options, error) {
	var req jobs.ScanRequest
	sel := 0
	if f.all {
		t := true
		req.IsAll = &t
		sel++
	}
	if len(f.images) > 0 {
		sel++
		for _, s := range f.images {
			img, err := parseImageRef(s)
			if err != nil {
				return req, jobs.Options{}, fmt.Errorf("--image %q: %w", s, err)
			}
			req.ImageInfo = append(req.ImageInfo, img)
		}
	}
	if len(f.query) > 0 {
		sel++
		q, err := parseQuery(f.query)
		if err != nil {
			return req, jobs.Options{}, err
		}
		req.QueryInfo = q
	}
	if sel != 1 && !f.forward {
		return req, jobs.Options{}, errors.New("choose exactly one of --all, --image, --query")
	}
	if f.setFlags["rate-limit"] {
		v, err := int32Flag("rate-limit", int64(f.rateLimit))
		if err != nil {
			return req, jobs.Options{}, err
		}
		req.RateLimit = &v
	}
	scope, err := int32Flag("scan-scope", f.scanScope)
	if err != nil {
		return req, jobs.Options{}, err
	}
	req.ScanScope = &scope
	req.GlobalImageType = f.imageType
	req.EnterpriseProjectID = f.enterpriseProject
	req.Region = f.region
	opts := jobs.Options{Target: f.target, BatchSize: f.batchSize, DryRun: f.dryRun, Forward: f.forward,
		SkipScannedWithin: jobs.Duration(f.skipScannedWithin), Priority: f.priority, IncludeUnscannable: f.includeUnscan,
		Widen: f.widen, Expand: f.expand, Verify: f.verify}
	if err := req.Validate(); err != nil {
		return req, opts, err
	}
	if err := opts.Validate(); err != nil {
		return req, opts, err
	}
	_, _, err = jobs.Resolve(&req, opts)
	return req, opts, err
}

func int32Flag(name string, v int64) (int32, error) {
	if v < -1<<31 || v > 1<<31-1 {
		return 0, fmt.Errorf("--%s %d: out of range", name, v)
	}
	return int32(v), nil
}

// parseImageRef reads NS/NAME:TAG or NS/NAME@sha256:...: the namespace is
// everything before the first slash, the tag follows the last colon after
// the last slash.
func parseImageRef(s string) (hss.ImageInfo, error) {
	var img hss.ImageInfo
	ref := s
	if at := strings.Index(ref, "@"); at >= 0 {
		img.ImageDigest = ref[at+1:]
		ref = ref[:at]
		if img.ImageDigest == "" {
			return img, errors.New("empty digest after @")
		}
	}
	ns, rest, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || rest == "" {
		return img, errors.New("want NAMESPACE/NAME:TAG")
	}
	name, tag := rest, ""
	if c := strings.LastIndex(rest, ":"); c >= 0 {
		name, tag = rest[:c], rest[c+1:]
	}
	if name == "" {
		return img, errors.New("empty image name")
	}
	if tag == "" && img.ImageDigest == "" {
		return img, errors.New("want a :TAG or an @DIGEST")
	}
	img.Namespace, img.ImageName, img.ImageVersion = ns, name, tag
	return img, nil
}

// parseQuery turns KEY=VALUE pairs into query_info, typed by the field's
// JSON type, and validates it like the API does.
func parseQuery(pairs []string) (*hss.QueryInfo, error) {
	fields := map[string]reflect.StructField{}
	t := reflect.TypeOf(hss.QueryInfo{})
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		fields[name] = t.Field(i)
	}
	obj := map[string]any{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("--query %q: want KEY=VALUE", p)
		}
		sf, known := fields[k]
		if !known {
			names := make([]string, 0, len(fields))
			for n := range fields {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("--query %q: unknown key %q (known: %s)", p, k, strings.Join(names, ", "))
		}
		switch sf.Type.Elem().Kind() {
		case reflect.Bool:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("--query %s: want true or false, got %q", k, v)
			}
			obj[k] = b
		case reflect.Int64:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("--query %s: want an integer, got %q", k, v)
			}
			obj[k] = n
		default:
			obj[k] = v
		}
	}
	data, err := json.Marshal(map[string]any{"query_info": obj})
	if err != nil {
		return nil, err
	}
	body, err := hss.DecodeScanTaskBody(data)
	if err != nil {
		return nil, fmt.Errorf("--query: %w", err)
	}
	return body.QueryInfo, nil
}
