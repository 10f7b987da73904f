package emulator

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

// TestGetWorkloadAccessTokenForJWTVerifies sends each kind of token through the real SDK.
func TestGetWorkloadAccessTokenForJWTVerifies(t *testing.T) {
	e := newIdPEnv(t)
	mint := func(sub string, ttl time.Duration) string {
		tok, err := e.srv.MintIDToken(sub, "app", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	foreign := func(iss string) string {
		tok, err := e.srv.MintForeignToken(iss, "alice", "app", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// Own key, another issuer: only the issuer check can refuse it.
	now := e.srv.Now().Truncate(time.Second)
	otherIss, err := e.srv.idp.idToken(e.srv.idp.signer, "https://idp.other.example", TestUser{Subject: "alice"}, false, "app", "", time.Time{}, now, time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) string { return base64.RawURLEncoding.EncodeToString([]byte(mustJSON(v))) }
	claims := map[string]any{"iss": e.base, "sub": "alice", "exp": now.Add(time.Hour).Unix()}
	unsigned := enc(map[string]string{"alg": "none"}) + "." + enc(claims) + ".c2ln"
	unsignedEmpty := enc(map[string]string{"alg": "none"}) + "." + enc(claims) + "."
	hs := func() string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}()
	valid := mint("alice", time.Hour)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + enc(map[string]any{"iss": e.base, "sub": "mallory", "aud": "app", "exp": now.Add(time.Hour).Unix()}) + "." + parts[2]
	noSub := func() string {
		tok, err := jwt.Signed(e.srv.idp.signer).Claims(map[string]any{"iss": e.base, "exp": now.Add(time.Hour).Unix()}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}()
	notJSON := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("not json")) + "." + parts[2]

	type want int
	const (
		ok want = iota
		validation
		unauthorized
	)
	for _, tc := range []struct {
		name    string
		tok     string
		want    want
		outcome string
	}{
		{"valid ID token", valid, ok, "token-issued"},
		{"unknown subject, still valid", mint("someone-else", time.Minute), ok, "token-issued"},
		{"not a jwt (the pattern's dots match any character)", "not a jwt", validation, "denied:malformed"},
		{"not a jwt (fails the pattern)", "not a jwt at all", validation, ""},
		{"matches the pattern, not a JWS", "notajwtatall", validation, "denied:malformed"},
		{"bad base64", "a.b.c", validation, "denied:malformed"},
		{"payload not JSON", notJSON, validation, "denied:malformed"},
		{"unsigned, empty signature", unsignedEmpty, validation, ""},
		{"unsigned (alg none)", unsigned, unauthorized, "denied:alg"},
		{"HS256", hs, unauthorized, "denied:alg"},
		{"bad signature (foreign key)", foreign(""), unauthorized, "denied:signature"},
		{"tampered payload", tampered, unauthorized, "denied:signature"},
		{"expired", mint("alice", -time.Minute), unauthorized, "denied:expired"},
		{"expired (ttl 0)", mint("alice", 0), unauthorized, "denied:expired"},
		{"foreign issuer", foreign("https://idp.other.example"), unauthorized, "denied:issuer"},
		{"own key, untrusted issuer", otherIss, unauthorized, "denied:issuer"},
		{"no sub", noSub, unauthorized, "denied:claims"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.srv.ResetCalls()
			out, err := e.client.GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
				WorkloadName: aws.String(testWorkload), UserToken: aws.String(tc.tok)})
			switch tc.want {
			case ok:
				if err != nil || aws.ToString(out.WorkloadAccessToken) == "" {
					t.Fatalf("refused: %v", err)
				}
			case validation:
				ve := asErr[*types.ValidationException](t, err)
				if len(ve.FieldList) != 1 || aws.ToString(ve.FieldList[0].Name) != "userToken" || strings.Contains(ve.ErrorMessage(), tc.tok) {
					t.Fatalf("validation %q %+v", ve.ErrorMessage(), ve.FieldList)
				}
			case unauthorized:
				ue := asErr[*types.UnauthorizedException](t, err)
				if ue.ErrorMessage() != InvalidUserToken {
					t.Fatalf("message %q", ue.ErrorMessage())
				}
			}
			calls := e.srv.CallsTo(OpGetWorkloadAccessTokenForJWT)
			if len(calls) != 1 || calls[0].Outcome != tc.outcome || (tc.outcome != "" && calls[0].UserKind != "userToken") {
				t.Fatalf("calls %+v", calls)
			}
		})
	}

	// The emulator clock governs expiry, and tokens from the token endpoint are accepted.
	conf := e.oauth(rpConfidential, rpSecret, oauth2.AuthStyleInHeader)
	if err := e.srv.SignInAs("alice"); err != nil {
		t.Fatal(err)
	}
	a := newAuthReq()
	resp, _ := get(t, browser(t), a.url(conf))
	tok, err := conf.Exchange(ctx, codeFrom(t, resp, a.state), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatal(err)
	}
	forJWT := func(tok string) error {
		_, err := e.client.GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
			WorkloadName: aws.String(testWorkload), UserToken: aws.String(tok)})
		return err
	}
	idToken := tok.Extra("id_token").(string)
	for name, raw := range map[string]string{"id_token": idToken, "access_token": tok.AccessToken} {
		if err := forJWT(raw); err != nil {
			t.Errorf("%s from the token endpoint: %v", name, err)
		}
	}
	e.srv.Advance(DefaultIDTokenTTL + time.Second)
	asErr[*types.UnauthorizedException](t, forJWT(idToken))
	asErr[*types.UnauthorizedException](t, forJWT(valid))
}
