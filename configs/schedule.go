package configs

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// Schedule is one cron schedule: when to fire and what to scan. It is
// both the `schedules` entry of scanq.yaml and what the scheduler fires:
// Config.Validate and ValidateSchedules hold it to its rules, and the
// scheduler parses Cron with CronSchedule, as validation did.
type Schedule struct {
	// Name is unique among the schedules: letters, digits, '.', '_' and
	// '-', starting with a letter or digit, at most 64 characters. It is
	// part of every run id the schedule makes.
	Name string `yaml:"name"`
	// Cron is the robfig/cron spec: 5 fields, @daily-style descriptors,
	// @every 10m, optionally prefixed by CRON_TZ=Zone.
	Cron string `yaml:"cron"`
	// Timezone is the IANA zone the cron fields are read in; "" = UTC, or
	// the spec's CRON_TZ= prefix (setting both is an error).
	Timezone string `yaml:"timezone"`
	// Enabled false keeps the schedule listed (and triggerable by hand) but
	// never fires it.
	Enabled bool `yaml:"enabled"`
	// Queue its runs go to: critical, default or bulk.
	Queue string `yaml:"queue"`
	// Overlap is OverlapSkip or OverlapAllow.
	Overlap string `yaml:"overlap"`
	// MisfireGrace: a tick missed while no scheduler held the lease is
	// still fired if it is the latest missed one and at most this late.
	// Load and Default fill in scheduler.misfire_grace when a file leaves
	// it 0; WithDefaults fills in DefaultMisfireGrace.
	MisfireGrace time.Duration `yaml:"misfire_grace"`
	// BatchSize of its runs; 0 leaves the choice to scan.batch_size at run
	// time.
	BatchSize int `yaml:"batch_size"`
	// Targets are the targets each tick starts one run on: names from the
	// `targets` list, or AllTargets ("all"). Empty means all. In YAML it is
	// a list, or the single word all.
	Targets []string `yaml:"targets,omitempty"`
	// Verify: whether each run follows its submitted images to their scan
	// results (jobs.Options.Verify); nil (left out) means yes, unless the
	// request is forwarded (Verifies).
	Verify *bool `yaml:"verify,omitempty"`
	// Request is what each run scans.
	Request ScanRequest `yaml:"request"`
}

// Queue names, as in package jobs.
const (
	QueueCritical = jobs.QueueCritical
	QueueDefault  = jobs.QueueDefault
	QueueBulk     = jobs.QueueBulk
)

// Overlap policies: what a tick does while the previous run of its schedule
// has not finished.
const (
	OverlapSkip  = "skip"  // the tick is skipped, logged and counted (default)
	OverlapAllow = "allow" // the tick starts a second run anyway
)

// DefaultMisfireGrace is scheduler.misfire_grace unless configured, and the
// misfire grace of a schedule built in code that sets none.
const DefaultMisfireGrace = time.Hour

// newSchedule is a schedule before its keys are decoded: the defaults of
// the keys a file may leave out.
func newSchedule() Schedule {
	return Schedule{Enabled: true, Queue: QueueBulk, Overlap: OverlapSkip}
}

// WithDefaults returns s with its zero Queue, Overlap and MisfireGrace
// replaced by their defaults (bulk, skip, DefaultMisfireGrace), as the
// scheduler takes a schedule built in code. A file cannot leave them
// empty: a key it leaves out has its default already, and one it sets to
// "" is refused.
func (s Schedule) WithDefaults() Schedule {
	s.Queue = cmp.Or(s.Queue, QueueBulk)
	s.Overlap = cmp.Or(s.Overlap, OverlapSkip)
	s.MisfireGrace = cmp.Or(s.MisfireGrace, DefaultMisfireGrace)
	return s
}

var scheduleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateSchedules checks every schedule and that names are unique, as
// Config.Validate does except for the bound hss.max_batch_size puts on
// batch sizes. It returns all problems at once, joined, each a *FieldError
// naming the schedule and the key: `schedules["nightly"].queue: ...`.
func ValidateSchedules(ss []Schedule) error {
	v := &validator{}
	validateSchedules(v, ss, 0, nil)
	return errors.Join(v.errs...)
}

