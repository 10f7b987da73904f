// Package state is the DynamoDB implementation of flow.SessionStore.
//
// # Table
//
// One table, partition key contract.AttrPK ("pk", S), no sort key, on-demand, TTL on
// contract.AttrTTL ("ttl", epoch seconds). The CDK stack creates it with the same
// names; CreateTableInput/EnsureTable create it for tests and the local demo.
//
// # Items
//
// Session item, pk = "session#" + sessionUri:
//
//	pk              S  session#<sessionUri>
//	kind            S  "session"
//	sessionUri      S
//	correlationId   S  (omitted when empty, as are all optional strings)
//	context         S  the caller's context object (compact JSON, at most 8 KiB)
//	executionArn    S  the Step Functions execution waiting for the session (at most 256 bytes)
//	stateHash       S  flow.Hash(customState)
//	userId          S  or
//	userTokenHash   S  flow.Hash(userToken)
//	provider        S
//	scopes          L  of S (order kept)
//	taskToken       S  Step Functions task token (the flow must replay it)
//	authorizationUrl S
//	binding         S  "code" | "oidc" | "oidc+code" | "none"
//	external        BOOL true for a session started elsewhere (absent otherwise)
//	codeHash        S  flow.Hash(verification code)
//	status          S  PENDING | COMPLETING | COMPLETED | FAILED | EXPIRED (as stored)
//	attempts        N  wrong-code attempts (always present)
//	failureReason   S
//	createdAt       N  epoch milliseconds
//	expiresAt       N  epoch milliseconds
//	claimedAt       N  epoch milliseconds (absent until claimed)
//	notifiedAt      N  epoch milliseconds (absent until notified)
//	resumeOutput    S  the outbox: SendTaskSuccess output (flow.Result JSON) of a COMPLETED session
//	resumeError     S  the outbox: SendTaskFailure error name of a FAILED/EXPIRED session
//	resumeCause     S  the outbox: SendTaskFailure cause
//	deliveryClaimedAt N epoch milliseconds: a sender's delivery claim (lease flow.DeliveryLease)
//	resumedAt       N  epoch milliseconds (absent until the outbox is delivered)
//	ttl             N  epoch seconds = expiresAt + retention (default 24h)
//
// Task-token item, pk = "task#" + hex SHA-256(taskToken) (the token itself
// never appears in a key):
//
//	pk S, kind S "task", sessionUri S, ttl N (same as its session's)
//
// Login item (sign-in binding; see login.go), pk = "login#" + flow.Hash(login
// secret):
//
//	pk S, kind S "login", sessionUri S, external BOOL, codeVerified BOOL,
//	round N, createdAt N, expiresAt N, usedAt N, followedAt N (epoch ms),
//	ttl N (expiresAt + 1 hour)
//
// Amazon Connect redirect item (connectauth.Store; see connect.go), pk =
// "connect#" + hex SHA-256(state):
//
//	pk S, kind S "connect", status S, claimedAt N, finishedAt N (epoch ms),
//	ttl N (last claim + 24 hours)
//
// Times are stored with millisecond precision: the records this store
// returns carry UTC times truncated to the millisecond.
//
// # Consistency
//
// Reads are strongly consistent. Every state change is a single conditional
// write (Create of a session with a task token is one TransactWriteItems);
// a failed condition returns the current record (ReturnValuesOnConditionCheckFailure
// = ALL_OLD) with flow.ErrConflict, or flow.ErrNotFound when there is none.
//
// Expiry is enforced on every record the store returns, using the store's
// clock: a record stored as PENDING or COMPLETING whose ExpiresAt has passed
// is returned with Status EXPIRED (flow.Session.StatusAt; DynamoDB TTL
// deletes lazily, a day later). The rules themselves (legal transitions,
// expiry, claims, the attempt limit) are the domain's (package flow); the
// conditional writes here are built to decide exactly as they do, and the
// conformance suite internal/testenv/storetest checks that they agree.
package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// Schema names shared with the CDK stack.
const (
	// SessionKeyPrefix + sessionUri is a session item's key.
	SessionKeyPrefix = "session#"
	// TaskKeyPrefix + hex SHA-256(taskToken) is a task-token item's key.
	TaskKeyPrefix = "task#"
)

// DefaultRetention is how long after ExpiresAt DynamoDB TTL may delete a
// session: a replayed link still finds a completed session for a day.
const DefaultRetention = 24 * time.Hour

// Item kinds (attribute "kind").
const (
	kindSession = "session"
	kindTask    = "task"
)

// SessionKey is the pk of the session item for sessionURI.
func SessionKey(sessionURI string) string { return SessionKeyPrefix + sessionURI }

// TaskKey is the pk of the task-token item for taskToken.
func TaskKey(taskToken string) string {
	sum := sha256.Sum256([]byte(taskToken))
	return TaskKeyPrefix + hex.EncodeToString(sum[:])
}

