package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/consentflow/consentflow/internal/connectauth"
	"github.com/consentflow/consentflow/internal/contract"
)

// ConnectKeyPrefix + connectauth.Key(state) is the key of an Amazon
// Connect redirect's item (connectauth.Store):
//
//	pk S "connect#" + hex SHA-256(state), kind S "connect",
//	status S (connectauth.Status), claimedAt N, finishedAt N (epoch ms),
//	ttl N (the last claim + connectauth.Retention)
//
// The state itself is never stored. The item is written with UpdateItem
// only (which creates it), so the callback role needs no PutItem or
// DeleteItem: a released claim is marked released, not deleted. Its kind
// is not "session", so the resumer's stream decoding skips it.
const ConnectKeyPrefix = "connect#"

// kindConnect is the kind of Connect redirect items.
const kindConnect = "connect"

// connectItem is a Connect redirect item as stored.
type connectItem struct {
	PK         string `dynamodbav:"pk"`
	Kind       string `dynamodbav:"kind"`
	Status     string `dynamodbav:"status"`
	ClaimedAt  int64  `dynamodbav:"claimedAt"`
	FinishedAt int64  `dynamodbav:"finishedAt,omitempty"`
	TTL        int64  `dynamodbav:"ttl"`
}

const (
	aKind       = "kind"
	aFinishedAt = "finishedAt"
)

func decodeConnect(av map[string]types.AttributeValue) (*connectauth.Record, error) {
	var it connectItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return nil, fmt.Errorf("state: decode connect redirect item: %w", err)
	}
	if it.Kind != kindConnect {
		return nil, errors.New("state: decode connect redirect item: not a connect redirect item")
	}
	return &connectauth.Record{
		Status: connectauth.Status(it.Status), ClaimedAt: fromMillis(it.ClaimedAt), FinishedAt: fromMillis(it.FinishedAt),
	}, nil
}

// ClaimRedirect implements connectauth.Store: status pending, claimedAt =
// now, ttl = now + connectauth.Retention, if the key has no item, a
// released one, or a pending one claimed before now - connectauth.ClaimLease
// (milliseconds, as the domain's rule), in one conditional UpdateItem.
func (st *Store) ClaimRedirect(ctx context.Context, k string, now time.Time) (*connectauth.Record, error) {
	if k == "" {
		return nil, errors.New("state: claim connect redirect: empty key")
	}
	now = now.Truncate(time.Millisecond)
	e := newExprs()
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s REMOVE %s",
		e.n(aKind), e.s("kind", kindConnect), e.n(aStatus), e.s("pending", string(connectauth.StatusPending)),
		e.n(aClaimedAt), e.i("now", now.UnixMilli()),
		e.n(contract.AttrTTL), e.i("ttl", now.Add(connectauth.Retention).Unix()+1), e.n(aFinishedAt))
	cond := fmt.Sprintf("attribute_not_exists(#pk) OR %s = %s OR (%s = :pending AND %s < %s)",
		e.n(aStatus), e.s("released", string(connectauth.StatusReleased)),
		e.n(aStatus), e.n(aClaimedAt), e.i("cutoff", now.Add(-connectauth.ClaimLease).UnixMilli()))
	cctx, cancel := st.call(ctx)
	defer cancel()
	out, err := st.client.UpdateItem(cctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(st.table),
		Key:                                 key(ConnectKeyPrefix + k),
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            e.names,
		ExpressionAttributeValues:           e.values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if len(ccf.Item) == 0 {
			return nil, errors.New("state: claim connect redirect: condition failed without the current item")
		}
		cur, err := decodeConnect(ccf.Item)
		if err != nil {
			return nil, err
		}
		return cur, connectauth.ErrClaimed
	}
	if err != nil {
		return nil, fmt.Errorf("state: claim connect redirect: %w", err)
	}
	return decodeConnect(out.Attributes)
}

// FinishRedirect implements connectauth.Store: status and finishedAt = now
// on the claim made at claimedAt, if it is still pending.
func (st *Store) FinishRedirect(ctx context.Context, k string, claimedAt time.Time, status connectauth.Status, now time.Time) error {
	if !status.Final() {
		return fmt.Errorf("state: finish connect redirect: %q is not a final status", status)
	}
	e := newExprs()
	update := fmt.Sprintf("SET %s = %s, %s = %s", e.n(aStatus), e.s("status", string(status)), e.n(aFinishedAt), e.i("now", now.UnixMilli()))
	return st.updateRedirect(ctx, "finish", k, e, update, claimedAt)
}

// ReleaseRedirect implements connectauth.Store: status released on the
// claim made at claimedAt, if it is still pending.
func (st *Store) ReleaseRedirect(ctx context.Context, k string, claimedAt time.Time) error {
	e := newExprs()
	update := fmt.Sprintf("SET %s = %s", e.n(aStatus), e.s("released", string(connectauth.StatusReleased)))
	return st.updateRedirect(ctx, "release", k, e, update, claimedAt)
}

// updateRedirect applies update to the pending claim made at claimedAt.
func (st *Store) updateRedirect(ctx context.Context, op, k string, e *exprs, update string, claimedAt time.Time) error {
	cond := fmt.Sprintf("attribute_exists(#pk) AND %s = %s AND %s = %s",
		e.n(aStatus), e.s("pending", string(connectauth.StatusPending)), e.n(aClaimedAt), e.i("claimedAt", claimedAt.UnixMilli()))
	cctx, cancel := st.call(ctx)
	defer cancel()
	_, err := st.client.UpdateItem(cctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(st.table),
		Key:                       key(ConnectKeyPrefix + k),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return connectauth.ErrClaimed
	}
	if err != nil {
		return fmt.Errorf("state: %s connect redirect: %w", op, err)
	}
	return nil
}

var _ connectauth.Store = (*Store)(nil)
