// Package emulator is a local, in-memory AgentCore Identity data plane (service
// bedrock-agentcore, API 2024-02-28) plus a fake OAuth provider with a consent page, so the
// real aws-sdk-go-v2 bedrockagentcore client can run a whole 3-legged OAuth flow offline,
// and a test OpenID Connect provider (the IdP) whose ID tokens the emulated
// GetWorkloadAccessTokenForJWT verifies. It is test and demo tooling: production code
// never imports it.
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
// Handler serves the API, the consent page and the IdP on one origin. Start listens on the given
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
// AgentCore Runtime's InvokeAgentRuntime is served too (runtime.go): POST
// /runtimes/{agentRuntimeArn}/invocations with the ARN percent-encoded in the path (or an
// agent runtime id with ?accountId=), ?qualifier= (DEFAULT, and the names in AgentRuntime.Endpoints), the payload as
// the raw body, and the model's header members (Content-Type, Accept, Mcp-*,
// X-Amzn-Bedrock-AgentCore-Runtime-Session-Id 33-256, -User-Id 1-1024, trace headers),
// validated as the identity operations are. Config.AgentRuntimes (JSON "agentRuntimes":
// [{"arn", "url"}]) maps each runtime to a local agent process (a loopback URL only) that
// follows the Runtime service contract: the request goes to POST <url>/invocations with the
// session id, the runtime user id and a WorkloadAccessToken header minted for (the runtime's
// own workload identity, user), as a GetWorkloadAccessTokenForUserId would
// (GetWorkloadAccessToken without a user). As in AgentCore, that identity is named after the
// runtime id and linked to the runtime: GetWorkloadAccessToken* for it are a
// ValidationException ("WorkloadIdentity is linked to a service..."), and its vault is its
// own, so an agent reads tokens obtained under consentflow's workload identity by minting for
// that one (agentauth.WithWorkloadName). The
// agent's answer is streamed back with its Content-Type and the session id header. An unknown
// runtime or qualifier is ResourceNotFoundException (404); an agent that answers 4xx/5xx or
// not at all is RuntimeClientError (424). Missing permission: the emulator checks no IAM, so
// it never answers AccessDeniedException here; AWS does when the caller lacks
// bedrock-agentcore:InvokeAgentRuntime, or InvokeAgentRuntimeForUser for a request with a
// runtime user id. Faults (Throttle, InternalError, Delay) apply as to the other operations.
//
// The fake provider also serves a tiny protected API (providerapi.go): GET
// /provider/<name>/userinfo with "Authorization: Bearer <token>" answers the provider, the
// scopes and the user for tokens of its vault only (401 invalid_token otherwise), so an
// agent calling it proves the token it got from the vault is real.
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
//   - GetWorkloadAccessTokenForJWT verifies the userToken as AWS says it does ("correctly
//     signed and unexpired"; see "The IdP" below for what is checked and what is
//     unconfirmed). The vault keys a JWT user on the verified iss+sub claims (as AWS
//     does), but CompleteResourceTokenAuth requires the exact JWT string that minted the
//     workload token: a fresh JWT for the same person is rejected.
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
// # The IdP: a test OpenID Connect provider
//
// The same Handler serves a strict OpenID provider (authorization code flow only) at the
// issuer returned by Issuer(): Config.PublicURL when set, else the base URL of the first
// listener given to Start or Serve (0.0.0.0 written as 127.0.0.1). A Handler mounted on a
// server of your own without PublicURL has no fixed issuer: its IdP endpoints use each
// request's origin (scheme://Host), which then counts as one of its own issuers, and
// MintIDToken fails. Plain http issuers are fine for go-oidc.
//
//   - GET /.well-known/openid-configuration: issuer, authorization_endpoint
//     (/oidc/authorize), token_endpoint (/oidc/token), jwks_uri (/oidc/jwks),
//     userinfo_endpoint (/oidc/userinfo), response_types_supported ["code"],
//     subject_types_supported ["public"], id_token_signing_alg_values_supported
//     ["RS256"], code_challenge_methods_supported ["S256"],
//     token_endpoint_auth_methods_supported ["client_secret_basic",
//     "client_secret_post", "none"], scopes_supported ["openid", "email", "profile"].
//   - GET /oidc/jwks: the one RSA-2048 key generated by New, kid = its RFC 7638
//     thumbprint, alg RS256, use sig.
//   - GET /oidc/authorize: client_id must be registered and redirect_uri one of its
//     RedirectURIs exactly, else a 400 page (never a redirect). Then, redirecting with
//     error= (and the state) per RFC 6749: response_type must be "code"
//     (unsupported_response_type), scope must contain openid (invalid_scope), state,
//     nonce, and PKCE code_challenge (43 characters) with code_challenge_method=S256 are
//     required (invalid_request; plain or missing PKCE is refused on purpose), each
//     parameter at most once, prompt only none, login, consent, select_account (none
//     alone). request and request_uri are not supported (request_not_supported,
//     request_uri_not_supported); other parameters (login_hint, max_age, ui_locales...)
//     are ignored; authorization requests by POST are not supported (POST is the
//     sign-in page's form).
//   - The sign-in page lists the test users, one button each (plain HTML, same strict
//     headers and CSP as the consent page), and Cancel (error=access_denied). Choosing
//     a user issues a single-use code valid AuthCodeTTL (60 s, emulator clock) and
//     redirects (303) to redirect_uri?code=..&state=.. ; the browser keeps an IdP session
//     in the IdPSessionCookie (Path /oidc/, HttpOnly, SameSite=Lax, Secure on https, 12 h
//     on the emulator clock). With that cookie, an authorization request without prompt,
//     or with prompt=none, passes at once (302 with a code); prompt=login,
//     select_account or consent always shows the page; prompt=none without a session
//     redirects with error=login_required.
//   - SignInAs(subject): the NEXT valid authorization request (whatever its prompt)
//     signs that user in (session cookie included) and redirects at once; single shot. A
//     request refused before the sign-in step does not consume it.
//   - POST /oidc/token: grant_type=authorization_code only (else
//     unsupported_grant_type) with code, redirect_uri (equal to the authorization
//     request's) and code_verifier (S256 of it must equal the challenge). Client
//     authentication: client_secret_basic (RFC 6749 form-encoded id and secret) or
//     client_secret_post for a client with a secret, none (client_id only, no secret)
//     for a public client; failures give 401 invalid_client. A code is spent by the
//     first request that presents it with a valid client, whatever the outcome; any
//     later use, an expired code, another client's code, a wrong redirect_uri or
//     verifier give invalid_grant. Errors are RFC 6749 JSON {"error",
//     "error_description"}, Cache-Control no-store. The answer: access_token, token_type
//     Bearer, expires_in, id_token, scope. Tokens issued from a replayed code are not
//     revoked (they are stateless JWTs).
//   - The ID token (RS256, typ JWT, the JWKS kid): iss, sub, aud = client_id, azp, exp
//     (IdPConfig.IDTokenTTL, default 1 h), iat, auth_time, nonce, jti, at_hash, and the
//     user's email, email_verified, name, preferred_username when configured (whatever
//     the scopes). The access token is a JWT too: iss, sub, aud (IdPConfig.Audience,
//     default the client id), exp (AccessTokenTTL, default 1 h), iat, jti, client_id,
//     scope. GET or POST /oidc/userinfo answers sub and the profile claims for a Bearer
//     access token.
//   - Users: IdPConfig.Users, or when empty alice (alice@example.com) and bob
//     (bob@example.com), both verified; AddTestUser adds or replaces one at run time.
//     Clients: IdPConfig.Clients; none by default; AddIdPClient adds or replaces one.
//     In JSON (agentcore-local --config) the section is "idp": {"users":[{"subject",
//     "email","emailVerified","name","preferredUsername"}],"clients":[{"clientId",
//     "clientSecret","redirectUris"}],"idTokenTtl":"1h","accessTokenTtl":3600,
//     "audience":"..."}, TTLs as Go duration strings or whole seconds.
//   - MintIDToken(subject, audience, ttl) signs an ID token exactly as the token
//     endpoint does (no nonce; a subject that is not a test user gets sub only; a ttl
//     <= 0 gives an already expired token). MintForeignToken(issuer, subject, audience,
//     ttl) signs one with a second key the JWKS does not publish, under the emulator's
//     kid: a bad signature for the emulator's own issuer (issuer ""), an untrusted
//     issuer otherwise.
//   - The emulator clock (Advance, SetClock) governs iat, exp, code and session expiry.
//   - Calls records OIDCDiscovery, OIDCJWKS, OIDCAuthorize, OIDCSignIn, OIDCToken and
//     OIDCUserInfo with the client id and an outcome (IsOperation is false for them, and
//     they take no faults); never a code, token, verifier, nonce, state, cookie or subject.
//
// GetWorkloadAccessTokenForJWT trusts only the emulator's own issuer(s): remote JWKS
// cannot be fetched offline, so there is no list of other trusted issuers. After the
// model's pattern check (ValidationException, FieldValidationFailed, as for every
// field), a userToken that is not a JWS compact serialization with a JSON claims set
// gives ValidationException (fieldList userToken, message InvalidUserTokenFormat). A
// well-formed token whose alg is not RS256 (alg none included), whose issuer is not the
// emulator's, whose signature does not verify with the published key (or whose kid is
// another), that has no sub or exp, or that is expired or not yet valid (exp, nbf, iat
// checked against the emulator clock with no leeway) gives UnauthorizedException
// (InvalidUserToken); Call.Outcome says which ("denied:malformed", "denied:alg",
// "denied:issuer", "denied:signature", "denied:claims", "denied:expired",
// "denied:not-yet-valid"). aud is not checked (a workload identity has no audience
// setting).
//
// UNCONFIRMED against AWS, chosen by the emulator: which error AWS returns for a
// malformed token (ValidationException here) and for a refused one
// (UnauthorizedException here: the model documents it for an invalid JWT; AWS may answer
// AccessDeniedException instead), their messages, the clock leeway (none here), whether
// aud, nbf or iat are checked, and how AWS decides which issuers it trusts (its docs
// say only that the token must be correctly signed and unexpired). Callers should
// treat ValidationException, UnauthorizedException and AccessDeniedException alike
// as "token refused".
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
//     status, error type, workload, provider, user identifier kind, flow, IdP client,
//     outcome; never a token, JWT, user id, state or key). GET /_emulator/calls serves
//     the same as JSON.
//   - The IdP's: SignInAs, AddTestUser, AddIdPClient, TestUsers, MintIDToken,
//     MintForeignToken, Issuer (see above).
//   - Config.Logger: one slog line per request with the same non-secret fields.
//
// All methods are safe for concurrent use.
package emulator
