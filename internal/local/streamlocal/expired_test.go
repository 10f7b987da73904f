package streamlocal_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"

	"github.com/consentflow/consentflow/internal/local/streamlocal"
)

// A fake DynamoDB + Streams endpoint: one shard with one record; the
// iterator after that record has expired. The poller resumes after the
// last record it delivered instead of re-reading the shard from its oldest
// record. (Found by review.)
func TestExpiredIteratorResumesAfterLastRecord(t *testing.T) {
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	var iterTypes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		target := r.Header.Get("X-Amz-Target")
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		switch {
		case strings.HasSuffix(target, ".DescribeTable"):
			io.WriteString(w, `{"Table":{"TableName":"t","LatestStreamArn":"arn:aws:dynamodb:us-east-1:0:table/t/stream/x"}}`)
		case strings.HasSuffix(target, ".DescribeStream"):
			io.WriteString(w, `{"StreamDescription":{"Shards":[{"ShardId":"shard-1"}]}}`)
		case strings.HasSuffix(target, ".GetShardIterator"):
			var in struct{ ShardIteratorType string }
			json.Unmarshal(body, &in)
			mu.Lock()
			iterTypes = append(iterTypes, in.ShardIteratorType)
			mu.Unlock()
			io.WriteString(w, `{"ShardIterator":"it-`+in.ShardIteratorType+`"}`)
		case strings.HasSuffix(target, ".GetRecords"):
			var in struct{ ShardIterator string }
			json.Unmarshal(body, &in)
			if in.ShardIterator == "it-AFTER_SEQUENCE_NUMBER" {
				// Nothing new after record 1.
				io.WriteString(w, `{"Records":[],"NextShardIterator":"it-AFTER_SEQUENCE_NUMBER"}`)
				return
			}
			if in.ShardIterator == "after-1" {
				w.Header().Set("X-Amzn-ErrorType", "ExpiredIteratorException")
				w.WriteHeader(400)
				io.WriteString(w, `{"__type":"com.amazonaws.dynamodb.v20120810#ExpiredIteratorException","message":"expired"}`)
				return
			}
			io.WriteString(w, `{"Records":[{"eventID":"e1","eventName":"MODIFY","dynamodb":{"SequenceNumber":"1","NewImage":{"kind":{"S":"task"}}}}],"NextShardIterator":"after-1"}`)
		default:
			w.WriteHeader(400)
		}
	}))
	defer srv.Close()
	creds := credentials.NewStaticCredentialsProvider("k", "s", "")
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL)})
	st := dynamodbstreams.New(dynamodbstreams.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL)})
	var seen []string
	p, err := streamlocal.Start(context.Background(), streamlocal.Config{DynamoDB: ddb, Streams: st, Table: "t",
		Handler: func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range ev.Records {
				seen = append(seen, r.Change.SequenceNumber)
			}
			return events.DynamoDBEventResponse{}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	p.Stop()
	srv.CloseClientConnections()
	mu.Lock()
	t.Logf("iterator types requested %v; sequence numbers handed to the handler %v", iterTypes, seen)
	if len(seen) != 1 {
		t.Errorf("record 1 delivered %d times, want once", len(seen))
	}
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	if n := runtime.NumGoroutine(); n > base+2 {
		t.Errorf("goroutines %d after Stop, %d before", n, base)
	}
}
