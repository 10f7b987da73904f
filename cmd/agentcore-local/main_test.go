package main

import (
	"bufio"
	"context"
	"errors"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/consentflow/consentflow/internal/local/emulator"
)

const (
	listenPrefix = "agentcore-local listening on "
	issuerPrefix = "agentcore-local issuer "
)

// TestCommand builds the real binary, runs it, drives a flow through it with the SDK,
// stops it with SIGINT and checks it exits 0 and frees the port.
func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "agentcore-local")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0",
		"--workload", "demo-agent", "--return-url", "http://127.0.0.1:9/cb",
		"--provider", "github", "--provider", "weather=apikey", "--auto-approve")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := bufio.NewReader(stdout)
	lineCh := make(chan [2]string, 1)
	go func() {
		l1, _ := lines.ReadString('\n')
		l2, _ := lines.ReadString('\n')
		lineCh <- [2]string{l1, l2}
		_, _ = io.Copy(io.Discard, lines)
		exited <- cmd.Wait()
	}()
	var first, second string
	select {
	case l := <-lineCh:
		first, second = l[0], l[1]
	case <-time.After(30 * time.Second):
		t.Fatal("no first lines within 30s")
	}
	if !strings.HasPrefix(first, listenPrefix+"http://127.0.0.1:") || !strings.HasSuffix(first, "\n") {
		t.Fatalf("first line %q", first)
	}
	base := strings.TrimSpace(strings.TrimPrefix(first, listenPrefix))
	u, err := url.Parse(base)
	if err != nil || u.Port() == "" || u.Port() == "0" {
		t.Fatalf("base URL %q", base)
	}
	if second != issuerPrefix+base+"\n" {
		t.Fatalf("second line %q, want the issuer %s", second, base)
	}

	ctx := context.Background()
	c := emulator.NewClient(base, func(o *bedrockagentcore.Options) { o.Retryer = aws.NopRetryer{} })
	w, err := c.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("demo-agent"), UserId: aws.String("user-1")})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: w.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("github"),
		Scopes: []string{"repo"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl: aws.String("http://127.0.0.1:9/cb"), CustomState: aws.String("state-123")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(aws.ToString(tok.AuthorizationUrl), base+emulator.AuthorizePath+"?") {
		t.Fatalf("authorizationUrl %q, base %q", aws.ToString(tok.AuthorizationUrl), base)
	}
	// --auto-approve: the authorization URL redirects at once.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(aws.ToString(tok.AuthorizationUrl))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("session_id") != aws.ToString(tok.SessionUri) {
		t.Fatalf("auto-approve: %d %s", resp.StatusCode, loc)
	}
	if _, err := c.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: tok.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "user-1"}}); err != nil {
		t.Fatal(err)
	}
	done, err := c.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: w.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("github"),
		Scopes: []string{"repo"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl: aws.String("http://127.0.0.1:9/cb"), SessionUri: tok.SessionUri})
	if err != nil || done.AccessToken == nil {
		t.Fatalf("token after completion: %+v %v", done, err)
	}
	key, err := c.GetResourceApiKey(ctx, &bedrockagentcore.GetResourceApiKeyInput{
		WorkloadIdentityToken: w.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("weather")})
	if err != nil || aws.ToString(key.ApiKey) == "" {
		t.Fatalf("api key: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		killed = true
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15s after SIGINT")
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Fatal("port still open after exit")
	}
	logs := stderr.String()
	if !strings.Contains(logs, "op=CompleteResourceTokenAuth") || !strings.Contains(logs, "stopped") {
		t.Errorf("logs lack the expected lines:\n%s", logs)
	}
	for _, secret := range []string{aws.ToString(w.WorkloadAccessToken), aws.ToString(done.AccessToken), aws.ToString(key.ApiKey), "state-123", "user-1", aws.ToString(tok.SessionUri)} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q", secret)
		}
	}
}

