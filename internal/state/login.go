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

	"github.com/consentflow/consentflow/internal/flow"
)

// LoginKeyPrefix + flow.Login.Key is a login item's key.
const LoginKeyPrefix = "login#"

// kindLogin is the kind of login items.
const kindLogin = "login"

// loginRetention is how long after its expiry TTL may delete a login item
// (it is useless by then; the hour only keeps replays answerable as such).
const loginRetention = time.Hour

// loginItem is a login item as stored (flow.LoginStore).
type loginItem struct {
	PK           string `dynamodbav:"pk"`
	Kind         string `dynamodbav:"kind"`
	SessionURI   string `dynamodbav:"sessionUri"`
	External     bool   `dynamodbav:"external,omitempty"`
	CodeVerified bool   `dynamodbav:"codeVerified,omitempty"`
	Round        int    `dynamodbav:"round"`
	CreatedAt    int64  `dynamodbav:"createdAt"`
	ExpiresAt    int64  `dynamodbav:"expiresAt"`
	UsedAt       int64  `dynamodbav:"usedAt,omitempty"`
	FollowedAt   int64  `dynamodbav:"followedAt,omitempty"`
	TTL          int64  `dynamodbav:"ttl"`
}

func (it *loginItem) login() *flow.Login {
	return &flow.Login{
		Key: it.PK[len(LoginKeyPrefix):], SessionURI: it.SessionURI, External: it.External,
		CodeVerified: it.CodeVerified, Round: it.Round, CreatedAt: fromMillis(it.CreatedAt),
		ExpiresAt: fromMillis(it.ExpiresAt), UsedAt: fromMillis(it.UsedAt), FollowedAt: fromMillis(it.FollowedAt),
	}
}

func decodeLogin(av map[string]types.AttributeValue) (*flow.Login, error) {
	var it loginItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return nil, fmt.Errorf("state: decode login item: %w", err)
	}
	if it.Kind != kindLogin || len(it.PK) <= len(LoginKeyPrefix) {
		return nil, errors.New("state: decode login item: not a login item")
	}
	return it.login(), nil
}

// CreateLogin implements flow.LoginStore.
func (st *Store) CreateLogin(ctx context.Context, l *flow.Login) error {
	if l == nil || l.Key == "" || l.SessionURI == "" || l.ExpiresAt.IsZero() {
		return errors.New("state: create login: key, sessionUri and expiry are required")
	}
	av, err := attributevalue.MarshalMap(loginItem{
		PK: LoginKeyPrefix + l.Key, Kind: kindLogin, SessionURI: l.SessionURI, External: l.External,
		CodeVerified: l.CodeVerified, Round: l.Round, CreatedAt: millis(l.CreatedAt), ExpiresAt: millis(l.ExpiresAt),
		TTL: l.ExpiresAt.Add(loginRetention).Unix() + 1,
	})
	if err != nil {
		return fmt.Errorf("state: create login: encode: %w", err)
	}
	e := newExprs()
	cctx, cancel := st.call(ctx)
	defer cancel()
	_, err = st.client.PutItem(cctx, &dynamodb.PutItemInput{
		TableName:                aws.String(st.table),
		Item:                     av,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: e.names,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return flow.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("state: create login: %w", err)
	}
	return nil
}

// UseLogin implements flow.LoginStore: usedAt = now if it is not set and
// the login has not expired at now, in one conditional write.
func (st *Store) UseLogin(ctx context.Context, key string, now time.Time) (*flow.Login, error) {
	e := newExprs()
	cond := fmt.Sprintf("attribute_not_exists(%s) AND %s > %s", e.n("usedAt"), e.n("expiresAt"), e.i("now", now.UnixMilli()))
	return st.updateLogin(ctx, key, e, fmt.Sprintf("SET %s = %s", e.n("usedAt"), e.i("now", now.UnixMilli())), cond)
}

// FollowLogin implements flow.LoginStore: followedAt = now if the login was
// used, not followed, and has not expired at now.
func (st *Store) FollowLogin(ctx context.Context, key string, now time.Time) (*flow.Login, error) {
	e := newExprs()
	cond := fmt.Sprintf("attribute_exists(%s) AND attribute_not_exists(%s) AND %s > %s",
		e.n("usedAt"), e.n("followedAt"), e.n("expiresAt"), e.i("now", now.UnixMilli()))
	return st.updateLogin(ctx, key, e, fmt.Sprintf("SET %s = %s", e.n("followedAt"), e.i("now", now.UnixMilli())), cond)
}

func (st *Store) updateLogin(ctx context.Context, k string, e *exprs, update, cond string) (*flow.Login, error) {
	if k == "" {
		return nil, flow.ErrNotFound
	}
	cctx, cancel := st.call(ctx)
	defer cancel()
	out, err := st.client.UpdateItem(cctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(st.table),
		Key:                                 key(LoginKeyPrefix + k),
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 aws.String("attribute_exists(#pk) AND " + cond),
		ExpressionAttributeNames:            e.names,
		ExpressionAttributeValues:           e.values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if len(ccf.Item) == 0 {
			return nil, flow.ErrNotFound
		}
		cur, derr := decodeLogin(ccf.Item)
		if derr != nil {
			return nil, derr
		}
		return cur, flow.ErrConflict
	}
	if err != nil {
		return nil, fmt.Errorf("state: update login: %w", err)
	}
	return decodeLogin(out.Attributes)
}

var _ flow.LoginStore = (*Store)(nil)
