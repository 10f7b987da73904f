// Package resume is the resumer function's driving adapter: it reads the
// sessions table's stream (aws-lambda-go's events.DynamoDBEvent, view type
// NEW_AND_OLD_IMAGES) and
//   - hands every settled session that still owes its waiting task a
//     result to flow.Deliverer, which claims the delivery, sends
//     SendTaskSuccess or SendTaskFailure from the record's outbox and
//     records ResumedAt;
//   - hands the one record that settled each session (old image open, new
//     image terminal: flow.Settles) to flow.Announcer, which publishes
//     AuthorizationCompleted or AuthorizationFailed on the event bus.
//
// The same Handle runs in AWS (a Lambda event source mapping on the
// table's stream) and locally (internal/local/streamlocal polls DynamoDB
// Local's stream and calls it).
package resume

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/state"
)

// Deliverer delivers one session's outbox (flow.Deliverer).
type Deliverer interface {
	Deliver(ctx context.Context, sessionURI string) error
}

// Announcer publishes a settled session's completion event
// (flow.Announcer).
type Announcer interface {
	Announce(ctx context.Context, s *flow.Session, at time.Time) error
}

// Handler handles a batch of stream records.
type Handler struct {
	Deliverer Deliverer
	// Announcer publishes the completion event of each record that
	// settles a session; nil publishes none.
	Announcer Announcer
	Log       *slog.Logger
	// Margin is kept free before the invocation's deadline so the batch's
	// answer is returned in time (default 2 s).
	Margin time.Duration
	// Clock dates a settling record that has no ApproximateCreationDateTime
	// (default time.Now).
	Clock func() time.Time
}

// Handle works through a batch of the table's stream records:
//
//   - it delivers the outbox of every session in the batch whose new image
//     shows it due (settled, with a task token and an outbox, not resumed),
//     each session once however many of its records the batch holds;
//   - it announces every record whose old image is an open session and
//     whose new image a settled one (one per session: settling is one
//     conditional write), at the record's ApproximateCreationDateTime.
//
// Deliveries and announcements that must be tried again are reported as
// batch item failures (every record of that session for a delivery, the
// settling record for an announcement), so the event source mapping retries
// them with its backoff. A retried batch repeats its announcements from the
// first failed record on: completion events are delivered at least once.
// Records it cannot read are skipped and logged (retrying cannot help);
// records of other items (task-token and sign-in records) and removals are
// ignored.
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	margin := h.Margin
	if margin == 0 {
		margin = 2 * time.Second
	}
	clock := h.Clock
	if clock == nil {
		clock = time.Now
	}
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-margin))
		defer cancel()
	}

	type due struct {
		correlationID string
		seqs          []string
	}
	type settle struct {
		session *flow.Session
		at      time.Time
		seq     string
	}
	var (
		order   []string
		dues    = map[string]*due{}
		settles []settle
	)
	for _, r := range ev.Records {
		if r.Change.NewImage == nil {
			continue // REMOVE (TTL): nothing owed any more
		}
		s, err := Session(r.Change.NewImage)
		if err != nil {
			if !errors.Is(err, errNotSession) {
				log.WarnContext(ctx, "unreadable stream record skipped", "eventId", r.EventID, "error", err.Error())
			}
			continue
		}
		if h.Announcer != nil && r.Change.OldImage != nil {
			old, err := Session(r.Change.OldImage)
			switch {
			case err == nil && flow.Settles(old, s):
				at := r.Change.ApproximateCreationDateTime.Time
				if at.IsZero() {
					at = clock()
				}
				settles = append(settles, settle{session: s, at: at, seq: r.Change.SequenceNumber})
			case err != nil:
				log.WarnContext(ctx, "unreadable old image of a stream record; not announced", "eventId", r.EventID, "error", err.Error())
			}
		}
		d := dues[s.SessionURI]
		if !s.DeliveryDue() {
			if d != nil {
				// A later record of the batch shows it delivered: its
				// earlier ones need nothing either.
				d.seqs = append(d.seqs, r.Change.SequenceNumber)
			}
			continue
		}
		if d == nil {
			d = &due{correlationID: s.CorrelationID}
			dues[s.SessionURI] = d
			order = append(order, s.SessionURI)
		}
		d.seqs = append(d.seqs, r.Change.SequenceNumber)
	}

	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		failed = map[string]bool{}
	)
	fail := func(seqs ...string) {
		mu.Lock()
		defer mu.Unlock()
		for _, seq := range seqs {
			failed[seq] = true
		}
	}
	for _, uri := range order {
		d := dues[uri]
		wg.Go(func() {
			err := h.Deliverer.Deliver(ctx, uri)
			if err == nil {
				return
			}
			log.WarnContext(ctx, "outbox not delivered yet; the stream retries it", "correlationId", d.correlationID, "error", err.Error())
			fail(d.seqs...)
		})
	}
	for _, st := range settles {
		wg.Go(func() {
			// The announcer logs its own failure.
			if err := h.Announcer.Announce(ctx, st.session, st.at); err != nil {
				fail(st.seq)
			}
		})
	}
	wg.Wait()
	var failures []events.DynamoDBBatchItemFailure
	for _, r := range ev.Records {
		if seq := r.Change.SequenceNumber; failed[seq] {
			failures = append(failures, events.DynamoDBBatchItemFailure{ItemIdentifier: seq})
			delete(failed, seq)
		}
	}
	return events.DynamoDBEventResponse{BatchItemFailures: failures}, nil
}

var errNotSession = errors.New("not a session item")

// Session decodes a stream image of a session item (as stored, no expiry
// view). Items of another kind (task-token records) give errNotSession.
func Session(img map[string]events.DynamoDBAttributeValue) (*flow.Session, error) {
	av := make(map[string]types.AttributeValue, len(img))
	for k, v := range img {
		av[k] = attr(v)
	}
	if k, ok := av["kind"].(*types.AttributeValueMemberS); !ok || k.Value != "session" {
		return nil, errNotSession
	}
	return state.DecodeSession(av)
}

// attr converts a stream attribute value to the SDK's.
func attr(v events.DynamoDBAttributeValue) types.AttributeValue {
	switch v.DataType() {
	case events.DataTypeString:
		return &types.AttributeValueMemberS{Value: v.String()}
	case events.DataTypeNumber:
		return &types.AttributeValueMemberN{Value: v.Number()}
	case events.DataTypeBoolean:
		return &types.AttributeValueMemberBOOL{Value: v.Boolean()}
	case events.DataTypeBinary:
		return &types.AttributeValueMemberB{Value: v.Binary()}
	case events.DataTypeStringSet:
		return &types.AttributeValueMemberSS{Value: v.StringSet()}
	case events.DataTypeNumberSet:
		return &types.AttributeValueMemberNS{Value: v.NumberSet()}
	case events.DataTypeBinarySet:
		return &types.AttributeValueMemberBS{Value: v.BinarySet()}
	case events.DataTypeList:
		l := v.List()
		out := make([]types.AttributeValue, len(l))
		for i, e := range l {
			out[i] = attr(e)
		}
		return &types.AttributeValueMemberL{Value: out}
	case events.DataTypeMap:
		m := v.Map()
		out := make(map[string]types.AttributeValue, len(m))
		for k, e := range m {
			out[k] = attr(e)
		}
		return &types.AttributeValueMemberM{Value: out}
	}
	return &types.AttributeValueMemberNULL{Value: true}
}
