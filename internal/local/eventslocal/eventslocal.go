// Package eventslocal is a minimal, local stand-in for Amazon EventBridge
// PutEvents, reached through the real aws-sdk-go-v2 eventbridge client
// (BaseEndpoint = the server's URL). It speaks the service's awsJson1_1
// protocol: POST /, X-Amz-Target: AWSEvents.PutEvents, Content-Type
// application/x-amz-json-1.1.
//
// What it does:
//   - validates the request as the PutEvents API reference describes:
//     1..10 entries (else ValidationException); per entry Source,
//     DetailType and Detail are required (else the entry fails with
//     ErrorCode "InvalidArgument"), Detail must be a JSON object (else
//     "MalformedDetail"), a Source starting with "aws." is reserved
//     ("NotAuthorizedForSourceException"), EventBusName is a name or an
//     event-bus ARN matching the API's pattern (else ValidationException),
//     and the total entry size computed as the EventBridge user guide
//     describes (Time 14 bytes, Source, DetailType, Detail, Resources in
//     UTF-8) must stay under 256 KiB (else ValidationException);
//   - answers like the service: FailedEntryCount and one result entry per
//     request entry, in order, with EventId (a UUID) or ErrorCode and
//     ErrorMessage. Valid entries of a request are accepted even when others
//     fail, as the service does;
//   - records every accepted event; Events returns them, WaitFor returns
//     the next matching one not yet returned by WaitFor (waiting for it),
//     Subscribe streams new ones;
//   - optionally restricts the accepted buses (WithEventBuses): an entry
//     for another bus fails with ErrorCode "ResourceNotFoundException"
//     (UNCONFIRMED: the exact code the service uses for a missing bus).
//
// What it does NOT emulate: rules, event patterns, targets and their
// delivery or retries, archives and replay, schemas, endpoints
// (EndpointId is accepted and ignored), cross-account buses, the
// PutEvents quotas and throttling, IAM authorization (it only checks that
// the request is SigV4-signed for the "events" service, never the
// signature), and every other EventBridge operation (they answer
// UnknownOperationException).
package eventslocal

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentflow/consentflow/internal/local/awsjson"
)

const (
	contentType  = "application/x-amz-json-1.1"
	targetPrefix = "AWSEvents"
	signingName  = "events"

	// MaxEntries is the most entries one PutEvents call may carry.
	MaxEntries = 10
	// MaxRequestSize bounds the summed entry size of one call.
	MaxRequestSize = 256 * 1024
	// DefaultBus is the bus an entry without EventBusName goes to.
	DefaultBus = "default"
)

var busPattern = regexp.MustCompile(`^(arn:aws[\w-]*:events:[a-z]+-[a-z]+-[\w-]+:[0-9]{12}:event-bus/)?[/\.\-_A-Za-z0-9]+$`)

// Event is one accepted event.
type Event struct {
	ID           string
	EventBusName string // as sent, or "default"
	Source       string
	DetailType   string
	Detail       json.RawMessage
	Resources    []string
	Time         time.Time // the entry's Time, or the time of the call
	TraceHeader  string
	Received     time.Time
}

// Envelope returns the event as EventBridge delivers it to a rule's target
// (version 0 envelope) for the given account and region.
func (e Event) Envelope(account, region string) json.RawMessage {
	resources := e.Resources
	if resources == nil {
		resources = []string{}
	}
	b, _ := json.Marshal(struct {
		Version    string          `json:"version"`
		ID         string          `json:"id"`
		DetailType string          `json:"detail-type"`
		Source     string          `json:"source"`
		Account    string          `json:"account"`
		Time       string          `json:"time"`
		Region     string          `json:"region"`
		Resources  []string        `json:"resources"`
		Detail     json.RawMessage `json:"detail"`
	}{"0", e.ID, e.DetailType, e.Source, account, e.Time.UTC().Format(time.RFC3339), region, resources, e.Detail})
	return b
}

// Match selects events; an empty field matches anything.
type Match struct {
	DetailType   string
	Source       string
	EventBusName string
}

func (m Match) matches(e Event) bool {
	return (m.DetailType == "" || m.DetailType == e.DetailType) &&
		(m.Source == "" || m.Source == e.Source) &&
		(m.EventBusName == "" || m.EventBusName == e.EventBusName)
}

// Option configures a Server.
type Option func(*Server)

// WithEventBuses restricts the accepted event buses to these names (or
// ARNs); "default" must be listed to accept entries without EventBusName.
func WithEventBuses(names ...string) Option {
	return func(s *Server) {
		s.buses = map[string]bool{}
		for _, n := range names {
			s.buses[n] = true
		}
	}
}

