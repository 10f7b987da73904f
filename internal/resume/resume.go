// Package resume is the resumer function's driving adapter: it reads the
// sessions table's stream (aws-lambda-go's events.DynamoDBEvent) and hands
// every settled session that still owes its waiting task a result to
// flow.Deliverer, which claims the delivery, sends SendTaskSuccess or
// SendTaskFailure from the record's outbox and records ResumedAt.
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

// Handler handles a batch of stream records.
type Handler struct {
	Deliverer Deliverer
	Log       *slog.Logger
	// Margin is kept free before the invocation's deadline so the batch's
	// answer is returned in time (default 2 s).
	Margin time.Duration
}

// Handle delivers the outbox of every session in the batch whose new image
// shows it due (settled, with a task token and an outbox, not resumed), each
// session once however many of its records the batch holds. Deliveries that
// must be tried again are reported as batch item failures (every record of
// that session), so the event source mapping retries them with its backoff;
// records it cannot read are skipped and logged (retrying cannot help).
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	margin := h.Margin
	if margin == 0 {
		margin = 2 * time.Second
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
	var order []string
	dues := map[string]*due{}
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
		mu       sync.Mutex
		wg       sync.WaitGroup
		failures []events.DynamoDBBatchItemFailure
	)
	for _, uri := range order {
		d := dues[uri]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := h.Deliverer.Deliver(ctx, uri)
			if err == nil {
				return
			}
			log.WarnContext(ctx, "outbox not delivered yet; the stream retries it", "correlationId", d.correlationID, "error", err.Error())
			mu.Lock()
			for _, seq := range d.seqs {
				failures = append(failures, events.DynamoDBBatchItemFailure{ItemIdentifier: seq})
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
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
