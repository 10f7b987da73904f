// Package streamlocal stands in for a Lambda event source mapping on a
// DynamoDB stream: it polls DynamoDB Local's stream of a table
// (DescribeStream, GetShardIterator, GetRecords) and hands every batch, as
// the events.DynamoDBEvent Lambda would deliver, to a handler (the resumer
// function's, internal/resume). Batch item failures are retried from the
// first failed record with backoff, a few times, then logged and dropped
// (in AWS they would go to the dead-letter queue).
package streamlocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// Handler is a stream-triggered function's handler.
type Handler func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)

// Config configures a Poller.
type Config struct {
	DynamoDB *dynamodb.Client
	Streams  *dynamodbstreams.Client
	Table    string
	Handler  Handler
	Log      *slog.Logger
	// Interval between polls (default 50 ms); Retries of a failed batch
	// (default 5) with backoff from RetryDelay (default 100 ms).
	Interval   time.Duration
	Retries    int
	RetryDelay time.Duration
	// Timeout bounds one handler call like the function's timeout (default 30 s).
	Timeout time.Duration
}

// Poller polls one table's stream until Stop.
type Poller struct {
	cfg    Config
	arn    string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	dropped int
}

// Start finds the table's stream and starts polling it from its oldest
// record.
func Start(ctx context.Context, cfg Config) (*Poller, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 50 * time.Millisecond
	}
	if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 100 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	out, err := cfg.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(cfg.Table)})
	if err != nil {
		return nil, fmt.Errorf("streamlocal: describe table: %w", err)
	}
	arn := aws.ToString(out.Table.LatestStreamArn)
	if arn == "" {
		return nil, fmt.Errorf("streamlocal: table %s has no stream", cfg.Table)
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &Poller{cfg: cfg, arn: arn, cancel: cancel, done: make(chan struct{})}
	go p.run(pctx)
	return p, nil
}

// Stop ends polling and waits for the poller to finish.
func (p *Poller) Stop() {
	p.cancel()
	<-p.done
}

// Dropped counts records given up after their retries (a DLQ's depth).
func (p *Poller) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

func (p *Poller) run(ctx context.Context) {
	defer close(p.done)
	iters := map[string]*string{} // shard id -> next iterator (nil: closed)
	last := map[string]string{}   // shard id -> last delivered sequence number
	lastDescribe := time.Time{}
	for ctx.Err() == nil {
		if time.Since(lastDescribe) > time.Second || len(iters) == 0 {
			p.discover(ctx, iters, last)
			lastDescribe = time.Now()
		}
		for id, it := range iters {
			if it == nil {
				continue
			}
			out, err := p.cfg.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it})
			if err != nil {
				if ctx.Err() == nil {
					p.cfg.Log.Warn("streamlocal: GetRecords failed", "error", err.Error())
					var expired *types.ExpiredIteratorException
					if errors.As(err, &expired) {
						delete(iters, id)
					}
				}
				continue
			}
			if len(out.Records) > 0 {
				p.deliver(ctx, out.Records)
				last[id] = aws.ToString(out.Records[len(out.Records)-1].Dynamodb.SequenceNumber)
			}
			iters[id] = out.NextShardIterator
		}
		select {
		case <-ctx.Done():
		case <-time.After(p.cfg.Interval):
		}
	}
}

// discover adds the stream's shards not tracked yet: from their oldest
// record, or, for a shard whose iterator expired, after the last record
// delivered from it (so nothing is handed over twice).
func (p *Poller) discover(ctx context.Context, iters map[string]*string, last map[string]string) {
	out, err := p.cfg.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(p.arn)})
	if err != nil {
		if ctx.Err() == nil {
			p.cfg.Log.Warn("streamlocal: DescribeStream failed", "error", err.Error())
		}
		return
	}
	for _, sh := range out.StreamDescription.Shards {
		id := aws.ToString(sh.ShardId)
		if _, known := iters[id]; known {
			continue
		}
		in := &dynamodbstreams.GetShardIteratorInput{
			StreamArn: aws.String(p.arn), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		}
		if seq, ok := last[id]; ok && seq != "" {
			in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
		}
		it, err := p.cfg.Streams.GetShardIterator(ctx, in)
		if err != nil {
			if ctx.Err() == nil {
				p.cfg.Log.Warn("streamlocal: GetShardIterator failed", "error", err.Error())
			}
			continue
		}
		iters[id] = it.ShardIterator
	}
}

// deliver calls the handler with recs, retrying from the first failed
// record as an event source mapping with ReportBatchItemFailures does.
func (p *Poller) deliver(ctx context.Context, recs []types.Record) {
	batch := make([]events.DynamoDBEventRecord, len(recs))
	for i, r := range recs {
		batch[i] = Record(r)
	}
	delay := p.cfg.RetryDelay
	for try := 0; ; try++ {
		hctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		resp, err := p.cfg.Handler(hctx, events.DynamoDBEvent{Records: batch})
		cancel()
		from := len(batch)
		if err != nil {
			from = 0
		} else {
			for _, f := range resp.BatchItemFailures {
				for i, r := range batch {
					if r.Change.SequenceNumber == f.ItemIdentifier && i < from {
						from = i
					}
				}
			}
		}
		if from == len(batch) || ctx.Err() != nil {
			return
		}
		batch = batch[from:]
		if try >= p.cfg.Retries {
			p.mu.Lock()
			p.dropped += len(batch)
			p.mu.Unlock()
			p.cfg.Log.Error("streamlocal: records dropped after their retries (in AWS: the dead-letter queue)", "records", len(batch))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// Record converts a DynamoDB Streams record to the Lambda event's form.
func Record(r types.Record) events.DynamoDBEventRecord {
	out := events.DynamoDBEventRecord{
		EventID:      aws.ToString(r.EventID),
		EventName:    string(r.EventName),
		EventSource:  aws.ToString(r.EventSource),
		EventVersion: aws.ToString(r.EventVersion),
		AWSRegion:    aws.ToString(r.AwsRegion),
	}
	if d := r.Dynamodb; d != nil {
		out.Change = events.DynamoDBStreamRecord{
			Keys:           image(d.Keys),
			NewImage:       image(d.NewImage),
			OldImage:       image(d.OldImage),
			SequenceNumber: aws.ToString(d.SequenceNumber),
			StreamViewType: string(d.StreamViewType),
		}
		if d.SizeBytes != nil {
			out.Change.SizeBytes = *d.SizeBytes
		}
		if d.ApproximateCreationDateTime != nil {
			out.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *d.ApproximateCreationDateTime}
		}
	}
	return out
}

func image(m map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if m == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(m))
	for k, v := range m {
		out[k] = attr(v)
	}
	return out
}

func attr(v types.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *types.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value)
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = attr(e)
		}
		return events.NewListAttribute(l)
	case *types.AttributeValueMemberM:
		m := make(map[string]events.DynamoDBAttributeValue, len(v.Value))
		for k, e := range v.Value {
			m[k] = attr(e)
		}
		return events.NewMapAttribute(m)
	}
	return events.NewNullAttribute()
}
