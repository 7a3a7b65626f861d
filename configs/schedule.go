package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/scheduler"
)

// Schedule is one cron schedule: when to fire and what to scan.
type Schedule struct {
	Name     string `yaml:"name"`
	Cron     string `yaml:"cron"`
	Timezone string `yaml:"timezone"`
	Enabled  bool   `yaml:"enabled"`
	Queue    string `yaml:"queue"`
	Overlap  string `yaml:"overlap"`
	// MisfireGrace is scheduler.misfire_grace unless the schedule sets its
	// own: Load and Default fill it in.
	MisfireGrace time.Duration `yaml:"misfire_grace"`
	// BatchSize 0 leaves the choice to scan.batch_size at run time.
	BatchSize int         `yaml:"batch_size"`
	Request   ScanRequest `yaml:"request"`
}

// Queue names, as in package jobs.
const (
	QueueCritical = jobs.QueueCritical
	QueueDefault  = jobs.QueueDefault
	QueueBulk     = jobs.QueueBulk
)

// Overlap policies.
const (
	OverlapSkip  = "skip"
	OverlapAllow = "allow"
)

// newSchedule is a schedule before its keys are decoded: the defaults of
// the keys a file may leave out.
func newSchedule() Schedule {
	return Schedule{Enabled: true, Queue: QueueBulk, Overlap: OverlapSkip}
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

// CronSchedule parses Cron in its time zone (the CRON_TZ=/TZ= prefix of
// the spec, else Timezone, else UTC) exactly as the scheduler will: one
// parser for validation and for firing.
func (s Schedule) CronSchedule() (cron.Schedule, error) {
	return scheduler.Parse(s.Name, s.Cron, s.Timezone)
}

// Location is the time zone the schedule's cron fields are read in.
func (s Schedule) Location() (*time.Location, error) {
	sched, err := s.CronSchedule()
	if err != nil {
		return nil, err
	}
	if ss, ok := sched.(*cron.SpecSchedule); ok && ss.Location != nil {
		return ss.Location, nil
	}
	if s.Timezone != "" {
		return time.LoadLocation(s.Timezone)
	}
	return time.UTC, nil
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

// scheduleYAML is how a schedule is written out: the request as a YAML
// mapping with its wire names in wire order.
type scheduleYAML struct {
	Name         string        `yaml:"name"`
	Cron         string        `yaml:"cron"`
	Timezone     string        `yaml:"timezone"`
	Enabled      bool          `yaml:"enabled"`
	Queue        string        `yaml:"queue"`
	Overlap      string        `yaml:"overlap"`
	MisfireGrace time.Duration `yaml:"misfire_grace"`
	BatchSize    int           `yaml:"batch_size"`
	Request      *yaml.Node    `yaml:"request"`
}

// MarshalYAML writes the request with its JSON (wire) names; yaml.v3 would
// otherwise lower-case the Go field names of hss.ScanTaskBody.
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
	return scheduleYAML{
		Name: s.Name, Cron: s.Cron, Timezone: s.Timezone, Enabled: s.Enabled,
		Queue: s.Queue, Overlap: s.Overlap, MisfireGrace: s.MisfireGrace,
		BatchSize: s.BatchSize, Request: req,
	}, nil
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