// Server is the stand-in. Create it with New.
type Server struct {
	mu       sync.Mutex
	events   []Event
	taken    []bool // taken[i]: events[i] was returned by WaitFor
	changed  chan struct{}
	subs     map[*Subscription]struct{}
	buses    map[string]bool
	calls    int
	failures int
	faults   []*awsjson.Error
	now      func() time.Time
}

// New returns an empty Server.
func New(opts ...Option) *Server {
	s := &Server{changed: make(chan struct{}), subs: map[*Subscription]struct{}{}, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Handler returns the http.Handler serving the awsJson1_1 API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Events returns every accepted event, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Calls returns how many PutEvents requests arrived and how many entries
// failed in total.
func (s *Server) Calls() (requests, failedEntries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.failures
}

// InjectError makes the next PutEvents call fail as a whole with this error
// (e.g. "ThrottlingException", 400, or "InternalException", 500). Note that
// the SDK retries throttling and 5xx errors unless told not to.
func (s *Server) InjectError(errType string, status int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, awsjson.Errorf(status, errType, "%s", message))
}

// WaitFor returns the oldest accepted event that matches m and that no
// earlier WaitFor returned, waiting until one arrives or ctx ends. Events
// that arrived before the call count, so there is no race between
// triggering an event and waiting for it.
func (s *Server) WaitFor(ctx context.Context, m Match) (Event, error) {
	for {
		s.mu.Lock()
		for i, e := range s.events {
			if !s.taken[i] && m.matches(e) {
				s.taken[i] = true
				s.mu.Unlock()
				return e, nil
			}
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Subscription streams events accepted after Subscribe. C is closed by
// Close. Events are buffered without bound, so a slow reader loses none.
type Subscription struct {
	C      <-chan Event
	s      *Server
	m      Match
	mu     sync.Mutex
	queue  []Event
	wake   chan struct{}
	done   chan struct{}
	closed sync.Once
}

// Subscribe streams the events matching m accepted from now on.
func (s *Server) Subscribe(m Match) *Subscription {
	c := make(chan Event)
	sub := &Subscription{C: c, s: s, m: m, wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	go sub.pump(c)
	return sub
}

func (sub *Subscription) push(e Event) {
	sub.mu.Lock()
	sub.queue = append(sub.queue, e)
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

func (sub *Subscription) pump(c chan<- Event) {
	defer close(c)
	for {
		sub.mu.Lock()
		var next *Event
		if len(sub.queue) > 0 {
			e := sub.queue[0]
			sub.queue = sub.queue[1:]
			next = &e
		}
		sub.mu.Unlock()
		if next == nil {
			select {
			case <-sub.wake:
				continue
			case <-sub.done:
				return
			}
		}
		select {
		case c <- *next:
		case <-sub.done:
			return
		}
	}
}

// Close stops the subscription and closes C.
func (sub *Subscription) Close() {
	sub.closed.Do(func() {
		sub.s.mu.Lock()
		delete(sub.s.subs, sub)
		sub.s.mu.Unlock()
		close(sub.done)
	})
}

type putEventsInput struct {
	EndpointID *string `json:"EndpointId"`
	Entries    []entry `json:"Entries"`
}

type entry struct {
	Source       *string      `json:"Source"`
	DetailType   *string      `json:"DetailType"`
	Detail       *string      `json:"Detail"`
	EventBusName *string      `json:"EventBusName"`
	Resources    []string     `json:"Resources"`
	Time         *json.Number `json:"Time"`
	TraceHeader  *string      `json:"TraceHeader"`
}

type resultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

type putEventsOutput struct {
	FailedEntryCount int           `json:"FailedEntryCount"`
	Entries          []resultEntry `json:"Entries"`
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req, e := awsjson.Decode(r, contentType, targetPrefix, signingName, 4*MaxRequestSize)
	if e != nil {
		awsjson.WriteError(w, contentType, e)
		return
	}
	if req.Operation != "PutEvents" {
		awsjson.WriteError(w, contentType, awsjson.Errorf(http.StatusBadRequest, "UnknownOperationException",
			"operation %s is not emulated by eventslocal", req.Operation))
		return
	}
	out, e := s.putEvents(req.Body)
	if e != nil {
		awsjson.WriteError(w, contentType, e)
		return
	}
	awsjson.WriteJSON(w, contentType, out)
}

func (s *Server) putEvents(body []byte) (*putEventsOutput, *awsjson.Error) {
	s.mu.Lock()
	s.calls++
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		s.mu.Unlock()
		return nil, f
	}
	s.mu.Unlock()

	var in putEventsInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, awsjson.Errorf(http.StatusBadRequest, "SerializationException", "request body is not valid PutEvents JSON")
	}
	if in.Entries == nil {
		return nil, validationError("entries", "Member must not be null")
	}
	if n := len(in.Entries); n < 1 || n > MaxEntries {
		return nil, validationError("entries", "Member must have length between 1 and 10")
	}
	size := 0
	for i, en := range in.Entries {
		if en.EventBusName != nil {
			if n := len(*en.EventBusName); n < 1 || n > 1600 || !busPattern.MatchString(*en.EventBusName) {
				return nil, validationError("entries."+strconv.Itoa(i+1)+".member.eventBusName",
					"Member must satisfy regular expression pattern: (arn:aws[\\w-]*:events:[a-z]+-[a-z]+-[\\w-]+:[0-9]{12}:event-bus\\/)?[/\\.\\-_A-Za-z0-9]+")
			}
		}
		size += entrySize(en)
	}
	if size >= MaxRequestSize {
		return nil, awsjson.Errorf(http.StatusBadRequest, "ValidationException", "Total size of the entries in the request is over the limit.")
	}

	now := s.now()
	out := &putEventsOutput{Entries: make([]resultEntry, len(in.Entries))}
	var accepted []Event
	for i, en := range in.Entries {
		ev, code, msg := s.check(en, now)
		if code != "" {
			out.FailedEntryCount++
			out.Entries[i] = resultEntry{ErrorCode: code, ErrorMessage: msg}
			continue
		}
		ev.ID = awsjson.RequestID()
		out.Entries[i] = resultEntry{EventID: ev.ID}
		accepted = append(accepted, ev)
	}

	s.mu.Lock()
	s.failures += out.FailedEntryCount
	s.events = append(s.events, accepted...)
	s.taken = append(s.taken, make([]bool, len(accepted))...)
	if len(accepted) > 0 {
		close(s.changed)
		s.changed = make(chan struct{})
		for sub := range s.subs {
			for _, ev := range accepted {
				if sub.m.matches(ev) {
					sub.push(ev)
				}
			}
		}
	}
	s.mu.Unlock()
	return out, nil
}

// check validates one entry; a non-empty code is the entry's ErrorCode.
func (s *Server) check(en entry, now time.Time) (Event, string, string) {
	for _, f := range []struct {
		name string
		v    *string
	}{{"Source", en.Source}, {"DetailType", en.DetailType}, {"Detail", en.Detail}} {
		if f.v == nil || strings.TrimSpace(*f.v) == "" {
			return Event{}, "InvalidArgument", "Parameter " + f.name + " is not valid. Reason: " + f.name + " is a required argument."
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(*en.Detail), &obj); err != nil || obj == nil {
		return Event{}, "MalformedDetail", "Detail is malformed."
	}
	if strings.HasPrefix(*en.Source, "aws.") {
		return Event{}, "NotAuthorizedForSourceException", "Not authorized for the source."
	}
	bus := DefaultBus
	if en.EventBusName != nil {
		bus = *en.EventBusName
	}
	if s.buses != nil && !s.buses[bus] {
		return Event{}, "ResourceNotFoundException", "Event bus " + bus + " does not exist."
	}
	t := now
	if en.Time != nil {
		f, err := en.Time.Float64()
		if err != nil {
			return Event{}, "InvalidArgument", "Parameter Time is not valid."
		}
		t = time.UnixMilli(int64(f * 1000)).UTC()
	}
	ev := Event{
		EventBusName: bus,
		Source:       *en.Source,
		DetailType:   *en.DetailType,
		Detail:       json.RawMessage(*en.Detail),
		Resources:    en.Resources,
		Time:         t,
		Received:     now,
	}
	if en.TraceHeader != nil {
		ev.TraceHeader = *en.TraceHeader
	}
	return ev, "", ""
}

// entrySize computes an entry's size as the EventBridge user guide's
// "Calculating PutEvents event entry size" does.
func entrySize(en entry) int {
	n := 0
	if en.Time != nil {
		n += 14
	}
	for _, p := range []*string{en.Source, en.DetailType, en.Detail} {
		if p != nil {
			n += len(*p)
		}
	}
	for _, r := range en.Resources {
		n += len(r)
	}
	return n
}

func validationError(field, constraint string) *awsjson.Error {
	return awsjson.Errorf(http.StatusBadRequest, "ValidationException",
		"1 validation error detected: Value at '%s' failed to satisfy constraint: %s", field, constraint)
}