// Store is a flow.SessionStore on one DynamoDB table. It is safe for
// concurrent use.
type Store struct {
	client      *dynamodb.Client
	table       string
	clock       flow.Clock
	retention   time.Duration
	callTimeout time.Duration
}

var _ flow.SessionStore = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// DefaultCallTimeout bounds each DynamoDB call, the SDK's retries included,
// so that a hanging table costs a request at most this long: the callback
// answers its clean "temporary problem" page well inside the function's
// timeout.
const DefaultCallTimeout = 2 * time.Second

// WithCallTimeout replaces DefaultCallTimeout (0: only the caller's context
// bounds the calls).
func WithCallTimeout(d time.Duration) Option {
	return func(s *Store) { s.callTimeout = d }
}

// call bounds one DynamoDB call by the store's call timeout.
func (st *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if st.callTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, st.callTimeout)
}

// WithClock sets the clock used for expiry on reads, CreatedAt defaults and
// the times RecordFailedAttempt and Transition record (default time.Now).
func WithClock(c flow.Clock) Option {
	return func(s *Store) {
		if c != nil {
			s.clock = c
		}
	}
}

// WithRetention sets how long after ExpiresAt items stay (ttl attribute).
// Default DefaultRetention; negative values are treated as zero.
func WithRetention(d time.Duration) Option {
	return func(s *Store) { s.retention = max(d, 0) }
}

