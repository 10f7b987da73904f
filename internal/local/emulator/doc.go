// Package emulator is a local, in-memory AgentCore Identity data plane (service
// bedrock-agentcore, API 2024-02-28) plus a fake OAuth provider with a consent page, so the
// real aws-sdk-go-v2 bedrockagentcore client can run a whole 3-legged OAuth flow offline.
// It is test and demo tooling: production code never imports it.
//
// # Using it
//
//	srv, err := emulator.New(emulator.Config{
//		Workloads: []emulator.Workload{{Name: "my-agent",
//			AllowedReturnURLs: []string{"https://app.example.com/oauth2/callback"}}},
//		Providers: []emulator.Provider{{Name: "github"}, {Name: "weather", Kind: emulator.APIKey}},
//	})
//	ts := httptest.NewServer(srv.Handler())        // or: baseURL, stop, err := srv.Start("")
//	client := emulator.NewClient(ts.URL)           // real SDK client, BaseEndpoint = ts.URL
//
// Handler serves the API and the consent page on one origin. Start listens on the given
// address ("" means 127.0.0.1:0) and returns the base URL and a graceful stop function.
// Any other client works too: set BaseEndpoint (or AWS_ENDPOINT_URL_BEDROCK_AGENTCORE) to
// the base URL and use any static credentials.
//
// # Wire protocol
//
// restJson1 as AWS serves it: POST /identities/GetWorkloadAccessToken,
// /identities/GetWorkloadAccessTokenForUserId, /identities/GetWorkloadAccessTokenForJWT,
// /identities/oauth2/token (GetResourceOauth2Token), /identities/CompleteResourceTokenAuth
// and /identities/api-key (GetResourceApiKey). Every response carries X-Amzn-Requestid.
// Errors carry the HTTP status, the X-Amzn-ErrorType header and a JSON body
// {"message": ...}; ValidationException (400) adds "reason" and "fieldList", so the SDK
// returns *types.ValidationException, *types.AccessDeniedException (403),
// *types.ResourceNotFoundException (404), *types.UnauthorizedException (401),
// *types.ThrottlingException (429) and *types.InternalServerException (500).
//
// Requests must carry an Authorization header "AWS4-HMAC-SHA256 Credential=.../<date>/
// <region>/bedrock-agentcore/aws4_request, SignedHeaders=..., Signature=..."; the signature
// is not verified. Without the header the answer is what AWS's front door returns for an
// unsigned request: 403, MissingAuthenticationTokenException, "Missing Authentication
// Token" (the SDK surfaces it as a smithy.APIError with that ErrorCode, as a
// *smithy.GenericAPIError). A credential scoped to another service gets 403
// InvalidSignatureException; a malformed header 400 IncompleteSignatureException.
// Unknown paths get 404 UnknownOperationException.
//
// # Validation
//
// Every input is checked before anything else against a hand-written table of the AWS
// model's constraints (constraints.go; a test cross-checks it against the model file):
// required members, string length (in Unicode code points), patterns matched against the
// whole value, enums, list members, map keys and values, and the UserIdentifier union
// (exactly one member). Violations give ValidationException with reason
// FieldValidationFailed and one fieldList entry per violation, named like AWS does
// ("workloadName", "scopes.2.member", "userIdentifier.userId", "customParameters.key").
// Values are never echoed. JSON that does not parse or has the wrong JSON types gives
// ValidationException with reason CannotParse. Unknown members are ignored.
//
// # Behaviour
//
//   - Workload tokens are opaque random strings bound to (workload, user as given), valid
//     for WorkloadTokenTTL; an unknown or expired one gives UnauthorizedException (AWS does
//     not document this case; the choice is the emulator's). Unknown workload or provider:
//     ResourceNotFoundException (also for an API-key provider used as OAuth2 or back).
//   - GetWorkloadAccessTokenForJWT checks the userToken against the model's pattern only:
//     it does NOT verify the signature, issuer or expiry. The vault keys a JWT user on the
//     token's iss+sub claims (as AWS does), but CompleteResourceTokenAuth requires the
//     exact JWT string that minted the workload token: a fresh JWT for the same person is
//     rejected.
//   - GetResourceOauth2Token USER_FEDERATION needs a user-bound workload token
//     (ValidationException otherwise). The vault is keyed by (workload, user, provider,
//     sorted distinct scopes). A vault hit without forceAuthentication returns
//     accessToken. Otherwise, with a registered resourceOauth2ReturnUrl, a session starts:
//     authorizationUrl (absolute, Config.PublicURL or the request's own origin, path
//     /identities/oauth2/authorize?request_uri=<urlencoded sessionUri>), sessionUri
//     ("urn:ietf:params:oauth:request_uri:" + random) and sessionStatus IN_PROGRESS. A
//     missing or unregistered return URL gives ValidationException with AWS's text
//     (ReturnURLNotRegistered). forceAuthentication discards the vault entry first.
//   - A follow-up call with sessionUri must come from the same (workload, user, provider,
//     scopes) (else AccessDeniedException "Invalid or expired session") and repeat the same
//     resourceOauth2ReturnUrl (else ValidationException). It answers the token once the
//     session is completed, IN_PROGRESS while it waits, FAILED when denied or expired.
//   - M2M returns a token at once (cached per workload, provider and scopes);
//     ON_BEHALF_OF_TOKEN_EXCHANGE returns a fresh token for a JWT-bound workload token.
//     GetResourceApiKey returns the provider's configured (or generated) key.
//   - The consent page (GET /identities/oauth2/authorize) is real HTML: provider, workload,
//     scopes, and an Allow / Deny form POST carrying a per-session form token. Allow
//     redirects (302) to the return URL with session_id=<sessionUri> and state=<customState>
//     (only when one was given) added to its existing query (session_id percent-encoded
//     once, or twice with Config.DoubleEncodeSessionID); Deny redirects with
//     error=access_denied, error_description, session_id and state, and the session FAILS.
//     With auto-approve on, the GET consents at once and redirects. Pages are no-store,
//     frame-ancestors 'none'.
//   - CompleteResourceTokenAuth succeeds only after consent, within SessionTTL (10 minutes)
//     of session creation, once, and with exactly the identifier that minted the workload
//     token (the same userId string, or the same JWT); every other case gives
//     AccessDeniedException "Invalid or expired session" (Call.Outcome says why). It moves
//     the token into the vault.
//   - Tokens and keys are random base64url strings; nothing is persisted.
//
// # Test hooks
//
//   - Config.Clock, SetClock, Advance, Now: an injectable clock for expiry tests.
//   - InjectFault(op, n, fault): the next n calls of op (an Op* constant) fail with
//     Throttle (429 ThrottlingException), InternalError (500 InternalServerException), or
//     wait Delay(d) and then run normally (unless the caller gave up). Two faults leave
//     the caller unsure of the outcome: DropResponse runs the call and closes the
//     connection without an answer; Slow(d) waits d even if the caller gave up, then
//     runs the call. Faults apply after the signature check and before validation, per
//     operation, in order; ClearFaults drops them. The SDK retries 429/500 by default,
//     so n below its attempt count ends in success.
//   - SetAutoApprove / Config.AutoApprove: skip the consent page.
//   - Calls, CallsTo, ResetCalls: a copy of what was served (operation, emulator time,
//     status, error type, workload, provider, user identifier kind, flow, outcome; never a
//     token, JWT, user id, state or key). GET /_emulator/calls serves the same as JSON.
//   - Config.Logger: one slog line per request with the same non-secret fields.
//
// All methods are safe for concurrent use.
package emulator