// TestRunInProcess covers --config and shutdown through context cancellation.
func TestRunInProcess(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "emu.json")
	if err := os.WriteFile(cfgFile, []byte(`{"workloads":[{"name":"from-file","allowedReturnUrls":["https://a.example/cb"]}],
		"providers":[{"name":"k","kind":"apikey","apiKey":"file-key"}],
		"idp":{"clients":[{"clientId":"rp","clientSecret":"rp-secret","redirectUris":["https://a.example/login"]}],"idTokenTtl":"10m"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--addr", "127.0.0.1:0", "--config", cfgFile, "--provider", "gh",
			"--fault", "GetWorkloadAccessToken=1:throttle", "--idp-user", "carol,carol@example.org,Carol C",
			"--idp-client", "pub=https://a.example/login"}, pw, io.Discard)
		pw.Close()
	}()
	out := bufio.NewReader(pr)
	first, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	second, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, out)
	base := strings.TrimSpace(strings.TrimPrefix(first, listenPrefix))
	if second != issuerPrefix+base+"\n" {
		t.Fatalf("second line %q", second)
	}
	c := emulator.NewClient(base, func(o *bedrockagentcore.Options) { o.Retryer = aws.NopRetryer{} })
	bg := context.Background()
	_, err = c.GetWorkloadAccessToken(bg, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String("from-file")})
	var te *types.ThrottlingException
	if !errors.As(err, &te) {
		t.Fatalf("--fault: %v", err)
	}
	w, err := c.GetWorkloadAccessToken(bg, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String("from-file")})
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.GetResourceApiKey(bg, &bedrockagentcore.GetResourceApiKeyInput{WorkloadIdentityToken: w.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("k")})
	if err != nil || aws.ToString(k.ApiKey) != "file-key" {
		t.Fatalf("api key from file: %v", err)
	}
	m2m, err := c.GetResourceOauth2Token(bg, &bedrockagentcore.GetResourceOauth2TokenInput{WorkloadIdentityToken: w.WorkloadAccessToken,
		ResourceCredentialProviderName: aws.String("gh"), Scopes: []string{}, Oauth2Flow: types.Oauth2FlowTypeM2m})
	if err != nil || m2m.AccessToken == nil {
		t.Fatalf("provider from flag: %v", err)
	}
	idpFlow(t, base, "rp", "rp-secret")
	idpFlow(t, base, "pub", "")
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
}

func TestBadArguments(t *testing.T) {
	badIdP := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(badIdP, []byte(`{"idp":{"idTokenTtl":"soon"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--addr", ":8787"},
		{"--addr", "nonsense"},
		{"--return-url", "https://a.example/cb"},
		{"--provider", "p=saml"},
		{"--provider", "bad name"},
		{"--workload", "x"},
		{"--fault", "Nope=1:throttle"},
		{"--fault", "GetWorkloadAccessToken=0:throttle"},
		{"--fault", "GetWorkloadAccessToken=1:explode"},
		{"--config", "/nonexistent/file.json"},
		{"--config", badIdP},
		{"--idp-client", "no-redirect"},
		{"--idp-client", "c=/relative"},
		{"--idp-client", "c:s1=https://a.example/1", "--idp-client", "c:s2=https://a.example/2"},
		{"--idp-user", "two words"},
		{"--log-level", "loud"},
		{"extra"},
	} {
		var stderr strings.Builder
		if code := run(context.Background(), args, io.Discard, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if stderr.Len() == 0 {
			t.Errorf("%v: no message", args)
		}
	}
}

// idpFlow signs carol in at the command's IdP with a code flow (PKCE, nonce) through
// x/oauth2, verifies the ID token with go-oidc, and gets a workload token for it.
func idpFlow(t *testing.T, base, clientID, secret string) {
	t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: provider.Endpoint(),
		RedirectURL: "https://a.example/login", Scopes: []string{oidc.ScopeOpenID, "email"}}
	verifier, state, nonce := oauth2.GenerateVerifier(), "state-xyz", "nonce-xyz"
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="auth_request" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != 200 || m == nil || !strings.Contains(string(page), `value="carol"`) || strings.Contains(string(page), `value="alice"`) {
		t.Fatalf("sign-in page %d:\n%s", resp.StatusCode, page)
	}
	resp, err = browser.PostForm(base+emulator.OIDCAuthorizePath, url.Values{"auth_request": {html.UnescapeString(string(m[1]))}, "subject": {"carol"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Query().Get("state") != state {
		t.Fatalf("redirect %q", resp.Header.Get("Location"))
	}
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(ctx, raw)
	if err != nil || idt.Subject != "carol" || idt.Nonce != nonce || idt.Expiry.Sub(idt.IssuedAt) != 10*time.Minute {
		t.Fatalf("id token %+v %v", idt, err)
	}
	c := emulator.NewClient(base, func(o *bedrockagentcore.Options) { o.Retryer = aws.NopRetryer{} })
	if _, err := c.GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
		WorkloadName: aws.String("from-file"), UserToken: aws.String(raw)}); err != nil {
		t.Fatalf("ForJWT with the IdP's token: %v", err)
	}
}