// New returns a store on table.
func New(client *dynamodb.Client, table string, opts ...Option) *Store {
	s := &Store{client: client, table: table, clock: time.Now, retention: DefaultRetention, callTimeout: DefaultCallTimeout}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Table is the table name the store uses.
func (st *Store) Table() string { return st.table }

// item is a session item as stored.
type item struct {
	PK               string   `dynamodbav:"pk"`
	Kind             string   `dynamodbav:"kind"`
	SessionURI       string   `dynamodbav:"sessionUri"`
	CorrelationID    string   `dynamodbav:"correlationId,omitempty"`
	Context          string   `dynamodbav:"context,omitempty"`
	ExecutionARN     string   `dynamodbav:"executionArn,omitempty"`
	ReturnTo         string   `dynamodbav:"returnTo,omitempty"`
	ContinueAgent    string   `dynamodbav:"continueAgent,omitempty"`
	StateHash        string   `dynamodbav:"stateHash,omitempty"`
	UserID           string   `dynamodbav:"userId,omitempty"`
	UserTokenHash    string   `dynamodbav:"userTokenHash,omitempty"`
	Provider         string   `dynamodbav:"provider,omitempty"`
	Scopes           []string `dynamodbav:"scopes,omitempty"`
	TaskToken        string   `dynamodbav:"taskToken,omitempty"`
	AuthorizationURL string   `dynamodbav:"authorizationUrl,omitempty"`
	Binding          string   `dynamodbav:"binding,omitempty"`
	External         bool     `dynamodbav:"external,omitempty"`
	CodeHash         string   `dynamodbav:"codeHash,omitempty"`
	Status           string   `dynamodbav:"status"`
	Attempts         int      `dynamodbav:"attempts"`
	WrongCodes       int      `dynamodbav:"wrongCodes"`
	ReservedAt       int64    `dynamodbav:"reservedAt,omitempty"`
	FailureReason    string   `dynamodbav:"failureReason,omitempty"`
	CreatedAt        int64    `dynamodbav:"createdAt"`
	ExpiresAt        int64    `dynamodbav:"expiresAt"`
	ClaimedAt        int64    `dynamodbav:"claimedAt,omitempty"`
	NotifiedAt       int64    `dynamodbav:"notifiedAt,omitempty"`
	ResumeOutput     string   `dynamodbav:"resumeOutput,omitempty"`
	ResumeError      string   `dynamodbav:"resumeError,omitempty"`
	ResumeCause      string   `dynamodbav:"resumeCause,omitempty"`
	DeliveryClaimed  int64    `dynamodbav:"deliveryClaimedAt,omitempty"`
	ResumedAt        int64    `dynamodbav:"resumedAt,omitempty"`
	TTL              int64    `dynamodbav:"ttl"`
}

// taskItem maps a task token (hashed, in the key) to its session.
type taskItem struct {
	PK         string `dynamodbav:"pk"`
	Kind       string `dynamodbav:"kind"`
	SessionURI string `dynamodbav:"sessionUri"`
	TTL        int64  `dynamodbav:"ttl"`
}

// Attribute names used in expressions.
const (
	aStatus        = "status"
	aAttempts      = "attempts"
	aWrongCodes    = "wrongCodes"
	aReservedAt    = "reservedAt"
	aFailureReason = "failureReason"
	aExpiresAt     = "expiresAt"
	aClaimedAt     = "claimedAt"
	aNotifiedAt    = "notifiedAt"
	aCodeHash      = "codeHash"
	aTaskToken     = "taskToken"
	aResumeOutput  = "resumeOutput"
	aResumeError   = "resumeError"
	aResumeCause   = "resumeCause"
	aDeliveryClaim = "deliveryClaimedAt"
	aResumedAt     = "resumedAt"
)

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// ttlFor is the epoch second at which TTL may delete a session expiring at
// expiresAt (rounded up).
func (st *Store) ttlFor(expiresAt time.Time) int64 {
	t := expiresAt.Add(st.retention)
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

func (st *Store) toItem(s *flow.Session) item {
	return item{
		PK:               SessionKey(s.SessionURI),
		Kind:             kindSession,
		SessionURI:       s.SessionURI,
		CorrelationID:    s.CorrelationID,
		Context:          s.Context,
		ExecutionARN:     s.ExecutionARN,
		ReturnTo:         s.ReturnTo,
		ContinueAgent:    s.ContinueAgent,
		StateHash:        s.StateHash,
		UserID:           s.UserID,
		UserTokenHash:    s.UserTokenHash,
		Provider:         s.Provider,
		Scopes:           s.Scopes,
		TaskToken:        s.TaskToken,
		AuthorizationURL: s.AuthorizationURL,
		Binding:          string(s.Binding),
		External:         s.External,
		CodeHash:         s.CodeHash,
		Status:           string(s.Status),
		Attempts:         s.Attempts,
		WrongCodes:       s.WrongCodes,
		ReservedAt:       millis(s.ReservedAt),
		FailureReason:    s.FailureReason,
		CreatedAt:        millis(s.CreatedAt),
		ExpiresAt:        millis(s.ExpiresAt),
		ClaimedAt:        millis(s.ClaimedAt),
		NotifiedAt:       millis(s.NotifiedAt),
		ResumeOutput:     s.Outbox.Output,
		ResumeError:      s.Outbox.Error,
		ResumeCause:      s.Outbox.Cause,
		DeliveryClaimed:  millis(s.DeliveryClaimedAt),
		ResumedAt:        millis(s.ResumedAt),
		TTL:              st.ttlFor(s.ExpiresAt),
	}
}

func (it *item) session() *flow.Session {
	return &flow.Session{
		SessionURI:        it.SessionURI,
		CorrelationID:     it.CorrelationID,
		Context:           it.Context,
		ExecutionARN:      it.ExecutionARN,
		ReturnTo:          it.ReturnTo,
		ContinueAgent:     it.ContinueAgent,
		StateHash:         it.StateHash,
		UserID:            it.UserID,
		UserTokenHash:     it.UserTokenHash,
		Provider:          it.Provider,
		Scopes:            it.Scopes,
		TaskToken:         it.TaskToken,
		AuthorizationURL:  it.AuthorizationURL,
		Binding:           flow.BindingMode(it.Binding),
		External:          it.External,
		CodeHash:          it.CodeHash,
		Status:            flow.Status(it.Status),
		Attempts:          it.Attempts,
		WrongCodes:        it.WrongCodes,
		ReservedAt:        fromMillis(it.ReservedAt),
		FailureReason:     it.FailureReason,
		CreatedAt:         fromMillis(it.CreatedAt),
		ExpiresAt:         fromMillis(it.ExpiresAt),
		ClaimedAt:         fromMillis(it.ClaimedAt),
		NotifiedAt:        fromMillis(it.NotifiedAt),
		Outbox:            flow.Outbox{Output: it.ResumeOutput, Error: it.ResumeError, Cause: it.ResumeCause},
		DeliveryClaimedAt: fromMillis(it.DeliveryClaimed),
		ResumedAt:         fromMillis(it.ResumedAt),
	}
}

// decode turns a stored session item into the record as stored (no expiry
// view applied).
func decode(av map[string]types.AttributeValue) (*flow.Session, error) {
	var it item
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return nil, fmt.Errorf("state: decode session item: %w", err)
	}
	if it.Kind != kindSession || it.SessionURI == "" {
		return nil, errors.New("state: decode session item: not a session item")
	}
	return it.session(), nil
}

// DecodeSession turns a session item (from GetItem, or a stream record's
// image converted to SDK attribute values) into the record as stored, with
// no expiry view applied. Items of another kind are an error.
func DecodeSession(av map[string]types.AttributeValue) (*flow.Session, error) { return decode(av) }

// view shows a record as seen at the store's clock (flow.Session.StatusAt).
func (st *Store) view(s *flow.Session) *flow.Session {
	if s != nil {
		s.Status = s.StatusAt(st.clock())
	}
	return s
}

// Create implements flow.SessionStore. s.Status must be empty or PENDING
// (stored as PENDING); zero CreatedAt defaults to the store's clock and zero
// ExpiresAt to CreatedAt + contract.SessionValidity. It returns the record as
// stored. A second session with the same sessionUri gets (current,
// flow.ErrConflict); a second session for the same task token gets
// (first session, flow.ErrTaskExists) and nothing is written.
func (st *Store) Create(ctx context.Context, s *flow.Session) (*flow.Session, error) {
	if s == nil || s.SessionURI == "" {
		return nil, errors.New("state: create: empty sessionUri")
	}
	rec := *s
	switch rec.Status {
	case "":
		rec.Status = flow.StatusPending
	case flow.StatusPending:
	default:
		return nil, fmt.Errorf("state: create: status must be %s, not %s", flow.StatusPending, rec.Status)
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = st.clock()
	}
	if rec.ExpiresAt.IsZero() {
		rec.ExpiresAt = rec.CreatedAt.Add(contract.SessionValidity)
	}
	it := st.toItem(&rec)
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("state: create: encode: %w", err)
	}
	stored := it.session()

	notExists := "attribute_not_exists(#pk)"
	pkName := map[string]string{"#pk": contract.AttrPK}

	if rec.TaskToken == "" {
		cctx, cancel := st.call(ctx)
		_, err := st.client.PutItem(cctx, &dynamodb.PutItemInput{
			TableName:                           aws.String(st.table),
			Item:                                av,
			ConditionExpression:                 aws.String(notExists),
			ExpressionAttributeNames:            pkName,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		cancel()
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return st.conflictFrom(ctx, rec.SessionURI, ccf.Item)
		}
		if err != nil {
			return nil, fmt.Errorf("state: create: %w", err)
		}
		return st.view(stored), nil
	}

	taskAV, err := attributevalue.MarshalMap(taskItem{
		PK: TaskKey(rec.TaskToken), Kind: kindTask, SessionURI: rec.SessionURI, TTL: it.TTL,
	})
	if err != nil {
		return nil, fmt.Errorf("state: create: encode task item: %w", err)
	}
	in := &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{
				TableName:                           aws.String(st.table),
				Item:                                av,
				ConditionExpression:                 aws.String(notExists),
				ExpressionAttributeNames:            pkName,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			{Put: &types.Put{
				TableName:                           aws.String(st.table),
				Item:                                taskAV,
				ConditionExpression:                 aws.String(notExists),
				ExpressionAttributeNames:            pkName,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
		},
	}
	const maxTries = 8
	for try := 1; ; try++ {
		cctx, cancel := st.call(ctx)
		_, err := st.client.TransactWriteItems(cctx, in)
		cancel()
		if err == nil {
			return st.view(stored), nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return nil, fmt.Errorf("state: create: %w", err)
		}
		reasons := tce.CancellationReasons
		if len(reasons) == 2 && reasonIs(reasons[1], "ConditionalCheckFailed") {
			// Retried invocation: the task token already has a session.
			uri := ""
			if v, ok := reasons[1].Item["sessionUri"].(*types.AttributeValueMemberS); ok {
				uri = v.Value
			}
			existing, err := st.sessionForTask(ctx, rec.TaskToken, uri)
			if err != nil {
				return nil, err
			}
			return existing, flow.ErrTaskExists
		}
		if len(reasons) >= 1 && reasonIs(reasons[0], "ConditionalCheckFailed") {
			return st.conflictFrom(ctx, rec.SessionURI, reasons[0].Item)
		}
		if len(reasons) == 0 {
			// No reasons reported: find out which condition failed by reading.
			if existing, err := st.sessionForTask(ctx, rec.TaskToken, ""); err == nil {
				return existing, flow.ErrTaskExists
			}
			if cur, err := st.Get(ctx, rec.SessionURI); err == nil {
				return cur, flow.ErrConflict
			}
		}
		conflict := len(reasons) == 0 || slices.ContainsFunc(reasons, func(r types.CancellationReason) bool {
			return reasonIs(r, "TransactionConflict")
		})
		if !conflict || try >= maxTries {
			return nil, fmt.Errorf("state: create: transaction cancelled (%s)", reasonCodes(reasons))
		}
		// A concurrent transaction touched the same keys: retry; the
		// conditions then decide.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("state: create: %w", ctx.Err())
		case <-time.After(time.Duration(try*try) * 10 * time.Millisecond):
		}
	}
}

func reasonIs(r types.CancellationReason, code string) bool {
	return aws.ToString(r.Code) == code
}

func reasonCodes(rs []types.CancellationReason) string {
	codes := make([]string, len(rs))
	for i, r := range rs {
		codes[i] = aws.ToString(r.Code)
	}
	return strings.Join(codes, ",")
}

// sessionForTask resolves the session a task-token item points at; uri is
// the pointer when already known (from ALL_OLD), else it is read.
func (st *Store) sessionForTask(ctx context.Context, taskToken, uri string) (*flow.Session, error) {
	if uri == "" {
		cctx, cancel := st.call(ctx)
		out, err := st.client.GetItem(cctx, &dynamodb.GetItemInput{
			TableName:      aws.String(st.table),
			Key:            key(TaskKey(taskToken)),
			ConsistentRead: aws.Bool(true),
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("state: get task record: %w", err)
		}
		if out.Item == nil {
			return nil, flow.ErrNotFound
		}
		var ti taskItem
		if err := attributevalue.UnmarshalMap(out.Item, &ti); err != nil || ti.Kind != kindTask || ti.SessionURI == "" {
			return nil, errors.New("state: decode task record: not a task item")
		}
		uri = ti.SessionURI
	}
	s, err := st.Get(ctx, uri)
	if errors.Is(err, flow.ErrNotFound) {
		// Only possible if TTL removed the session before its task record.
		return nil, fmt.Errorf("state: task record points at a session that no longer exists: %w", flow.ErrNotFound)
	}
	return s, err
}

// conflictFrom returns (current, ErrConflict) from an ALL_OLD image, reading
// the record when the image is missing; (nil, ErrNotFound) when there is no
// record.
func (st *Store) conflictFrom(ctx context.Context, uri string, old map[string]types.AttributeValue) (*flow.Session, error) {
	if len(old) == 0 {
		cur, err := st.Get(ctx, uri)
		if err != nil {
			return nil, err
		}
		return cur, flow.ErrConflict
	}
	cur, err := decode(old)
	if err != nil {
		return nil, err
	}
	return st.view(cur), flow.ErrConflict
}

func key(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{contract.AttrPK: &types.AttributeValueMemberS{Value: pk}}
}

// Get implements flow.SessionStore.
func (st *Store) Get(ctx context.Context, sessionURI string) (*flow.Session, error) {
	s, err := st.getRaw(ctx, sessionURI)
	if err != nil {
		return nil, err
	}
	return st.view(s), nil
}

// getRaw reads a session as stored (strongly consistent, no expiry view).
func (st *Store) getRaw(ctx context.Context, sessionURI string) (*flow.Session, error) {
	if sessionURI == "" {
		return nil, flow.ErrNotFound
	}
	cctx, cancel := st.call(ctx)
	out, err := st.client.GetItem(cctx, &dynamodb.GetItemInput{
		TableName:      aws.String(st.table),
		Key:            key(SessionKey(sessionURI)),
		ConsistentRead: aws.Bool(true),
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("state: get: %w", err)
	}
	if out.Item == nil {
		return nil, flow.ErrNotFound
	}
	return decode(out.Item)
}

// GetByTaskToken implements flow.SessionStore.
func (st *Store) GetByTaskToken(ctx context.Context, taskToken string) (*flow.Session, error) {
	if taskToken == "" {
		return nil, flow.ErrNotFound
	}
	return st.sessionForTask(ctx, taskToken, "")
}

// exprs collects expression attribute names and values.
type exprs struct {
	names  map[string]string
	values map[string]types.AttributeValue
}

func newExprs() *exprs {
	return &exprs{names: map[string]string{"#pk": contract.AttrPK}, values: map[string]types.AttributeValue{}}
}

// n returns the placeholder for attribute name attr.
func (e *exprs) n(attr string) string {
	p := "#" + attr
	e.names[p] = attr
	return p
}

// s and i return placeholders for a string / number value.
func (e *exprs) s(name, v string) string {
	p := ":" + name
	e.values[p] = &types.AttributeValueMemberS{Value: v}
	return p
}

func (e *exprs) i(name string, v int64) string {
	p := ":" + name
	e.values[p] = &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	return p
}

// status returns the placeholder for a status value (":pending", ...).
func (e *exprs) status(s flow.Status) string {
	return e.s(strings.ToLower(string(s)), string(s))
}

// statusAt is the condition "the item's flow.Session.StatusAt(now) is s"
// for an open status s: stored as s and not expired at now (a session is
// expired from ExpiresAt on). Times are whole milliseconds, so comparing
// milliseconds decides as flow.Session.ExpiredAt does.
// claimableAt is flow.Session.ClaimableAt(now) as a condition: PENDING at
// now, or COMPLETING at now under no claim or one older than the lease.
func (e *exprs) claimableAt(now time.Time) string {
	// claimedAt (whole milliseconds) < now - lease, with now - lease rounded
	// up to the millisecond so that a sub-millisecond now agrees with the
	// domain's rule.
	cutoff := now.Add(-flow.ClaimLease).Add(time.Millisecond - time.Nanosecond).UnixMilli()
	stale := fmt.Sprintf("(attribute_not_exists(%s) OR %s < %s)",
		e.n(aClaimedAt), e.n(aClaimedAt), e.i("cutoff", cutoff))
	return fmt.Sprintf("%s OR (%s AND %s)",
		e.statusAt(flow.StatusPending, now), e.statusAt(flow.StatusCompleting, now), stale)
}

func (e *exprs) statusAt(s flow.Status, now time.Time) string {
	if !s.Open() {
		panic("state: statusAt of a status that does not expire: " + string(s))
	}
	return fmt.Sprintf("(%s = %s AND %s > %s)", e.n(aStatus), e.status(s), e.n(aExpiresAt), e.i("now", now.UnixMilli()))
}

// update runs one conditional UpdateItem on a session item. On success it
// returns the new record as stored; when the condition fails it returns the
// current record as stored and conflict=true, or flow.ErrNotFound when
// there is no record. No expiry view is applied.
func (st *Store) update(ctx context.Context, sessionURI string, e *exprs, update, cond string) (s *flow.Session, conflict bool, err error) {
	if sessionURI == "" {
		return nil, false, flow.ErrNotFound
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                           aws.String(st.table),
		Key:                                 key(SessionKey(sessionURI)),
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 aws.String("attribute_exists(#pk) AND (" + cond + ")"),
		ExpressionAttributeNames:            e.names,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if len(e.values) > 0 {
		in.ExpressionAttributeValues = e.values
	}
	cctx, cancel := st.call(ctx)
	out, err := st.client.UpdateItem(cctx, in)
	cancel()
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if len(ccf.Item) == 0 {
			// No ALL_OLD image: the item does not exist (DynamoDB returns
			// one whenever it does). Read once more to be sure, so that a
			// missing image can never turn a conflict into "not found".
			cur, err := st.getRaw(ctx, sessionURI)
			if err != nil {
				return nil, false, err
			}
			return cur, true, nil
		}
		cur, err := decode(ccf.Item)
		if err != nil {
			return nil, false, err
		}
		return cur, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: update: %w", err)
	}
	s, err = decode(out.Attributes)
	if err != nil {
		return nil, false, err
	}
	return s, false, nil
}

// result applies the expiry view and maps conflict to flow.ErrConflict.
func (st *Store) result(s *flow.Session, conflict bool, err error) (*flow.Session, error) {
	if err != nil {
		return nil, err
	}
	if conflict {
		return st.view(s), flow.ErrConflict
	}
	return st.view(s), nil
}

// Claim implements flow.SessionStore: COMPLETING with ClaimedAt=now if
// flow.Session.ClaimableAt(now), as one conditional write: PENDING at now,
// or COMPLETING at now under no claim or one older than flow.ClaimLease.
func (st *Store) Claim(ctx context.Context, sessionURI string, now time.Time) (*flow.Session, error) {
	e := newExprs()
	update := fmt.Sprintf("SET %s = %s, %s = %s",
		e.n(aStatus), e.status(flow.StatusCompleting), e.n(aClaimedAt), e.i("now", now.UnixMilli()))
	return st.result(st.update(ctx, sessionURI, e, update, e.claimableAt(now)))
}

// Transition implements flow.SessionStore. Every from must
// flow.Status.CanBecome(to), else flow.ErrIllegalTransition is returned and
// nothing is written. Conditions are on the stored status, not the expiry
// view: to record that a session expired, pass from {PENDING, COMPLETING}
// and to EXPIRED. Entering COMPLETING sets ClaimedAt to the store's clock;
// returning to PENDING clears it. FailureReason is set to reason (removed
// when reason is empty).
func (st *Store) Transition(ctx context.Context, sessionURI string, from []flow.Status, to flow.Status, reason string) (*flow.Session, error) {
	return st.transition(ctx, sessionURI, from, to, reason, nil)
}

// transition is Transition with extra SET clauses in the same write.
func (st *Store) transition(ctx context.Context, sessionURI string, from []flow.Status, to flow.Status, reason string, extra func(*exprs) []string) (*flow.Session, error) {
	if len(from) == 0 {
		return nil, fmt.Errorf("state: transition: no from status: %w", flow.ErrIllegalTransition)
	}
	var froms []flow.Status
	for _, f := range from {
		if !f.CanBecome(to) {
			return nil, fmt.Errorf("state: transition %s -> %s: %w", f, to, flow.ErrIllegalTransition)
		}
		if !slices.Contains(froms, f) {
			froms = append(froms, f)
		}
	}
	e := newExprs()
	placeholders := make([]string, len(froms))
	for i, f := range froms {
		placeholders[i] = e.s("from"+strconv.Itoa(i), string(f))
	}
	cond := fmt.Sprintf("%s IN (%s)", e.n(aStatus), strings.Join(placeholders, ", "))
	set := []string{fmt.Sprintf("%s = %s", e.n(aStatus), e.status(to))}
	var remove []string
	if reason != "" {
		set = append(set, fmt.Sprintf("%s = %s", e.n(aFailureReason), e.s("reason", reason)))
	} else {
		remove = append(remove, e.n(aFailureReason))
	}
	switch to {
	case flow.StatusCompleting:
		set = append(set, fmt.Sprintf("%s = %s", e.n(aClaimedAt), e.i("now", st.clock().UnixMilli())))
	case flow.StatusPending:
		remove = append(remove, e.n(aClaimedAt))
	}
	if extra != nil {
		set = append(set, extra(e)...)
	}
	update := "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		update += " REMOVE " + strings.Join(remove, ", ")
	}
	return st.result(st.update(ctx, sessionURI, e, update, cond))
}

// Settle implements flow.SessionStore: Transition to a terminal status
// whose one conditional write also stores the outbox and, when claim is
// not zero, the writer's delivery claim.
func (st *Store) Settle(ctx context.Context, sessionURI string, from []flow.Status, to flow.Status, reason string, out flow.Outbox, claim time.Time) (*flow.Session, error) {
	if !to.Terminal() {
		return nil, fmt.Errorf("state: settle to %s: %w", to, flow.ErrIllegalTransition)
	}
	return st.transition(ctx, sessionURI, from, to, reason, func(e *exprs) []string {
		set := outboxSets(e, out)
		if !claim.IsZero() {
			set = append(set, fmt.Sprintf("%s = %s", e.n(aDeliveryClaim), e.i("claim", claim.UnixMilli())))
		}
		return set
	})
}

// outboxSets are the SET clauses that store out.
func outboxSets(e *exprs, out flow.Outbox) []string {
	var set []string
	for _, a := range []struct{ attr, v string }{{aResumeOutput, out.Output}, {aResumeError, out.Error}, {aResumeCause, out.Cause}} {
		if a.v != "" {
			set = append(set, fmt.Sprintf("%s = %s", e.n(a.attr), e.s(a.attr, a.v)))
		}
	}
	return set
}

// ClaimDelivery implements flow.SessionStore: flow.Session.DeliveryClaimableAt
// as one conditional write.
func (st *Store) ClaimDelivery(ctx context.Context, sessionURI string, now time.Time) (*flow.Session, error) {
	e := newExprs()
	// deliveryClaimedAt (whole ms) < now - lease, rounded up as in claimableAt.
	cutoff := now.Add(-flow.DeliveryLease).Add(time.Millisecond - time.Nanosecond).UnixMilli()
	cond := fmt.Sprintf("%s IN (%s, %s, %s) AND attribute_exists(%s) AND (attribute_exists(%s) OR attribute_exists(%s)) AND attribute_not_exists(%s) AND (attribute_not_exists(%s) OR %s < %s)",
		e.n(aStatus), e.status(flow.StatusCompleted), e.status(flow.StatusFailed), e.status(flow.StatusExpired),
		e.n(aTaskToken), e.n(aResumeOutput), e.n(aResumeError), e.n(aResumedAt),
		e.n(aDeliveryClaim), e.n(aDeliveryClaim), e.i("cutoff", cutoff))
	update := fmt.Sprintf("SET %s = %s", e.n(aDeliveryClaim), e.i("now", now.UnixMilli()))
	return st.result(st.update(ctx, sessionURI, e, update, cond))
}

// ReleaseDelivery implements flow.SessionStore.
func (st *Store) ReleaseDelivery(ctx context.Context, sessionURI string, claimedAt time.Time) (*flow.Session, error) {
	e := newExprs()
	cond := fmt.Sprintf("attribute_not_exists(%s) AND %s = %s", e.n(aResumedAt), e.n(aDeliveryClaim), e.i("claim", claimedAt.UnixMilli()))
	return st.result(st.update(ctx, sessionURI, e, "REMOVE "+e.n(aDeliveryClaim), cond))
}

// MarkResumed implements flow.SessionStore.
func (st *Store) MarkResumed(ctx context.Context, sessionURI string, now time.Time) (*flow.Session, error) {
	if now.IsZero() {
		now = st.clock()
	}
	e := newExprs()
	cond := fmt.Sprintf("attribute_not_exists(%s) AND %s IN (%s, %s, %s)", e.n(aResumedAt),
		e.n(aStatus), e.status(flow.StatusCompleted), e.status(flow.StatusFailed), e.status(flow.StatusExpired))
	update := fmt.Sprintf("SET %s = %s", e.n(aResumedAt), e.i("now", now.UnixMilli()))
	return st.result(st.update(ctx, sessionURI, e, update, cond))
}

// ReserveAttempt implements flow.SessionStore: one conditional write adds
// one to attempts while the session is claimable at now and below max, so
// concurrent requests can never reserve more than max comparisons.
func (st *Store) ReserveAttempt(ctx context.Context, sessionURI string, maxAttempts int, now time.Time) (*flow.Session, error) {
	e := newExprs()
	// The least count that exhausts the limit (flow.AttemptsExhausted).
	limit := int64(max(maxAttempts, 1))
	cond := fmt.Sprintf("(%s) AND %s < %s", e.claimableAt(now), e.n(aAttempts), e.i("limit", limit))
	update := fmt.Sprintf("SET %s = %s + %s, %s = %s", e.n(aAttempts), e.n(aAttempts), e.i("one", 1),
		e.n(aReservedAt), e.i("reservedAt", now.UnixMilli()))
	return st.result(st.update(ctx, sessionURI, e, update, cond))
}

// RecordWrongCode implements flow.SessionStore. A comparison that is not
// the last of max all found wrong is a plain increment; the last one also
// sets FAILED in the same conditional write.
func (st *Store) RecordWrongCode(ctx context.Context, sessionURI string, maxAttempts int, reason string, out flow.Outbox, now time.Time) (*flow.Session, error) {
	limit := int64(max(maxAttempts, 1))
	e := newExprs()
	cond := fmt.Sprintf("(%s) AND %s < %s AND %s < %s",
		e.claimableAt(now), e.n(aWrongCodes), e.n(aAttempts), e.n(aWrongCodes), e.i("last", limit-1))
	update := fmt.Sprintf("SET %s = %s + %s", e.n(aWrongCodes), e.n(aWrongCodes), e.i("one", 1))
	s, conflict, err := st.update(ctx, sessionURI, e, update, cond)
	if err != nil || !conflict || s == nil || int64(s.WrongCodes) != limit-1 || !s.ClaimableAt(now) {
		return st.result(s, conflict, err)
	}
	// Every attempt but this one found a wrong code: this one ends it.
	e = newExprs()
	cond = fmt.Sprintf("(%s) AND %s = %s AND %s >= %s",
		e.claimableAt(now), e.n(aWrongCodes), e.i("last", limit-1), e.n(aAttempts), e.i("limit", limit))
	update = fmt.Sprintf("SET %s = %s + %s, %s = %s",
		e.n(aWrongCodes), e.n(aWrongCodes), e.i("one", 1), e.n(aStatus), e.status(flow.StatusFailed))
	if reason != "" {
		update += fmt.Sprintf(", %s = %s", e.n(aFailureReason), e.s("reason", reason))
	}
	for _, set := range outboxSets(e, out) {
		update += ", " + set
	}
	update += fmt.Sprintf(", %s = %s", e.n(aDeliveryClaim), e.i("claim", now.UnixMilli()))
	return st.result(st.update(ctx, sessionURI, e, update, cond))
}

// Release implements flow.SessionStore: COMPLETING -> PENDING, ClaimedAt
// removed, and the claimant's reserved attempt given back (never below 0).
func (st *Store) Release(ctx context.Context, sessionURI string) (*flow.Session, error) {
	for _, refund := range []bool{true, false} {
		e := newExprs()
		cond := fmt.Sprintf("%s = %s", e.n(aStatus), e.status(flow.StatusCompleting))
		update := fmt.Sprintf("SET %s = %s", e.n(aStatus), e.status(flow.StatusPending))
		if refund {
			// Only an open comparison (the claimant's right code) is given
			// back: never a wrong one, and never below WrongCodes.
			cond += fmt.Sprintf(" AND %s > %s", e.n(aAttempts), e.n(aWrongCodes))
			update += fmt.Sprintf(", %s = %s - %s", e.n(aAttempts), e.n(aAttempts), e.i("one", 1))
		}
		update += " REMOVE " + e.n(aClaimedAt)
		s, conflict, err := st.update(ctx, sessionURI, e, update, cond)
		if err != nil || !conflict || s == nil || s.Status != flow.StatusCompleting || s.Attempts > s.WrongCodes {
			// Done, failed, or not COMPLETING: the first answer is final.
			return st.result(s, conflict, err)
		}
		// COMPLETING with nothing to refund: release without a refund.
	}
	return nil, errors.New("state: release: unreachable")
}

// RefundAttempt implements flow.SessionStore: attempts - 1 while the
// session is stored PENDING and attempts > wrongCodes, in one conditional
// write.
func (st *Store) RefundAttempt(ctx context.Context, sessionURI string) (*flow.Session, error) {
	e := newExprs()
	cond := fmt.Sprintf("%s = %s AND %s > %s", e.n(aStatus), e.status(flow.StatusPending), e.n(aAttempts), e.n(aWrongCodes))
	update := fmt.Sprintf("SET %s = %s - %s", e.n(aAttempts), e.n(aAttempts), e.i("one", 1))
	return st.result(st.update(ctx, sessionURI, e, update, cond))
}

// MarkNotified implements flow.SessionStore.
func (st *Store) MarkNotified(ctx context.Context, sessionURI string, codeHash string, now time.Time) (*flow.Session, error) {
	if now.IsZero() {
		now = st.clock()
	}
	e := newExprs()
	cond := fmt.Sprintf("attribute_not_exists(%s)", e.n(aNotifiedAt))
	update := fmt.Sprintf("SET %s = %s", e.n(aNotifiedAt), e.i("now", now.UnixMilli()))
	if codeHash != "" {
		update += fmt.Sprintf(", %s = %s", e.n(aCodeHash), e.s("code", codeHash))
	}
	return st.result(st.update(ctx, sessionURI, e, update, cond))
}
