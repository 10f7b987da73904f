package agentauth

import (
	"context"
	"log/slog"
	"net/http"
)

// User is whom a credential is fetched for. Set ID or JWT (the client mints a workload
// access token for that user), or WorkloadToken when you already hold one. The zero
// User stands for the user of the AgentCore Runtime request in the context (see
// Middleware), or for no user (M2M flows, API keys).
type User struct {
	// ID is your application's opaque id of the user (1-128 characters; prefix it per
	// identity provider, e.g. "github|4242"): GetWorkloadAccessTokenForUserId.
	ID string
	// JWT is a token the user's identity provider issued (AWS verifies it and keys the
	// user on its issuer and subject): GetWorkloadAccessTokenForJWT. With consentflow the
	// callback then asks the browser for the same JWT in a cookie.
	JWT string
	// WorkloadToken is a workload access token the caller already holds (AgentCore
	// Runtime passes one with each request): nothing is minted. ID or JWT, when set,
	// name the user it was minted for; consentflow needs that to complete the session,
	// so without them AccessToken waits by polling.
	WorkloadToken string
}

// String describes u without its secrets: which fields are set.
func (u User) String() string {
	return "agentauth.User{ID:" + set(u.ID) + " JWT:" + set(u.JWT) + " WorkloadToken:" + set(u.WorkloadToken) + "}"
}

// GoString is String, so that %#v prints no secret either.
func (u User) GoString() string { return u.String() }

// LogValue is String, for log/slog.
func (u User) LogValue() slog.Value { return slog.StringValue(u.String()) }

func (u User) isZero() bool { return u == User{} }

func set(v string) string {
	if v == "" {
		return "unset"
	}
	return "set"
}

// The request headers AgentCore Runtime sends an agent with each invocation.
const (
	// HeaderWorkloadAccessToken carries the workload access token for the invocation's
	// user.
	HeaderWorkloadAccessToken = "WorkloadAccessToken"
	// HeaderUserID carries the user id the invocation was made for (InvokeAgentRuntime's
	// runtimeUserId).
	HeaderUserID = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
	// HeaderOAuth2CallbackURL carries the return URL the caller chose for 3-legged OAuth.
	HeaderOAuth2CallbackURL = "OAuth2CallbackUrl"
)

// Invocation is what AgentCore Runtime tells an agent about an invocation in the
// request's headers.
type Invocation struct {
	// WorkloadToken is the workload access token (HeaderWorkloadAccessToken).
	WorkloadToken string
	// UserID is the invocation's user id (HeaderUserID), when it was made for one.
	UserID string
	// CallbackURL is the OAuth2 return URL (HeaderOAuth2CallbackURL), if any.
	CallbackURL string
}

// String describes inv without its secrets.
func (inv Invocation) String() string {
	return "agentauth.Invocation{WorkloadToken:" + set(inv.WorkloadToken) + " UserID:" + set(inv.UserID) +
		" CallbackURL:" + set(inv.CallbackURL) + "}"
}

// GoString is String, so that %#v prints no secret either.
func (inv Invocation) GoString() string { return inv.String() }

// LogValue is String, for log/slog.
func (inv Invocation) LogValue() slog.Value { return slog.StringValue(inv.String()) }

type invocationKey struct{}

// NewContext returns a copy of ctx that carries inv.
func NewContext(ctx context.Context, inv Invocation) context.Context {
	return context.WithValue(ctx, invocationKey{}, inv)
}

// FromContext returns the Invocation in ctx, if any.
func FromContext(ctx context.Context) (Invocation, bool) {
	inv, ok := ctx.Value(invocationKey{}).(Invocation)
	return inv, ok
}

// Middleware serves next with the request's Invocation (the AgentCore Runtime headers
// HeaderWorkloadAccessToken, HeaderUserID and HeaderOAuth2CallbackURL) in the request's
// context, when the request carries any of them. AccessToken and APIKey use it for a
// request that names no User: the workload token as is, the user id to register the
// session with consentflow, the callback URL when the client has no return URL.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv := Invocation{
			WorkloadToken: r.Header.Get(HeaderWorkloadAccessToken),
			UserID:        r.Header.Get(HeaderUserID),
			CallbackURL:   r.Header.Get(HeaderOAuth2CallbackURL),
		}
		if inv != (Invocation{}) {
			r = r.WithContext(NewContext(r.Context(), inv))
		}
		next.ServeHTTP(w, r)
	})
}