// validateSchedules adds the problems of ss to v. maxBatchSize bounds the
// schedules' batch sizes; 0 = no bound. targets, when not nil, are the
// target names a schedule may name.
func validateSchedules(v *validator, ss []Schedule, maxBatchSize int, targets map[string]bool) {
	seen := map[string]int{}
	for i, sc := range ss {
		p := entryPath("schedules", i, sc.Name, seen)
		validateName(v, "schedules", p, sc.Name, i, seen)
		// A zone that does not load is reported before the spec: the
		// spec cannot be read without it.
		switch _, _, key, err := sc.parseSpec(); {
		case strings.TrimSpace(sc.Cron) == "":
			v.add(p+".cron", "required")
		case err != nil:
			v.add(p+"."+key, "%v", err)
		}
		switch sc.Queue {
		case QueueCritical, QueueDefault, QueueBulk:
		default:
			v.add(p+".queue", "must be critical, default or bulk, got %q", sc.Queue)
		}
		switch sc.Overlap {
		case OverlapSkip, OverlapAllow:
		default:
			v.add(p+".overlap", "must be skip or allow, got %q", sc.Overlap)
		}
		v.notNegative(p+".misfire_grace", sc.MisfireGrace)
		switch {
		case maxBatchSize > 0 && sc.BatchSize != 0:
			v.between(p+".batch_size", sc.BatchSize, 1, maxBatchSize, "hss.max_batch_size")
		case sc.BatchSize < 0:
			v.add(p+".batch_size", "must be >= 0 (0 = scan.batch_size), got %d", sc.BatchSize)
		}
		validateScheduleTargets(v, p+".targets", sc.Targets, targets)
		bad := validateRequest(&sc.Request)
		for _, b := range bad {
			field, reason, _ := strings.Cut(b, ": ")
			v.add(p+".request."+field, "%s", reason)
		}
		if len(bad) == 0 && sc.Verify != nil && *sc.Verify && forwarded(&sc.Request) {
			v.add(p+".verify", "the request's query cannot be listed, so it is forwarded to HSS unexpanded and scanq cannot follow its images; set verify: false")
		}
	}
}

// validateName checks the name of item i of list (at path p): required,
// of the allowed characters, unique (seen maps the names so far to their
// index). It reports whether the name is well formed.
// entryPath is the path of entry i of list, named name, in an error: by its
// name, unless an earlier entry has it (seen, as validateName keeps it);
// then by its index, so that the error points at this entry's line, not
// the first one's.
func entryPath(list string, i int, name string, seen map[string]int) string {
	if _, dup := seen[name]; dup {
		name = ""
	}
	return listPath(list, i, name)
}

func validateName(v *validator, list, p, name string, i int, seen map[string]int) bool {
	ok := false
	switch {
	case name == "":
		v.add(p+".name", "required")
	case !scheduleName.MatchString(name):
		v.add(p+".name", "use 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	default:
		ok = true
	}
	if j, dup := seen[name]; dup && name != "" {
		v.add(p+".name", "%s[%d] has the same name; names must be unique", list, j)
	} else {
		seen[name] = i
	}
	return ok
}

// validateScheduleTargets checks a schedule's targets: "all" alone, or
// distinct names of configured targets.
func validateScheduleTargets(v *validator, field string, names []string, targets map[string]bool) {
	seen := map[string]bool{}
	for _, n := range names {
		switch {
		case n == AllTargets:
			if len(names) > 1 {
				v.add(field, "%q already means every target: give it alone or list names", AllTargets)
				return
			}
		case seen[n]:
			v.add(field, "%q is listed twice", n)
		case targets != nil && !targets[n]:
			v.add(field, "%q is not a configured target (targets: %s)", n, strings.Join(sortedKeys(targets), ", "))
		}
		seen[n] = true
	}
}

// ScanRequest is the HSS scan request exactly as on the wire: the query
// and header parameters and the JSON body, flattened into one object
// (jobs.ScanRequest, the one type producers and workers share).
//
// It is decoded from YAML through JSON (see decodeRequest) so that its
// keys are the wire names the json tags of hss.ScanTaskBody give, and an
// unknown key is refused as everywhere else.
type ScanRequest = jobs.ScanRequest

// cloneRequest deep-copies a request.
func cloneRequest(r ScanRequest) ScanRequest {
	var c ScanRequest
	b, err := json.Marshal(r)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		// Only plain data is in it; this cannot happen.
		panic("configs: copying a scan request: " + err.Error())
	}
	return c
}

// validateRequest applies the HSS rules (internal/hss, the same rules the
// API and the CLI apply) to a schedule's request, so that a request HSS
// would refuse fails at start-up rather than every night. Problems are
// "field: reason" with the request's JSON field names.
func validateRequest(r *ScanRequest) []string {
	err := r.Validate()
	if err == nil {
		// A query resolved through a list API is held to its limits.
		_, _, err = jobs.Resolve(r, jobs.Options{})
	}
	var ve *hss.ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve):
		return []string{ve.Field + ": " + ve.Reason}
	}
	return []string{err.Error()}
}

// decodeRequest decodes a YAML node into a ScanRequest by way of JSON, so
// that the keys are exactly the wire names and unknown ones are refused.
func decodeRequest(n *yaml.Node, r *ScanRequest) error {
	var raw any
	if err := n.Decode(&raw); err != nil {
		return err
	}
	if raw == nil {
		*r = ScanRequest{}
		return nil
	}
	if _, ok := raw.(map[string]any); !ok {
		return errors.New("want a mapping of request fields")
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("cannot be expressed as JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out ScanRequest
	if err := dec.Decode(&out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			// The embedded struct's Go name is not part of the wire path.
			field := strings.TrimPrefix(te.Field, "ScanTaskBody.")
			return fmt.Errorf("%s: want %s, got %s", field, jsonTypeName(te.Type.String()), te.Value)
		}
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	*r = out
	return nil
}

func jsonTypeName(t string) string {
	switch strings.TrimPrefix(t, "*") {
	case "int32", "int64", "int":
		return "a whole number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	}
	if strings.HasPrefix(t, "[]") {
		return "a list"
	}
	return "a mapping"
}

// MarshalYAML writes the request with its JSON (wire) names, in wire
// order; yaml.v3 would otherwise lower-case the Go field names of
// hss.ScanTaskBody.
func (s Schedule) MarshalYAML() (any, error) {
	b, err := json.Marshal(s.Request)
	if err != nil {
		return nil, fmt.Errorf("encoding the request of schedule %q: %w", s.Name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	req, err := jsonToNode(dec)
	if err != nil {
		return nil, fmt.Errorf("encoding the request of schedule %q: %w", s.Name, err)
	}
	// The other keys as yaml.v3 writes them, from the struct tags; plain
	// has no MarshalYAML, so encoding it does not come back here.
	type plain Schedule
	p := plain(s)
	p.Request = ScanRequest{}
	var n yaml.Node
	if err := n.Encode(p); err != nil {
		return nil, fmt.Errorf("encoding schedule %q: %w", s.Name, err)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "request" {
			n.Content[i+1] = req
		}
	}
	return &n, nil
}

// jsonToNode turns the next JSON value into a YAML node, keeping key order.
func jsonToNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if t == '[' {
			n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := k.(string)
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key})
			}
			v, err := jsonToNode(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, v)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(t), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(t)}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

// forwarded reports whether a valid request goes to HSS unexpanded, so
// that its images are HSS's to choose.
func forwarded(r *ScanRequest) bool {
	src, _, err := jobs.Resolve(r, jobs.Options{})
	return err == nil && src == jobs.SourceForward
}

// Verifies reports whether the schedule's runs are verified: as its verify
// key says, and by default unless its request is forwarded to HSS
// unexpanded (whose images scanq cannot follow).
func (s Schedule) Verifies() bool {
	if s.Verify != nil {
		return *s.Verify
	}
	return !forwarded(&s.Request)
}
